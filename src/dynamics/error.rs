//! The error taxonomy of a Dynamics call: every HTTP status, transport failure and error body
//! maps to one [`DynamicsError`], which says whether retrying can help.

use thiserror::Error;

/// Why a call to Azure AD or Dataverse failed. Messages are quoted from the server after
/// redaction and truncation; they never contain a credential or token.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DynamicsError {
    /// The token endpoint rejected the credentials (`invalid_client`, `unauthorized_client`, …),
    /// or the API answered 401 again after one forced token refresh.
    #[error("authentication failed ({code}): {message}")]
    Auth { code: String, message: String },
    /// 403: the application user lacks a privilege on the record.
    #[error("forbidden ({code}): {message}")]
    Forbidden { code: String, message: String },
    /// 404: no such contact (a PATCH with `If-Match: *` never creates one).
    #[error("not found ({code}): {message}")]
    NotFound { code: String, message: String },
    /// 400, or any 4xx without a more specific variant.
    #[error("bad request ({status}, {code}): {message}")]
    BadRequest {
        status: u16,
        code: String,
        message: String,
    },
    /// 412: the `If-Match` precondition failed.
    #[error("precondition failed ({code}): {message}")]
    PreconditionFailed { code: String, message: String },
    /// 429: service protection limits; `retry_after_ms` from the `Retry-After` header.
    #[error("throttled ({code}): {message}")]
    Throttled {
        retry_after_ms: Option<u64>,
        code: String,
        message: String,
    },
    /// 500, 502, 503, 504 and 408; 503 may carry a `Retry-After` too.
    #[error("server error ({status}, {code}): {message}")]
    Server {
        status: u16,
        retry_after_ms: Option<u64>,
        code: String,
        message: String,
    },
    /// The attempt did not finish within its timeout.
    #[error("timed out after {after_ms} ms")]
    Timeout { after_ms: u64 },
    /// Connection refused, reset, DNS or TLS failure: the request may not have arrived.
    #[error("network error: {message}")]
    Network { message: String },
    /// A success status with a body that is not what the API promises.
    #[error("invalid response: {message}")]
    InvalidResponse { message: String },
    /// Bad configuration, found before anything is sent (e.g. a base URL that is not https).
    #[error("configuration error: {message}")]
    Configuration { message: String },
}

impl DynamicsError {
    /// A stable machine-readable code, stored in audit rows, failures and alerts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "AUTH_FAILED",
            Self::Forbidden { .. } => "FORBIDDEN",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::BadRequest { .. } => "BAD_REQUEST",
            Self::PreconditionFailed { .. } => "PRECONDITION_FAILED",
            Self::Throttled { .. } => "THROTTLED",
            Self::Server { .. } => "SERVER_ERROR",
            Self::Timeout { .. } => "TIMEOUT",
            Self::Network { .. } => "NETWORK",
            Self::InvalidResponse { .. } => "INVALID_RESPONSE",
            Self::Configuration { .. } => "CONFIGURATION",
        }
    }

    /// Transient failures may succeed when retried: 408, 429, 5xx, timeouts and network errors.
    /// An invalid body on a success status is treated as transient too (a proxy's error page).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Network { .. }
                | Self::InvalidResponse { .. }
        )
    }

    /// Auth failures are never retried in a loop; they raise an alert at once.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Auth { .. })
    }

    /// The delay the server asked for, if any.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after_ms, .. } | Self::Server { retry_after_ms, .. } => {
                *retry_after_ms
            }
            _ => None,
        }
    }

    /// The HTTP status behind the error, when there was an answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Auth { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::BadRequest { status, .. } | Self::Server { status, .. } => Some(*status),
            Self::PreconditionFailed { .. } => Some(412),
            Self::Throttled { .. } => Some(429),
            _ => None,
        }
    }

    /// As a [`crate::retry::Failure`] for the retry policy.
    pub fn as_failure(&self) -> crate::retry::Failure {
        crate::retry::Failure {
            transient: self.is_transient(),
            retry_after_ms: self.retry_after_ms(),
        }
    }
}
