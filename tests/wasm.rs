//! wasm-bindgen-test suite: the exported API end to end in headless Deno, through a scripted
//! fake `fetch` written in JS, an injected clock and sleeper, and real timers for timeouts.
//! Run by `scripts/test.sh wasm-deno`.
#![cfg(target_arch = "wasm32")]

use hlf_dynamics_sync::wasm::{desired_visibility_js, validate_config, Client};
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

const CONTACT: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "client-secret-value-1234";

/// A fake world in JS: `fetch` answers from a script per URL kind and records every call;
/// `now` is a manual clock that `sleep` advances.
fn world(script: &str) -> JsValue {
    let make = Function::new_with_args(
        "script, secret",
        r#"
        const w = { t: 1_700_000_000_000, calls: [], sleeps: [], logs: [], tokens: 0, script };
        w.io = {
          credentials: () => Promise.resolve({ tenantId: "tenant-1", clientId: "client-1", clientSecret: secret }),
          now: () => w.t,
          sleep: (ms) => { w.sleeps.push(ms); w.t += ms; return Promise.resolve(); },
          log: (e) => w.logs.push(JSON.stringify(e)),
          fetch: async (url, init) => {
            const isToken = url.includes("/oauth2/v2.0/token");
            w.calls.push({ url, method: init.method, headers: init.headers, body: init.body ?? null, token: isToken });
            const queue = isToken ? w.script.token : w.script.api;
            const step = (queue && queue.length > 1) ? queue.shift() : (queue ? queue[0] : { status: 204 });
            if (step.throw) throw new TypeError(step.throw);
            if (step.hang) return new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
            let body = step.body ?? "";
            if (isToken && step.status === 200 && !step.body) { w.tokens += 1; body = JSON.stringify({ token_type: "Bearer", expires_in: step.expiresIn ?? 3600, access_token: "tok-" + w.tokens }); }
            return new Response(step.status === 204 ? null : body, { status: step.status, headers: step.headers ?? {} });
          },
        };
        return w;
        "#,
    );
    let script: JsValue = js_sys::JSON::parse(script).expect("test script is valid JSON");
    make.call2(&JsValue::NULL, &script, &JsValue::from_str(SECRET))
        .expect("world builds")
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).expect("property read")
}

fn config(extra: &str) -> JsValue {
    js_sys::JSON::parse(&format!(
        r#"{{"baseUrl":"https://org.example.test","tokenUrl":"https://login.example.test/{{tenant}}/oauth2/v2.0/token","backoffBaseMs":10,"backoffJitterMs":5,"rngSeed":42{extra}}}"#
    ))
    .expect("config is valid JSON")
}

async fn resolve(p: Promise) -> JsValue {
    JsFuture::from(p).await.expect("promise resolves")
}

fn api_calls(w: &JsValue) -> Vec<JsValue> {
    js_sys::Array::from(&get(w, "calls"))
        .iter()
        .filter(|c| !get(c, "token").as_bool().unwrap_or(false))
        .collect()
}

fn token_calls(w: &JsValue) -> usize {
    js_sys::Array::from(&get(w, "calls"))
        .iter()
        .filter(|c| get(c, "token").as_bool().unwrap_or(false))
        .count()
}

fn json(v: &JsValue) -> String {
    js_sys::JSON::stringify(v)
        .map(String::from)
        .unwrap_or_default()
}

