//! Helpers shared by the fuzz targets: a text-friendly input framing (so the committed seeds
//! are readable files), the invariants every `DynamicsError` must keep, and an IMF-fixdate
//! formatter for differential checks of `Retry-After` parsing.

use hlf_dynamics_sync::dynamics::{DynamicsError, HttpResponse};

/// The default clock of a framed input (2026-09-21T17:46:40Z).
pub const NOW_MS: u64 = 1_790_000_000_000;
/// The longest `Retry-After` the core may accept (one day).
pub const MAX_RETRY_AFTER_MS: u64 = 86_400_000;
/// Server text quoted in an error is cut to this many characters (plus an ellipsis).
pub const MAX_QUOTED_CHARS: usize = 301;

/// Every code `DynamicsError::code` may return.
pub const KNOWN_CODES: &[&str] = &[
    "AUTH_FAILED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_REQUEST",
    "PRECONDITION_FAILED",
    "THROTTLED",
    "SERVER_ERROR",
    "TIMEOUT",
    "NETWORK",
    "INVALID_RESPONSE",
    "CONFIGURATION",
];

/// Splits `data` into `n` text fields at the first `n - 1` newlines (lossy UTF-8); the last
/// field keeps the rest, missing fields are empty.
pub fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 1..n {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                out.push(String::from_utf8_lossy(&rest[..i]).into_owned());
                rest = &rest[i + 1..];
            }
            None => {
                out.push(String::from_utf8_lossy(rest).into_owned());
                rest = &[];
            }
        }
    }
    out.push(String::from_utf8_lossy(rest).into_owned());
    out
}

/// An HTTP answer framed as `<status> [now_seconds]\n<Retry-After or empty>\n<body>`. A first
/// line that is not a number still yields a status (from its first two bytes), so no input is
/// wasted.
pub fn framed_response(data: &[u8]) -> (HttpResponse, u64) {
    let f = fields(data, 3);
    let mut head = f[0].split_ascii_whitespace();
    let status = head
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| match data {
            [a, b, ..] => u16::from_be_bytes([*a, *b]) % 1000,
            [a] => u16::from(*a),
            [] => 0,
        });
    let now_ms = head
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|s| s.checked_mul(1000))
        .unwrap_or(NOW_MS);
    let retry_after = if f[1].is_empty() {
        None
    } else {
        Some(f[1].clone())
    };
    let response = HttpResponse {
        status,
        retry_after,
        body: f[2].clone(),
    };
    (response, now_ms)
}

/// Invariants of any error the core builds from a server answer.
pub fn check_error(e: &DynamicsError) {
    assert!(KNOWN_CODES.contains(&e.code()), "unknown code {}", e.code());
    let _ = e.to_string();
    if let Some(ms) = e.retry_after_ms() {
        assert!(ms <= MAX_RETRY_AFTER_MS, "Retry-After {ms} ms beyond a day");
    }
    let (code, message) = match e {
        DynamicsError::Auth { code, message }
        | DynamicsError::Forbidden { code, message }
        | DynamicsError::NotFound { code, message }
        | DynamicsError::PreconditionFailed { code, message }
        | DynamicsError::BadRequest { code, message, .. }
        | DynamicsError::Throttled { code, message, .. }
        | DynamicsError::Server { code, message, .. } => (code.as_str(), message.as_str()),
        _ => return,
    };
    for text in [code, message] {
        assert!(
            text.chars().count() <= MAX_QUOTED_CHARS,
            "quoted text not truncated: {} chars",
            text.chars().count()
        );
        assert!(
            !text.chars().any(char::is_control),
            "control character in quoted text {text:?}"
        );
        assert_no_bearer_credential(text);
    }
}

/// After redaction, every `Bearer <credential>` in `text` has `[REDACTED]` as its credential.
pub fn assert_no_bearer_credential(text: &str) {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("bearer") {
        let after = from + i + "bearer".len();
        from = after;
        let rest = &text[after..];
        let trimmed = rest.trim_start();
        if trimmed.len() == rest.len() || trimmed.is_empty() {
            continue; // not followed by whitespace, or nothing follows
        }
        let word: String = trimmed
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ','))
            .collect();
        // A marker may have been cut by truncation: `[REDA…`.
        let cut = word.strip_suffix('…').unwrap_or(&word);
        assert!(
            word.starts_with("[REDACTED]")
                || "[REDACTED]".starts_with(cut)
                || word.eq_ignore_ascii_case("bearer"),
            "bearer credential survived redaction in {text:?}"
        );
    }
}

/// Formats milliseconds since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn imf_fixdate(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let sod = secs % 86_400;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A tiny deterministic RNG fed by the fuzz input (jitter in the call target).
pub struct BytesRng<'a> {
    bytes: &'a [u8],
    state: u64,
}

impl<'a> BytesRng<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            state: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl hlf_dynamics_sync::rng::Rng for BytesRng<'_> {
    fn next_u64(&mut self) -> u64 {
        let (head, rest) = self.bytes.split_at(self.bytes.len().min(8));
        self.bytes = rest;
        let mut buf = [0u8; 8];
        buf[..head.len()].copy_from_slice(head);
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        u64::from_le_bytes(buf) ^ self.state
    }
}
