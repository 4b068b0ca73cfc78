//! Response classification: status → typed error and transience, Dataverse and AAD error
//! bodies, Retry-After in both forms, token answers, visibility pages and WhoAmI.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{contact, dataverse_error, resp, resp_retry_after, T0};
use hlf_dynamics_sync::dynamics::response::{
    classify, parse_retry_after, parse_token_response, parse_visibility_page, parse_who_am_i,
};
use hlf_dynamics_sync::dynamics::{ContactVisibility, DynamicsError, WhoAmI};

const FIELD: &str = "hlf_portalvisible";

fn err(status: u16, body: &str) -> DynamicsError {
    classify(&resp(status, body), T0).expect_err("an error status")
}

fn token_err(status: u16, body: &str) -> DynamicsError {
    parse_token_response(&resp(status, body), T0).expect_err("a token error")
}

fn aad(error: &str, description: &str) -> String {
    serde_json::json!({
        "error": error,
        "error_description": description,
        "error_codes": [7000215],
        "trace_id": "t",
    })
    .to_string()
}

#[test]
fn success_statuses_classify_as_ok() {
    for status in [200, 201, 204] {
        assert_eq!(classify(&resp(status, ""), T0), Ok(()), "{status}");
    }
}

#[test]
fn every_status_maps_to_its_code_and_transience() {
    // (status, code, transient, auth)
    let table = [
        (400, "BAD_REQUEST", false, false),
        (401, "AUTH_FAILED", false, true),
        (403, "FORBIDDEN", false, false),
        (404, "NOT_FOUND", false, false),
        (405, "BAD_REQUEST", false, false),
        (408, "SERVER_ERROR", true, false),
        (409, "BAD_REQUEST", false, false),
        (410, "BAD_REQUEST", false, false),
        (412, "PRECONDITION_FAILED", false, false),
        (413, "BAD_REQUEST", false, false),
        (422, "BAD_REQUEST", false, false),
        (429, "THROTTLED", true, false),
        (451, "BAD_REQUEST", false, false),
        (500, "SERVER_ERROR", true, false),
        (501, "SERVER_ERROR", true, false),
        (502, "SERVER_ERROR", true, false),
        (503, "SERVER_ERROR", true, false),
        (504, "SERVER_ERROR", true, false),
        (599, "SERVER_ERROR", true, false),
        (302, "SERVER_ERROR", true, false),
    ];
    for (status, code, transient, auth) in table {
        let e = err(status, "");
        assert_eq!(e.code(), code, "{status}");
        assert_eq!(e.is_transient(), transient, "{status} transient");
        assert_eq!(e.is_auth(), auth, "{status} auth");
        assert_eq!(e.http_status(), Some(status), "{status} keeps its status");
        assert_eq!(e.as_failure().transient, transient);
    }
}

#[test]
fn dataverse_error_body_gives_code_and_message() {
    let body = dataverse_error(
        "0x80040217",
        "Entity 'contact' With Id = 6a3b2c1d-0e4f-4a5b-9c8d-7e6f5a4b3c2d Does Not Exist",
    );
    let e = err(404, &body);
    assert_eq!(
        e,
        DynamicsError::NotFound {
            code: "0x80040217".into(),
            message:
                "Entity 'contact' With Id = 6a3b2c1d-0e4f-4a5b-9c8d-7e6f5a4b3c2d Does Not Exist"
                    .into(),
        }
    );
    assert!(e.to_string().contains("0x80040217"), "{e}");
}

