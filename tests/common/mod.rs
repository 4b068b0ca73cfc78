//! Shared fixtures of the native suites: a validated config, scripted HTTP answers and a
//! harness that drives a [`Call`] and a [`TokenCache`] the way the wasm adapter does, with a
//! fake clock and a seeded RNG, recording everything that was sent.
#![allow(dead_code)]

use std::collections::VecDeque;

use hlf_dynamics_sync::dynamics::{
    Call, CallResult, ContactId, DynamicsConfig, DynamicsError, HttpRequest, HttpResponse,
    Operation, Poll, TokenGrant,
};
use hlf_dynamics_sync::rng::SplitMix64;
use hlf_dynamics_sync::secret::Secret;
use hlf_dynamics_sync::token::{TokenCache, TokenPoll};

pub const BASE: &str = "https://hlf.crm4.dynamics.com";
pub const API: &str = "https://hlf.crm4.dynamics.com/api/data/v9.2";
pub const T0: u64 = 1_700_000_000_000;
pub const SEED: u64 = 0x5EED;

pub fn config() -> DynamicsConfig {
    DynamicsConfig::new(BASE, None, None, None).expect("valid config")
}

/// A deterministic GUID for contact `n`.
pub fn contact(n: u32) -> ContactId {
    ContactId::parse(&format!("00000000-0000-4000-8000-{n:012x}")).expect("valid guid")
}

pub fn resp(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        retry_after: None,
        body: body.to_owned(),
    }
}

pub fn resp_retry_after(status: u16, retry_after: &str, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        retry_after: Some(retry_after.to_owned()),
        body: body.to_owned(),
    }
}

pub fn dataverse_error(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

/// A contacts page as Dataverse returns it.
pub fn page(rows: &[(&ContactId, Option<bool>)], next_link: Option<&str>) -> HttpResponse {
    let value: Vec<serde_json::Value> = rows
        .iter()
        .map(|(id, visible)| serde_json::json!({"contactid": id.as_str(), "hlf_portalvisible": visible}))
        .collect();
    let mut doc = serde_json::json!({ "value": value });
    if let Some(link) = next_link {
        doc["@odata.nextLink"] = serde_json::Value::String(link.to_owned());
    }
    resp(200, &doc.to_string())
}

pub fn grant(token: &str, expires_in_s: u64) -> TokenGrant {
    TokenGrant {
        access_token: Secret::new(token),
        expires_in_ms: expires_in_s * 1000,
    }
}

/// What the scripted server does with one API request.
#[derive(Clone, Debug)]
pub enum Step {
    Respond(HttpResponse),
    /// No answer: a timeout or a network error reported through `Call::on_failure`.
    Fail(DynamicsError),
}

/// What the scripted token endpoint does with one refresh.
#[derive(Clone, Debug)]
pub enum TokenStep {
    Grant { expires_in_s: u64 },
    Fail(DynamicsError),
}

/// One API request the call made.
#[derive(Clone, Debug)]
pub struct Sent {
    pub request: HttpRequest,
    pub token: Secret,
    pub at_ms: u64,
    pub timeout_ms: u64,
}

pub struct Harness {
    pub config: DynamicsConfig,
    pub cache: TokenCache,
    pub rng: SplitMix64,
    pub now: u64,
    /// How long every scripted answer takes to arrive.
    pub latency_ms: u64,
    pub script: VecDeque<Step>,
    pub token_script: VecDeque<TokenStep>,
    pub sent: Vec<Sent>,
    /// Durations of the sleeps the call asked for, in order.
    pub sleeps: Vec<u64>,
    /// Tokens the call asked to drop (`Poll::Send { invalidate: Some(..) }`).
    pub invalidations: Vec<Secret>,
    /// Tokens issued by the token endpoint, in order.
    pub issued: Vec<Secret>,
    pub token_requests: u32,
    /// Requests the call refused to build (e.g. a foreign nextLink).
    pub refused: Vec<DynamicsError>,
}

impl Harness {
    pub fn new(script: impl IntoIterator<Item = Step>) -> Self {
        Self {
            config: config(),
            cache: TokenCache::new(),
            rng: SplitMix64::new(SEED),
            now: T0,
            latency_ms: 40,
            script: script.into_iter().collect(),
            token_script: VecDeque::new(),
            sent: Vec::new(),
            sleeps: Vec::new(),
            invalidations: Vec::new(),
            issued: Vec::new(),
            token_requests: 0,
            refused: Vec::new(),
        }
    }

    pub fn responding(responses: impl IntoIterator<Item = HttpResponse>) -> Self {
        Self::new(responses.into_iter().map(Step::Respond))
    }

    /// Drives one call to its end, like the adapter's loop. Panics if the call sends more
    /// requests than scripted or does not finish (a retry loop).
    pub fn run(&mut self, op: Operation, deadline_ms: Option<u64>) -> CallResult {
        let mut call = Call::new(op, &self.config, deadline_ms);
        for _ in 0..500 {
            match call.poll(self.now) {
                Poll::Done => return call.finish(),
                Poll::Sleep { until_ms } => {
                    assert!(until_ms > self.now, "asked to sleep into the past");
                    self.sleeps.push(until_ms - self.now);
                    self.now = until_ms;
                }
                Poll::Send { invalidate } => {
                    if let Some(stale) = invalidate {
                        self.cache.invalidate(&stale);
                        self.invalidations.push(stale);
                    }
                    let token = match self.token() {
                        Ok(token) => token,
                        Err(error) => {
                            call.on_token_failure(self.now, error, 5, &mut self.rng);
                            continue;
                        }
                    };
                    let (request, timeout_ms) = match call.request(&self.config, &token, self.now) {
                        Ok(built) => built,
                        Err(error) => {
                            self.refused.push(error);
                            continue;
                        }
                    };
                    self.sent.push(Sent {
                        request,
                        token,
                        at_ms: self.now,
                        timeout_ms,
                    });
                    let step = self
                        .script
                        .pop_front()
                        .expect("the call sent more requests than were scripted");
                    self.now += self.latency_ms;
                    match step {
                        Step::Respond(r) => {
                            call.on_response(self.now, &r, &self.config, &mut self.rng)
                        }
                        Step::Fail(e) => call.on_failure(self.now, e, &mut self.rng),
                    }
                }
            }
        }
        panic!("the call did not finish within 500 polls");
    }

    fn token(&mut self) -> Result<Secret, DynamicsError> {
        match self.cache.poll(self.now) {
            TokenPoll::Ready(token) => Ok(token),
            TokenPoll::Wait => panic!("a single caller was told to wait"),
            TokenPoll::Refresh => {
                self.token_requests += 1;
                let step = self
                    .token_script
                    .pop_front()
                    .unwrap_or(TokenStep::Grant { expires_in_s: 3600 });
                match step {
                    TokenStep::Grant { expires_in_s } => {
                        let token = format!("eyJ0eXAiOiJKV1Qi.token{}.sig", self.token_requests);
                        let token = self
                            .cache
                            .on_refreshed(self.now, grant(&token, expires_in_s));
                        self.issued.push(token.clone());
                        Ok(token)
                    }
                    TokenStep::Fail(error) => match self.cache.on_refresh_failed(self.now) {
                        Some(still_valid) => Ok(still_valid),
                        None => Err(error),
                    },
                }
            }
        }
    }

    pub fn urls(&self) -> Vec<&str> {
        self.sent.iter().map(|s| s.request.url.as_str()).collect()
    }
}
