//! Property tests of the invariants: backoff bounds, deadlines, attempt limits, the token
//! cache's safety rules, Retry-After parsing, redaction and whole calls under random answers.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{contact, resp, resp_retry_after, Harness, T0};
use hlf_dynamics_sync::decision::{job_outcome, JobOutcome};
use hlf_dynamics_sync::dynamics::response::parse_retry_after;
use hlf_dynamics_sync::dynamics::{DynamicsError, HttpResponse, Operation};
use hlf_dynamics_sync::retry::{Backoff, Failure, GiveUpReason, RetryDecision, RetryPolicy};
use hlf_dynamics_sync::rng::SplitMix64;
use hlf_dynamics_sync::secret::{redact, Secret};
use hlf_dynamics_sync::token::{TokenCache, TokenPoll};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (1u32..10, 0u64..100_000, 0u64..10_000, 0u64..7_200_000).prop_map(
        |(max_attempts, base_ms, jitter_ms, cap_ms)| RetryPolicy {
            max_attempts,
            base_ms,
            jitter_ms,
            cap_ms,
        },
    )
}

/// `base · 2^(attempt−1)` exactly (attempt < 100, base < 2^20: fits in 128 bits).
fn exponential(base: u64, attempt: u32) -> u128 {
    u128::from(base) << attempt.saturating_sub(1)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn backoff_stays_within_jitter_bounds(
        base in 0u64..200_000,
        jitter in 0u64..10_000,
        attempt in 1u32..80,
        cap in prop_oneof![Just(u64::MAX), 0u64..10_000_000],
        seed in any::<u64>(),
    ) {
        let p = RetryPolicy { max_attempts: 100, base_ms: base, jitter_ms: jitter, cap_ms: cap };
        let d = p.delay_ms(attempt, &mut SplitMix64::new(seed));
        // base·2^(n−1) ≤ d < base·2^(n−1) + jitter, then clamped to the cap (and to u64).
        let clamp = |v: u128| v.min(u128::from(cap)).min(u128::from(u64::MAX));
        let low = exponential(base, attempt);
        let high = low + u128::from(jitter.saturating_sub(1)); // inclusive
        prop_assert!(d <= cap, "{d} above cap {cap}");
        prop_assert!(
            clamp(low) <= u128::from(d) && u128::from(d) <= clamp(high),
            "{} <= {d} <= {}", clamp(low), clamp(high)
        );
    }

    #[test]
    fn retry_decision_never_sleeps_past_the_deadline(
        p in policy(),
        attempt in 1u32..12,
        transient in any::<bool>(),
        retry_after in proptest::option::of(0u64..200_000),
        now in 0u64..1_000_000_000_000,
        deadline_in in proptest::option::of(0u64..200_000),
        seed in any::<u64>(),
    ) {
        let deadline = deadline_in.map(|d| now + d);
        let failure = Failure { transient, retry_after_ms: retry_after };
        match p.decide(attempt, failure, now, deadline, &mut SplitMix64::new(seed)) {
            RetryDecision::RetryAfter { delay_ms, attempt: next } => {
                prop_assert!(transient);
                prop_assert!(delay_ms <= p.cap_ms);
                if let Some(d) = deadline {
                    prop_assert!(now + delay_ms < d, "{now} + {delay_ms} >= {d}");
                }
                if let Some(r) = retry_after {
                    prop_assert_eq!(delay_ms, r.min(p.cap_ms));
                }
                prop_assert_eq!(next, attempt + 1);
                prop_assert!(next <= p.max_attempts);
            }
            RetryDecision::GiveUp(GiveUpReason::Permanent) => prop_assert!(!transient),
            RetryDecision::GiveUp(GiveUpReason::Exhausted) => {
                prop_assert!(transient && attempt >= p.max_attempts)
            }
            RetryDecision::GiveUp(GiveUpReason::Deadline) => {
                prop_assert!(transient && attempt < p.max_attempts && deadline.is_some())
            }
        }
    }

    #[test]
    fn attempts_never_exceed_max(
        p in policy(),
        deadline_in in proptest::option::of(0u64..600_000),
        transient in proptest::collection::vec(prop::bool::weighted(0.9), 12),
        seed in any::<u64>(),
    ) {
        let start = 5_000_000u64;
        let deadline = deadline_in.map(|d| start + d);
        let mut b = Backoff::new(p.clone(), deadline);
        let mut rng = SplitMix64::new(seed);
        let mut now = start;
        let mut made = 1u32;
        let mut all_transient = true;
        for t in transient {
            all_transient &= t;
            let failure = Failure { transient: t, retry_after_ms: None };
            match b.on_failure(now, failure, &mut rng) {
                RetryDecision::RetryAfter { delay_ms, attempt } => {
                    now += delay_ms;
                    made += 1;
                    prop_assert_eq!(attempt, made);
                    prop_assert_eq!(b.attempt(), made);
                    if let Some(d) = deadline {
                        prop_assert!(now < d, "attempt {made} starts at {now}, deadline {d}");
                    }
                }
                RetryDecision::GiveUp(_) => break,
            }
        }
        prop_assert!(made <= p.max_attempts, "{made} > {}", p.max_attempts);
        if all_transient && deadline.is_none() && p.max_attempts <= 12 {
            prop_assert_eq!(made, p.max_attempts, "no early give-up without a reason");
        }
    }
}

