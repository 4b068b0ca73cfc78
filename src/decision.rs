//! The sync decisions: what the portal should show for a mentor, and what becomes of a queued
//! job once its attempts are over. Pure functions of their inputs and `now`.
//!
//! Processing is level-triggered: the visibility sent is computed from the mentor's facts at
//! processing time, never taken from the queued operation, so a stale job cannot undo a newer
//! change.

use serde::{Deserialize, Serialize};

use crate::dynamics::DynamicsError;
use crate::retry::{Failure, RetryDecision, RetryPolicy};
use crate::rng::Rng;

/// A mentor's status in the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MentorStatus {
    Active,
    Paused,
    ExpiredCert,
}

/// What the decision needs to know about a mentor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MentorFacts {
    pub status: MentorStatus,
    /// Expiry of the mentor's latest certification, if any.
    pub latest_cert_expires_at_ms: Option<u64>,
    /// The organisation has Dynamics sync enabled (HLF only, by default).
    pub sync_enabled: bool,
}

/// Listed on the portal ⇔ active ∧ a certification valid at `now` ∧ sync enabled.
pub fn desired_visibility(facts: &MentorFacts, now_ms: u64) -> bool {
    facts.sync_enabled
        && facts.status == MentorStatus::Active
        && facts
            .latest_cert_expires_at_ms
            .is_some_and(|exp| exp > now_ms)
}

/// What the processor does with a claimed job before calling Dynamics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobPlan {
    /// Send this visibility to the mentor's contact.
    SetVisibility { visible: bool },
    /// Nothing to send: the organisation no longer syncs. The job is done.
    Skip { reason: &'static str },
    /// Cannot be sent: no contact mapping. Dead-letter with an alert so an operator adds it.
    DeadLetter {
        reason: &'static str,
        error_code: &'static str,
    },
}

/// Plans a claimed job from the facts at processing time.
pub fn plan_job(facts: &MentorFacts, has_contact: bool, now_ms: u64) -> JobPlan {
    if !facts.sync_enabled {
        return JobPlan::Skip {
            reason: "organisation has Dynamics sync disabled",
        };
    }
    if !has_contact {
        return JobPlan::DeadLetter {
            reason: "mentor has no Dynamics contact mapping (mentor_dynamics_contacts)",
            error_code: "NO_CONTACT_MAPPING",
        };
    }
    JobPlan::SetVisibility {
        visible: desired_visibility(facts, now_ms),
    }
}

/// What becomes of a job after its in-request attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// The portal shows `visible`; the job is done and open failures resolve.
    Synced { visible: bool },
    /// Transient failure: pending again at `retry_at_ms`; a failure row is open meanwhile.
    Retry {
        retry_at_ms: u64,
        error_code: &'static str,
        message: String,
    },
    /// Permanent failure or attempts exhausted: dead letter plus alert.
    DeadLetter {
        reason: String,
        error_code: &'static str,
        message: String,
    },
    /// Credentials rejected: released without consuming an attempt, alert raised at once.
    AuthFailure {
        retry_at_ms: u64,
        error_code: &'static str,
        message: String,
    },
}

/// How long a job waits after an auth failure before it is tried again (credentials rarely
/// come back sooner; a rotation picked up from Vault is tried on the next run).
pub const AUTH_RETRY_MS: u64 = 300_000;

/// Decides a job's outcome from the result of its attempts.
///
/// `job_attempts` is the queue-level attempt number of this processing run (1-based, after the
/// claim's increment). Queue-level backoff is `policy` (base doubling, capped at one hour); a
/// server-directed `Retry-After` is honoured when longer.
pub fn job_outcome(
    result: &Result<(), DynamicsError>,
    visible: bool,
    job_attempts: u32,
    policy: &RetryPolicy,
    now_ms: u64,
    rng: &mut impl Rng,
) -> JobOutcome {
    let error = match result {
        Ok(()) => return JobOutcome::Synced { visible },
        Err(e) => e,
    };
    let message = error.to_string();
    let error_code = error.code();
    if error.is_auth() {
        return JobOutcome::AuthFailure {
            retry_at_ms: now_ms.saturating_add(AUTH_RETRY_MS),
            error_code,
            message,
        };
    }
    // The queue policy decides from the transient flag alone; Retry-After is applied below as a
    // floor, since the computed delay is normally far longer.
    let failure = Failure {
        transient: error.is_transient(),
        retry_after_ms: None,
    };
    match policy.decide(job_attempts.max(1), failure, now_ms, None, rng) {
        RetryDecision::RetryAfter { delay_ms, .. } => {
            let delay = delay_ms.max(error.retry_after_ms().unwrap_or(0).min(policy.cap_ms));
            JobOutcome::Retry {
                retry_at_ms: now_ms.saturating_add(delay),
                error_code,
                message,
            }
        }
        RetryDecision::GiveUp(reason) => JobOutcome::DeadLetter {
            reason: match reason {
                crate::retry::GiveUpReason::Permanent => format!("permanent error {error_code}"),
                _ => format!("gave up after {job_attempts} attempts, last error {error_code}"),
            },
            error_code,
            message,
        },
    }
}
