//! The generic retry policy and the injected RNG: exponential backoff with jitter, caps,
//! server-directed delays, deadlines and attempt counting.
#![cfg(not(target_arch = "wasm32"))]

use hlf_dynamics_sync::retry::{Backoff, Failure, GiveUpReason, RetryDecision, RetryPolicy};
use hlf_dynamics_sync::rng::{Rng, SplitMix64};

const NOW: u64 = 1_000_000;

fn transient() -> Failure {
    Failure {
        transient: true,
        retry_after_ms: None,
    }
}

fn permanent() -> Failure {
    Failure {
        transient: false,
        retry_after_ms: None,
    }
}

fn server_asks(ms: u64) -> Failure {
    Failure {
        transient: true,
        retry_after_ms: Some(ms),
    }
}

fn no_jitter(max_attempts: u32, base_ms: u64, cap_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_ms,
        jitter_ms: 0,
        cap_ms,
    }
}

/// An RNG that always answers the same value, to pin the jitter arithmetic.
struct Fixed(u64);
impl Rng for Fixed {
    fn next_u64(&mut self) -> u64 {
        self.0
    }
}

#[test]
fn defaults_match_the_contract() {
    let p = RetryPolicy::default();
    assert_eq!((p.max_attempts, p.base_ms, p.jitter_ms), (3, 2_000, 500));
    assert!(
        p.cap_ms >= 4_500,
        "the third attempt's delay must not be cut"
    );
}

#[test]
fn backoff_doubles_per_attempt() {
    let p = no_jitter(10, 2_000, u64::MAX);
    let mut rng = SplitMix64::new(1);
    let delays: Vec<u64> = (1..=5).map(|n| p.delay_ms(n, &mut rng)).collect();
    assert_eq!(delays, vec![2_000, 4_000, 8_000, 16_000, 32_000]);
}

#[test]
fn backoff_stays_within_jitter_bounds() {
    let p = RetryPolicy::default();
    let mut rng = SplitMix64::new(42);
    let (mut lo, mut hi) = (u64::MAX, 0);
    for _ in 0..2_000 {
        let d = p.delay_ms(2, &mut rng);
        assert!((4_000..4_500).contains(&d), "{d}");
        lo = lo.min(d);
        hi = hi.max(d);
    }
    // The jitter is actually spread over its range, not a constant.
    assert!(lo < 4_050 && hi > 4_450, "jitter range seen: {lo}..={hi}");
}

#[test]
fn jitter_is_added_to_the_exponential_part() {
    let p = RetryPolicy {
        max_attempts: 5,
        base_ms: 1_000,
        jitter_ms: 500,
        cap_ms: u64::MAX,
    };
    // Fixed(7) → below(500) = 7.
    assert_eq!(p.delay_ms(3, &mut Fixed(7)), 4_007);
}

#[test]
fn attempt_zero_is_treated_as_the_first() {
    let p = no_jitter(3, 2_000, u64::MAX);
    assert_eq!(p.delay_ms(0, &mut SplitMix64::new(1)), 2_000);
}

#[test]
fn delay_is_capped() {
    let p = RetryPolicy {
        max_attempts: 10,
        base_ms: 2_000,
        jitter_ms: 500,
        cap_ms: 10_000,
    };
    let mut rng = SplitMix64::new(3);
    assert!(p.delay_ms(3, &mut rng) < 8_500);
    assert_eq!(p.delay_ms(4, &mut rng), 10_000);
    assert_eq!(p.delay_ms(64, &mut rng), 10_000);
    assert_eq!(p.delay_ms(u32::MAX, &mut rng), 10_000);
}

#[test]
fn same_seed_gives_the_same_schedule() {
    let p = RetryPolicy::default();
    let schedule = |seed| {
        let mut rng = SplitMix64::new(seed);
        (1..=3).map(|n| p.delay_ms(n, &mut rng)).collect::<Vec<_>>()
    };
    assert_eq!(schedule(9), schedule(9));
    assert_ne!(schedule(9), schedule(10));
}

#[test]
fn permanent_failure_gives_up_at_once() {
    let p = RetryPolicy::default();
    let d = p.decide(1, permanent(), NOW, None, &mut SplitMix64::new(1));
    assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::Permanent));
}

#[test]
fn transient_failure_retries_with_next_attempt_number() {
    let p = no_jitter(3, 2_000, 30_000);
    let mut rng = SplitMix64::new(1);
    assert_eq!(
        p.decide(1, transient(), NOW, None, &mut rng),
        RetryDecision::RetryAfter {
            delay_ms: 2_000,
            attempt: 2
        }
    );
    assert_eq!(
        p.decide(2, transient(), NOW, None, &mut rng),
        RetryDecision::RetryAfter {
            delay_ms: 4_000,
            attempt: 3
        }
    );
}

#[test]
fn gives_up_exhausted_at_max_attempts() {
    let p = RetryPolicy::default();
    let d = p.decide(3, transient(), NOW, None, &mut SplitMix64::new(1));
    assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::Exhausted));
}

