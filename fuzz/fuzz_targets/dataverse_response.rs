//! Dataverse API answers (random status, `Retry-After` and body) through `classify`,
//! `parse_visibility_page`, `parse_who_am_i` and the `@odata.nextLink` guard.
//! Input: `<status> [now_seconds]\n<Retry-After>\n<body>`.
#![no_main]

use fuzz_support::{check_error, framed_response};
use hlf_dynamics_sync::dynamics::request::next_page_request;
use hlf_dynamics_sync::dynamics::response::{classify, parse_visibility_page, parse_who_am_i};
use hlf_dynamics_sync::dynamics::DynamicsConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (response, now_ms) = framed_response(data);
    let status = response.status;
    let success = (200..300).contains(&status);

    match classify(&response, now_ms) {
        Ok(()) => assert!(success, "classify({status}) is Ok"),
        Err(e) => {
            assert!(!success, "classify({status}) is Err: {e:?}");
            check_error(&e);
            let transient = matches!(status, 408 | 429) || !(400..500).contains(&status);
            assert_eq!(e.is_transient(), transient, "status {status}: {e:?}");
            assert_eq!(e.is_auth(), status == 401, "status {status}: {e:?}");
            assert_eq!(e.http_status(), Some(status), "status {status}: {e:?}");
            if (400..500).contains(&status) && !matches!(status, 408 | 429) {
                assert_eq!(e.retry_after_ms(), None, "status {status}: {e:?}");
            }
        }
    }

    let config = DynamicsConfig::new("https://hlf.crm4.dynamics.com", None, None, None)
        .expect("the default configuration is valid");
    match parse_visibility_page(&response, &config.visibility_field, now_ms) {
        Ok(page) => {
            assert!(success);
            for c in &page.contacts {
                let id = c.contact_id.as_str();
                assert_eq!(id.len(), 36);
                assert_eq!(id, id.to_ascii_lowercase());
            }
            if let Some(link) = page.next_link {
                if let Ok(request) = next_page_request(&config, "tok", &link) {
                    let root = format!("{}/", config.base_url.api_root());
                    assert!(request.url.starts_with(&root), "{}", request.url);
                    assert!(!request.url.chars().any(char::is_whitespace));
                }
            }
        }
        Err(e) => check_error(&e),
    }

    match parse_who_am_i(&response, now_ms) {
        Ok(_) => assert!(success),
        Err(e) => check_error(&e),
    }
});