#[derive(Clone, Debug)]
enum CacheOp {
    Poll { dt_ms: u64 },
    Grant { expires_in_s: u64 },
    FailRefresh,
    InvalidateLatest,
    InvalidateStale,
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        4 => prop_oneof![0u64..2_000, 0u64..4_000_000].prop_map(|dt_ms| CacheOp::Poll { dt_ms }),
        2 => prop_oneof![1u64..120, 1u64..7_200].prop_map(|expires_in_s| CacheOp::Grant { expires_in_s }),
        1 => Just(CacheOp::FailRefresh),
        1 => Just(CacheOp::InvalidateLatest),
        1 => Just(CacheOp::InvalidateStale),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Model-based: a caller that refreshes whenever told to and reports back later.
    #[test]
    fn token_cache_is_safe_under_any_schedule(ops in proptest::collection::vec(cache_op(), 1..60)) {
        let mut cache = TokenCache::new();
        let mut now = T0;
        let mut outstanding = false;
        // The latest granted token and its absolute expiry, while the cache should hold it.
        let mut latest: Option<(Secret, u64)> = None;
        let mut granted = 0u32;
        for op in ops {
            match op {
                CacheOp::Poll { dt_ms } => {
                    now += dt_ms;
                    match cache.poll(now) {
                        TokenPoll::Refresh => {
                            prop_assert!(!outstanding, "a second refresh while one is in flight");
                            outstanding = true;
                        }
                        TokenPoll::Ready(t) => {
                            let (want, expires_at) = latest.clone().expect("Ready without a token");
                            prop_assert_eq!(&t, &want, "Ready must give the latest granted token");
                            prop_assert!(now < expires_at, "token handed out at {now} >= expiry {expires_at}");
                        }
                        TokenPoll::Wait => prop_assert!(outstanding, "Wait with nobody refreshing"),
                    }
                    prop_assert_eq!(cache.is_refreshing(), outstanding);
                }
                CacheOp::Grant { expires_in_s } if outstanding => {
                    granted += 1;
                    let token = Secret::new(format!("token-{granted}"));
                    let got = cache.on_refreshed(now, common::grant(token.expose(), expires_in_s));
                    prop_assert_eq!(&got, &token);
                    latest = Some((token, now + expires_in_s * 1000));
                    outstanding = false;
                    prop_assert_eq!(cache.refreshes(), u64::from(granted));
                }
                CacheOp::FailRefresh if outstanding => {
                    if let Some(fallback) = cache.on_refresh_failed(now) {
                        let (want, expires_at) = latest.clone().expect("fallback without a token");
                        prop_assert_eq!(&fallback, &want);
                        prop_assert!(now < expires_at);
                    }
                    outstanding = false;
                }
                CacheOp::InvalidateLatest => {
                    if let Some((token, _)) = latest.take() {
                        prop_assert!(cache.invalidate(&token));
                        prop_assert_eq!(cache.expires_at_ms(), None);
                    }
                }
                CacheOp::InvalidateStale => {
                    prop_assert!(!cache.invalidate(&Secret::new("token-never-issued")));
                }
                CacheOp::Grant { .. } | CacheOp::FailRefresh => {}
            }
        }
    }

