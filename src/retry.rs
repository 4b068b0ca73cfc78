//! A generic retry policy: exponential backoff with uniform jitter, a cap, server-directed
//! `Retry-After`, and a deadline so retries never overrun the caller's wall budget.
//!
//! Nothing here knows about Dynamics: the caller says whether a failure is transient and what
//! the server asked for; the policy answers when (or whether) to try again. The same type drives
//! the in-request retries (3 attempts, 2 s base) and the queue-level backoff between
//! invocations (8 attempts, 60 s base, capped at one hour), and suits the Xledger and Bufdir
//! integrations too.

use crate::rng::Rng;

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; at least 1.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles for every further attempt.
    pub base_ms: u64,
    /// Upper bound (exclusive) of the uniform jitter added to every computed delay.
    pub jitter_ms: u64,
    /// No delay, computed or server-directed, is longer than this.
    pub cap_ms: u64,
}

impl Default for RetryPolicy {
    /// The contract's in-request defaults: 3 attempts, 2000 ms base, 500 ms jitter, 30 s cap.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_ms: 2_000,
            jitter_ms: 500,
            cap_ms: 30_000,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Sleep this long, then make attempt number `attempt`.
    RetryAfter { delay_ms: u64, attempt: u32 },
    /// Stop: the failure stands.
    GiveUp(GiveUpReason),
}

/// Why a [`RetryDecision::GiveUp`] was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The failure is not worth retrying (the caller said it was permanent).
    Permanent,
    /// `max_attempts` attempts were made.
    Exhausted,
    /// The next attempt could not start before the deadline.
    Deadline,
}

/// What the caller knows about one failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub transient: bool,
    /// A delay the server asked for (`Retry-After`), in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl RetryPolicy {
    /// The queue-level policy: `attempts` tries between invocations, `base_ms` doubling, capped at
    /// one hour, no jitter beyond a tenth of the base (spreads a burst of failures a little).
    pub fn queue(max_attempts: u32, base_ms: u64) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base_ms,
            jitter_ms: base_ms / 10,
            cap_ms: 3_600_000,
        }
    }

    /// The computed delay before attempt `attempt + 1`, after `attempt` (≥ 1) failures:
    /// `base · 2^(attempt−1) + jitter`, jitter uniform in `0..jitter_ms`, capped at `cap_ms`.
    pub fn delay_ms(&self, attempt: u32, rng: &mut impl Rng) -> u64 {
        let exponent = attempt.saturating_sub(1).min(63);
        let backoff = self.base_ms.saturating_mul(1u64 << exponent);
        let jitter = if self.jitter_ms == 0 {
            0
        } else {
            rng.below(self.jitter_ms)
        };
        backoff.saturating_add(jitter).min(self.cap_ms)
    }

    /// Decides what follows failed attempt number `attempt` (1-based) at `now_ms`.
    ///
    /// A server-directed `Retry-After` replaces the computed delay (capped). With a deadline, an
    /// attempt that would start after it is not made: the caller gets `GiveUp(Deadline)` now
    /// rather than a sleep that overruns its budget.
    pub fn decide(
        &self,
        attempt: u32,
        failure: Failure,
        now_ms: u64,
        deadline_ms: Option<u64>,
        rng: &mut impl Rng,
    ) -> RetryDecision {
        if !failure.transient {
            return RetryDecision::GiveUp(GiveUpReason::Permanent);
        }
        if attempt >= self.max_attempts {
            return RetryDecision::GiveUp(GiveUpReason::Exhausted);
        }
        let delay_ms = match failure.retry_after_ms {
            Some(server) => server.min(self.cap_ms),
            None => self.delay_ms(attempt, rng),
        };
        if let Some(deadline) = deadline_ms {
            if now_ms.saturating_add(delay_ms) >= deadline {
                return RetryDecision::GiveUp(GiveUpReason::Deadline);
            }
        }
        RetryDecision::RetryAfter {
            delay_ms,
            attempt: attempt + 1,
        }
    }
}

/// One retried operation: counts attempts against a policy and a deadline.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    deadline_ms: Option<u64>,
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy, deadline_ms: Option<u64>) -> Self {
        Self {
            policy,
            deadline_ms,
            attempt: 1,
        }
    }

    /// The attempt being made now (1-based).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub fn deadline_ms(&self) -> Option<u64> {
        self.deadline_ms
    }

    /// Records that the current attempt failed and returns what to do next.
    pub fn on_failure(
        &mut self,
        now_ms: u64,
        failure: Failure,
        rng: &mut impl Rng,
    ) -> RetryDecision {
        let decision = self
            .policy
            .decide(self.attempt, failure, now_ms, self.deadline_ms, rng);
        if let RetryDecision::RetryAfter { attempt, .. } = decision {
            self.attempt = attempt;
        }
        decision
    }

    /// Time left before the deadline, if any: an attempt's own timeout is clamped to it.
    pub fn remaining_ms(&self, now_ms: u64) -> Option<u64> {
        self.deadline_ms.map(|d| d.saturating_sub(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn first_retry_waits_base_plus_jitter() {
        let policy = RetryPolicy::default();
        let mut rng = SplitMix64::new(7);
        for _ in 0..1000 {
            let d = policy.delay_ms(1, &mut rng);
            assert!((2_000..2_500).contains(&d), "{d}");
        }
    }

    #[test]
    fn delay_is_capped_even_for_huge_attempt_numbers() {
        let policy = RetryPolicy::queue(8, 60_000);
        let mut rng = SplitMix64::new(1);
        assert_eq!(policy.delay_ms(200, &mut rng), 3_600_000);
    }
}
