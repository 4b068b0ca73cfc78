//! The `Call` state machine driven end to end with scripted answers: typed results, in-request
//! retries with their delays, the single forced refresh after a 401, deadlines, paging,
//! chunking and missing contacts.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use hlf_dynamics_sync::dynamics::{
    Call, CallOutput, ContactVisibility, DynamicsError, Method, Operation, Poll, RequestKind,
    WhoAmI,
};
use hlf_dynamics_sync::retry::RetryPolicy;
use hlf_dynamics_sync::rng::SplitMix64;
use hlf_dynamics_sync::secret::Secret;

fn set_visible(n: u32, visible: bool) -> Operation {
    Operation::SetVisibility {
        contact: contact(n),
        visible,
    }
}

fn read(ids: &[u32]) -> Operation {
    Operation::ReadVisibility {
        contacts: ids.iter().map(|&n| contact(n)).collect(),
    }
}

/// The first jitter-bearing delay the harness's seeded RNG produces for `attempt`.
fn expected_delay(attempt: u32) -> u64 {
    RetryPolicy::default().delay_ms(attempt, &mut SplitMix64::new(SEED))
}

#[test]
fn success_returns_typed_updated_result() {
    let mut h = Harness::responding([resp(204, "")]);
    let out = h.run(set_visible(7, false), None);

    assert_eq!(
        out.result,
        Ok(CallOutput::Updated {
            contact: contact(7),
            visible: false
        })
    );
    assert_eq!(h.sent.len(), 1);
    let req = &h.sent[0].request;
    assert_eq!(req.method, Method::Patch);
    assert_eq!(req.url, format!("{API}/contacts({})", contact(7).as_str()));
    assert_eq!(req.body.as_deref(), Some(r#"{"hlf_portalvisible":false}"#));
    assert!(h.sleeps.is_empty());
    assert_eq!(out.attempts.len(), 1);
    let a = &out.attempts[0];
    assert_eq!(
        (
            a.attempt,
            a.kind,
            a.http_status,
            a.error_code,
            a.duration_ms
        ),
        (1, RequestKind::SetVisibility, Some(204), None, 40)
    );
}

#[test]
fn patch_answered_200_is_success_too() {
    let mut h = Harness::responding([resp(200, r#"{"contactid":"x"}"#)]);
    let out = h.run(set_visible(1, true), None);
    assert_eq!(
        out.result,
        Ok(CallOutput::Updated {
            contact: contact(1),
            visible: true
        })
    );
}

#[test]
fn retries_429_after_backoff_within_jitter_bounds() {
    let mut h = Harness::responding([
        resp(429, &dataverse_error("0x80072322", "slow down")),
        resp(204, ""),
    ]);
    let out = h.run(set_visible(1, true), None);

    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(h.sent.len(), 2);
    assert_eq!(h.sleeps.len(), 1);
    let d = h.sleeps[0];
    assert!(
        (2_000..2_500).contains(&d),
        "first retry waits base + jitter, got {d}"
    );
    assert_eq!(d, expected_delay(1), "jitter comes from the injected RNG");
    assert_eq!(out.attempts[0].error_code, Some("THROTTLED"));
    assert_eq!(out.attempts[1].attempt, 2);
}

#[test]
fn retry_after_seconds_on_429_replaces_computed_delay() {
    let mut h = Harness::responding([resp_retry_after(429, "7", ""), resp(204, "")]);
    let out = h.run(set_visible(1, true), None);
    assert!(out.result.is_ok());
    assert_eq!(h.sleeps, vec![7_000]);
    assert_eq!(h.sent[1].at_ms - h.sent[0].at_ms, 40 + 7_000);
}

#[test]
fn retry_after_http_date_on_503_is_honoured() {
    // T0 = 2023-11-14T22:13:20Z; the server asks to come back at 22:13:32 (12 s after T0),
    // and the answer arrives 40 ms after T0.
    let mut h = Harness::responding([
        resp_retry_after(503, "Tue, 14 Nov 2023 22:13:32 GMT", ""),
        resp(204, ""),
    ]);
    let out = h.run(set_visible(1, true), None);
    assert!(out.result.is_ok());
    assert_eq!(h.sleeps, vec![12_000 - 40]);
}

#[test]
fn retry_after_beyond_the_policy_cap_is_capped() {
    let mut h = Harness::responding([resp_retry_after(429, "120", ""), resp(204, "")]);
    let out = h.run(set_visible(1, true), None);
    assert!(out.result.is_ok());
    assert_eq!(h.sleeps, vec![RetryPolicy::default().cap_ms]);
}

#[test]
fn unauthorized_forces_exactly_one_refresh_then_fails_with_auth() {
    let body = dataverse_error("0x80040220", "token revoked");
    let mut h = Harness::responding([resp(401, &body), resp(401, &body)]);
    let out = h.run(set_visible(1, true), None);

    match &out.result {
        Err(DynamicsError::Auth { code, .. }) => assert_eq!(code, "0x80040220"),
        other => panic!("expected an auth failure, got {other:?}"),
    }
    assert_eq!(h.sent.len(), 2, "one forced refresh, no retry loop");
    assert_eq!(h.token_requests, 2);
    assert_eq!(
        h.invalidations,
        vec![h.issued[0].clone()],
        "the rejected token is dropped"
    );
    assert_eq!(h.sent[0].token, h.issued[0]);
    assert_eq!(
        h.sent[1].token, h.issued[1],
        "the second try uses the fresh token"
    );
    assert_ne!(h.issued[0], h.issued[1]);
    assert!(h.sleeps.is_empty(), "no backoff before the forced refresh");
    assert!(h.script.is_empty());
}

#[test]
fn unauthorized_then_success_after_forced_refresh() {
    let mut h = Harness::responding([resp(401, ""), resp(204, "")]);
    let out = h.run(set_visible(1, true), None);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(h.token_requests, 2);
    assert_eq!(h.sent[1].token, h.issued[1]);
}

#[test]
fn first_send_invalidates_nothing_and_forced_refresh_names_the_rejected_token() {
    let config = config();
    let mut rng = SplitMix64::new(1);
    let mut call = Call::new(
        Operation::SetVisibility {
            contact: contact(1),
            visible: true,
        },
        &config,
        None,
    );
    assert_eq!(call.poll(T0), Poll::Send { invalidate: None });
    let rejected = Secret::new("rejected-token-value");
    call.request(&config, &rejected, T0).unwrap();
    call.on_response(T0 + 5, &resp(401, ""), &config, &mut rng);
    assert_eq!(
        call.poll(T0 + 5),
        Poll::Send {
            invalidate: Some(rejected)
        }
    );
    let fresh = Secret::new("fresh-token-value");
    call.request(&config, &fresh, T0 + 5).unwrap();
    call.on_response(T0 + 10, &resp(401, ""), &config, &mut rng);
    assert_eq!(call.poll(T0 + 10), Poll::Done);
    assert!(call.is_done());
    assert_eq!(call.finish().result.unwrap_err().code(), "AUTH_FAILED");
}

#[test]
fn retries_503_then_gives_up_after_three() {
    let body = dataverse_error("0x80040216", "unavailable");
    let mut h = Harness::responding([resp(503, &body), resp(503, &body), resp(503, &body)]);
    let out = h.run(set_visible(1, true), None);

    let err = out.result.unwrap_err();
    assert_eq!(err.code(), "SERVER_ERROR");
    assert_eq!(err.http_status(), Some(503));
    assert_eq!(h.sent.len(), 3);
    assert_eq!(h.sleeps.len(), 2);
    assert!((2_000..2_500).contains(&h.sleeps[0]), "{:?}", h.sleeps);
    assert!((4_000..4_500).contains(&h.sleeps[1]), "{:?}", h.sleeps);
    let numbers: Vec<u32> = out.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    assert!(out.attempts.iter().all(|a| a.http_status == Some(503)));
}

#[test]
fn transient_statuses_are_retried() {
    for status in [408, 429, 500, 502, 503, 504] {
        let mut h = Harness::responding([resp(status, ""), resp(204, "")]);
        let out = h.run(set_visible(1, true), None);
        assert!(out.result.is_ok(), "{status}: {:?}", out.result);
        assert_eq!(h.sent.len(), 2, "{status} is retried");
    }
}

#[test]
fn timeout_and_network_errors_are_retried() {
    for failure in [
        DynamicsError::Timeout { after_ms: 10_000 },
        DynamicsError::Network {
            message: "connection reset by peer".into(),
        },
        DynamicsError::Network {
            message: "connection refused".into(),
        },
    ] {
        let mut h = Harness::new([Step::Fail(failure.clone()), Step::Respond(resp(204, ""))]);
        let out = h.run(set_visible(1, true), None);
        assert!(out.result.is_ok(), "{failure:?}: {:?}", out.result);
        assert_eq!(h.sent.len(), 2);
        assert_eq!(out.attempts[0].error_code, Some(failure.code()));
        assert_eq!(out.attempts[0].http_status, None);
    }
}

#[test]
fn three_timeouts_end_with_timeout_error() {
    let t = || Step::Fail(DynamicsError::Timeout { after_ms: 10_000 });
    let mut h = Harness::new([t(), t(), t()]);
    let out = h.run(set_visible(1, true), None);
    assert_eq!(out.result, Err(DynamicsError::Timeout { after_ms: 10_000 }));
    assert_eq!(h.sent.len(), 3);
}

#[test]
fn permanent_statuses_are_not_retried() {
    for (status, code) in [
        (400, "BAD_REQUEST"),
        (403, "FORBIDDEN"),
        (404, "NOT_FOUND"),
        (405, "BAD_REQUEST"),
        (409, "BAD_REQUEST"),
        (412, "PRECONDITION_FAILED"),
        (422, "BAD_REQUEST"),
    ] {
        // A second answer is scripted so a wrongful retry would succeed instead of panicking.
        let mut h =
            Harness::responding([resp(status, &dataverse_error("0x1", "no")), resp(204, "")]);
        let out = h.run(set_visible(1, true), None);
        let err = out.result.expect_err("permanent errors end the call");
        assert_eq!(err.code(), code, "{status}");
        assert_eq!(h.sent.len(), 1, "{status} must not be retried");
        assert!(h.sleeps.is_empty());
    }
}

#[test]
fn deadline_stops_retries() {
    // The first retry would wait at least 2 s, but only 2 s are left in the budget.
    let mut h = Harness::responding([resp(503, ""), resp(204, "")]);
    let out = h.run(set_visible(1, true), Some(T0 + 2_000));
    assert_eq!(out.result.unwrap_err().code(), "SERVER_ERROR");
    assert_eq!(h.sent.len(), 1);
    assert!(
        h.sleeps.is_empty(),
        "no sleep that would overrun the deadline"
    );
}

#[test]
fn unauthorized_at_the_deadline_sends_no_forced_refresh_past_it() {
    // Found by fuzzing (fuzz/fuzz_targets/call.rs): the one forced refresh after a 401 used to
    // be sent even when the deadline had already passed.
    let mut h = Harness::responding([resp(401, ""), resp(204, "")]);
    let deadline = T0 + h.latency_ms;
    let out = h.run(set_visible(1, true), Some(deadline));
    assert_eq!(
        out.result.unwrap_err().code(),
        "TIMEOUT",
        "the budget ran out; that says nothing about the credentials"
    );
    assert_eq!(h.sent.len(), 1, "nothing sent at or past the deadline");
    assert!(h.invalidations.is_empty());
}

#[test]
fn retry_after_past_the_deadline_is_not_waited_for() {
    let mut h = Harness::responding([resp_retry_after(429, "20", ""), resp(204, "")]);
    let out = h.run(set_visible(1, true), Some(T0 + 15_000));
    assert_eq!(out.result.unwrap_err().code(), "THROTTLED");
    assert_eq!(h.sent.len(), 1);
}

#[test]
fn retry_that_fits_the_deadline_is_made() {
    let mut h = Harness::responding([resp_retry_after(429, "3", ""), resp(204, "")]);
    let out = h.run(set_visible(1, true), Some(T0 + 15_000));
    assert!(out.result.is_ok());
    assert_eq!(h.sleeps, vec![3_000]);
}

#[test]
fn attempt_timeout_is_clamped_to_the_time_left() {
    let mut h = Harness::responding([resp(204, "")]);
    h.run(set_visible(1, true), Some(T0 + 4_000));
    assert_eq!(h.sent[0].timeout_ms, 4_000);

    let mut h = Harness::responding([resp(204, "")]);
    h.run(set_visible(1, true), None);
    assert_eq!(
        h.sent[0].timeout_ms, 10_000,
        "the configured per-attempt timeout"
    );

    let mut h = Harness::responding([resp(204, "")]);
    h.run(set_visible(1, true), Some(T0 + 60_000));
    assert_eq!(h.sent[0].timeout_ms, 10_000);
}

#[test]
fn token_endpoint_auth_failure_ends_call_without_api_request() {
    let mut h = Harness::new([]);
    h.token_script
        .push_back(TokenStep::Fail(DynamicsError::Auth {
            code: "invalid_client".into(),
            message: "AADSTS7000215: Invalid client secret provided.".into(),
        }));
    let out = h.run(set_visible(1, true), None);
    assert_eq!(out.result.unwrap_err().code(), "AUTH_FAILED");
    assert!(h.sent.is_empty());
    assert_eq!(h.token_requests, 1, "an auth failure is not retried");
    assert_eq!(out.attempts.len(), 1);
    assert_eq!(out.attempts[0].kind, RequestKind::Token);
    assert_eq!(out.attempts[0].duration_ms, 5);
}

#[test]
fn token_endpoint_outage_is_retried() {
    let mut h = Harness::responding([resp(204, "")]);
    h.token_script
        .push_back(TokenStep::Fail(DynamicsError::Server {
            status: 503,
            retry_after_ms: Some(1_000),
            code: "temporarily_unavailable".into(),
            message: String::new(),
        }));
    let out = h.run(set_visible(1, true), None);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(h.token_requests, 2);
    assert_eq!(h.sleeps, vec![1_000]);
    assert_eq!(out.attempts[0].kind, RequestKind::Token);
    assert_eq!(out.attempts[1].kind, RequestKind::SetVisibility);
}

#[test]
fn cached_token_is_reused_across_calls() {
    let mut h = Harness::responding([resp(204, ""), resp(204, "")]);
    h.run(set_visible(1, true), None);
    h.run(set_visible(2, false), None);
    assert_eq!(h.token_requests, 1);
    assert_eq!(h.sent[0].token, h.sent[1].token);
}

#[test]
fn who_am_i_returns_typed_answer() {
    let body =
        r#"{"@odata.context":"x","BusinessUnitId":"b","UserId":"u-1","OrganizationId":"o-1"}"#;
    let mut h = Harness::responding([resp(200, body)]);
    let out = h.run(Operation::WhoAmI, None);
    assert_eq!(
        out.result,
        Ok(CallOutput::WhoAmI(WhoAmI {
            user_id: "u-1".into(),
            organization_id: "o-1".into()
        }))
    );
    assert_eq!(h.urls(), vec![format!("{API}/WhoAmI")]);
    assert_eq!(out.attempts[0].kind, RequestKind::WhoAmI);
}

#[test]
fn who_am_i_garbage_body_is_invalid_response_after_retries() {
    let mut h = Harness::responding([
        resp(200, "<html>"),
        resp(200, "<html>"),
        resp(200, "<html>"),
    ]);
    let out = h.run(Operation::WhoAmI, None);
    assert_eq!(out.result.unwrap_err().code(), "INVALID_RESPONSE");
    assert_eq!(h.sent.len(), 3);
}

#[test]
fn paging_follows_next_link() {
    let (a, b, c) = (contact(1), contact(2), contact(3));
    let next = format!("{API}/contacts?$skiptoken=abc");
    let mut h = Harness::responding([
        page(&[(&a, Some(true)), (&b, Some(false))], Some(&next)),
        page(&[(&c, None)], None),
    ]);
    let out = h.run(read(&[1, 2, 3]), None);
    assert_eq!(
        out.result,
        Ok(CallOutput::Visibility {
            contacts: vec![
                ContactVisibility {
                    contact_id: a,
                    visible: Some(true)
                },
                ContactVisibility {
                    contact_id: b,
                    visible: Some(false)
                },
                ContactVisibility {
                    contact_id: c,
                    visible: None
                },
            ],
            missing: vec![],
        })
    );
    assert_eq!(h.sent.len(), 2);
    assert_eq!(h.sent[1].request.url, next);
    assert_eq!(
        h.sent[1].request.header("Prefer"),
        Some("odata.maxpagesize=500")
    );
    assert!(h.sent.iter().all(|s| s.request.method == Method::Get));
}

#[test]
fn next_link_to_another_host_is_refused_without_sending_the_token() {
    let a = contact(1);
    let mut h = Harness::responding([page(
        &[(&a, Some(true))],
        Some("https://evil.example/api/data/v9.2/contacts?$skiptoken=1"),
    )]);
    let out = h.run(read(&[1]), None);
    assert_eq!(out.result.unwrap_err().code(), "INVALID_RESPONSE");
    assert_eq!(h.sent.len(), 1, "nothing is sent to the foreign host");
    assert_eq!(h.refused.len(), 1);
}

#[test]
fn page_failure_is_retried_and_keeps_earlier_rows() {
    let (a, b) = (contact(1), contact(2));
    let next = format!("{API}/contacts?$skiptoken=p2");
    let mut h = Harness::responding([
        page(&[(&a, Some(true))], Some(&next)),
        resp(502, "Bad Gateway"),
        page(&[(&b, Some(true))], None),
    ]);
    let out = h.run(read(&[1, 2]), None);
    let Ok(CallOutput::Visibility { contacts, missing }) = out.result else {
        panic!("{:?}", out.result)
    };
    assert_eq!(contacts.len(), 2);
    assert!(missing.is_empty());
    assert_eq!(h.sent[1].request.url, next);
    assert_eq!(
        h.sent[2].request.url, next,
        "the failed page is fetched again"
    );
}

#[test]
fn every_page_gets_the_full_retry_budget() {
    let (a, b) = (contact(1), contact(2));
    let next = format!("{API}/contacts?$skiptoken=p2");
    let mut h = Harness::responding([
        resp(503, ""),
        resp(503, ""),
        page(&[(&a, Some(true))], Some(&next)),
        resp(503, ""),
        resp(503, ""),
        page(&[(&b, Some(false))], None),
    ]);
    let out = h.run(read(&[1, 2]), None);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(h.sent.len(), 6);
    let numbers: Vec<u32> = out.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, vec![1, 2, 3, 1, 2, 3]);
}

#[test]
fn read_is_chunked_by_read_chunk_and_deduplicated() {
    let mut h = Harness::responding([page(&[], None), page(&[], None), page(&[], None)]);
    h.config.read_chunk = 2;
    // Five distinct ids, one named twice, given out of order.
    let out = h.run(read(&[5, 3, 1, 4, 2, 3]), None);
    assert!(out.result.is_ok());
    assert_eq!(h.sent.len(), 3);
    let expect = [vec![1, 2], vec![3, 4], vec![5]];
    for (sent, ids) in h.sent.iter().zip(expect) {
        let url = &sent.request.url;
        for n in 1..=5 {
            let named = url.contains(contact(n).as_str());
            assert_eq!(named, ids.contains(&n), "contact {n} in {url}");
        }
    }
}

#[test]
fn missing_contacts_are_reported() {
    let (a, c) = (contact(1), contact(3));
    let mut h = Harness::responding([page(&[(&c, Some(true)), (&a, Some(false))], None)]);
    let out = h.run(read(&[3, 2, 1, 4]), None);
    let Ok(CallOutput::Visibility { contacts, missing }) = out.result else {
        panic!("{:?}", out.result)
    };
    assert_eq!(missing, vec![contact(2), contact(4)]);
    assert_eq!(contacts[0].contact_id, c, "rows keep the answer's order");
    assert_eq!(contacts[1].contact_id, a);
}

#[test]
fn upper_case_ids_in_the_answer_match_the_request() {
    let a = contact(0xabc);
    let upper = a.as_str().to_ascii_uppercase();
    let body = serde_json::json!({"value": [{"contactid": upper, "hlf_portalvisible": true}]});
    let mut h = Harness::responding([resp(200, &body.to_string())]);
    let out = h.run(read(&[0xabc]), None);
    let Ok(CallOutput::Visibility { missing, .. }) = out.result else {
        panic!("{:?}", out.result)
    };
    assert!(missing.is_empty());
}

#[test]
fn empty_read_finishes_without_a_request() {
    let mut h = Harness::new([]);
    let out = h.run(read(&[]), None);
    assert_eq!(
        out.result,
        Ok(CallOutput::Visibility {
            contacts: vec![],
            missing: vec![]
        })
    );
    assert!(h.sent.is_empty());
    assert_eq!(h.token_requests, 0);
}

#[test]
fn read_with_wrong_column_type_is_invalid_response() {
    let a = contact(1);
    let body =
        serde_json::json!({"value": [{"contactid": a.as_str(), "hlf_portalvisible": "yes"}]});
    let bad = resp(200, &body.to_string());
    let mut h = Harness::responding([bad.clone(), bad.clone(), bad]);
    let out = h.run(read(&[1]), None);
    assert_eq!(out.result.unwrap_err().code(), "INVALID_RESPONSE");
}

#[test]
fn sleep_is_reported_until_its_end() {
    let config = config();
    let mut rng = SplitMix64::new(SEED);
    let mut call = Call::new(read_op(), &config, None);
    assert_eq!(call.poll(T0), Poll::Send { invalidate: None });
    call.request(&config, &Secret::new("tok-abcdef"), T0)
        .unwrap();
    call.on_response(T0, &resp_retry_after(429, "2", ""), &config, &mut rng);
    assert_eq!(
        call.poll(T0),
        Poll::Sleep {
            until_ms: T0 + 2_000
        }
    );
    assert_eq!(
        call.poll(T0 + 1_999),
        Poll::Sleep {
            until_ms: T0 + 2_000
        }
    );
    assert_eq!(call.poll(T0 + 2_000), Poll::Send { invalidate: None });
    assert!(!call.is_done());
}

#[test]
fn unfinished_call_finishes_as_timeout() {
    let config = config();
    let call = Call::new(read_op(), &config, None);
    let out = call.finish();
    assert_eq!(out.result, Err(DynamicsError::Timeout { after_ms: 0 }));
    assert!(out.attempts.is_empty());
}

#[test]
fn request_kinds_have_stable_names() {
    let names: Vec<&str> = [
        RequestKind::Token,
        RequestKind::SetVisibility,
        RequestKind::ReadVisibility,
        RequestKind::WhoAmI,
    ]
    .iter()
    .map(|k| k.as_str())
    .collect();
    assert_eq!(
        names,
        ["token", "set_visibility", "read_visibility", "who_am_i"]
    );
}

fn read_op() -> Operation {
    read(&[1])
}

#[test]
fn endless_paging_stops_at_the_deadline() {
    let (a, b) = (contact(1), contact(2));
    let next = format!("{API}/contacts?$skiptoken=again");
    let mut h = Harness::responding([
        page(&[(&a, Some(true))], Some(&next)),
        page(&[(&b, Some(true))], Some(&next)),
        page(&[(&b, Some(true))], Some(&next)),
    ]);
    // Each answer takes 40 ms; the deadline falls after the second page.
    let deadline = h.now + 70;
    let out = h.run(read(&[1, 2]), Some(deadline));
    assert_eq!(out.result.unwrap_err().code(), "TIMEOUT");
    assert_eq!(h.sent.len(), 2, "no page is requested after the deadline");
}