    #[test]
    fn two_polls_without_a_report_never_refresh_twice(
        prefix in proptest::collection::vec(0u64..4_000_000, 0..6),
        expires_in_s in 1u64..7_200,
        gap in 0u64..10_000,
    ) {
        let mut cache = TokenCache::new();
        let mut now = T0;
        cache.poll(now);
        cache.on_refreshed(now, common::grant("token-1", expires_in_s));
        for dt in prefix {
            now += dt;
            if cache.poll(now) == TokenPoll::Refresh {
                cache.on_refreshed(now, common::grant("token-1", expires_in_s));
            }
        }
        let first = cache.poll(now);
        let second = cache.poll(now + gap);
        prop_assert!(
            !(first == TokenPoll::Refresh && second == TokenPoll::Refresh),
            "two refreshes outstanding"
        );
        if first == TokenPoll::Refresh {
            prop_assert!(matches!(second, TokenPoll::Ready(_) | TokenPoll::Wait), "{second:?}");
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for a Unix time in seconds.
fn imf_fixdate(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, written independently of the parser's inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[((days + 4).rem_euclid(7)) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[test]
fn imf_fixdate_helper_matches_the_rfc_example() {
    assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn retry_after_seconds_round_trip(secs in 0u64..=86_400, now in any::<u64>()) {
        prop_assert_eq!(parse_retry_after(&secs.to_string(), now), Some(secs * 1000));
    }

    #[test]
    fn retry_after_http_date_counts_from_now(
        at_s in 0u64..253_402_300_799,
        ahead_ms in 0u64..=86_400_000,
        late_ms in 0u64..10_000_000,
    ) {
        let date = imf_fixdate(at_s);
        let at_ms = at_s * 1000;
        if let Some(now) = at_ms.checked_sub(ahead_ms) {
            prop_assert_eq!(parse_retry_after(&date, now), Some(ahead_ms), "{}", date);
        }
        prop_assert_eq!(parse_retry_after(&date, at_ms + late_ms), Some(0), "{}", date);
    }

    #[test]
    fn bearer_tokens_are_always_redacted(
        before in "[a-z :;,.]{0,20}",
        keyword in prop::sample::select(vec!["Bearer", "bearer", "BEARER", "BeArEr"]),
        gap in "[ \t]{1,3}",
        token in "[A-Z0-9_.~+/=-]{4,60}",
        after in "[ ,\"][a-z ]{0,20}",
    ) {
        let text = format!("{before}{keyword}{gap}{token}{after}");
        let out = redact(&text, &[]);
        prop_assert!(!out.contains(&token), "{text:?} → {out:?}");
        prop_assert!(out.ends_with(&after), "text after the token survives: {out:?}");
    }

    #[test]
    fn job_outcome_respects_queue_limits(
        status in prop::sample::select(vec![400u16, 401, 403, 404, 408, 412, 429, 500, 502, 503, 504]),
        retry_after in proptest::option::of(0u64..20_000),
        attempts in 0u32..12,
        seed in any::<u64>(),
    ) {
        let now = T0;
        let mut response = resp(status, "");
        response.retry_after = retry_after.map(|s| s.to_string());
        let error = hlf_dynamics_sync::dynamics::response::classify(&response, now).unwrap_err();
        let policy = RetryPolicy::queue(8, 60_000);
        let o = job_outcome(&Err(error.clone()), true, attempts, &policy, now, &mut SplitMix64::new(seed));
        match o {
            JobOutcome::Retry { retry_at_ms, .. } => {
                prop_assert!(error.is_transient() && attempts < 8);
                prop_assert!(retry_at_ms >= now + 60_000 && retry_at_ms <= now + 3_600_000);
                if let Some(ra) = error.retry_after_ms() {
                    prop_assert!(retry_at_ms >= now + ra.min(3_600_000));
                }
            }
            JobOutcome::DeadLetter { .. } => {
                prop_assert!(!error.is_auth());
                prop_assert!(!error.is_transient() || attempts >= 8);
            }
            JobOutcome::AuthFailure { .. } => prop_assert_eq!(status, 401),
            JobOutcome::Synced { .. } => prop_assert!(false, "an error is never synced"),
        }
    }
}

fn answer() -> impl Strategy<Value = HttpResponse> {
    prop_oneof![
        prop::sample::select(vec![
            204u16, 400, 401, 403, 404, 408, 412, 429, 500, 502, 503, 504
        ])
        .prop_map(|s| resp(s, "")),
        (0u64..40).prop_map(|s| resp_retry_after(429, &s.to_string(), "")),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// A whole call under random answers: bounded requests, one forced refresh at most, no
    /// sleep past the deadline, and the result matches the last answer.
    #[test]
    fn call_under_random_answers_stays_within_its_budget(
        answers in proptest::collection::vec(answer(), 8),
        deadline_in in proptest::option::of(1u64..60_000),
    ) {
        let mut h = Harness::responding(answers.clone());
        let deadline = deadline_in.map(|d| T0 + d);
        let out = h.run(
            Operation::SetVisibility { contact: contact(1), visible: true },
            deadline,
        );
        let max = RetryPolicy::default().max_attempts as usize;
        prop_assert!(h.invalidations.len() <= 1, "more than one forced refresh");
        prop_assert!(h.sent.len() <= max + h.invalidations.len());
        prop_assert_eq!(h.token_requests as usize, 1 + h.invalidations.len());
        if let Some(d) = deadline {
            for s in &h.sent[1..] {
                prop_assert!(s.at_ms < d, "a retry started at {} after the deadline {}", s.at_ms, d);
            }
        }
        let last = &answers[h.sent.len() - 1];
        match &out.result {
            Ok(_) => prop_assert_eq!(last.status, 204),
            Err(e) => {
                prop_assert_eq!(e.http_status(), Some(last.status));
                let retried_401 = last.status == 401 && h.invalidations.is_empty();
                prop_assert!(!retried_401, "a 401 ended the call without the forced refresh");
            }
        }
        let _: Option<&DynamicsError> = out.result.as_ref().err();
    }
}
