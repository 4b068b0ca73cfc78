//! The wasm adapter: the only module that touches `JsValue`, `fetch` and timers.
//!
//! It exports a small typed API (see `pkg/hlf_dynamics_sync.d.ts`, whose interfaces are written
//! by hand below) to the TypeScript shim: a [`Client`] built from configuration plus JS
//! callbacks (credentials, and optionally `fetch`, clock, sleeper, log sink), whose async
//! methods run [`crate::dynamics::Call`]s; and the pure decision functions. Values cross the
//! boundary with `serde_wasm_bindgen`; errors leave as `JsError` with secrets redacted.

mod boundary;
mod io;

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::decision::{desired_visibility, job_outcome, plan_job, JobOutcome, JobPlan};
use crate::dynamics::{
    Call, CallOutput, CallResult, ContactId, DynamicsConfig, DynamicsError, Operation, Poll,
};
use crate::retry::RetryPolicy;
use crate::rng::SplitMix64;
use crate::token::{TokenCache, TokenPoll};

use boundary::{
    from_js, to_js, AttemptOut, CallReport, ClaimedJobIn, ClientConfigIn, ErrorOut, FactsIn,
    JobReport, OutcomeOut, QueuePolicyIn,
};
use io::Io;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = include_str!("types.d.ts");

/// A Dataverse client: token cache, retry policy and RNG live here, across requests of a warm
/// isolate.
#[wasm_bindgen(js_name = DynamicsClient)]
pub struct Client {
    inner: Rc<Inner>,
}

struct Inner {
    config: DynamicsConfig,
    io: Io,
    cache: RefCell<TokenCache>,
    rng: RefCell<SplitMix64>,
}

#[wasm_bindgen(js_class = DynamicsClient)]
impl Client {
    /// Validates `config` (an `https://` base URL among others) and keeps the callbacks of `io`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "ClientConfig")] config: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ClientIo")] io: JsValue,
    ) -> Result<Client, JsError> {
        let input: ClientConfigIn = from_js(config, "config")?;
        let config = input.to_config().map_err(|e| js_error(&e))?;
        let io = Io::from_js(&io)?;
        let seed = match input.rng_seed {
            Some(seed) => seed as u64,
            None => (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64,
        };
        Ok(Client {
            inner: Rc::new(Inner {
                config,
                io,
                cache: RefCell::new(TokenCache::new()),
                rng: RefCell::new(SplitMix64::new(seed)),
            }),
        })
    }

    /// `PATCH`es the contact's visibility column, with in-request retries.
    #[wasm_bindgen(js_name = setVisibility, unchecked_return_type = "Promise<CallReport>")]
    pub fn set_visibility(
        &self,
        #[wasm_bindgen(js_name = contactId)] contact_id: &str,
        visible: bool,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: Option<JsValue>,
    ) -> Result<js_sys::Promise, JsError> {
        let contact = ContactId::parse(contact_id).map_err(|e| js_error(&e))?;
        let deadline = boundary::deadline(options)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            let result = inner
                .run(Operation::SetVisibility { contact, visible }, deadline)
                .await;
            to_js(&inner.report(result))
        }))
    }

    /// Reads the visibility column of these contacts (id-chunked, paged).
    #[wasm_bindgen(js_name = readVisibility, unchecked_return_type = "Promise<CallReport>")]
    pub fn read_visibility(
        &self,
        #[wasm_bindgen(js_name = contactIds, unchecked_param_type = "string[]")]
        contact_ids: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: Option<JsValue>,
    ) -> Result<js_sys::Promise, JsError> {
        let ids: Vec<String> = from_js(contact_ids, "contactIds")?;
        let contacts = ids
            .iter()
            .map(|id| ContactId::parse(id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| js_error(&e))?;
        let deadline = boundary::deadline(options)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            let result = inner
                .run(Operation::ReadVisibility { contacts }, deadline)
                .await;
            to_js(&inner.report(result))
        }))
    }

    /// Credential health: forgets the cached token, fetches a fresh one and calls `WhoAmI`.
    #[wasm_bindgen(unchecked_return_type = "Promise<CallReport>")]
    pub fn health(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: Option<JsValue>,
    ) -> Result<js_sys::Promise, JsError> {
        let deadline = boundary::deadline(options)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            inner.cache.borrow_mut().clear();
            let result = inner.run(Operation::WhoAmI, deadline).await;
            to_js(&inner.report(result))
        }))
    }

    /// Plans, sends and decides one claimed queue job: the visibility comes from the mentor's
    /// facts now (level-triggered), the outcome from the attempts' result.
    #[wasm_bindgen(js_name = syncJob, unchecked_return_type = "Promise<JobReport>")]
    pub fn sync_job(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ClaimedJob")] job: JsValue,
        #[wasm_bindgen(js_name = queuePolicy, unchecked_param_type = "QueuePolicy")]
        queue_policy: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "CallOptions")] options: Option<JsValue>,
    ) -> Result<js_sys::Promise, JsError> {
        let job: ClaimedJobIn = from_js(job, "job")?;
        let policy: QueuePolicyIn = from_js(queue_policy, "queuePolicy")?;
        let deadline = boundary::deadline(options)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            to_js(&inner.sync_job(job, policy.to_policy(), deadline).await)
        }))
    }

    /// Forgets the cached token, e.g. after credentials were rotated.
    #[wasm_bindgen(js_name = clearToken)]
    pub fn clear_token(&self) {
        self.inner.cache.borrow_mut().clear();
    }

    /// Tokens fetched since the client was created.
    #[wasm_bindgen(js_name = tokenRefreshes)]
    pub fn token_refreshes(&self) -> f64 {
        self.inner.cache.borrow().refreshes() as f64
    }
}

