//! The JS side of the adapter: callbacks handed in by the shim (credentials, `fetch`, clock,
//! sleeper, log sink), the per-attempt timeout, and the promise concurrent callers await while
//! one of them refreshes the token.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::dynamics::request::token_request;
use crate::dynamics::response::parse_token_response;
use crate::dynamics::{
    Credentials, DynamicsConfig, DynamicsError, HttpRequest, HttpResponse, TokenGrant,
};
use crate::secret::{redact, Secret};

/// The callbacks, read once from the `ClientIo` object.
pub struct Io {
    credentials: Function,
    fetch: Option<Function>,
    now: Option<Function>,
    sleep: Option<Function>,
    log: Option<Function>,
    refresh: RefCell<Option<(Promise, Function)>>,
    secrets: RefCell<Vec<Secret>>,
}

/// Resolves the refresh promise when the refreshing caller is done, however it ends.
pub struct RefreshGuard<'a> {
    io: &'a Io,
}

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        if let Some((_, resolve)) = self.io.refresh.borrow_mut().take() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }
}

impl Io {
    pub fn from_js(io: &JsValue) -> Result<Self, JsError> {
        let function = |name: &str, required: bool| -> Result<Option<Function>, JsError> {
            let value = Reflect::get(io, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
            if value.is_undefined() || value.is_null() {
                return if required {
                    Err(JsError::new(&format!("BAD_REQUEST: io.{name} is required")))
                } else {
                    Ok(None)
                };
            }
            value
                .dyn_into::<Function>()
                .map(Some)
                .map_err(|_| JsError::new(&format!("BAD_REQUEST: io.{name} must be a function")))
        };
        Ok(Self {
            // Invariant: `function(_, true)` returns Some or an error.
            credentials: function("credentials", true)?.expect("required callback is present"),
            fetch: function("fetch", false)?,
            now: function("now", false)?,
            sleep: function("sleep", false)?,
            log: function("log", false)?,
            refresh: RefCell::new(None),
            secrets: RefCell::new(Vec::new()),
        })
    }

    /// Milliseconds since the epoch, from the injected clock or `Date.now()`.
    pub fn now(&self) -> u64 {
        let ms = match &self.now {
            Some(f) => f
                .call0(&JsValue::NULL)
                .ok()
                .and_then(|v| v.as_f64())
                .unwrap_or_else(js_sys::Date::now),
            None => js_sys::Date::now(),
        };
        if ms.is_finite() && ms > 0.0 {
            ms as u64
        } else {
            0
        }
    }

    /// Sleeps through the injected sleeper or a real timer.
    pub async fn sleep(&self, ms: u64) {
        let ms = ms.min(u64::from(u32::MAX));
        match &self.sleep {
            Some(f) => {
                if let Ok(p) = f.call1(&JsValue::NULL, &JsValue::from_f64(ms as f64)) {
                    if let Ok(p) = p.dyn_into::<Promise>() {
                        let _ = JsFuture::from(p).await;
                    }
                }
            }
            None => gloo_timers::future::TimeoutFuture::new(ms as u32).await,
        }
    }

    /// Marks a token refresh in flight; other callers [`Io::wait_for_refresh`] until the guard drops.
    pub fn begin_refresh(&self) -> RefreshGuard<'_> {
        let mut resolve_slot: Option<Function> = None;
        let promise = Promise::new(&mut |resolve, _reject| resolve_slot = Some(resolve));
        if let Some(resolve) = resolve_slot {
            *self.refresh.borrow_mut() = Some((promise, resolve));
        }
        RefreshGuard { io: self }
    }

    /// Waits for the refresh in flight, or yields once when there is none.
    pub async fn wait_for_refresh(&self) {
        let pending = self.refresh.borrow().as_ref().map(|(p, _)| p.clone());
        let promise = pending.unwrap_or_else(|| Promise::resolve(&JsValue::UNDEFINED));
        let _ = JsFuture::from(promise).await;
    }

    /// Reads credentials through the callback (the shim reads Vault or its environment each
    /// time, so a rotated secret is picked up) and fetches a token.
    pub async fn fetch_token(&self, config: &DynamicsConfig) -> Result<TokenGrant, DynamicsError> {
        let credentials = self.credentials().await?;
        {
            let mut secrets = self.secrets.borrow_mut();
            if !secrets.contains(&credentials.client_secret) {
                secrets.push(credentials.client_secret.clone());
                // Keep the current and the previous secret for redaction.
                let excess = secrets.len().saturating_sub(2);
                secrets.drain(..excess);
            }
        }
        let request = token_request(config, &credentials);
        let response = self.send(&request, config.timeout_ms).await?;
        parse_token_response(&response, self.now())
    }

    async fn credentials(&self) -> Result<Credentials, DynamicsError> {
        let unavailable = |why: &str| DynamicsError::Configuration {
            message: format!("credentials unavailable: {why}"),
        };
        let value = self
            .credentials
            .call0(&JsValue::NULL)
            .map_err(|_| unavailable("the credential provider threw"))?;
        let value = match value.dyn_into::<Promise>() {
            Ok(p) => JsFuture::from(p)
                .await
                .map_err(|_| unavailable("the credential provider rejected"))?,
            Err(v) => v,
        };
        let field = |name: &str| {
            Reflect::get(&value, &JsValue::from_str(name))
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default()
        };
        Credentials::new(
            &field("tenantId"),
            &field("clientId"),
            &field("clientSecret"),
        )
    }

