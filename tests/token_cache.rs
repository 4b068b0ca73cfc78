//! The token cache over an injected clock: reuse, refresh margins, one refresh in flight,
//! fallback after a failed early refresh, invalidation after a 401.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{grant, T0};
use hlf_dynamics_sync::secret::Secret;
use hlf_dynamics_sync::token::{
    TokenCache, TokenPoll, EXPIRY_SKEW_MS, REFRESH_MARGIN_MS, REFRESH_RETRY_MS,
};

const HOUR_S: u64 = 3_600;
const HOUR_MS: u64 = 3_600_000;

/// A cache holding `token` issued at `T0` for `expires_in_s`.
fn cache_with(token: &str, expires_in_s: u64) -> TokenCache {
    let mut cache = TokenCache::new();
    assert_eq!(cache.poll(T0), TokenPoll::Refresh);
    cache.on_refreshed(T0, grant(token, expires_in_s));
    cache
}

fn ready(token: &str) -> TokenPoll {
    TokenPoll::Ready(Secret::new(token))
}

#[test]
fn empty_cache_asks_for_a_refresh() {
    let mut cache = TokenCache::new();
    assert!(!cache.is_refreshing());
    assert_eq!(cache.poll(T0), TokenPoll::Refresh);
    assert!(cache.is_refreshing());
    assert_eq!(cache.expires_at_ms(), None);
}

#[test]
fn on_refreshed_returns_and_stores_the_granted_token() {
    let mut cache = TokenCache::new();
    cache.poll(T0);
    let token = cache.on_refreshed(T0, grant("tok-granted", HOUR_S));
    assert_eq!(token.expose(), "tok-granted");
    assert!(!cache.is_refreshing());
    assert_eq!(cache.expires_at_ms(), Some(T0 + HOUR_MS));
    assert_eq!(cache.refreshes(), 1);
}

#[test]
fn token_cache_hit_avoids_second_token_request() {
    let mut cache = cache_with("tok-1", HOUR_S);
    for dt in [0, 1, 60_000, 1_000_000, HOUR_MS - REFRESH_MARGIN_MS - 1] {
        assert_eq!(cache.poll(T0 + dt), ready("tok-1"), "at +{dt} ms");
    }
    assert_eq!(cache.refreshes(), 1);
    assert!(!cache.is_refreshing());
}

#[test]
fn hour_long_token_is_refreshed_five_minutes_before_expiry() {
    let mut cache = cache_with("tok-1", HOUR_S);
    let refresh_at = T0 + HOUR_MS - 300_000;
    assert_eq!(cache.poll(refresh_at - 1), ready("tok-1"));
    assert_eq!(cache.poll(refresh_at), TokenPoll::Refresh);
}

#[test]
fn short_lived_token_is_refreshed_at_half_life() {
    let mut cache = cache_with("tok-1", 120);
    assert_eq!(cache.poll(T0 + 59_999), ready("tok-1"));
    assert_eq!(cache.poll(T0 + 60_000), TokenPoll::Refresh);
}

#[test]
fn other_callers_keep_the_valid_token_during_an_early_refresh() {
    let mut cache = cache_with("tok-1", HOUR_S);
    let t = T0 + HOUR_MS - 200_000;
    assert_eq!(cache.poll(t), TokenPoll::Refresh);
    assert_eq!(
        cache.poll(t),
        ready("tok-1"),
        "no second refresh while one is in flight"
    );
    assert_eq!(cache.poll(t + 1_000), ready("tok-1"));
    cache.on_refreshed(t + 2_000, grant("tok-2", HOUR_S));
    assert_eq!(
        cache.poll(t + 2_000),
        ready("tok-2"),
        "the new token replaces the old"
    );
    assert_eq!(cache.refreshes(), 2);
}

#[test]
fn expired_token_is_refetched_before_next_call() {
    let mut cache = cache_with("tok-1", HOUR_S);
    let after_expiry = T0 + HOUR_MS + 1;
    assert_eq!(cache.poll(after_expiry), TokenPoll::Refresh);
    cache.on_refreshed(after_expiry, grant("tok-2", HOUR_S));
    assert_eq!(cache.poll(after_expiry), ready("tok-2"));
}

#[test]
fn token_is_never_handed_out_at_its_expiry() {
    let expiry = T0 + HOUR_MS;
    for at in [expiry - EXPIRY_SKEW_MS, expiry, expiry + 5] {
        let mut c = cache_with("tok-1", HOUR_S);
        assert_eq!(
            c.poll(at),
            TokenPoll::Refresh,
            "at expiry{:+}",
            at as i64 - expiry as i64
        );
        assert_eq!(
            c.poll(at),
            TokenPoll::Wait,
            "other callers wait, they get no stale token"
        );
    }
}