/// Whether a mentor should be listed on the portal at `nowMs`.
#[wasm_bindgen(js_name = desiredVisibility)]
pub fn desired_visibility_js(
    #[wasm_bindgen(unchecked_param_type = "MentorFacts")] facts: JsValue,
    #[wasm_bindgen(js_name = nowMs)] now_ms: f64,
) -> Result<bool, JsError> {
    let facts: FactsIn = from_js(facts, "facts")?;
    Ok(desired_visibility(
        &facts.to_facts(),
        boundary::millis(now_ms)?,
    ))
}

/// Validates configuration without building a client: throws the same error the constructor
/// would (used by the function at start-up to refuse an `http://` base URL with a clear message).
#[wasm_bindgen(js_name = validateConfig)]
pub fn validate_config(
    #[wasm_bindgen(unchecked_param_type = "ClientConfig")] config: JsValue,
) -> Result<(), JsError> {
    let input: ClientConfigIn = from_js(config, "config")?;
    input.to_config().map(|_| ()).map_err(|e| js_error(&e))
}

impl Inner {
    /// Drives one call to its end: tokens, requests, sleeps.
    async fn run(&self, op: Operation, deadline_ms: Option<u64>) -> CallResult {
        let mut call = Call::new(op, &self.config, deadline_ms);
        loop {
            let now = self.io.now();
            match call.poll(now) {
                Poll::Done => return call.finish(),
                Poll::Sleep { until_ms } => self.io.sleep(until_ms.saturating_sub(now)).await,
                Poll::Send { invalidate } => {
                    if let Some(stale) = invalidate {
                        self.cache.borrow_mut().invalidate(&stale);
                    }
                    let started = self.io.now();
                    let token = match self.token().await {
                        Ok(token) => token,
                        Err(error) => {
                            let now = self.io.now();
                            self.io.log_error("token", &error, self.io.redactions());
                            call.on_token_failure(
                                now,
                                error,
                                now.saturating_sub(started),
                                &mut *self.rng.borrow_mut(),
                            );
                            continue;
                        }
                    };
                    let Ok((request, timeout_ms)) =
                        call.request(&self.config, &token, self.io.now())
                    else {
                        continue;
                    };
                    let answer = self.io.send(&request, timeout_ms).await;
                    let now = self.io.now();
                    match answer {
                        Ok(response) => call.on_response(
                            now,
                            &response,
                            &self.config,
                            &mut *self.rng.borrow_mut(),
                        ),
                        Err(error) => call.on_failure(now, error, &mut *self.rng.borrow_mut()),
                    }
                }
            }
        }
    }

