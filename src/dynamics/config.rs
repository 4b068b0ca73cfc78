//! Validated configuration: an https-only base URL, the token endpoint, the visibility column,
//! timeouts and paging sizes. Bad values are refused here, before anything is sent.

use std::fmt;

use super::error::DynamicsError;
use crate::retry::RetryPolicy;
use crate::secret::Secret;

/// The Azure AD v2 token endpoint; `{tenant}` is replaced by the tenant id.
pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// The contact column that lists a mentor on the portal.
pub const DEFAULT_VISIBILITY_FIELD: &str = "hlf_portalvisible";
/// Contact ids named in one reconcile `GET` (keeps the URL far below Dataverse's limit).
pub const DEFAULT_READ_CHUNK: usize = 100;
/// `Prefer: odata.maxpagesize`.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Per-attempt timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// A Dataverse organisation URL such as `https://hlf.crm4.dynamics.com`: https only, no path
/// beyond `/`, no query, no user info. Stored without a trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(input: &str) -> Result<Self, DynamicsError> {
        let url = input.trim().trim_end_matches('/');
        let authority = https_authority(url, "DYNAMICS_BASE_URL")?;
        if url.len() != "https://".len() + authority.len() {
            return Err(config_error(
                "DYNAMICS_BASE_URL must be an organisation URL without a path, query or fragment",
            ));
        }
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `{base}/api/data/v9.2`
    pub fn api_root(&self) -> String {
        format!("{}/api/data/v9.2", self.0)
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({})", self.0)
    }
}

/// Everything a [`crate::dynamics::Call`] needs besides credentials.
#[derive(Clone, Debug)]
pub struct DynamicsConfig {
    pub base_url: BaseUrl,
    /// Token endpoint, possibly with a `{tenant}` placeholder; https only.
    pub token_url: String,
    /// OAuth2 scope; `{base}/.default` unless set.
    pub scope: String,
    /// The boolean contact column that lists a mentor on the portal.
    pub visibility_field: String,
    pub timeout_ms: u64,
    pub page_size: u32,
    pub read_chunk: usize,
    /// In-request retries.
    pub retry: RetryPolicy,
}

impl DynamicsConfig {
    /// Validates and fills defaults. Every problem is a [`DynamicsError::Configuration`] naming
    /// the setting.
    pub fn new(
        base_url: &str,
        token_url: Option<&str>,
        scope: Option<&str>,
        visibility_field: Option<&str>,
    ) -> Result<Self, DynamicsError> {
        let base_url = BaseUrl::parse(base_url)?;
        let token_url = token_url
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_TOKEN_URL)
            .to_owned();
        https_authority(
            &token_url.replace("{tenant}", "tenant"),
            "DYNAMICS_TOKEN_URL",
        )?;
        let scope = match scope.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => s.to_owned(),
            None => format!("{}/.default", base_url.as_str()),
        };
        let visibility_field = visibility_field
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_VISIBILITY_FIELD)
            .to_owned();
        if !is_identifier(&visibility_field) {
            return Err(config_error(
                "DYNAMICS_VISIBILITY_FIELD must be a column logical name (letters, digits, _)",
            ));
        }
        Ok(Self {
            base_url,
            token_url,
            scope,
            visibility_field,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            page_size: DEFAULT_PAGE_SIZE,
            read_chunk: DEFAULT_READ_CHUNK,
            retry: RetryPolicy::default(),
        })
    }

    /// The token endpoint for a tenant.
    pub fn token_url_for(&self, tenant_id: &str) -> String {
        self.token_url.replace("{tenant}", tenant_id)
    }
}

/// Azure AD application credentials. `Debug` shows the ids, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
}

impl Credentials {
    /// Refuses empty values and a tenant id that would change the token URL's path.
    pub fn new(
        tenant_id: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, DynamicsError> {
        let tenant_id = tenant_id.trim();
        let client_id = client_id.trim();
        if tenant_id.is_empty() || client_id.is_empty() || client_secret.is_empty() {
            return Err(config_error(
                "Dynamics credentials are incomplete: tenant id, client id and client secret are required",
            ));
        }
        if !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(config_error(
                "DYNAMICS_TENANT_ID must be a tenant GUID or domain",
            ));
        }
        Ok(Self {
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: Secret::new(client_secret),
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

/// The authority (`host[:port]`) of an `https://` URL, or a configuration error naming `setting`.
fn https_authority<'a>(url: &'a str, setting: &str) -> Result<&'a str, DynamicsError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| config_error(&format!("{setting} must be an https:// URL")))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let valid = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !authority.ends_with(']') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(config_error(&format!("{setting} has an invalid port")));
            }
            host
        }
        _ => authority,
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['-', '.'])
        && !host.ends_with('-')
        && !host.contains("..");
    if !valid || !host_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(config_error(&format!("{setting} has an invalid host")));
    }
    Ok(authority)
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

pub(crate) fn config_error(message: &str) -> DynamicsError {
    DynamicsError::Configuration {
        message: message.to_owned(),
    }
}
