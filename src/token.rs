//! The token cache: a state machine over `now` that decides when a bearer token may be used,
//! when it must be refreshed, and who refreshes it.
//!
//! - A token is reused until its refresh point: `min(5 min, lifetime / 2)` before expiry
//!   (the margin MSAL and Azure.Core use, halved for short-lived tokens).
//! - One refresh at a time: while one caller refreshes, others keep using the still-valid token,
//!   or are told to wait when there is none.
//! - If an early refresh fails, the still-valid token stays in use; the next refresh is tried
//!   after [`REFRESH_RETRY_MS`].
//! - A token is never handed out at or past its expiry (minus [`EXPIRY_SKEW_MS`] for the request
//!   still in flight).
//! - A 401 from the API invalidates the token it was sent with, forcing one refresh.

use crate::dynamics::response::TokenGrant;
use crate::secret::Secret;

/// Refresh margin cap: 5 minutes.
pub const REFRESH_MARGIN_MS: u64 = 300_000;
/// A token this close to expiry is treated as expired: the request would arrive too late.
pub const EXPIRY_SKEW_MS: u64 = 10_000;
/// After a failed early refresh, wait this long before trying again.
pub const REFRESH_RETRY_MS: u64 = 30_000;

/// What a caller should do to get a token.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenPoll {
    /// Use this token.
    Ready(Secret),
    /// Fetch a new token now, then report with [`TokenCache::on_refreshed`] or
    /// [`TokenCache::on_refresh_failed`]. The caller now owns the refresh.
    Refresh,
    /// Another caller is refreshing and there is no usable token: wait for it, then poll again.
    Wait,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Cached {
    token: Secret,
    refresh_at_ms: u64,
    usable_until_ms: u64,
    expires_at_ms: u64,
}

/// The cache. One per isolate; survives across requests in a warm isolate.
#[derive(Debug, Default)]
pub struct TokenCache {
    cached: Option<Cached>,
    refreshing: bool,
    next_refresh_ms: u64,
    refreshes: u64,
}

impl TokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides, at `now_ms`, whether to use the cached token, refresh, or wait.
    pub fn poll(&mut self, now_ms: u64) -> TokenPoll {
        let usable = self.usable(now_ms).cloned();
        match usable {
            Some(c) if now_ms < c.refresh_at_ms => TokenPoll::Ready(c.token),
            Some(c) => {
                if !self.refreshing && now_ms >= self.next_refresh_ms {
                    self.refreshing = true;
                    TokenPoll::Refresh
                } else {
                    TokenPoll::Ready(c.token)
                }
            }
            None if self.refreshing => TokenPoll::Wait,
            None => {
                self.refreshing = true;
                TokenPoll::Refresh
            }
        }
    }

    /// Stores a freshly issued token; ends the refresh.
    pub fn on_refreshed(&mut self, now_ms: u64, grant: TokenGrant) -> Secret {
        let lifetime = grant.expires_in_ms;
        let margin = REFRESH_MARGIN_MS.min(lifetime / 2);
        let expires_at_ms = now_ms.saturating_add(lifetime);
        self.cached = Some(Cached {
            token: grant.access_token.clone(),
            refresh_at_ms: expires_at_ms - margin,
            usable_until_ms: expires_at_ms - EXPIRY_SKEW_MS.min(lifetime / 10),
            expires_at_ms,
        });
        self.refreshing = false;
        self.next_refresh_ms = 0;
        self.refreshes += 1;
        grant.access_token
    }

    /// Ends a failed refresh. Returns the still-valid token to use instead, if there is one;
    /// the next refresh attempt waits [`REFRESH_RETRY_MS`].
    pub fn on_refresh_failed(&mut self, now_ms: u64) -> Option<Secret> {
        self.refreshing = false;
        let fallback = self.usable(now_ms).map(|c| c.token.clone());
        if fallback.is_some() {
            self.next_refresh_ms = now_ms.saturating_add(REFRESH_RETRY_MS);
        }
        fallback
    }

    /// Drops `token` after the API rejected it with 401, unless a newer token already replaced it.
    /// Returns whether it was dropped.
    pub fn invalidate(&mut self, token: &Secret) -> bool {
        if self.cached.as_ref().is_some_and(|c| &c.token == token) {
            self.cached = None;
            self.next_refresh_ms = 0;
            true
        } else {
            false
        }
    }

    /// Forgets the cached token (credentials rotated, or a health check wants a fresh one).
    /// A refresh already in flight stays the one refresh: its result is the fresh token.
    pub fn clear(&mut self) {
        self.cached = None;
        self.next_refresh_ms = 0;
    }

    /// Whether a refresh is in flight.
    pub fn is_refreshing(&self) -> bool {
        self.refreshing
    }

    /// Tokens stored since creation (for tests and metrics).
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    /// Expiry of the cached token, if any.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.cached.as_ref().map(|c| c.expires_at_ms)
    }

    fn usable(&self, now_ms: u64) -> Option<&Cached> {
        self.cached.as_ref().filter(|c| now_ms < c.usable_until_ms)
    }
}