    /// Sends one request with a timeout; the answer is read whole.
    pub async fn send(
        &self,
        request: &HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, DynamicsError> {
        let controller =
            web_sys::AbortController::new().map_err(|_| network("AbortController unavailable"))?;
        let init = Object::new();
        let headers = Object::new();
        for (name, value) in &request.headers {
            set(&headers, name, &JsValue::from_str(value));
        }
        set(&init, "method", &JsValue::from_str(request.method.as_str()));
        set(&init, "headers", &headers);
        set(&init, "redirect", &JsValue::from_str("error"));
        set(&init, "signal", &controller.signal());
        if let Some(body) = &request.body {
            set(&init, "body", &JsValue::from_str(body));
        }

        let timed_out = Object::new();
        let timer: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
        let deadline = {
            let timer = timer.clone();
            let marker = timed_out.clone();
            let ms = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
            Promise::new(&mut |resolve, _| {
                let controller = controller.clone();
                let marker = marker.clone();
                *timer.borrow_mut() = Some(Timeout::new(ms, move || {
                    let _ = resolve.call1(&JsValue::NULL, &marker);
                    controller.abort();
                }));
            })
        };

        let fetch = match &self.fetch {
            Some(f) => f.clone(),
            None => Reflect::get(&js_sys::global(), &JsValue::from_str("fetch"))
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok())
                .ok_or_else(|| network("fetch is not available"))?,
        };
        let started = fetch
            .call2(&JsValue::NULL, &JsValue::from_str(&request.url), &init)
            .map_err(|e| self.network_error(&e))?;
        let started = Promise::resolve(&started);
        let answer = race(&started, &deadline).await;
        let response = match answer {
            Ok(v) if Object::is(&v, &timed_out) => {
                return Err(DynamicsError::Timeout {
                    after_ms: timeout_ms,
                })
            }
            Ok(v) => v
                .dyn_into::<web_sys::Response>()
                .map_err(|_| network("fetch did not return a Response"))?,
            Err(_) if controller.signal().aborted() => {
                return Err(DynamicsError::Timeout {
                    after_ms: timeout_ms,
                });
            }
            Err(e) => return Err(self.network_error(&e)),
        };
        let status = response.status();
        let retry_after = response.headers().get("retry-after").ok().flatten();
        let text = response.text().map_err(|e| self.network_error(&e))?;
        let body = match race(&text, &deadline).await {
            Ok(v) if Object::is(&v, &timed_out) => {
                return Err(DynamicsError::Timeout {
                    after_ms: timeout_ms,
                })
            }
            Ok(v) => v.as_string().unwrap_or_default(),
            Err(_) if controller.signal().aborted() => {
                return Err(DynamicsError::Timeout {
                    after_ms: timeout_ms,
                })
            }
            Err(e) => return Err(self.network_error(&e)),
        };
        drop(timer.borrow_mut().take());
        Ok(HttpResponse {
            status,
            retry_after,
            body,
        })
    }

    /// Secrets seen so far, for redacting anything rendered.
    pub fn redactions(&self) -> Vec<Secret> {
        self.secrets.borrow().clone()
    }

    pub fn log_error(&self, event: &str, error: &DynamicsError, secrets: Vec<Secret>) {
        let message = redact(&error.to_string(), &secrets.iter().collect::<Vec<_>>());
        self.log("error", event, &message, Some(error.code()));
    }

    pub fn log_warn(&self, message: &str, error: &DynamicsError) {
        let secrets = self.redactions();
        let detail = redact(&error.to_string(), &secrets.iter().collect::<Vec<_>>());
        self.log(
            "warn",
            "token",
            &format!("{message}: {detail}"),
            Some(error.code()),
        );
    }

    fn log(&self, level: &str, event: &str, message: &str, code: Option<&str>) {
        let Some(log) = &self.log else { return };
        let entry = Object::new();
        set(&entry, "level", &JsValue::from_str(level));
        set(&entry, "event", &JsValue::from_str(event));
        set(&entry, "message", &JsValue::from_str(message));
        if let Some(code) = code {
            set(&entry, "code", &JsValue::from_str(code));
        }
        let _ = log.call1(&JsValue::NULL, &entry);
    }

    fn network_error(&self, error: &JsValue) -> DynamicsError {
        let text = error
            .dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .or_else(|| error.as_string())
            .unwrap_or_else(|| "request failed".to_owned());
        let secrets = self.redactions();
        network(&crate::secret::truncate(
            &redact(&text, &secrets.iter().collect::<Vec<_>>()),
            300,
        ))
    }
}

async fn race(a: &Promise, b: &Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(Promise::race(&Array::of2(a, b))).await
}

fn set(target: &Object, key: &str, value: &JsValue) {
    // Invariant: `target` is a plain extensible object, so defining a property cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

fn network(message: &str) -> DynamicsError {
    DynamicsError::Network {
        message: message.to_owned(),
    }
}
