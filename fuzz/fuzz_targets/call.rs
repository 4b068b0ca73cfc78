//! The `Call` state machine driven by a scripted, hostile server: any sequence of answers,
//! network failures, timeouts and token failures. It never panics, never sleeps or sends past
//! its deadline, makes a bounded number of attempts, and ends with a typed result.
//!
//! Input: a first line `<set|read|who> <contacts> [deadline_ms]`, then events separated by a
//! line `===`, each `<status|net|timeout|token> <elapsed_ms>\n<Retry-After>\n<body>`.
#![no_main]

use fuzz_support::{check_error, fields, BytesRng, NOW_MS};
use hlf_dynamics_sync::dynamics::{
    Call, CallOutput, ContactId, DynamicsConfig, DynamicsError, HttpResponse, Operation, Poll,
};
use hlf_dynamics_sync::secret::Secret;
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n===\n";

fn split_events(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        out.push(&rest[..i]);
        rest = &rest[i + SEPARATOR.len()..];
    }
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let events = split_events(data);
    let prelude = String::from_utf8_lossy(events[0]);
    let mut words = prelude.split_ascii_whitespace();
    let kind = words.next().unwrap_or("set");
    let n: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(1) % 301;
    let deadline_ms: Option<u64> = words
        .next()
        .and_then(|w| w.parse::<u64>().ok())
        .map(|d| NOW_MS + d % 600_000);

    let mut config =
        DynamicsConfig::new("https://hlf.crm4.dynamics.com", None, None, None).unwrap();
    config.read_chunk = 7; // several chunks with few contacts
    let ids: Vec<ContactId> = (0..n)
        .map(|i| ContactId::parse(&format!("00000000-0000-4000-8000-{i:012x}")).unwrap())
        .collect();
    let op = match kind {
        "read" => Operation::ReadVisibility {
            contacts: ids.clone(),
        },
        "who" => Operation::WhoAmI,
        _ => Operation::SetVisibility {
            contact: ContactId::parse("00000000-0000-4000-8000-0000000000ff").unwrap(),
            visible: n.is_multiple_of(2),
        },
    };
    let pages_max = n.div_ceil(config.read_chunk).max(1);
    let max_attempts = config.retry.max_attempts as usize;
    let mut rng = BytesRng::new(data);
    let mut call = Call::new(op.clone(), &config, deadline_ms);
    let mut now = NOW_MS;
    let token = Secret::new("fuzz-token-value");
    let mut script = events[1..].iter();
    let mut sent = 0usize;
    let mut pages = 0usize;

    loop {
        match call.poll(now) {
            Poll::Done => break,
            Poll::Sleep { until_ms } => {
                assert!(until_ms > now, "sleep into the past");
                if let Some(d) = deadline_ms {
                    assert!(until_ms < d, "sleeps past the deadline: {until_ms} >= {d}");
                }
                now = until_ms;
            }
            Poll::Send { .. } => {
                let Some(event) = script.next() else { break };
                if let Some(d) = deadline_ms {
                    assert!(
                        now < d || sent == 0,
                        "sends at {now}, past the deadline {d}"
                    );
                }
                let f = fields(event, 3);
                let mut head = f[0].split_ascii_whitespace();
                let what = head.next().unwrap_or("200");
                let elapsed: u64 = head.next().and_then(|w| w.parse().ok()).unwrap_or(5) % 120_000;
                if what == "token" {
                    let error = DynamicsError::Server {
                        status: 503,
                        retry_after_ms: None,
                        code: "HTTP503".into(),
                        message: String::new(),
                    };
                    now += elapsed;
                    call.on_token_failure(now, error, elapsed, &mut rng);
                    continue;
                }
                let (request, timeout) = match call.request(&config, &token, now) {
                    Ok(r) => r,
                    Err(e) => {
                        check_error(&e);
                        assert!(call.is_done(), "a refused request must end the call");
                        continue;
                    }
                };
                sent += 1;
                assert!(
                    timeout >= 1 && timeout <= config.timeout_ms,
                    "timeout {timeout}"
                );
                assert!(request
                    .url
                    .starts_with("https://hlf.crm4.dynamics.com/api/data/v9.2/"));
                match what {
                    "net" => {
                        now += elapsed.min(timeout);
                        let error = DynamicsError::Network {
                            message: "reset".into(),
                        };
                        call.on_failure(now, error, &mut rng);
                    }
                    "timeout" => {
                        now += timeout;
                        call.on_failure(
                            now,
                            DynamicsError::Timeout { after_ms: timeout },
                            &mut rng,
                        );
                    }
                    status => {
                        let status = status.parse::<u16>().unwrap_or(200);
                        if (200..300).contains(&status) {
                            pages += 1;
                        }
                        now += elapsed.min(timeout);
                        let response = HttpResponse {
                            status,
                            retry_after: (!f[1].is_empty()).then(|| f[1].clone()),
                            body: f[2].clone(),
                        };
                        call.on_response(now, &response, &config, &mut rng);
                    }
                }
                // Without success, at most max_attempts tries plus one forced token refresh.
                let bound = (pages + 1) * (max_attempts + 1);
                assert!(sent <= bound, "{sent} requests, bound {bound}");
            }
        }
    }

    if !call.is_done() {
        return; // the script ran out first
    }
    let result = call.finish();
    for a in &result.attempts {
        assert!(
            a.attempt >= 1 && a.attempt as usize <= max_attempts,
            "{a:?}"
        );
    }
    match result.result {
        Ok(CallOutput::Updated { contact, visible }) => {
            let Operation::SetVisibility {
                contact: c,
                visible: v,
            } = &op
            else {
                panic!("{op:?}")
            };
            assert_eq!((&contact, visible), (c, *v));
            let last = result.attempts.last().expect("an update made a request");
            assert!(last.http_status.is_some_and(|s| (200..300).contains(&s)));
        }
        Ok(CallOutput::Visibility { missing, .. }) => {
            assert!(matches!(op, Operation::ReadVisibility { .. }));
            assert!(missing.windows(2).all(|w| w[0] < w[1]));
            assert!(missing.iter().all(|m| ids.contains(m)));
            assert!(pages >= pages_max.min(1) || n == 0);
        }
        Ok(CallOutput::WhoAmI(_)) => assert!(matches!(op, Operation::WhoAmI)),
        Err(e) => check_error(&e),
    }
});
