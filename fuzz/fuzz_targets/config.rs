//! Configuration parsing: `BaseUrl::parse`, `DynamicsConfig::new`, `Credentials::new` and
//! `ContactId::parse` on arbitrary text, then the request builders on whatever was accepted.
//! Input: newline-separated base URL, token URL, scope, visibility field, tenant id, client id,
//! client secret, contact id (an empty token URL / scope / field means "unset").
#![no_main]

use fuzz_support::{fields, KNOWN_CODES};
use hlf_dynamics_sync::dynamics::request::{
    read_visibility_request, set_visibility_request, token_request, who_am_i_request,
};
use hlf_dynamics_sync::dynamics::{BaseUrl, ContactId, Credentials, DynamicsConfig};
use libfuzzer_sys::fuzz_target;

/// An `https://` URL without whitespace or control characters and without user info.
fn is_https_url(s: &str) -> bool {
    let authority = s
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next());
    authority.is_some_and(|a| !a.is_empty() && !a.contains('@'))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 8);
    fn opt(s: &str) -> Option<&str> {
        (!s.is_empty()).then_some(s)
    }

    match BaseUrl::parse(&f[0]) {
        Ok(base) => {
            let s = base.as_str();
            assert!(is_https_url(s), "{s:?}");
            assert!(!s.ends_with('/') && !s["https://".len()..].contains(['/', '?', '#']));
            assert_eq!(BaseUrl::parse(s).as_ref(), Ok(&base), "not idempotent");
        }
        Err(e) => assert_eq!(e.code(), "CONFIGURATION"),
    }

    let config = match DynamicsConfig::new(&f[0], opt(&f[1]), opt(&f[2]), opt(&f[3])) {
        Ok(c) => c,
        Err(e) => {
            assert!(KNOWN_CODES.contains(&e.code()));
            assert_eq!(e.code(), "CONFIGURATION");
            return;
        }
    };
    assert!(
        is_https_url(&config.token_url.replace("{tenant}", "t")),
        "{config:?}"
    );
    assert!(!config.visibility_field.is_empty());
    assert!(config
        .visibility_field
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_'));

    let contact = ContactId::parse(&f[7]);
    if let Ok(id) = &contact {
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(id.as_str(), id.as_str().to_ascii_lowercase());
        assert_eq!(ContactId::parse(id.as_str()).as_ref(), Ok(id));
        let patch = set_visibility_request(&config, "tok", id, true);
        assert!(patch.url.starts_with(&config.base_url.api_root()));
        assert_eq!(patch.header("If-Match"), Some("*"));
        let read = read_visibility_request(&config, "tok", std::slice::from_ref(id));
        assert!(!read.url.chars().any(char::is_whitespace), "{}", read.url);
    }
    let who = who_am_i_request(&config, "tok");
    assert!(who.url.ends_with("/api/data/v9.2/WhoAmI"));

    match Credentials::new(&f[4], &f[5], &f[6]) {
        Ok(credentials) => {
            let tenant = &credentials.tenant_id;
            assert!(!tenant.is_empty() && !tenant.contains(['/', '?', '#', '@']));
            // The tenant id cannot change the token URL's host (unless the configured URL put
            // `{tenant}` in the host itself).
            let host = |u: &str| {
                u["https://".len()..]
                    .split(['/', '?', '#'])
                    .next()
                    .map(str::to_owned)
            };
            if !host(&config.token_url).is_some_and(|h| h.contains("{tenant}")) {
                let url = config.token_url_for(tenant);
                assert_eq!(host(&url), host(&config.token_url));
            }
            // Debug output does not depend on the secret at all.
            let other = Credentials::new(&f[4], &f[5], "x-different-secret").unwrap();
            assert_eq!(format!("{credentials:?}"), format!("{other:?}"));
            let request = token_request(&config, &credentials);
            assert!(request.sensitive_body);
            let shown = format!("{request:?}");
            let debug_other = format!("{:?}", token_request(&config, &other));
            assert_eq!(
                shown, debug_other,
                "token request Debug depends on the secret"
            );
        }
        Err(e) => assert_eq!(e.code(), "CONFIGURATION"),
    }
});
