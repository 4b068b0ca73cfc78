//! The sync decisions: desired visibility, job plans and job outcomes (synced / retry at T /
//! dead letter / auth failure) with the queue-level backoff.
#![cfg(not(target_arch = "wasm32"))]

use hlf_dynamics_sync::decision::{
    desired_visibility, job_outcome, plan_job, JobOutcome, JobPlan, MentorFacts, MentorStatus,
    AUTH_RETRY_MS,
};
use hlf_dynamics_sync::dynamics::DynamicsError;
use hlf_dynamics_sync::retry::RetryPolicy;
use hlf_dynamics_sync::rng::SplitMix64;

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn facts(status: MentorStatus, cert: Option<u64>, sync_enabled: bool) -> MentorFacts {
    MentorFacts {
        status,
        latest_cert_expires_at_ms: cert,
        sync_enabled,
    }
}

fn active_valid() -> MentorFacts {
    facts(MentorStatus::Active, Some(NOW + 86_400_000), true)
}

/// The contract's queue policy without jitter, so delays can be pinned exactly.
fn exact_queue() -> RetryPolicy {
    RetryPolicy {
        jitter_ms: 0,
        ..RetryPolicy::queue(8, 60_000)
    }
}

fn server_error() -> DynamicsError {
    DynamicsError::Server {
        status: 503,
        retry_after_ms: None,
        code: "HTTP503".into(),
        message: "Service Unavailable".into(),
    }
}

fn throttled(retry_after_ms: u64) -> DynamicsError {
    DynamicsError::Throttled {
        retry_after_ms: Some(retry_after_ms),
        code: "0x80072322".into(),
        message: "Number of requests exceeded the limit".into(),
    }
}

fn outcome(error: DynamicsError, attempts: u32, policy: &RetryPolicy) -> JobOutcome {
    job_outcome(
        &Err(error),
        true,
        attempts,
        policy,
        NOW,
        &mut SplitMix64::new(3),
    )
}