#[test]
fn bad_request_keeps_its_exact_status() {
    match err(422, &dataverse_error("0x80060888", "bad property")) {
        DynamicsError::BadRequest {
            status,
            code,
            message,
        } => {
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (422, "0x80060888", "bad property")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_body_without_code_falls_back_to_http_status() {
    let e = err(412, r#"{"error":{"message":"precondition"}}"#);
    assert_eq!(
        e,
        DynamicsError::PreconditionFailed {
            code: "HTTP412".into(),
            message: "precondition".into()
        }
    );
}

#[test]
fn non_json_body_keeps_only_its_first_line() {
    let e = err(
        502,
        "<html>Bad Gateway</html>\n<body>proxy internals</body>",
    );
    match e {
        DynamicsError::Server {
            status,
            code,
            message,
            retry_after_ms,
        } => {
            assert_eq!(status, 502);
            assert_eq!(code, "HTTP502");
            assert_eq!(message, "<html>Bad Gateway</html>");
            assert_eq!(retry_after_ms, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn long_server_messages_are_truncated_and_control_characters_dropped() {
    let long = "x".repeat(1_000);
    let DynamicsError::Forbidden { message, .. } = err(403, &dataverse_error("c", &long)) else {
        panic!()
    };
    assert_eq!(
        message.chars().count(),
        301,
        "300 characters and an ellipsis"
    );
    assert!(message.ends_with('…'));

    let DynamicsError::Forbidden { message, .. } =
        err(403, &dataverse_error("c", "line one\u{7}\r\nline two"))
    else {
        panic!()
    };
    assert_eq!(
        message, "line one line two",
        "a run of control characters is one space"
    );
}

#[test]
fn retry_after_seconds_is_read_on_429_and_503() {
    let e = classify(&resp_retry_after(429, "17", ""), T0).unwrap_err();
    assert_eq!(e.retry_after_ms(), Some(17_000));
    assert_eq!(e.as_failure().retry_after_ms, Some(17_000));
    let e = classify(&resp_retry_after(503, " 3 ", ""), T0).unwrap_err();
    assert_eq!(e.retry_after_ms(), Some(3_000));
    assert_eq!(err(429, "").retry_after_ms(), None, "absent header");
}

#[test]
fn retry_after_http_date_counts_from_now() {
    // T0 = 2023-11-14T22:13:20Z.
    assert_eq!(
        parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", T0),
        Some(60_000)
    );
    assert_eq!(
        parse_retry_after("Wed, 15 Nov 2023 00:00:00 GMT", T0),
        Some(6_400_000)
    );
    assert_eq!(
        parse_retry_after("Thu, 29 Feb 2024 22:13:20 GMT", T0),
        None,
        "107 days ahead is beyond the one-day sanity limit"
    );
    assert_eq!(
        parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", T0),
        Some(0),
        "a date in the past means now"
    );
    let e = classify(
        &resp_retry_after(503, "Tue, 14 Nov 2023 22:13:25 GMT", ""),
        T0,
    )
    .unwrap_err();
    assert_eq!(e.retry_after_ms(), Some(5_000));
}

#[test]
fn retry_after_across_month_and_leap_day_boundaries() {
    // 2024-03-01T00:00:00Z = 1709251200 s; one second before it is 29 Feb 23:59:59.
    let now = 1_709_251_199_000;
    assert_eq!(
        parse_retry_after("Fri, 01 Mar 2024 00:00:00 GMT", now),
        Some(1_000)
    );
    // 1970-01-01T00:00:10Z
    assert_eq!(
        parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", 0),
        Some(10_000)
    );
}

#[test]
fn garbage_retry_after_is_ignored() {
    for v in [
        "",
        "  ",
        "-5",
        "+5",
        "1e3",
        "5s",
        "86401",
        "1234567890123",
        "Tue, 14 Nov 2023 22:13:25 UTC",
        "Tue, 14 Foo 2023 22:13:25 GMT",
        "Tue 14 Nov 2023 22:13:25 GMT",
        "Tue, 14 Nov 2023 24:00:00 GMT",
        "Tue, 14 Nov 2023 22:13 GMT",
        "Tue, 14 Nov 2023 22:13:25:00 GMT",
        "Tue, 14 Nov 2023 22:13:25 GMT extra",
        "Tue, 00 Nov 2023 22:13:25 GMT",
        "Tue, 14 Nov 1969 22:13:25 GMT",
    ] {
        assert_eq!(parse_retry_after(v, T0), None, "{v:?}");
    }
    assert_eq!(
        parse_retry_after("86400", T0),
        Some(86_400_000),
        "one day is allowed"
    );
    assert_eq!(parse_retry_after("0", T0), Some(0));
    let e = classify(&resp_retry_after(429, "soon", ""), T0).unwrap_err();
    assert_eq!(e.retry_after_ms(), None);
}

#[test]
fn token_answer_is_parsed_into_a_grant() {
    let body = r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.abc.def"}"#;
    let grant = parse_token_response(&resp(200, body), T0).unwrap();
    assert_eq!(grant.access_token.expose(), "eyJ0.abc.def");
    assert_eq!(grant.expires_in_ms, 3_599_000);
}

#[test]
fn token_answer_accepts_expires_in_as_a_string_and_no_token_type() {
    let body = r#"{"expires_in":"3600","access_token":"tok"}"#;
    let grant = parse_token_response(&resp(200, body), T0).unwrap();
    assert_eq!(grant.expires_in_ms, 3_600_000);
}

#[test]
fn token_answer_with_bad_expires_in_is_invalid() {
    for expires_in in ["0", "-1", "1.5", "null", "\"soon\"", "86401", "true", "[]"] {
        let body =
            format!(r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"tok"}}"#);
        let e = token_err(200, &body);
        assert_eq!(e.code(), "INVALID_RESPONSE", "expires_in {expires_in}");
    }
    let e = token_err(200, r#"{"token_type":"Bearer","access_token":"tok"}"#);
    assert_eq!(e.code(), "INVALID_RESPONSE", "missing expires_in");
    let ok = parse_token_response(
        &resp(200, r#"{"expires_in":86400,"access_token":"tok"}"#),
        T0,
    );
    assert!(ok.is_ok(), "a day is the longest lifetime accepted");
}

#[test]
fn token_answer_that_is_not_a_bearer_token_is_invalid() {
    for body in [
        r#"{"token_type":"mac","expires_in":3600,"access_token":"tok"}"#,
        r#"{"token_type":"Bearer","expires_in":3600,"access_token":""}"#,
        r#"{"token_type":"Bearer","expires_in":3600}"#,
        "<html>login page</html>",
        "",
    ] {
        let e = token_err(200, body);
        assert_eq!(e.code(), "INVALID_RESPONSE", "{body}");
    }
}

#[test]
fn aad_invalid_client_is_an_auth_failure() {
    let e = token_err(
        401,
        &aad(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        ),
    );
    assert_eq!(
        e,
        DynamicsError::Auth {
            code: "invalid_client".into(),
            message: "AADSTS7000215: Invalid client secret provided.".into()
        }
    );
    assert!(!e.is_transient());
}

#[test]
fn aad_rejections_on_400_are_auth_failures() {
    for error in [
        "invalid_client",
        "unauthorized_client",
        "invalid_grant",
        "access_denied",
    ] {
        let e = token_err(400, &aad(error, "AADSTS700016: Application not found"));
        assert!(e.is_auth(), "{error}: {e:?}");
        assert_eq!(e.code(), "AUTH_FAILED");
    }
}

#[test]
fn other_aad_errors_are_permanent_bad_requests() {
    let e = token_err(
        400,
        &aad(
            "invalid_scope",
            "AADSTS70011: The provided scope is invalid",
        ),
    );
    assert_eq!(
        e,
        DynamicsError::BadRequest {
            status: 400,
            code: "invalid_scope".into(),
            message: "AADSTS70011: The provided scope is invalid".into()
        }
    );
    assert!(!e.is_transient());
}

#[test]
fn token_endpoint_outage_and_throttling_are_transient() {
    let e = token_err(503, &aad("temporarily_unavailable", "AADSTS90033"));
    assert_eq!(e.code(), "SERVER_ERROR");
    assert!(e.is_transient());
    let e = parse_token_response(&resp_retry_after(429, "9", ""), T0).unwrap_err();
    assert_eq!(e.code(), "THROTTLED");
    assert_eq!(e.retry_after_ms(), Some(9_000));
    assert!(token_err(500, "oops").is_transient());
}

#[test]
fn token_endpoint_401_without_body_is_auth() {
    assert!(token_err(401, "").is_auth());
    assert!(token_err(401, &aad("something_new", "x")).is_auth());
    assert_eq!(token_err(400, "").code(), "BAD_REQUEST");
}

#[test]
fn visibility_page_is_parsed_with_next_link() {
    let (a, b, c) = (contact(1), contact(2), contact(3));
    let body = serde_json::json!({
        "@odata.context": "ctx",
        "value": [
            {"@odata.etag": "W/\"1\"", "contactid": a.as_str(), FIELD: true},
            {"contactid": b.as_str(), FIELD: null},
            {"contactid": c.as_str()},
        ],
        "@odata.nextLink": "https://hlf.crm4.dynamics.com/api/data/v9.2/contacts?$skiptoken=x",
    });
    let page = parse_visibility_page(&resp(200, &body.to_string()), FIELD, T0).unwrap();
    assert_eq!(
        page.contacts,
        vec![
            ContactVisibility {
                contact_id: a,
                visible: Some(true)
            },
            ContactVisibility {
                contact_id: b,
                visible: None
            },
            ContactVisibility {
                contact_id: c,
                visible: None
            },
        ]
    );
    assert_eq!(
        page.next_link.as_deref(),
        Some("https://hlf.crm4.dynamics.com/api/data/v9.2/contacts?$skiptoken=x")
    );
}

#[test]
fn last_visibility_page_has_no_next_link() {
    let body = r#"{"value":[],"@odata.nextLink":null}"#;
    let page = parse_visibility_page(&resp(200, body), FIELD, T0).unwrap();
    assert!(page.contacts.is_empty());
    assert_eq!(page.next_link, None);
}

#[test]
fn malformed_visibility_pages_are_invalid_responses() {
    let id = contact(1);
    let id = id.as_str();
    for body in [
        "not json".to_owned(),
        "{}".to_owned(),
        r#"{"value":{}}"#.to_owned(),
        r#"{"value":[{"fullname":"x"}]}"#.to_owned(),
        r#"{"value":[{"contactid":"not-a-guid"}]}"#.to_owned(),
        format!(r#"{{"value":[{{"contactid":"{id}","hlf_portalvisible":1}}]}}"#),
        format!(r#"{{"value":[{{"contactid":"{id}"}}],"@odata.nextLink":5}}"#),
    ] {
        let e = parse_visibility_page(&resp(200, &body), FIELD, T0).unwrap_err();
        assert_eq!(e.code(), "INVALID_RESPONSE", "{body}");
    }
}

#[test]
fn visibility_page_error_status_is_classified() {
    let e = parse_visibility_page(
        &resp(403, &dataverse_error("0x80040220", "no read")),
        FIELD,
        T0,
    )
    .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN");
}

#[test]
fn who_am_i_answer_is_parsed() {
    let body = r#"{"@odata.context":"c","BusinessUnitId":"b","UserId":"u","OrganizationId":"o"}"#;
    assert_eq!(
        parse_who_am_i(&resp(200, body), T0),
        Ok(WhoAmI {
            user_id: "u".into(),
            organization_id: "o".into()
        })
    );
    assert_eq!(
        parse_who_am_i(&resp(200, r#"{"UserId":"u"}"#), T0)
            .unwrap_err()
            .code(),
        "INVALID_RESPONSE"
    );
    assert!(parse_who_am_i(&resp(401, ""), T0).unwrap_err().is_auth());
}

#[test]
fn transport_errors_are_transient_and_have_no_status() {
    let timeout = DynamicsError::Timeout { after_ms: 10_000 };
    let network = DynamicsError::Network {
        message: "connection reset".into(),
    };
    let invalid = DynamicsError::InvalidResponse {
        message: "x".into(),
    };
    let config = DynamicsError::Configuration {
        message: "x".into(),
    };
    assert_eq!(
        [&timeout, &network, &invalid, &config].map(|e| (
            e.code(),
            e.is_transient(),
            e.http_status()
        )),
        [
            ("TIMEOUT", true, None),
            ("NETWORK", true, None),
            ("INVALID_RESPONSE", true, None),
            ("CONFIGURATION", false, None),
        ]
    );
    assert_eq!(timeout.to_string(), "timed out after 10000 ms");
    assert_eq!(timeout.retry_after_ms(), None);
}
