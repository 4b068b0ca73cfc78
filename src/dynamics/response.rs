//! Response classification: status codes, Dataverse `{"error":{"code","message"}}` bodies, AAD
//! `{error, error_description}` bodies, `Retry-After`, token answers and visibility pages.

use serde::Deserialize;

use super::error::DynamicsError;
use super::request::ContactId;
use crate::secret::{redact, truncate};

/// How much of a server's error message is kept.
const MAX_MESSAGE_CHARS: usize = 300;
/// The longest wait a `Retry-After` may ask for before it is treated as garbage (1 day).
const MAX_RETRY_AFTER_MS: u64 = 86_400_000;

/// An HTTP answer as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// The raw `Retry-After` header, if present.
    pub retry_after: Option<String>,
    pub body: String,
}

/// A bearer token with its absolute expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: crate::secret::Secret,
    pub expires_in_ms: u64,
}

/// One contact's visibility as read from Dataverse; `None` when the column is null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactVisibility {
    pub contact_id: ContactId,
    pub visible: Option<bool>,
}

/// One page of a visibility read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibilityPage {
    pub contacts: Vec<ContactVisibility>,
    pub next_link: Option<String>,
}

/// The answer of `WhoAmI`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhoAmI {
    pub user_id: String,
    pub organization_id: String,
}

/// Maps a Dataverse API answer to success or a typed error. `now_ms` resolves an HTTP-date
/// `Retry-After`.
pub fn classify(response: &HttpResponse, now_ms: u64) -> Result<(), DynamicsError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let (code, message) = dataverse_error(&response.body, status);
    let retry_after_ms = response
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now_ms));
    Err(match status {
        401 => DynamicsError::Auth { code, message },
        403 => DynamicsError::Forbidden { code, message },
        404 => DynamicsError::NotFound { code, message },
        412 => DynamicsError::PreconditionFailed { code, message },
        429 => DynamicsError::Throttled {
            retry_after_ms,
            code,
            message,
        },
        408 | 500 | 502 | 503 | 504 => DynamicsError::Server {
            status,
            retry_after_ms,
            code,
            message,
        },
        400..=499 => DynamicsError::BadRequest {
            status,
            code,
            message,
        },
        // Other 5xx and anything outside the known ranges (1xx, 3xx): the service is not
        // answering as it should; retrying is the safe side.
        _ => DynamicsError::Server {
            status,
            retry_after_ms,
            code,
            message,
        },
    })
}

/// Parses a token endpoint answer. AAD errors `invalid_client`, `unauthorized_client`,
/// `invalid_grant` and `unauthorized` (and any 401) are auth failures; 5xx and 429 are transient.
pub fn parse_token_response(
    response: &HttpResponse,
    now_ms: u64,
) -> Result<TokenGrant, DynamicsError> {
    #[derive(Deserialize)]
    struct Grant {
        access_token: String,
        expires_in: serde_json::Value,
        token_type: Option<String>,
    }
    #[derive(Deserialize)]
    struct AadError {
        error: String,
        error_description: Option<String>,
    }

    let status = response.status;
    if (200..300).contains(&status) {
        let grant: Grant = serde_json::from_str(&response.body)
            .map_err(|_| invalid("token answer is not the expected JSON"))?;
        if grant.access_token.is_empty() {
            return Err(invalid("token answer has an empty access_token"));
        }
        if let Some(kind) = &grant.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(invalid("token answer is not a bearer token"));
            }
        }
        // AAD sends a number; some proxies send it as a string.
        let seconds = match &grant.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .filter(|s| (1..=86_400).contains(s))
        .ok_or_else(|| invalid("token answer has no valid expires_in"))?;
        return Ok(TokenGrant {
            access_token: crate::secret::Secret::new(grant.access_token),
            expires_in_ms: seconds * 1000,
        });
    }
    if let Ok(aad) = serde_json::from_str::<AadError>(&response.body) {
        let message = clean(aad.error_description.as_deref().unwrap_or(""));
        let code = clean(&aad.error);
        let auth = matches!(
            aad.error.as_str(),
            "invalid_client"
                | "unauthorized_client"
                | "invalid_grant"
                | "unauthorized"
                | "access_denied"
        ) || status == 401;
        if auth {
            return Err(DynamicsError::Auth { code, message });
        }
        if !(status == 429 || status >= 500) {
            return Err(DynamicsError::BadRequest {
                status,
                code,
                message,
            });
        }
    }
    classify(response, now_ms)?;
    Err(invalid("unexpected token endpoint status"))
}