fn retry_delay(o: &JobOutcome) -> u64 {
    match o {
        JobOutcome::Retry { retry_at_ms, .. } => retry_at_ms - NOW,
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[test]
fn desired_visibility_truth_table() {
    #[derive(Clone, Copy, Debug)]
    enum Cert {
        None,
        Expired,
        ExpiresNow,
        Valid,
    }
    let cert_at = |c| match c {
        Cert::None => None,
        Cert::Expired => Some(NOW - 1),
        Cert::ExpiresNow => Some(NOW),
        Cert::Valid => Some(NOW + 1),
    };
    let mut visible = Vec::new();
    for status in [
        MentorStatus::Active,
        MentorStatus::Paused,
        MentorStatus::ExpiredCert,
    ] {
        for cert in [Cert::None, Cert::Expired, Cert::ExpiresNow, Cert::Valid] {
            for enabled in [false, true] {
                if desired_visibility(&facts(status, cert_at(cert), enabled), NOW) {
                    visible.push(format!("{status:?}/{cert:?}/{enabled}"));
                }
            }
        }
    }
    // 24 combinations; exactly one lists the mentor.
    assert_eq!(visible, vec!["Active/Valid/true"]);
}

#[test]
fn certification_expiring_exactly_now_is_not_valid() {
    let f = facts(MentorStatus::Active, Some(NOW), true);
    assert!(!desired_visibility(&f, NOW));
    assert!(
        desired_visibility(&f, NOW - 1),
        "one millisecond earlier it was"
    );
}

#[test]
fn paused_mentor_with_valid_cert_is_hidden() {
    assert!(!desired_visibility(
        &facts(MentorStatus::Paused, Some(NOW + HOUR), true),
        NOW
    ));
}

#[test]
fn plan_skips_when_the_organisation_does_not_sync() {
    let f = facts(MentorStatus::Active, Some(NOW + HOUR), false);
    assert!(matches!(plan_job(&f, true, NOW), JobPlan::Skip { .. }));
    assert!(
        matches!(plan_job(&f, false, NOW), JobPlan::Skip { .. }),
        "a missing mapping does not matter when nothing is sent"
    );
}

#[test]
fn plan_dead_letters_a_mentor_without_contact_mapping() {
    match plan_job(&active_valid(), false, NOW) {
        JobPlan::DeadLetter { error_code, reason } => {
            assert_eq!(error_code, "NO_CONTACT_MAPPING");
            assert!(reason.contains("mentor_dynamics_contacts"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn plan_sends_the_visibility_computed_now() {
    assert_eq!(
        plan_job(&active_valid(), true, NOW),
        JobPlan::SetVisibility { visible: true }
    );
    let paused = facts(MentorStatus::Paused, Some(NOW + HOUR), true);
    assert_eq!(
        plan_job(&paused, true, NOW),
        JobPlan::SetVisibility { visible: false }
    );
    // Level-triggered: the same facts later, after the certification lapsed, hide the mentor.
    assert_eq!(
        plan_job(&active_valid(), true, NOW + 86_400_000),
        JobPlan::SetVisibility { visible: false }
    );
}

#[test]
fn success_is_synced_with_the_visibility_sent() {
    for visible in [true, false] {
        let o = job_outcome(
            &Ok(()),
            visible,
            3,
            &RetryPolicy::queue(8, 60_000),
            NOW,
            &mut SplitMix64::new(1),
        );
        assert_eq!(o, JobOutcome::Synced { visible });
    }
}

#[test]
fn transient_failure_retries_after_the_queue_base_with_jitter() {
    let o = outcome(server_error(), 1, &RetryPolicy::queue(8, 60_000));
    let d = retry_delay(&o);
    assert!((60_000..66_000).contains(&d), "{d}");
    match o {
        JobOutcome::Retry {
            error_code,
            message,
            ..
        } => {
            assert_eq!(error_code, "SERVER_ERROR");
            assert!(message.contains("503"), "{message}");
        }
        _ => unreachable!(),
    }
}

#[test]
fn queue_backoff_doubles_per_attempt() {
    let p = exact_queue();
    let delays: Vec<u64> = (1..=6)
        .map(|n| retry_delay(&outcome(server_error(), n, &p)))
        .collect();
    assert_eq!(
        delays,
        vec![60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000]
    );
}

#[test]
fn queue_backoff_is_capped_at_one_hour() {
    let p = RetryPolicy {
        max_attempts: 20,
        ..RetryPolicy::queue(20, 60_000)
    };
    for attempt in [7, 10, 19] {
        assert_eq!(
            retry_delay(&outcome(server_error(), attempt, &p)),
            HOUR,
            "{attempt}"
        );
    }
}

#[test]
fn retry_after_is_a_floor_for_the_queue_delay() {
    let p = exact_queue();
    // Longer than the computed 60 s: the server wins.
    assert_eq!(retry_delay(&outcome(throttled(600_000), 1, &p)), 600_000);
    // Shorter than the computed 240 s: the backoff wins.
    assert_eq!(retry_delay(&outcome(throttled(5_000), 3, &p)), 240_000);
    // Longer than the cap: capped at one hour.
    assert_eq!(retry_delay(&outcome(throttled(7_200_000), 1, &p)), HOUR);
}

#[test]
fn permanent_error_is_dead_lettered_at_once() {
    let nf = DynamicsError::NotFound {
        code: "0x80040217".into(),
        message: "contact Does Not Exist".into(),
    };
    match outcome(nf, 1, &RetryPolicy::queue(8, 60_000)) {
        JobOutcome::DeadLetter {
            reason,
            error_code,
            message,
        } => {
            assert_eq!(error_code, "NOT_FOUND");
            assert_eq!(reason, "permanent error NOT_FOUND");
            assert!(message.contains("Does Not Exist"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for e in [
        DynamicsError::Forbidden {
            code: "c".into(),
            message: "m".into(),
        },
        DynamicsError::PreconditionFailed {
            code: "c".into(),
            message: "m".into(),
        },
        DynamicsError::BadRequest {
            status: 400,
            code: "c".into(),
            message: "m".into(),
        },
    ] {
        assert!(
            matches!(
                outcome(e.clone(), 1, &exact_queue()),
                JobOutcome::DeadLetter { .. }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn exhausted_attempts_are_dead_lettered() {
    let p = RetryPolicy::queue(8, 60_000);
    assert!(matches!(
        outcome(server_error(), 7, &p),
        JobOutcome::Retry { .. }
    ));
    match outcome(server_error(), 8, &p) {
        JobOutcome::DeadLetter {
            reason, error_code, ..
        } => {
            assert_eq!(error_code, "SERVER_ERROR");
            assert_eq!(reason, "gave up after 8 attempts, last error SERVER_ERROR");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn auth_failure_does_not_consume_attempts() {
    let auth = DynamicsError::Auth {
        code: "invalid_client".into(),
        message: "AADSTS7000215".into(),
    };
    let p = RetryPolicy::queue(8, 60_000);
    // Even on the last (or a past-last) attempt an auth failure never dead-letters the job.
    for attempts in [1, 8, 50] {
        match outcome(auth.clone(), attempts, &p) {
            JobOutcome::AuthFailure {
                retry_at_ms,
                error_code,
                message,
            } => {
                assert_eq!(retry_at_ms, NOW + AUTH_RETRY_MS);
                assert_eq!(error_code, "AUTH_FAILED");
                assert!(message.contains("invalid_client"), "{message}");
            }
            other => panic!("attempt {attempts}: {other:?}"),
        }
    }
}

#[test]
fn attempt_zero_is_treated_as_the_first() {
    assert_eq!(
        retry_delay(&outcome(server_error(), 0, &exact_queue())),
        60_000
    );
}

#[test]
fn mentor_status_uses_the_database_spelling() {
    assert_eq!(
        serde_json::to_string(&MentorStatus::ExpiredCert).unwrap(),
        "\"expired_cert\""
    );
    let s: MentorStatus = serde_json::from_str("\"paused\"").unwrap();
    assert_eq!(s, MentorStatus::Paused);
    assert!(serde_json::from_str::<MentorStatus>("\"Active\"").is_err());
}
