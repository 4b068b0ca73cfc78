//! Azure AD token endpoint answers through `parse_token_response`, then into the `TokenCache`:
//! a grant is sane, an error is typed, and the cache never hands out a token past its expiry.
//! Input: `<status> [now_seconds]\n<Retry-After>\n<body>`.
#![no_main]

use fuzz_support::{check_error, framed_response};
use hlf_dynamics_sync::dynamics::response::parse_token_response;
use hlf_dynamics_sync::token::{TokenCache, TokenPoll, EXPIRY_SKEW_MS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (response, now_ms) = framed_response(data);
    let status = response.status;
    match parse_token_response(&response, now_ms) {
        Ok(grant) => {
            assert!((200..300).contains(&status), "grant from status {status}");
            assert!(!grant.access_token.is_empty());
            assert!((1_000..=86_400_000).contains(&grant.expires_in_ms));
            let token = grant.access_token.expose().to_owned();
            if token.len() >= 4 {
                assert!(
                    !format!("{grant:?}").contains(&token),
                    "Debug shows the token"
                );
            }

            let mut cache = TokenCache::new();
            assert_eq!(cache.poll(now_ms), TokenPoll::Refresh);
            let expires_at = now_ms + grant.expires_in_ms;
            cache.on_refreshed(now_ms, grant);
            assert!(!cache.is_refreshing());
            // Probe the cache across the token's life and past it.
            for step in 0..=16u64 {
                let t = now_ms + step * (expires_at - now_ms) / 16 + step;
                match cache.poll(t) {
                    TokenPoll::Ready(s) => {
                        assert_eq!(s.expose(), token);
                        let skew = EXPIRY_SKEW_MS.min((expires_at - now_ms) / 10);
                        assert!(
                            t + skew < expires_at,
                            "token handed out at {t}, expiry {expires_at}"
                        );
                    }
                    TokenPoll::Refresh => {
                        assert!(cache.is_refreshing());
                        cache.on_refresh_failed(t);
                    }
                    TokenPoll::Wait => panic!("nobody else is refreshing, yet told to wait"),
                }
            }
        }
        Err(e) => {
            check_error(&e);
            if e.is_auth() {
                assert!(!(200..300).contains(&status));
            }
        }
    }
});
