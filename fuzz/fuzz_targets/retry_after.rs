//! `Retry-After` parsing: arbitrary header values never panic and never ask for more than a
//! day; delay-seconds and IMF-fixdates round-trip exactly (differential check against a
//! formatter written here).
//! Input: 8 bytes of `now` (little-endian ms), then the header value.
#![no_main]

use fuzz_support::{imf_fixdate, MAX_RETRY_AFTER_MS};
use hlf_dynamics_sync::dynamics::response::parse_retry_after;
use libfuzzer_sys::fuzz_target;

/// 9999-12-31T23:59:59Z, the last instant an IMF-fixdate with a 4-digit year can name.
const MAX_DATE_MS: u64 = 253_402_300_799_000;

fuzz_target!(|data: &[u8]| {
    let (now_bytes, rest) = data.split_at(data.len().min(8));
    let mut buf = [0u8; 8];
    buf[..now_bytes.len()].copy_from_slice(now_bytes);
    let raw = u64::from_le_bytes(buf);
    let now_ms = raw % MAX_DATE_MS;
    let value = String::from_utf8_lossy(rest);

    if let Some(ms) = parse_retry_after(&value, now_ms) {
        assert!(ms <= MAX_RETRY_AFTER_MS, "{value:?} -> {ms}");
        let v = value.trim();
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            assert_eq!(
                Some(ms),
                v.parse::<u64>().ok().map(|s| s * 1000),
                "{value:?}"
            );
        }
    }

    // Delay-seconds: exact, refused past a day.
    let secs = raw >> 40;
    let expected = (secs * 1000 <= MAX_RETRY_AFTER_MS).then_some(secs * 1000);
    assert_eq!(
        parse_retry_after(&secs.to_string(), now_ms),
        expected,
        "{secs}"
    );
    assert_eq!(parse_retry_after(&format!(" {secs}\t"), now_ms), expected);

    // IMF-fixdate: `now + delta` (whole seconds) parses back to the delta; a date in the past
    // means "now".
    let delta_ms = (raw >> 20) % (2 * MAX_RETRY_AFTER_MS) / 1000 * 1000;
    let at_ms = (now_ms / 1000 * 1000)
        .saturating_add(delta_ms)
        .min(MAX_DATE_MS);
    let date = imf_fixdate(at_ms);
    let expected = at_ms.saturating_sub(now_ms);
    let got = parse_retry_after(&date, now_ms);
    if expected <= MAX_RETRY_AFTER_MS {
        assert_eq!(got, Some(expected), "{date} at now={now_ms}");
    } else {
        assert_eq!(got, None, "{date} at now={now_ms}");
    }
    let past = imf_fixdate(now_ms.saturating_sub(delta_ms));
    assert_eq!(
        parse_retry_after(&past, now_ms),
        Some(0),
        "{past} at now={now_ms}"
    );
});
