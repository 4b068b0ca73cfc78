//! No secret, token or Authorization header ever reaches a log line, an error or a Debug dump.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use hlf_dynamics_sync::dynamics::request::{set_visibility_request, token_request};
use hlf_dynamics_sync::dynamics::response::{classify, parse_token_response};
use hlf_dynamics_sync::dynamics::{Credentials, DynamicsError, Operation};
use hlf_dynamics_sync::secret::{redact, truncate, Secret, REDACTED};
use hlf_dynamics_sync::token::{TokenCache, TokenPoll};

const CLIENT_SECRET: &str = "Xq8~client.secret_VALUE-42";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.claims.sig";

fn assert_clean(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{s:?} leaked into: {text}");
    }
}

#[test]
fn secret_debug_and_display_never_show_the_value() {
    let s = Secret::new(CLIENT_SECRET);
    assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
    assert_eq!(format!("{s}"), REDACTED);
    assert_eq!(
        s.expose(),
        CLIENT_SECRET,
        "the value is still there for the request"
    );
    assert!(!s.is_empty());
    assert!(Secret::new("").is_empty());
}

#[test]
fn credentials_debug_shows_ids_but_not_the_secret() {
    let c = Credentials::new("tenant-guid", "client-guid", CLIENT_SECRET).unwrap();
    let dbg = format!("{c:?}");
    assert_clean(&dbg, &[CLIENT_SECRET]);
    assert!(
        dbg.contains("tenant-guid") && dbg.contains("client-guid"),
        "{dbg}"
    );
    assert!(dbg.contains(REDACTED), "{dbg}");
}

#[test]
fn request_debug_hides_the_authorization_header() {
    let req = set_visibility_request(&config(), TOKEN, &contact(1), true);
    let dbg = format!("{req:?}");
    assert_clean(&dbg, &[TOKEN, "claims.sig"]);
    assert!(dbg.contains("\"Authorization\", \"[REDACTED]\""), "{dbg}");
    assert!(
        dbg.contains("If-Match"),
        "other headers stay visible: {dbg}"
    );
    assert!(
        dbg.contains("hlf_portalvisible"),
        "a non-sensitive body stays visible: {dbg}"
    );
}

#[test]
fn token_request_debug_hides_the_form_body() {
    let c = Credentials::new("tenant", "client", CLIENT_SECRET).unwrap();
    let req = token_request(&config(), &c);
    let dbg = format!("{req:?}");
    // Neither the raw nor the form-encoded secret may appear.
    assert_clean(
        &dbg,
        &[
            CLIENT_SECRET,
            "Xq8%7Eclient.secret_VALUE-42",
            "client_secret=",
        ],
    );
    assert!(dbg.contains("body: Some(\"[REDACTED]\")"), "{dbg}");
    assert!(dbg.contains("login.microsoftonline.com"), "{dbg}");
}

#[test]
fn token_cache_and_grants_never_show_the_token() {
    let mut cache = TokenCache::new();
    cache.poll(T0);
    let g = grant(TOKEN, 3600);
    let g_dbg = format!("{g:?}");
    cache.on_refreshed(T0, g);
    let poll = cache.poll(T0);
    assert!(matches!(poll, TokenPoll::Ready(_)));
    let dbg = format!("{cache:?} {poll:?} {g_dbg}");
    assert_clean(&dbg, &[TOKEN, "claims.sig"]);
}

#[test]
fn error_quoting_a_bearer_token_is_redacted() {
    let body = dataverse_error(
        "0x80090001",
        "Header was Authorization: Bearer xyz123 and it failed",
    );
    let e = classify(&resp(400, &body), T0).unwrap_err();
    let text = format!("{e} {e:?}");
    assert_clean(&text, &["xyz123"]);
    assert!(text.contains("Bearer [REDACTED] and it failed"), "{text}");
}

#[test]
fn non_json_error_quoting_a_bearer_token_is_redacted() {
    let e = classify(
        &resp(
            502,
            "upstream said: authorization: bearer xyz.abc.def, go away",
        ),
        T0,
    )
    .unwrap_err();
    let text = e.to_string();
    assert_clean(&text, &["xyz.abc.def"]);
    assert!(text.contains(", go away"), "{text}");
}

#[test]
fn aad_error_quoting_a_bearer_token_is_redacted() {
    let body = serde_json::json!({"error": "invalid_request", "error_description": "got Bearer xyz999 in header"});
    let e = parse_token_response(&resp(400, &body.to_string()), T0).unwrap_err();
    assert_clean(&e.to_string(), &["xyz999"]);
}

#[test]
fn bearer_followed_by_several_spaces_or_a_tab_is_redacted() {
    // RFC 7235 allows one or more spaces after the scheme; a tab may survive in quoted text.
    for text in [
        "Authorization: Bearer  xyz-two-spaces",
        "Authorization: Bearer\txyz-tab",
        "Authorization: BEARER xyz-upper",
    ] {
        let out = redact(text, &[]);
        assert!(!out.contains("xyz"), "{text:?} → {out:?}");
        assert!(out.contains(REDACTED), "{out}");
    }
}

