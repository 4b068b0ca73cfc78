//! Request builders: the exact HTTP requests of the contract, as plain data the adapter sends.

use std::fmt;

use super::config::{config_error, Credentials, DynamicsConfig};
use super::error::DynamicsError;

/// A Dataverse record id: a GUID, stored lower-case, hyphenated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactId(String);

impl ContactId {
    pub fn parse(input: &str) -> Result<Self, DynamicsError> {
        let s = input.trim();
        let valid = s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        if !valid {
            return Err(config_error("a contact id must be a GUID"));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
        }
    }
}

/// An HTTP request as data. `Debug` hides the `Authorization` header and the body of token
/// requests (which carries the client secret).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
    /// True when the body carries a credential.
    pub sensitive_body: bool,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                if n.eq_ignore_ascii_case("authorization") {
                    (*n, "[REDACTED]")
                } else {
                    (*n, v.as_str())
                }
            })
            .collect();
        let body = match (&self.body, self.sensitive_body) {
            (Some(_), true) => Some("[REDACTED]"),
            (Some(b), false) => Some(b.as_str()),
            (None, _) => None,
        };
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &body)
            .finish()
    }
}

/// `POST {token_url}` with the client-credentials grant, form-encoded.
pub fn token_request(config: &DynamicsConfig, credentials: &Credentials) -> HttpRequest {
    let body = [
        ("grant_type", "client_credentials"),
        ("client_id", credentials.client_id.as_str()),
        ("client_secret", credentials.client_secret.expose()),
        ("scope", config.scope.as_str()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", form_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    HttpRequest {
        method: Method::Post,
        url: config.token_url_for(&credentials.tenant_id),
        headers: vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("Accept", "application/json".to_owned()),
        ],
        body: Some(body),
        sensitive_body: true,
    }
}

/// `PATCH {base}/api/data/v9.2/contacts({id})` with `{"<field>": visible}` and `If-Match: *`,
/// so a missing contact is a 404 and never an accidental create.
pub fn set_visibility_request(
    config: &DynamicsConfig,
    token: &str,
    contact: &ContactId,
    visible: bool,
) -> HttpRequest {
    let mut headers = odata_headers(token);
    headers.push(("Content-Type", "application/json".to_owned()));
    headers.push(("If-Match", "*".to_owned()));
    HttpRequest {
        method: Method::Patch,
        url: format!(
            "{}/contacts({})",
            config.base_url.api_root(),
            contact.as_str()
        ),
        headers,
        body: Some(format!("{{\"{}\":{}}}", config.visibility_field, visible)),
        sensitive_body: false,
    }
}

/// `GET {base}/api/data/v9.2/contacts?$select=contactid,<field>&$filter=…` naming `contacts`
/// (one chunk), with `Prefer: odata.maxpagesize`.
pub fn read_visibility_request(
    config: &DynamicsConfig,
    token: &str,
    contacts: &[ContactId],
) -> HttpRequest {
    let values = contacts
        .iter()
        .map(|c| format!("'{}'", c.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    let filter =
        format!("Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=[{values}])");
    let url = format!(
        "{}/contacts?$select=contactid,{}&$filter={}",
        config.base_url.api_root(),
        config.visibility_field,
        query_encode(&filter)
    );
    read_page_request(config, token, url)
}

/// The follow-up `GET` of `@odata.nextLink`. The link must point into the same organisation's
/// API: a token is never sent to another host.
pub fn next_page_request(
    config: &DynamicsConfig,
    token: &str,
    next_link: &str,
) -> Result<HttpRequest, DynamicsError> {
    let prefix = format!("{}/", config.base_url.api_root());
    if !next_link.starts_with(&prefix) || next_link.chars().any(char::is_whitespace) {
        return Err(DynamicsError::InvalidResponse {
            message: "@odata.nextLink points outside the organisation's API".to_owned(),
        });
    }
    Ok(read_page_request(config, token, next_link.to_owned()))
}

/// `GET {base}/api/data/v9.2/WhoAmI`: the credential health check.
pub fn who_am_i_request(config: &DynamicsConfig, token: &str) -> HttpRequest {
    HttpRequest {
        method: Method::Get,
        url: format!("{}/WhoAmI", config.base_url.api_root()),
        headers: odata_headers(token),
        body: None,
        sensitive_body: false,
    }
}

fn read_page_request(config: &DynamicsConfig, token: &str, url: String) -> HttpRequest {
    let mut headers = odata_headers(token);
    headers.push(("Prefer", format!("odata.maxpagesize={}", config.page_size)));
    HttpRequest {
        method: Method::Get,
        url,
        headers,
        body: None,
        sensitive_body: false,
    }
}

fn odata_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Authorization", format!("Bearer {token}")),
        ("Accept", "application/json".to_owned()),
        ("OData-MaxVersion", "4.0".to_owned()),
        ("OData-Version", "4.0".to_owned()),
    ]
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(value: &str) -> String {
    percent_encode(
        value,
        |b| b.is_ascii_alphanumeric() || b"-._*".contains(&b),
        true,
    )
}

/// Encoding for a query value, keeping the OData punctuation readable.
fn query_encode(value: &str) -> String {
    percent_encode(
        value,
        |b| b.is_ascii_alphanumeric() || b"-._~(),'=".contains(&b),
        false,
    )
}

fn percent_encode(value: &str, keep: impl Fn(u8) -> bool, space_as_plus: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if keep(b) {
            out.push(b as char);
        } else if b == b' ' && space_as_plus {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
