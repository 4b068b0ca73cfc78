//! The exact HTTP requests of the contract, and the validation that refuses bad configuration
//! before anything is sent.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{config, contact, API, BASE};
use hlf_dynamics_sync::dynamics::config::{
    DEFAULT_PAGE_SIZE, DEFAULT_READ_CHUNK, DEFAULT_TIMEOUT_MS, DEFAULT_TOKEN_URL,
};
use hlf_dynamics_sync::dynamics::request::{
    next_page_request, read_visibility_request, set_visibility_request, token_request,
    who_am_i_request,
};
use hlf_dynamics_sync::dynamics::{
    BaseUrl, ContactId, Credentials, DynamicsConfig, DynamicsError, HttpRequest, Method,
};
use hlf_dynamics_sync::retry::RetryPolicy;

const TOKEN: &str = "eyJhbGciOi.payload.signature";

fn headers(req: &HttpRequest) -> Vec<(&str, &str)> {
    req.headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

fn is_config_error(result: Result<impl std::fmt::Debug, DynamicsError>) -> bool {
    matches!(result, Err(DynamicsError::Configuration { .. }))
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn form_decode(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("key=value");
            (decode(k), decode(v))
        })
        .collect()
}

#[test]
fn set_visibility_is_an_exact_conditional_patch() {
    let id = contact(0x2a);
    let req = set_visibility_request(&config(), TOKEN, &id, false);
    assert_eq!(req.method, Method::Patch);
    assert_eq!(req.method.as_str(), "PATCH");
    assert_eq!(
        req.url,
        "https://hlf.crm4.dynamics.com/api/data/v9.2/contacts(00000000-0000-4000-8000-00000000002a)"
    );
    assert_eq!(
        headers(&req),
        vec![
            ("Authorization", "Bearer eyJhbGciOi.payload.signature"),
            ("Accept", "application/json"),
            ("OData-MaxVersion", "4.0"),
            ("OData-Version", "4.0"),
            ("Content-Type", "application/json"),
            ("If-Match", "*"),
        ]
    );
    assert_eq!(req.body.as_deref(), Some(r#"{"hlf_portalvisible":false}"#));
    assert!(!req.sensitive_body);
    let json: serde_json::Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    assert_eq!(json, serde_json::json!({"hlf_portalvisible": false}));
}

#[test]
fn set_visibility_true_sends_true() {
    let req = set_visibility_request(&config(), TOKEN, &contact(1), true);
    assert_eq!(req.body.as_deref(), Some(r#"{"hlf_portalvisible":true}"#));
}

#[test]
fn header_lookup_is_case_insensitive() {
    let req = set_visibility_request(&config(), TOKEN, &contact(1), true);
    assert_eq!(req.header("if-match"), Some("*"));
    assert_eq!(req.header("odata-version"), Some("4.0"));
    assert_eq!(req.header("Prefer"), None);
}

#[test]
fn custom_visibility_field_is_used_in_patch_and_select() {
    let cfg = DynamicsConfig::new(BASE, None, None, Some("  new_ShowOnPortal ")).unwrap();
    assert_eq!(cfg.visibility_field, "new_ShowOnPortal");
    let patch = set_visibility_request(&cfg, TOKEN, &contact(1), true);
    assert_eq!(patch.body.as_deref(), Some(r#"{"new_ShowOnPortal":true}"#));
    let get = read_visibility_request(&cfg, TOKEN, &[contact(1)]);
    assert!(
        get.url.contains("$select=contactid,new_ShowOnPortal&"),
        "{}",
        get.url
    );
}

#[test]
fn read_visibility_names_the_ids_with_max_page_size() {
    let ids = [contact(1), contact(2)];
    let req = read_visibility_request(&config(), TOKEN, &ids);
    assert_eq!(req.method, Method::Get);
    assert_eq!(
        req.url,
        "https://hlf.crm4.dynamics.com/api/data/v9.2/contacts?$select=contactid,hlf_portalvisible\
         &$filter=Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=%5B\
         '00000000-0000-4000-8000-000000000001','00000000-0000-4000-8000-000000000002'%5D)"
    );
    assert_eq!(req.header("Prefer"), Some("odata.maxpagesize=500"));
    assert_eq!(
        req.header("Authorization"),
        Some("Bearer eyJhbGciOi.payload.signature")
    );
    assert_eq!(req.header("OData-MaxVersion"), Some("4.0"));
    assert_eq!(req.header("OData-Version"), Some("4.0"));
    assert_eq!(req.header("If-Match"), None, "reads are unconditional");
    assert_eq!(req.body, None);
}

#[test]
fn page_size_setting_is_sent_in_prefer() {
    let mut cfg = config();
    cfg.page_size = 50;
    let req = read_visibility_request(&cfg, TOKEN, &[contact(1)]);
    assert_eq!(req.header("Prefer"), Some("odata.maxpagesize=50"));
}

#[test]
fn who_am_i_is_a_plain_get_with_odata_headers() {
    let req = who_am_i_request(&config(), TOKEN);
    assert_eq!(req.method.as_str(), "GET");
    assert_eq!(
        req.url,
        "https://hlf.crm4.dynamics.com/api/data/v9.2/WhoAmI"
    );
    assert_eq!(
        headers(&req),
        vec![
            ("Authorization", "Bearer eyJhbGciOi.payload.signature"),
            ("Accept", "application/json"),
            ("OData-MaxVersion", "4.0"),
            ("OData-Version", "4.0"),
        ]
    );
    assert_eq!(req.body, None);
}

#[test]
fn token_request_is_form_encoded_client_credentials() {
    let creds = Credentials::new("contoso.onmicrosoft.com", "app-id-123", "s3cr+t/&= x~").unwrap();
    let req = token_request(&config(), &creds);
    assert_eq!(req.method, Method::Post);
    assert_eq!(
        req.url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        req.header("Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.header("Authorization"), None);
    assert!(req.sensitive_body);
    let body = req.body.as_deref().unwrap();
    assert_eq!(
        body,
        "grant_type=client_credentials&client_id=app-id-123&client_secret=s3cr%2Bt%2F%26%3D+x%7E\
         &scope=https%3A%2F%2Fhlf.crm4.dynamics.com%2F.default"
    );
    assert_eq!(
        form_decode(body),
        vec![
            ("grant_type".into(), "client_credentials".into()),
            ("client_id".into(), "app-id-123".into()),
            ("client_secret".into(), "s3cr+t/&= x~".into()),
            (
                "scope".into(),
                "https://hlf.crm4.dynamics.com/.default".into()
            ),
        ]
    );
}

#[test]
fn custom_token_url_and_scope_are_used() {
    let cfg = DynamicsConfig::new(
        BASE,
        Some("https://mock.local:8443/{tenant}/token"),
        Some("https://other.crm.dynamics.com/.default"),
        None,
    )
    .unwrap();
    let creds = Credentials::new("tenant-1", "client", "secret-value").unwrap();
    let req = token_request(&cfg, &creds);
    assert_eq!(req.url, "https://mock.local:8443/tenant-1/token");
    assert!(req
        .body
        .unwrap()
        .ends_with("&scope=https%3A%2F%2Fother.crm.dynamics.com%2F.default"));
}

#[test]
fn config_defaults_follow_the_contract() {
    let cfg = DynamicsConfig::new(
        " https://hlf.crm4.dynamics.com/ ",
        Some(""),
        Some(" "),
        Some(""),
    )
    .unwrap();
    assert_eq!(cfg.base_url.as_str(), BASE);
    assert_eq!(cfg.base_url.api_root(), API);
    assert_eq!(cfg.token_url, DEFAULT_TOKEN_URL);
    assert_eq!(
        cfg.token_url_for("t-1"),
        "https://login.microsoftonline.com/t-1/oauth2/v2.0/token"
    );
    assert_eq!(cfg.scope, "https://hlf.crm4.dynamics.com/.default");
    assert_eq!(cfg.visibility_field, "hlf_portalvisible");
    assert_eq!(cfg.timeout_ms, DEFAULT_TIMEOUT_MS);
    assert_eq!(DEFAULT_TIMEOUT_MS, 10_000);
    assert_eq!(cfg.page_size, DEFAULT_PAGE_SIZE);
    assert_eq!(cfg.read_chunk, DEFAULT_READ_CHUNK);
    assert_eq!(cfg.retry, RetryPolicy::default());
}

#[test]
fn http_base_url_is_rejected() {
    let err = BaseUrl::parse("http://hlf.crm4.dynamics.com").unwrap_err();
    assert_eq!(err.code(), "CONFIGURATION");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("https://"), "{err}");
    assert!(err.to_string().contains("DYNAMICS_BASE_URL"), "{err}");
    assert!(is_config_error(DynamicsConfig::new(
        "http://hlf.crm4.dynamics.com",
        None,
        None,
        None
    )));
}

#[test]
fn base_url_refuses_other_schemes_userinfo_paths_and_junk() {
    for bad in [
        "ftp://hlf.crm4.dynamics.com",
        "ws://hlf.crm4.dynamics.com",
        "hlf.crm4.dynamics.com",
        "//hlf.crm4.dynamics.com",
        "https://",
        "https:///api",
        "https://user:pass@hlf.crm4.dynamics.com",
        "https://user@hlf.crm4.dynamics.com",
        "https://hlf.crm4.dynamics.com/api/data/v9.2",
        "https://hlf.crm4.dynamics.com/main.aspx",
        "https://hlf.crm4.dynamics.com?x=1",
        "https://hlf.crm4.dynamics.com#frag",
        "https://hlf.crm4.dynamics.com\\evil.example",
        "https://hlf.crm4 .dynamics.com",
        "https://hlf%2ecrm4.dynamics.com",
        "",
    ] {
        assert!(
            is_config_error(BaseUrl::parse(bad)),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn base_url_accepts_an_org_url_with_port_and_trailing_slash() {
    for (input, stored) in [
        (
            "https://hlf.crm4.dynamics.com",
            "https://hlf.crm4.dynamics.com",
        ),
        (
            "https://hlf.crm4.dynamics.com/",
            "https://hlf.crm4.dynamics.com",
        ),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
    ] {
        assert_eq!(BaseUrl::parse(input).unwrap().as_str(), stored);
    }
    assert_eq!(
        format!("{:?}", BaseUrl::parse(BASE).unwrap()),
        "BaseUrl(https://hlf.crm4.dynamics.com)"
    );
}

#[test]
fn token_url_must_be_https() {
    for bad in [
        "http://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "ftp://login.example/token",
        "https://user@login.example/token",
    ] {
        let err = DynamicsConfig::new(BASE, Some(bad), None, None).unwrap_err();
        assert!(
            err.to_string().contains("DYNAMICS_TOKEN_URL"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn token_url_with_control_characters_is_refused() {
    // Found by fuzzing (fuzz/fuzz_targets/config.rs): only whitespace was refused in the path.
    for bad in [
        "https://login.example/{tenant}/token\u{1b}",
        "https://login.example/{tenant}\u{0}/token",
    ] {
        let err = DynamicsConfig::new(BASE, Some(bad), None, None).unwrap_err();
        assert!(
            err.to_string().contains("DYNAMICS_TOKEN_URL"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn visibility_field_must_be_a_column_name() {
    for bad in [
        "hlf_portalvisible,fullname",
        "hlf_portalvisible&$filter=x",
        "a-b",
        "a b",
        "1abc",
        "æøå",
        "\"x\"",
    ] {
        let result = DynamicsConfig::new(BASE, None, None, Some(bad));
        assert!(is_config_error(result), "{bad:?} must be refused");
    }
    let long = "a".repeat(129);
    assert!(is_config_error(DynamicsConfig::new(
        BASE,
        None,
        None,
        Some(&long)
    )));
    let max = "a".repeat(128);
    assert!(DynamicsConfig::new(BASE, None, None, Some(&max)).is_ok());
    assert!(DynamicsConfig::new(BASE, None, None, Some("_x9")).is_ok());
}

#[test]
fn contact_id_must_be_a_guid() {
    let id = ContactId::parse(" 6A3B2C1D-0E4F-4a5b-9c8d-7e6f5a4b3c2d ").unwrap();
    assert_eq!(
        id.as_str(),
        "6a3b2c1d-0e4f-4a5b-9c8d-7e6f5a4b3c2d",
        "trimmed, lower-cased"
    );
    for bad in [
        "",
        "6a3b2c1d0e4f4a5b9c8d7e6f5a4b3c2d",
        "{6a3b2c1d-0e4f-4a5b-9c8d-7e6f5a4b3c2d}",
        "6a3b2c1d-0e4f-4a5b-9c8d-7e6f5a4b3c2",
        "6a3b2c1d-0e4f-4a5b-9c8d-7e6f5a4b3c2dd",
        "6a3b2c1d-0e4f-4a5b-9c8d_7e6f5a4b3c2d",
        "6a3b2c1g-0e4f-4a5b-9c8d-7e6f5a4b3c2d",
        "6a3b2c1d-0e4f-4a5b-9c8d-7e6f5a4b)/x'",
        "ææææææææ-0e4f-4a5b-9c8d-7e6f5a4b",
    ] {
        assert!(
            is_config_error(ContactId::parse(bad)),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn credentials_refuse_empty_values_and_path_changing_tenants() {
    assert!(Credentials::new("tenant", "client", "secret").is_ok());
    for (tenant, client, secret) in [
        ("", "client", "secret"),
        ("  ", "client", "secret"),
        ("tenant", "", "secret"),
        ("tenant", "client", ""),
        ("../common", "client", "secret"),
        ("tenant/evil", "client", "secret"),
        ("tenant?x=1", "client", "secret"),
    ] {
        assert!(
            is_config_error(Credentials::new(tenant, client, secret)),
            "{tenant:?} {client:?} must be refused"
        );
    }
    let c = Credentials::new(" t-1 ", " c-1 ", "secret").unwrap();
    assert_eq!((c.tenant_id.as_str(), c.client_id.as_str()), ("t-1", "c-1"));
}

#[test]
fn next_link_within_the_org_api_is_followed_with_the_same_headers() {
    let link = format!("{API}/contacts?$select=contactid&$skiptoken=%3Ccookie%3E");
    let req = next_page_request(&config(), TOKEN, &link).unwrap();
    assert_eq!(req.url, link);
    assert_eq!(req.method, Method::Get);
    assert_eq!(req.header("Prefer"), Some("odata.maxpagesize=500"));
    assert_eq!(
        req.header("Authorization"),
        Some("Bearer eyJhbGciOi.payload.signature")
    );
}

#[test]
fn next_link_to_another_host_is_refused() {
    for link in [
        "https://evil.example/api/data/v9.2/contacts?$skiptoken=1",
        "https://hlf.crm4.dynamics.com.evil.example/api/data/v9.2/contacts",
        "https://hlf.crm4.dynamics.com@evil.example/api/data/v9.2/contacts",
        "http://hlf.crm4.dynamics.com/api/data/v9.2/contacts?$skiptoken=1",
        "https://hlf.crm4.dynamics.com/api/data/v9.1/contacts",
        "https://hlf.crm4.dynamics.com/api/data/v9.2",
        "/api/data/v9.2/contacts?$skiptoken=1",
        "https://hlf.crm4.dynamics.com/api/data/v9.2/contacts? $skiptoken=1",
    ] {
        let err = next_page_request(&config(), TOKEN, link).unwrap_err();
        assert_eq!(err.code(), "INVALID_RESPONSE", "{link}");
    }
}

#[test]
fn base_url_without_a_real_host_or_with_a_bad_port_is_rejected() {
    for url in [
        "https://:443",
        "https://host:",
        "https://..",
        "https://-",
        "https://host:8a",
    ] {
        assert!(BaseUrl::parse(url).is_err(), "{url} was accepted");
    }
    assert!(BaseUrl::parse("https://127.0.0.1:8443").is_ok());
}