#[test]
fn failed_refresh_fallback_ends_before_expiry_even_within_the_backoff() {
    let expiry = T0 + HOUR_MS;
    let mut cache = cache_with("tok-1", HOUR_S);
    // An early refresh fails 20 s before expiry: the old token stays in use…
    let t = expiry - 20_000;
    assert_eq!(cache.poll(t), TokenPoll::Refresh);
    assert_eq!(cache.on_refresh_failed(t), Some(Secret::new("tok-1")));
    assert_eq!(cache.poll(expiry - EXPIRY_SKEW_MS - 1), ready("tok-1"));
    // …but the refresh back-off does not stretch its life past the skew before expiry.
    assert_eq!(cache.poll(expiry - EXPIRY_SKEW_MS), TokenPoll::Refresh);
    assert_eq!(cache.on_refresh_failed(expiry - EXPIRY_SKEW_MS), None);
}

#[test]
fn concurrent_callers_wait_while_the_first_fetches() {
    let mut cache = TokenCache::new();
    assert_eq!(cache.poll(T0), TokenPoll::Refresh);
    assert_eq!(cache.poll(T0), TokenPoll::Wait);
    assert_eq!(cache.poll(T0 + 100), TokenPoll::Wait);
    cache.on_refreshed(T0 + 200, grant("tok-1", HOUR_S));
    assert_eq!(cache.poll(T0 + 200), ready("tok-1"));
    assert_eq!(cache.refreshes(), 1);
}

#[test]
fn failed_early_refresh_keeps_valid_token_and_backs_off() {
    let mut cache = cache_with("tok-1", HOUR_S);
    let t = T0 + HOUR_MS - 240_000;
    assert_eq!(cache.poll(t), TokenPoll::Refresh);
    assert_eq!(cache.on_refresh_failed(t), Some(Secret::new("tok-1")));
    assert!(!cache.is_refreshing());
    assert_eq!(cache.poll(t + REFRESH_RETRY_MS - 1), ready("tok-1"));
    assert_eq!(cache.poll(t + REFRESH_RETRY_MS), TokenPoll::Refresh);
}

#[test]
fn failed_refresh_without_token_allows_an_immediate_retry() {
    let mut cache = TokenCache::new();
    assert_eq!(cache.poll(T0), TokenPoll::Refresh);
    assert_eq!(cache.on_refresh_failed(T0), None);
    assert!(!cache.is_refreshing());
    assert_eq!(cache.poll(T0), TokenPoll::Refresh, "waiters must not hang");
}

#[test]
fn invalidate_drops_the_rejected_token_and_forces_a_refresh() {
    let mut cache = cache_with("tok-1", HOUR_S);
    assert!(cache.invalidate(&Secret::new("tok-1")));
    assert_eq!(cache.expires_at_ms(), None);
    assert_eq!(cache.poll(T0 + 1), TokenPoll::Refresh);
}

#[test]
fn invalidate_ignores_a_token_already_replaced() {
    let mut cache = cache_with("tok-1", HOUR_S);
    cache.poll(T0 + HOUR_MS - 100_000);
    cache.on_refreshed(T0 + HOUR_MS - 100_000, grant("tok-2", HOUR_S));
    // A 401 for a request sent with the old token must not drop the new one.
    assert!(!cache.invalidate(&Secret::new("tok-1")));
    assert_eq!(cache.poll(T0 + HOUR_MS), ready("tok-2"));
}

#[test]
fn invalidate_overrides_the_refresh_backoff() {
    let mut cache = cache_with("tok-1", HOUR_S);
    let t = T0 + HOUR_MS - 240_000;
    cache.poll(t);
    cache.on_refresh_failed(t);
    assert!(cache.invalidate(&Secret::new("tok-1")));
    assert_eq!(
        cache.poll(t + 1),
        TokenPoll::Refresh,
        "a 401 cannot wait 30 s"
    );
}

#[test]
fn clear_forgets_the_token_but_keeps_the_count() {
    let mut cache = cache_with("tok-1", HOUR_S);
    cache.clear();
    assert_eq!(cache.expires_at_ms(), None);
    assert_eq!(cache.refreshes(), 1);
    assert_eq!(cache.poll(T0 + 1), TokenPoll::Refresh);
}

#[test]
fn one_second_token_is_still_never_used_at_expiry() {
    let mut cache = cache_with("tok-1", 1);
    assert_eq!(cache.poll(T0 + 499), ready("tok-1"));
    // Refresh window from half-life on; the caller refreshing gets the new token, the others
    // the old one only while it is still clear of expiry.
    assert_eq!(cache.poll(T0 + 500), TokenPoll::Refresh);
    assert_eq!(cache.poll(T0 + 899), ready("tok-1"));
    assert_eq!(cache.poll(T0 + 900), TokenPoll::Wait);
    assert_eq!(cache.poll(T0 + 1_000), TokenPoll::Wait);
}

#[test]
fn clear_during_a_refresh_does_not_start_a_second_refresh() {
    let mut cache = TokenCache::new();
    assert_eq!(cache.poll(1_000), TokenPoll::Refresh);
    cache.clear();
    assert_eq!(
        cache.poll(1_001),
        TokenPoll::Wait,
        "the refresh in flight is still the one"
    );
}