/// Parses one page of `GET contacts?$select=contactid,<field>`.
pub fn parse_visibility_page(
    response: &HttpResponse,
    field: &str,
    now_ms: u64,
) -> Result<VisibilityPage, DynamicsError> {
    classify(response, now_ms)?;
    let doc: serde_json::Value =
        serde_json::from_str(&response.body).map_err(|_| invalid("contacts page is not JSON"))?;
    let rows = doc
        .get("value")
        .and_then(|v| v.as_array())
        .ok_or_else(|| invalid("contacts page has no value array"))?;
    let mut contacts = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row
            .get("contactid")
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid("contacts page row has no contactid"))?;
        let contact_id = ContactId::parse(id)
            .map_err(|_| invalid("contacts page row has an invalid contactid"))?;
        let visible = match row.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(_) => return Err(invalid("visibility column is not a boolean")),
        };
        contacts.push(ContactVisibility {
            contact_id,
            visible,
        });
    }
    let next_link = match doc.get("@odata.nextLink") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("@odata.nextLink is not a string")),
    };
    Ok(VisibilityPage {
        contacts,
        next_link,
    })
}

/// Parses the answer of `WhoAmI`.
pub fn parse_who_am_i(response: &HttpResponse, now_ms: u64) -> Result<WhoAmI, DynamicsError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        user_id: String,
        organization_id: String,
    }
    classify(response, now_ms)?;
    let a: Answer = serde_json::from_str(&response.body)
        .map_err(|_| invalid("WhoAmI answer is not the expected JSON"))?;
    Ok(WhoAmI {
        user_id: a.user_id,
        organization_id: a.organization_id,
    })
}

/// `Retry-After` as delay-seconds or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), in ms from
/// `now_ms`. Garbage, negative values and waits beyond a day are ignored (`None`).
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let v = value.trim();
    if !v.is_empty() && v.len() <= 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .filter(|ms| *ms <= MAX_RETRY_AFTER_MS);
    }
    let at_ms = parse_imf_fixdate(v)?;
    Some(at_ms.saturating_sub(now_ms)).filter(|ms| *ms <= MAX_RETRY_AFTER_MS)
}

/// The Dataverse error `code` and `message` of a body, or the status as code when the body is
/// not a Dataverse error. Messages are redacted and truncated.
fn dataverse_error(body: &str, status: u16) -> (String, String) {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(e) => (
            clean(e.error.code.as_deref().unwrap_or("")).if_empty(|| format!("HTTP{status}")),
            clean(e.error.message.as_deref().unwrap_or("")),
        ),
        Err(_) => (format!("HTTP{status}"), clean(&first_line(body))),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_owned()
}

/// Server text made safe to store: control characters flattened, bearer tokens removed,
/// truncated. Each run of control characters becomes one space before redaction, so the text
/// stored is exactly the text the redactor saw: dropping them after redaction could glue
/// `Bearer\u{1} token` or `Bearer\0\ttoken` into a form the redactor never checked, and
/// dropping them before would glue `Bearer\ttoken` into `Bearertoken`.
fn clean(text: &str) -> String {
    let mut flat = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_control() {
            flat.push(c);
        } else if !flat.ends_with(' ') {
            flat.push(' ');
        }
    }
    truncate(&redact(flat.trim(), &[]), MAX_MESSAGE_CHARS)
}

fn invalid(message: &str) -> DynamicsError {
    DynamicsError::InvalidResponse {
        message: message.to_owned(),
    }
}

trait IfEmpty {
    fn if_empty(self, f: impl FnOnce() -> String) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, f: impl FnOnce() -> String) -> String {
        if self.is_empty() {
            f()
        } else {
            self
        }
    }
}

fn parse_imf_fixdate(v: &str) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let mut parts = v.split_ascii_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let s: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    secs.checked_mul(1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_retry_after_counts_from_now() {
        // 1994-11-06T08:49:37Z = 784111777 s
        let now = 784_111_777_000 - 5_000;
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(5_000)
        );
    }

    #[test]
    fn garbage_retry_after_is_ignored() {
        for v in [
            "",
            "-1",
            "soon",
            "1.5",
            "99999999999999",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(v, 0), None, "{v}");
        }
    }
}
