//! `redact`: never panics, removes every known secret (of at least 4 characters) and every
//! `Bearer <credential>`, and is idempotent.
//! Input: newline-separated secret 1, secret 2, credential, then the text. The credential is
//! also planted after a `Bearer ` inside the text.
#![no_main]

use fuzz_support::{assert_no_bearer_credential, fields};
use hlf_dynamics_sync::secret::{redact, Secret, REDACTED};
use libfuzzer_sys::fuzz_target;

/// Whether `needle` can only be in a redacted text by accident of the marker itself: it has a
/// bracket (and could straddle a marker) or is part of `[REDACTED]`.
fn overlaps_marker(needle: &str) -> bool {
    needle.contains(['[', ']']) || REDACTED.contains(needle)
}

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 4);
    let (a, b, credential, text) = (&f[0], &f[1], &f[2], &f[3]);
    let secrets = [Secret::new(a.as_str()), Secret::new(b.as_str())];
    let refs: Vec<&Secret> = secrets.iter().collect();

    let out = redact(text, &refs);
    let plain = [a, b].iter().all(|s| !overlaps_marker(s));
    for s in [a, b] {
        if s.len() >= 4 && !overlaps_marker(s) {
            assert!(
                !out.contains(s.as_str()),
                "secret {s:?} survived in {out:?}"
            );
        }
    }
    assert_no_bearer_credential(&out);
    if plain {
        assert_eq!(redact(&out, &refs), out, "redact is not idempotent");
    }

    // A credential planted after `Bearer ` is gone, wherever it lands in the text.
    let cut = text
        .char_indices()
        .map(|(i, _)| i)
        .nth(credential.len() % (text.chars().count() + 1))
        .unwrap_or(text.len());
    let token: String = credential
        .chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '+' | '/' | '=')
        })
        .collect();
    let marker_part = REDACTED.contains(token.as_str());
    if token.len() >= 8 && !marker_part && !token.to_ascii_lowercase().contains("bearer") {
        // A doubled scheme (`Bearer Bearer <token>`) is a real client bug that servers echo.
        let scheme = if credential.len().is_multiple_of(2) {
            "Bearer"
        } else {
            "Bearer Bearer"
        };
        let planted = format!(
            "{} Authorization: {scheme} {token} {}",
            &text[..cut],
            &text[cut..]
        );
        if planted.matches(token.as_str()).count() == 1 {
            let out = redact(&planted, &[]);
            assert!(!out.contains(&token), "bearer token survived in {out:?}");
        }
    }
});