#[test]
fn server_retry_after_replaces_the_computed_delay() {
    let p = RetryPolicy::default();
    let mut rng = SplitMix64::new(1);
    for (asked, expected) in [(0, 0), (500, 500), (7_000, 7_000), (120_000, 30_000)] {
        assert_eq!(
            p.decide(1, server_asks(asked), NOW, None, &mut rng),
            RetryDecision::RetryAfter {
                delay_ms: expected,
                attempt: 2
            },
            "Retry-After {asked} ms"
        );
    }
}

#[test]
fn deadline_refuses_a_retry_that_would_start_at_or_after_it() {
    let p = no_jitter(3, 2_000, 30_000);
    let mut rng = SplitMix64::new(1);
    let give_up = RetryDecision::GiveUp(GiveUpReason::Deadline);
    assert_eq!(
        p.decide(1, transient(), NOW, Some(NOW + 2_000), &mut rng),
        give_up
    );
    assert_eq!(
        p.decide(1, transient(), NOW, Some(NOW + 1_000), &mut rng),
        give_up
    );
    assert_eq!(p.decide(1, transient(), NOW, Some(NOW), &mut rng), give_up);
    assert_eq!(
        p.decide(1, transient(), NOW, Some(NOW + 2_001), &mut rng),
        RetryDecision::RetryAfter {
            delay_ms: 2_000,
            attempt: 2
        }
    );
    assert_eq!(
        p.decide(1, server_asks(5_000), NOW, Some(NOW + 4_000), &mut rng),
        give_up
    );
}

#[test]
fn permanent_beats_exhausted_and_deadline() {
    let p = RetryPolicy::default();
    let d = p.decide(99, permanent(), NOW, Some(0), &mut SplitMix64::new(1));
    assert_eq!(d, RetryDecision::GiveUp(GiveUpReason::Permanent));
}

#[test]
fn backoff_counts_attempts_and_stops_at_max() {
    let mut b = Backoff::new(no_jitter(3, 100, 1_000), None);
    let mut rng = SplitMix64::new(1);
    assert_eq!(b.attempt(), 1);
    assert!(matches!(
        b.on_failure(NOW, transient(), &mut rng),
        RetryDecision::RetryAfter {
            delay_ms: 100,
            attempt: 2
        }
    ));
    assert_eq!(b.attempt(), 2);
    assert!(matches!(
        b.on_failure(NOW, transient(), &mut rng),
        RetryDecision::RetryAfter {
            delay_ms: 200,
            attempt: 3
        }
    ));
    assert_eq!(
        b.on_failure(NOW, transient(), &mut rng),
        RetryDecision::GiveUp(GiveUpReason::Exhausted)
    );
    assert_eq!(b.attempt(), 3, "giving up does not count another attempt");
}

#[test]
fn backoff_reports_its_deadline_and_time_left() {
    let b = Backoff::new(RetryPolicy::default(), Some(NOW + 5_000));
    assert_eq!(b.deadline_ms(), Some(NOW + 5_000));
    assert_eq!(b.remaining_ms(NOW), Some(5_000));
    assert_eq!(b.remaining_ms(NOW + 9_000), Some(0));
    let unbounded = Backoff::new(RetryPolicy::default(), None);
    assert_eq!(unbounded.remaining_ms(NOW), None);
}

#[test]
fn queue_policy_doubles_from_its_base_and_caps_at_one_hour() {
    let p = RetryPolicy::queue(8, 60_000);
    assert_eq!(p.max_attempts, 8);
    assert_eq!(p.jitter_ms, 6_000);
    assert_eq!(p.cap_ms, 3_600_000);
    let mut rng = SplitMix64::new(5);
    let d1 = p.delay_ms(1, &mut rng);
    assert!((60_000..66_000).contains(&d1), "{d1}");
    let d3 = p.delay_ms(3, &mut rng);
    assert!((240_000..246_000).contains(&d3), "{d3}");
    assert_eq!(p.delay_ms(7, &mut rng), 3_600_000);
}

#[test]
fn queue_policy_makes_at_least_one_attempt() {
    assert_eq!(RetryPolicy::queue(0, 1_000).max_attempts, 1);
}

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // Reference values of SplitMix64 (Vigna) seeded with 0.
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
}

#[test]
fn below_stays_under_its_bound_and_covers_it() {
    let mut rng = SplitMix64::new(11);
    let mut seen = [false; 7];
    for _ in 0..1_000 {
        let v = rng.below(7);
        assert!(v < 7);
        seen[v as usize] = true;
    }
    assert!(seen.iter().all(|s| *s), "{seen:?}");
    assert_eq!(rng.below(1), 0);
}

#[test]
fn below_rejects_values_in_the_biased_zone() {
    // u64::MAX lies in the zone that would bias `% 10`; it must be redrawn.
    struct Seq(Vec<u64>);
    impl Rng for Seq {
        fn next_u64(&mut self) -> u64 {
            self.0.remove(0)
        }
    }
    let mut rng = Seq(vec![u64::MAX, 13]);
    assert_eq!(rng.below(10), 3);
}

#[test]
#[should_panic(expected = "positive bound")]
fn below_zero_is_a_caller_bug() {
    SplitMix64::new(1).below(0);
}