    /// A usable token: cached, or fetched by this caller (one refresh in flight), or awaited.
    async fn token(&self) -> Result<crate::secret::Secret, DynamicsError> {
        loop {
            let poll = self.cache.borrow_mut().poll(self.io.now());
            match poll {
                TokenPoll::Ready(token) => return Ok(token),
                TokenPoll::Wait => self.io.wait_for_refresh().await,
                TokenPoll::Refresh => {
                    let guard = self.io.begin_refresh();
                    let fetched = self.io.fetch_token(&self.config).await;
                    let now = self.io.now();
                    let result = match fetched {
                        Ok(grant) => Ok(self.cache.borrow_mut().on_refreshed(now, grant)),
                        Err(error) => {
                            let fallback = self.cache.borrow_mut().on_refresh_failed(now);
                            match fallback {
                                Some(token) => {
                                    self.io.log_warn("token refresh failed; the cached token is still valid and stays in use", &error);
                                    Ok(token)
                                }
                                None => Err(error),
                            }
                        }
                    };
                    drop(guard);
                    return result;
                }
            }
        }
    }

    async fn sync_job(
        &self,
        job: ClaimedJobIn,
        policy: RetryPolicy,
        deadline_ms: Option<u64>,
    ) -> JobReport {
        let now = self.io.now();
        let facts = job.to_facts();
        // The column is a uuid, so a parse failure cannot come from the database; treat it as
        // no mapping (dead letter with an alert) rather than guess.
        let contact = job
            .dynamics_contact_id
            .as_deref()
            .and_then(|id| ContactId::parse(id).ok());
        match plan_job(&facts, contact.is_some(), now) {
            JobPlan::Skip { reason } => JobReport::decided(OutcomeOut::skipped(reason)),
            JobPlan::DeadLetter { reason, error_code } => JobReport::decided(
                OutcomeOut::dead_letter(reason.to_owned(), error_code, reason.to_owned()),
            ),
            JobPlan::SetVisibility { visible } => {
                // Invariant: plan_job only plans a send when there is a contact.
                let Some(contact) = contact else {
                    return JobReport::decided(OutcomeOut::dead_letter(
                        "no contact".to_owned(),
                        "NO_CONTACT_MAPPING",
                        String::new(),
                    ));
                };
                let result = self
                    .run(Operation::SetVisibility { contact, visible }, deadline_ms)
                    .await;
                let report = self.report(result.clone());
                let status = result.result.map(|_| ());
                let now = self.io.now();
                let outcome = job_outcome(
                    &status,
                    visible,
                    job.attempts,
                    &policy,
                    now,
                    &mut *self.rng.borrow_mut(),
                );
                JobReport {
                    outcome: OutcomeOut::from_outcome(outcome, self.io.redactions()),
                    visible: Some(visible),
                    retry_after_ms: report.error.as_ref().and_then(|e| e.retry_after_ms),
                    attempts: report.attempts,
                }
            }
        }
    }

    fn report(&self, result: CallResult) -> CallReport {
        let secrets = self.io.redactions();
        let attempts = result.attempts.iter().map(AttemptOut::from).collect();
        match result.result {
            Ok(CallOutput::Updated { visible, .. }) => {
                CallReport::ok(attempts).with_visible(visible)
            }
            Ok(CallOutput::Visibility { contacts, missing }) => {
                CallReport::ok(attempts).with_contacts(contacts, missing)
            }
            Ok(CallOutput::WhoAmI(w)) => CallReport::ok(attempts).with_who_am_i(w),
            Err(error) => {
                self.io.log_error("call", &error, secrets.clone());
                CallReport::failed(attempts, ErrorOut::from_error(&error, &secrets))
            }
        }
    }
}

/// A `JsError` whose message carries the error code and nothing secret (configuration errors
/// name settings, never values).
fn js_error(error: &DynamicsError) -> JsError {
    JsError::new(&format!("{}: {}", error.code(), error))
}

impl OutcomeOut {
    fn from_outcome(outcome: JobOutcome, secrets: Vec<crate::secret::Secret>) -> Self {
        let clean = |m: String| crate::secret::redact(&m, &secrets.iter().collect::<Vec<_>>());
        match outcome {
            JobOutcome::Synced { visible } => OutcomeOut::synced(visible),
            JobOutcome::Retry {
                retry_at_ms,
                error_code,
                message,
            } => OutcomeOut::retry(retry_at_ms, error_code, clean(message)),
            JobOutcome::DeadLetter {
                reason,
                error_code,
                message,
            } => OutcomeOut::dead_letter(reason, error_code, clean(message)),
            JobOutcome::AuthFailure {
                retry_at_ms,
                error_code,
                message,
            } => OutcomeOut::auth_failure(retry_at_ms, error_code, clean(message)),
        }
    }
}
