//! The shapes that cross the JS boundary (camelCase), and their conversions to core types.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::decision::{MentorFacts, MentorStatus};
use crate::dynamics::{
    AttemptRecord, ContactId, ContactVisibility, DynamicsConfig, DynamicsError, WhoAmI,
};
use crate::retry::RetryPolicy;
use crate::secret::{redact, Secret};

/// Reads a JS value into `T`; the error names the argument, never its content.
pub fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| JsError::new(&format!("BAD_REQUEST: invalid {what}: {e}")))
}

/// Writes `T` as plain JSON-compatible JS (objects, not Maps; `null` for `None`).
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsValue::from(JsError::new(&format!("INTERNAL: {e}"))))
}

/// Milliseconds since the epoch from a JS number.
pub fn millis(value: f64) -> Result<u64, JsError> {
    if (0.0..=9_007_199_254_740_991.0).contains(&value) {
        Ok(value as u64)
    } else {
        Err(JsError::new(
            "BAD_REQUEST: a time must be a non-negative number of milliseconds",
        ))
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CallOptionsIn {
    deadline_ms: Option<f64>,
}

/// The absolute deadline of `CallOptions`, if any.
pub fn deadline(options: Option<JsValue>) -> Result<Option<u64>, JsError> {
    let Some(options) = options.filter(|o| !o.is_undefined() && !o.is_null()) else {
        return Ok(None);
    };
    let o: CallOptionsIn = from_js(options, "options")?;
    o.deadline_ms.map(millis).transpose()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfigIn {
    base_url: String,
    token_url: Option<String>,
    scope: Option<String>,
    visibility_field: Option<String>,
    timeout_ms: Option<f64>,
    max_attempts: Option<u32>,
    backoff_base_ms: Option<f64>,
    backoff_jitter_ms: Option<f64>,
    backoff_cap_ms: Option<f64>,
    page_size: Option<u32>,
    read_chunk: Option<u32>,
    pub rng_seed: Option<f64>,
}

impl ClientConfigIn {
    pub fn to_config(&self) -> Result<DynamicsConfig, DynamicsError> {
        let mut c = DynamicsConfig::new(
            &self.base_url,
            self.token_url.as_deref(),
            self.scope.as_deref(),
            self.visibility_field.as_deref(),
        )?;
        let ms = |v: Option<f64>, name: &str, default: u64| -> Result<u64, DynamicsError> {
            match v {
                None => Ok(default),
                Some(x) if x.is_finite() && (0.0..=86_400_000.0).contains(&x) => Ok(x as u64),
                Some(_) => Err(DynamicsError::Configuration {
                    message: format!("{name} must be between 0 and 86400000 ms"),
                }),
            }
        };
        c.timeout_ms = ms(self.timeout_ms, "timeoutMs", c.timeout_ms)?.max(1);
        c.retry = RetryPolicy {
            max_attempts: self
                .max_attempts
                .unwrap_or(c.retry.max_attempts)
                .clamp(1, 10),
            base_ms: ms(self.backoff_base_ms, "backoffBaseMs", c.retry.base_ms)?,
            jitter_ms: ms(self.backoff_jitter_ms, "backoffJitterMs", c.retry.jitter_ms)?,
            cap_ms: ms(self.backoff_cap_ms, "backoffCapMs", c.retry.cap_ms)?,
        };
        if let Some(p) = self.page_size {
            c.page_size = p.clamp(1, 5000);
        }
        if let Some(n) = self.read_chunk {
            c.read_chunk = (n as usize).clamp(1, 500);
        }
        Ok(c)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueuePolicyIn {
    max_attempts: u32,
    base_ms: f64,
}

impl QueuePolicyIn {
    pub fn to_policy(&self) -> RetryPolicy {
        RetryPolicy::queue(
            self.max_attempts,
            self.base_ms.clamp(0.0, 3_600_000.0) as u64,
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FactsIn {
    status: MentorStatus,
    latest_cert_expires_at_ms: Option<f64>,
    sync_enabled: bool,
}

impl FactsIn {
    pub fn to_facts(&self) -> MentorFacts {
        MentorFacts {
            status: self.status,
            latest_cert_expires_at_ms: self
                .latest_cert_expires_at_ms
                .filter(|v| v.is_finite())
                .map(|v| v.max(0.0) as u64),
            sync_enabled: self.sync_enabled,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedJobIn {
    pub attempts: u32,
    pub dynamics_contact_id: Option<String>,
    #[serde(flatten)]
    facts: FactsIn,
}

impl ClaimedJobIn {
    pub fn to_facts(&self) -> MentorFacts {
        self.facts.to_facts()
    }
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AttemptOut {
    attempt: u32,
    request: &'static str,
    http_status: Option<u16>,
    error_code: Option<&'static str>,
    duration_ms: u64,
}

impl From<&AttemptRecord> for AttemptOut {
    fn from(a: &AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            request: a.kind.as_str(),
            http_status: a.http_status,
            error_code: a.error_code,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOut {
    code: &'static str,
    message: String,
    transient: bool,
    auth: bool,
    http_status: Option<u16>,
    pub retry_after_ms: Option<u64>,
}

impl ErrorOut {
    pub fn from_error(e: &DynamicsError, secrets: &[Secret]) -> Self {
        Self {
            code: e.code(),
            message: redact(&e.to_string(), &secrets.iter().collect::<Vec<_>>()),
            transient: e.is_transient(),
            auth: e.is_auth(),
            http_status: e.http_status(),
            retry_after_ms: e.retry_after_ms(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactOut {
    contact_id: String,
    visible: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmIOut {
    user_id: String,
    organization_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallReport {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    visible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contacts: Option<Vec<ContactOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    who_am_i: Option<WhoAmIOut>,
    pub error: Option<ErrorOut>,
    pub attempts: Vec<AttemptOut>,
}

impl CallReport {
    pub fn ok(attempts: Vec<AttemptOut>) -> Self {
        Self {
            ok: true,
            visible: None,
            contacts: None,
            missing: None,
            who_am_i: None,
            error: None,
            attempts,
        }
    }

    pub fn failed(attempts: Vec<AttemptOut>, error: ErrorOut) -> Self {
        Self {
            ok: false,
            error: Some(error),
            ..Self::ok(attempts)
        }
    }

    pub fn with_visible(mut self, visible: bool) -> Self {
        self.visible = Some(visible);
        self
    }

    pub fn with_contacts(
        mut self,
        contacts: Vec<ContactVisibility>,
        missing: Vec<ContactId>,
    ) -> Self {
        self.contacts = Some(
            contacts
                .into_iter()
                .map(|c| ContactOut {
                    contact_id: c.contact_id.as_str().to_owned(),
                    visible: c.visible,
                })
                .collect(),
        );
        self.missing = Some(missing.iter().map(|m| m.as_str().to_owned()).collect());
        self
    }

    pub fn with_who_am_i(mut self, w: WhoAmI) -> Self {
        self.who_am_i = Some(WhoAmIOut {
            user_id: w.user_id,
            organization_id: w.organization_id,
        });
        self
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeOut {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    visible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl OutcomeOut {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            visible: None,
            retry_at_ms: None,
            error_code: None,
            reason: None,
            message: None,
        }
    }

    pub fn synced(visible: bool) -> Self {
        Self {
            visible: Some(visible),
            ..Self::new("synced")
        }
    }

    pub fn skipped(reason: &str) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            ..Self::new("skipped")
        }
    }

    pub fn retry(at: u64, code: &'static str, message: String) -> Self {
        Self {
            retry_at_ms: Some(at),
            error_code: Some(code),
            message: Some(message),
            ..Self::new("retry")
        }
    }

    pub fn dead_letter(reason: String, code: &'static str, message: String) -> Self {
        Self {
            reason: Some(reason),
            error_code: Some(code),
            message: Some(message),
            ..Self::new("dead_letter")
        }
    }

    pub fn auth_failure(at: u64, code: &'static str, message: String) -> Self {
        Self {
            retry_at_ms: Some(at),
            error_code: Some(code),
            message: Some(message),
            ..Self::new("auth_failure")
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReport {
    pub outcome: OutcomeOut,
    /// The visibility that was (or would have been) sent.
    pub visible: Option<bool>,
    /// A Retry-After the service sent: the processor slows the whole batch down.
    pub retry_after_ms: Option<u64>,
    pub attempts: Vec<AttemptOut>,
}

impl JobReport {
    pub fn decided(outcome: OutcomeOut) -> Self {
        Self {
            outcome,
            visible: None,
            retry_after_ms: None,
            attempts: Vec::new(),
        }
    }
}