#[wasm_bindgen_test]
async fn set_visibility_sends_patch_with_odata_headers() {
    let w = world(r#"{"token":[{"status":200}],"api":[{"status":204}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, false, None).expect("call")).await;
    assert_eq!(
        get(&report, "ok").as_bool(),
        Some(true),
        "{}",
        json(&report)
    );
    let calls = api_calls(&w);
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(get(call, "method").as_string().as_deref(), Some("PATCH"));
    assert_eq!(
        get(call, "url").as_string().unwrap_or_default(),
        format!("https://org.example.test/api/data/v9.2/contacts({CONTACT})")
    );
    let headers = get(call, "headers");
    assert_eq!(get(&headers, "If-Match").as_string().as_deref(), Some("*"));
    assert_eq!(
        get(&headers, "OData-Version").as_string().as_deref(),
        Some("4.0")
    );
    assert_eq!(
        get(&headers, "Authorization").as_string().as_deref(),
        Some("Bearer tok-1")
    );
    assert_eq!(
        get(call, "body").as_string().as_deref(),
        Some(r#"{"hlf_portalvisible":false}"#)
    );
}

#[wasm_bindgen_test]
async fn token_is_reused_across_calls_within_its_lifetime() {
    let w = world(r#"{"token":[{"status":200}],"api":[{"status":204}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    for _ in 0..3 {
        resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    }
    assert_eq!(token_calls(&w), 1);
    assert_eq!(client.token_refreshes(), 1.0);
}

#[wasm_bindgen_test]
async fn concurrent_calls_share_one_token_refresh() {
    let w = world(r#"{"token":[{"status":200}],"api":[{"status":204}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let a = client.set_visibility(CONTACT, true, None).expect("call");
    let b = client
        .set_visibility("99999999-2222-3333-4444-555555555555", true, None)
        .expect("call");
    resolve(a).await;
    resolve(b).await;
    assert_eq!(
        token_calls(&w),
        1,
        "one refresh in flight, the other caller waits for it"
    );
    assert_eq!(api_calls(&w).len(), 2);
}

#[wasm_bindgen_test]
async fn retries_503_then_gives_up_after_three() {
    let w = world(
        r#"{"token":[{"status":200}],"api":[{"status":503,"body":"{\"error\":{\"code\":\"0x0\",\"message\":\"down\"}}"}]}"#,
    );
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(get(&report, "ok").as_bool(), Some(false));
    assert_eq!(
        get(&get(&report, "error"), "code").as_string().as_deref(),
        Some("SERVER_ERROR")
    );
    assert_eq!(api_calls(&w).len(), 3);
    let sleeps: Vec<f64> = js_sys::Array::from(&get(&w, "sleeps"))
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    assert_eq!(sleeps.len(), 2);
    assert!((10.0..15.0).contains(&sleeps[0]), "{sleeps:?}");
    assert!((20.0..25.0).contains(&sleeps[1]), "{sleeps:?}");
}

#[wasm_bindgen_test]
async fn throttled_call_honours_retry_after() {
    let w = world(
        r#"{"token":[{"status":200}],"api":[{"status":429,"headers":{"Retry-After":"2"}},{"status":204}]}"#,
    );
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(
        get(&report, "ok").as_bool(),
        Some(true),
        "{}",
        json(&report)
    );
    let sleeps: Vec<f64> = js_sys::Array::from(&get(&w, "sleeps"))
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    assert_eq!(sleeps, vec![2000.0]);
}

#[wasm_bindgen_test]
async fn api_401_forces_one_refresh_then_fails_as_auth() {
    let w = world(r#"{"token":[{"status":200}],"api":[{"status":401}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(
        get(&get(&report, "error"), "code").as_string().as_deref(),
        Some("AUTH_FAILED")
    );
    assert_eq!(token_calls(&w), 2, "exactly one forced refresh");
    assert_eq!(api_calls(&w).len(), 2);
}

#[wasm_bindgen_test]
async fn invalid_client_is_an_auth_failure_without_retry_and_without_the_secret() {
    let w = world(
        r#"{"token":[{"status":401,"body":"{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided: client-secret-value-1234\"}"}],"api":[{"status":204}]}"#,
    );
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(get(&get(&report, "error"), "auth").as_bool(), Some(true));
    assert_eq!(token_calls(&w), 1);
    assert!(api_calls(&w).is_empty());
    let everything = format!("{} {}", json(&report), json(&get(&w, "logs")));
    assert!(!everything.contains(SECRET), "secret leaked: {everything}");
}

#[wasm_bindgen_test]
async fn expired_token_is_refetched_before_next_call() {
    let w = world(r#"{"token":[{"status":200,"expiresIn":600}],"api":[{"status":204}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    let t = get(&w, "t").as_f64().unwrap_or_default();
    Reflect::set(
        &w,
        &JsValue::from_str("t"),
        &JsValue::from_f64(t + 601_000.0),
    )
    .expect("set clock");
    resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(token_calls(&w), 2);
    let last = api_calls(&w).pop().expect("a call");
    assert_eq!(
        get(&get(&last, "headers"), "Authorization")
            .as_string()
            .as_deref(),
        Some("Bearer tok-2")
    );
}

#[wasm_bindgen_test]
async fn hanging_request_times_out_with_a_real_timer() {
    let w = world(r#"{"token":[{"status":200}],"api":[{"hang":true}]}"#);
    let client =
        Client::new(config(r#","timeoutMs":20,"maxAttempts":2"#), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(
        get(&get(&report, "error"), "code").as_string().as_deref(),
        Some("TIMEOUT")
    );
    assert_eq!(api_calls(&w).len(), 2);
}

#[wasm_bindgen_test]
async fn connection_reset_is_retried_as_network_error() {
    let w =
        world(r#"{"token":[{"status":200}],"api":[{"throw":"connection reset"},{"status":204}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(get(&report, "ok").as_bool(), Some(true));
    let attempts = js_sys::Array::from(&get(&report, "attempts"));
    assert_eq!(
        get(&attempts.get(0), "errorCode").as_string().as_deref(),
        Some("NETWORK")
    );
}

#[wasm_bindgen_test]
async fn forbidden_is_not_retried() {
    let w = world(r#"{"token":[{"status":200}],"api":[{"status":403}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let report = resolve(client.set_visibility(CONTACT, true, None).expect("call")).await;
    assert_eq!(
        get(&get(&report, "error"), "code").as_string().as_deref(),
        Some("FORBIDDEN")
    );
    assert_eq!(api_calls(&w).len(), 1);
}

#[wasm_bindgen_test]
async fn sync_job_decides_dead_letter_for_permanent_error() {
    let w = world(r#"{"token":[{"status":200}],"api":[{"status":404}]}"#);
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let job = js_sys::JSON::parse(&format!(
        r#"{{"attempts":1,"dynamicsContactId":"{CONTACT}","status":"paused","latestCertExpiresAtMs":null,"syncEnabled":true}}"#
    ))
    .expect("json");
    let policy = js_sys::JSON::parse(r#"{"maxAttempts":8,"baseMs":60000}"#).expect("json");
    let report = resolve(client.sync_job(job, policy, None).expect("call")).await;
    let outcome = get(&report, "outcome");
    assert_eq!(
        get(&outcome, "kind").as_string().as_deref(),
        Some("dead_letter"),
        "{}",
        json(&report)
    );
    assert_eq!(
        get(&outcome, "errorCode").as_string().as_deref(),
        Some("NOT_FOUND")
    );
    assert_eq!(get(&report, "visible").as_bool(), Some(false));
}

#[wasm_bindgen_test]
async fn read_visibility_follows_next_link() {
    let w = world(
        r#"{"token":[{"status":200}],"api":[
          {"status":200,"body":"{\"value\":[{\"contactid\":\"11111111-2222-3333-4444-555555555555\",\"hlf_portalvisible\":true}],\"@odata.nextLink\":\"https://org.example.test/api/data/v9.2/contacts?$skiptoken=x\"}"},
          {"status":200,"body":"{\"value\":[{\"contactid\":\"99999999-2222-3333-4444-555555555555\",\"hlf_portalvisible\":false}]}"}]}"#,
    );
    let client = Client::new(config(""), get(&w, "io")).expect("client");
    let ids = js_sys::JSON::parse(r#"["11111111-2222-3333-4444-555555555555","99999999-2222-3333-4444-555555555555","aaaaaaaa-2222-3333-4444-555555555555"]"#).expect("json");
    let report = resolve(client.read_visibility(ids, None).expect("call")).await;
    assert_eq!(
        js_sys::Array::from(&get(&report, "contacts")).length(),
        2,
        "{}",
        json(&report)
    );
    assert_eq!(
        json(&get(&report, "missing")),
        r#"["aaaaaaaa-2222-3333-4444-555555555555"]"#
    );
    let calls = api_calls(&w);
    assert_eq!(calls.len(), 2);
    assert!(get(&calls[1], "url")
        .as_string()
        .unwrap_or_default()
        .ends_with("$skiptoken=x"));
}

#[wasm_bindgen_test]
fn http_base_url_is_rejected_at_construction() {
    let cfg = js_sys::JSON::parse(r#"{"baseUrl":"http://org.example.test"}"#).expect("json");
    let io = Object::new();
    let f = Function::new_no_args("return {}");
    Reflect::set(&io, &JsValue::from_str("credentials"), &f).expect("set");
    assert!(Client::new(cfg.clone(), io.into()).is_err());
    assert!(validate_config(cfg).is_err());
}

#[wasm_bindgen_test]
fn desired_visibility_needs_active_and_valid_certification() {
    let facts = |status: &str, exp: &str| {
        js_sys::JSON::parse(&format!(
            r#"{{"status":"{status}","latestCertExpiresAtMs":{exp},"syncEnabled":true}}"#
        ))
        .expect("json")
    };
    assert_eq!(
        desired_visibility_js(facts("active", "2000"), 1000.0).ok(),
        Some(true)
    );
    assert_eq!(
        desired_visibility_js(facts("active", "1000"), 1000.0).ok(),
        Some(false)
    );
    assert_eq!(
        desired_visibility_js(facts("paused", "2000"), 1000.0).ok(),
        Some(false)
    );
    assert_eq!(
        desired_visibility_js(facts("active", "null"), 1000.0).ok(),
        Some(false)
    );
}
