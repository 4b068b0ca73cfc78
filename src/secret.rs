//! Secrets that cannot leak by accident: [`Secret`] never renders its value through `Debug` or
//! `Display`, and [`redact`] scrubs known secrets and bearer tokens out of text that is about to
//! be logged or stored (error messages quoted from a server, for instance).

use std::fmt;

/// A credential or token. Reading it takes an explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it (a request body or header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// The marker that replaces anything redacted.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every occurrence of each secret (ignoring values shorter than 4 characters, which
/// would only shred the text) and the credential after every `Bearer` (followed by any run of
/// whitespace) with [`REDACTED`].
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        let value = secret.expose();
        if value.len() >= 4 && out.contains(value) {
            out = out.replace(value, REDACTED);
        }
    }
    redact_bearer(&out)
}

/// Caps the length of text quoted from a server, on a character boundary.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn redact_bearer(text: &str) -> String {
    const KEYWORD: &str = "bearer";
    // ASCII lower-casing keeps byte offsets, so indices into `lower` are valid in `text`.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(KEYWORD) {
        let after = search + found + KEYWORD.len();
        // The credential follows one or more whitespace characters (RFC 7235: `1*SP`; a tab
        // may survive in quoted text).
        let mut start = text[after..]
            .find(|c: char| !c.is_whitespace())
            .map_or(text.len(), |n| after + n);
        if start == after {
            search = after;
            continue;
        }
        // A quoted credential (`Bearer "abc"`): the token starts after the quote.
        if text[start..].starts_with(['"', '\'']) {
            start += 1;
        }
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .map_or(text.len(), |n| start + n);
        if text[start..end].eq_ignore_ascii_case(KEYWORD) {
            // `Bearer Bearer <token>` (a doubled scheme): the credential follows the second one.
            search = start;
            continue;
        }
        if end > start {
            out.push_str(&text[rest..start]);
            out.push_str(REDACTED);
            rest = end;
        }
        search = end.max(start);
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn redact_removes_secrets_and_bearer_tokens() {
        let s = Secret::new("s3cr3t-value");
        let text = "bad secret s3cr3t-value; header Authorization: Bearer eyJabc.def and more";
        let out = redact(text, &[&s]);
        assert!(!out.contains("s3cr3t-value"), "{out}");
        assert!(!out.contains("eyJabc.def"), "{out}");
        assert!(out.ends_with("and more"), "{out}");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("æøåæøå", 3), "æøå…");
        assert_eq!(truncate("short", 10), "short");
    }
}