#[test]
fn server_message_with_a_tab_before_the_token_is_redacted() {
    let body = dataverse_error("c", "Authorization: Bearer\txyz-tabbed-token");
    let e = classify(&resp(400, &body), T0).unwrap_err();
    assert_clean(&e.to_string(), &["xyz-tabbed-token"]);
}

#[test]
fn control_characters_around_bearer_do_not_hide_the_token() {
    // Found by fuzzing (fuzz/fuzz_targets/token_response.rs): control characters were dropped
    // after redaction, which turned `Bearer\u{1} token` into a visible `Bearer token` and
    // `Bearer\0\ttoken` into `Bearertoken`.
    for message in [
        "Authorization: Bearer\u{1} xyz-ctl-token",
        "Authorization: Bearer\u{1}xyz-ctl-token",
        "Authorization: Bearer\u{0}\txyz-ctl-token",
        "Authorization: Bearer\r\n xyz-ctl-token",
    ] {
        let e = classify(&resp(400, &dataverse_error("c", message)), T0).unwrap_err();
        assert_clean(&format!("{e} {e:?}"), &["xyz-ctl-token"]);
    }
}

#[test]
fn doubled_bearer_scheme_is_redacted() {
    // Found by fuzzing (fuzz/fuzz_targets/redact.rs): `Bearer Bearer <token>` redacted the
    // second `Bearer` as if it were the credential and left the token.
    for text in [
        "Authorization: Bearer Bearer xyz-doubled",
        "authorization: bearer  BEARER\txyz-doubled, next",
    ] {
        let out = redact(text, &[]);
        assert!(!out.contains("xyz-doubled"), "{text:?} → {out:?}");
        assert!(out.contains(REDACTED), "{out}");
    }
}

#[test]
fn redact_removes_known_secrets_but_not_short_values() {
    let long = Secret::new(CLIENT_SECRET);
    let short = Secret::new("abc");
    let out = redact(
        &format!("secret {CLIENT_SECRET} twice {CLIENT_SECRET} abc"),
        &[&long, &short],
    );
    assert_eq!(out, "secret [REDACTED] twice [REDACTED] abc");
}

#[test]
fn redact_leaves_clean_text_alone() {
    assert_eq!(
        redact("nothing to see, bearer", &[]),
        "nothing to see, bearer"
    );
    assert_eq!(redact("", &[]), "");
}

#[test]
fn truncate_respects_character_boundaries() {
    assert_eq!(truncate("æøåæøå", 3), "æøå…");
    assert_eq!(truncate("abc", 3), "abc");
    assert_eq!(truncate("", 0), "");
}

/// Drives calls through every path that renders something (401 and forced refresh, throttling,
/// a server error quoting the Authorization header, token endpoint failure) and checks every
/// rendering a logger or audit row could take.
#[test]
fn log_output_contains_no_secret() {
    let quoting = dataverse_error(
        "0x1",
        "bad header: Authorization: Bearer eyJ0eXAiOiJKV1Qi.token2.sig",
    );
    let mut h = Harness::responding([
        resp(401, ""),
        resp_retry_after(429, "1", &quoting),
        resp(400, &quoting),
    ]);
    let creds = Credentials::new("tenant", "client", CLIENT_SECRET).unwrap();
    let out = h.run(
        Operation::SetVisibility {
            contact: contact(9),
            visible: true,
        },
        None,
    );
    let err = out.result.clone().unwrap_err();
    assert_eq!(err.code(), "BAD_REQUEST");

    let mut rendered = vec![
        format!("{out:?}"),
        format!("{err}"),
        format!("{err:?}"),
        format!("{creds:?}"),
        format!("{:?}", token_request(&h.config, &creds)),
        format!("{:?}", h.cache),
        format!("{:?}", h.config),
    ];
    rendered.extend(
        h.sent
            .iter()
            .map(|s| format!("{:?} {:?}", s.request, s.token)),
    );
    let tokens: Vec<&str> = h.issued.iter().map(|t| t.expose()).collect();
    assert_eq!(tokens.len(), 2, "one forced refresh happened");
    for text in &rendered {
        assert_clean(text, &tokens);
        assert_clean(text, &[CLIENT_SECRET, ".token1.", ".token2."]);
    }

    // A token endpoint failure renders no secret either.
    let mut h = Harness::new([]);
    h.token_script
        .push_back(TokenStep::Fail(DynamicsError::Auth {
            code: "invalid_client".into(),
            message: "AADSTS7000215: Invalid client secret provided.".into(),
        }));
    let out = h.run(Operation::WhoAmI, None);
    assert_clean(&format!("{out:?}"), &[CLIENT_SECRET]);
}

#[test]
fn quoted_bearer_credential_is_redacted() {
    for text in [
        r#"Authorization: Bearer "abc.def.ghi""#,
        "Bearer 'abc.def.ghi'",
    ] {
        let out = hlf_dynamics_sync::secret::redact(text, &[]);
        assert!(!out.contains("abc.def.ghi"), "{out}");
    }
}
