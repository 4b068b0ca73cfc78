//! One Dynamics operation as a sans-IO state machine: it says what to send, when to sleep and
//! when it is done; the caller performs the I/O and reports back. In-request retries, the
//! forced token refresh after a 401, paging and chunking all live here, so they are tested
//! natively with scripted responses.
//!
//! ```text
//! loop {
//!     match call.poll(now) {
//!         Poll::Send { invalidate } => { drop `invalidate` from the cache, get a token,
//!                                        send call.request(config, token, now), report
//!                                        call.on_response(..) or call.on_failure(..) }
//!         Poll::Sleep { until_ms }  => sleep,
//!         Poll::Done                => break call.finish(),
//!     }
//! }
//! ```

use std::collections::VecDeque;

use super::config::DynamicsConfig;
use super::error::DynamicsError;
use super::request::{
    next_page_request, read_visibility_request, set_visibility_request, who_am_i_request,
    ContactId, HttpRequest,
};
use super::response::{
    classify, parse_visibility_page, parse_who_am_i, ContactVisibility, HttpResponse, WhoAmI,
};
use crate::retry::{Backoff, RetryDecision};
use crate::rng::Rng;
use crate::secret::Secret;

/// What to do against Dataverse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `PATCH contacts(id)` with the visibility column.
    SetVisibility { contact: ContactId, visible: bool },
    /// `GET contacts` naming these ids, chunked and paged.
    ReadVisibility { contacts: Vec<ContactId> },
    /// `GET WhoAmI` (health check).
    WhoAmI,
}

/// What a successful call produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutput {
    Updated {
        contact: ContactId,
        visible: bool,
    },
    /// Rows found, in answer order; ids the organisation does not have are in `missing`.
    Visibility {
        contacts: Vec<ContactVisibility>,
        missing: Vec<ContactId>,
    },
    WhoAmI(WhoAmI),
}

/// Which request an attempt made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Token,
    SetVisibility,
    ReadVisibility,
    WhoAmI,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::SetVisibility => "set_visibility",
            Self::ReadVisibility => "read_visibility",
            Self::WhoAmI => "who_am_i",
        }
    }
}

/// One request made by a call, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The retry attempt this request belonged to (1-based).
    pub attempt: u32,
    pub kind: RequestKind,
    pub http_status: Option<u16>,
    pub error_code: Option<&'static str>,
    pub duration_ms: u64,
}

/// The end of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallResult {
    pub result: Result<CallOutput, DynamicsError>,
    pub attempts: Vec<AttemptRecord>,
}

/// The next thing the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Get a token and send [`Call::request`]. First drop `invalidate` from the token cache:
    /// the API rejected it with 401 and one forced refresh is allowed.
    Send { invalidate: Option<Secret> },
    /// Sleep until this time, then poll again.
    Sleep { until_ms: u64 },
    /// Done: take [`Call::finish`].
    Done,
}

#[derive(Clone, Debug)]
enum State {
    Ready,
    InFlight { sent_at_ms: u64, kind: RequestKind },
    Sleeping { until_ms: u64 },
    Finished(Result<CallOutput, DynamicsError>),
}

/// The state machine.
#[derive(Clone, Debug)]
pub struct Call {
    op: Operation,
    state: State,
    backoff: Backoff,
    fresh_backoff: Backoff,
    forced_refresh_used: bool,
    invalidate: Option<Secret>,
    last_token: Option<Secret>,
    attempts: Vec<AttemptRecord>,
    chunks: VecDeque<Vec<ContactId>>,
    current_chunk: Vec<ContactId>,
    next_link: Option<String>,
    found: Vec<ContactVisibility>,
}

impl Call {
    /// A call under `config`'s retry policy that makes no attempt after `deadline_ms`.
    pub fn new(op: Operation, config: &DynamicsConfig, deadline_ms: Option<u64>) -> Self {
        let backoff = Backoff::new(config.retry.clone(), deadline_ms);
        let mut chunks = VecDeque::new();
        if let Operation::ReadVisibility { contacts } = &op {
            let mut ids = contacts.clone();
            ids.sort();
            ids.dedup();
            chunks.extend(
                ids.chunks(config.read_chunk.max(1))
                    .map(<[ContactId]>::to_vec),
            );
        }
        let mut call = Self {
            op,
            state: State::Ready,
            fresh_backoff: backoff.clone(),
            backoff,
            forced_refresh_used: false,
            invalidate: None,
            last_token: None,
            attempts: Vec::new(),
            chunks,
            current_chunk: Vec::new(),
            next_link: None,
            found: Vec::new(),
        };
        if matches!(call.op, Operation::ReadVisibility { .. }) && !call.advance_chunk() {
            call.state = State::Finished(Ok(CallOutput::Visibility {
                contacts: Vec::new(),
                missing: Vec::new(),
            }));
        }
        call
    }

    /// What to do next at `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> Poll {
        match &self.state {
            State::Finished(_) => Poll::Done,
            State::Sleeping { until_ms } if now_ms < *until_ms => Poll::Sleep {
                until_ms: *until_ms,
            },
            State::Sleeping { .. } | State::Ready => {
                self.state = State::Ready;
                Poll::Send {
                    invalidate: self.invalidate.take(),
                }
            }
            // The caller polled without reporting the request it sent: a bug in the caller;
            // treat the lost answer as a network failure rather than hang.
            State::InFlight { .. } => Poll::Send { invalidate: None },
        }
    }

    /// The request for the current attempt, sent with `token`, and its timeout (the configured
    /// per-attempt timeout, clamped to the time left before the deadline).
    pub fn request(
        &mut self,
        config: &DynamicsConfig,
        token: &Secret,
        now_ms: u64,
    ) -> Result<(HttpRequest, u64), DynamicsError> {
        let t = token.expose();
        let (request, kind) = match &self.op {
            Operation::SetVisibility { contact, visible } => (
                set_visibility_request(config, t, contact, *visible),
                RequestKind::SetVisibility,
            ),
            Operation::WhoAmI => (who_am_i_request(config, t), RequestKind::WhoAmI),
            Operation::ReadVisibility { .. } => {
                let request = match &self.next_link {
                    Some(link) => next_page_request(config, t, link),
                    None => Ok(read_visibility_request(config, t, &self.current_chunk)),
                };
                match request {
                    Ok(r) => (r, RequestKind::ReadVisibility),
                    Err(e) => {
                        self.state = State::Finished(Err(e.clone()));
                        return Err(e);
                    }
                }
            }
        };
        self.last_token = Some(token.clone());
        self.state = State::InFlight {
            sent_at_ms: now_ms,
            kind,
        };
        let timeout = match self.backoff.remaining_ms(now_ms) {
            Some(left) => config.timeout_ms.min(left.max(1)),
            None => config.timeout_ms,
        };
        Ok((request, timeout))
    }

    /// Reports the answer to the request in flight.
    pub fn on_response(
        &mut self,
        now_ms: u64,
        response: &HttpResponse,
        config: &DynamicsConfig,
        rng: &mut impl Rng,
    ) {
        let (sent_at_ms, kind) = self.in_flight(now_ms);
        let duration_ms = now_ms.saturating_sub(sent_at_ms);
        let outcome = match kind {
            RequestKind::SetVisibility => classify(response, now_ms).map(|()| None),
            RequestKind::WhoAmI => {
                parse_who_am_i(response, now_ms).map(|w| Some(CallOutput::WhoAmI(w)))
            }
            RequestKind::ReadVisibility => {
                parse_visibility_page(response, &config.visibility_field, now_ms).map(|page| {
                    self.found.extend(page.contacts);
                    self.next_link = page.next_link;
                    None
                })
            }
            RequestKind::Token => Ok(None),
        };
        self.attempts.push(AttemptRecord {
            attempt: self.backoff.attempt(),
            kind,
            http_status: Some(response.status),
            error_code: outcome.as_ref().err().map(DynamicsError::code),
            duration_ms,
        });
        match outcome {
            Ok(output) => self.on_success(now_ms, output),
            Err(_) if response.status == 401 && !self.forced_refresh_used => {
                if self.backoff.deadline_ms().is_some_and(|d| now_ms >= d) {
                    // No time left for the forced refresh: the budget ran out, which says
                    // nothing yet about the credentials.
                    self.state = State::Finished(Err(DynamicsError::Timeout { after_ms: 0 }));
                    return;
                }
                // One forced refresh: the token may have been revoked early.
                self.forced_refresh_used = true;
                self.invalidate = self.last_token.take();
                self.state = State::Ready;
            }
            Err(e) => self.on_error(now_ms, e, rng),
        }
    }

    /// Reports that the request in flight got no answer: a timeout or a network error.
    pub fn on_failure(&mut self, now_ms: u64, error: DynamicsError, rng: &mut impl Rng) {
        let (sent_at_ms, kind) = self.in_flight(now_ms);
        self.record_failure(kind, &error, now_ms.saturating_sub(sent_at_ms));
        self.on_error(now_ms, error, rng);
    }

    /// Reports that no token could be had for the next request (token endpoint error, missing
    /// credentials). Counts as a failed attempt: auth errors end the call, transient ones are
    /// retried like any other.
    pub fn on_token_failure(
        &mut self,
        now_ms: u64,
        error: DynamicsError,
        duration_ms: u64,
        rng: &mut impl Rng,
    ) {
        self.record_failure(RequestKind::Token, &error, duration_ms);
        self.on_error(now_ms, error, rng);
    }

    /// Whether the call is over.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Finished(_))
    }

    /// The result and every attempt made. A call that is not done yet ends as a timeout.
    pub fn finish(self) -> CallResult {
        let result = match self.state {
            State::Finished(r) => r,
            _ => Err(DynamicsError::Timeout { after_ms: 0 }),
        };
        CallResult {
            result,
            attempts: self.attempts,
        }
    }

    fn record_failure(&mut self, kind: RequestKind, error: &DynamicsError, duration_ms: u64) {
        self.state = State::Ready;
        self.attempts.push(AttemptRecord {
            attempt: self.backoff.attempt(),
            kind,
            http_status: error.http_status(),
            error_code: Some(error.code()),
            duration_ms,
        });
    }

    fn in_flight(&mut self, now_ms: u64) -> (u64, RequestKind) {
        match self.state {
            State::InFlight { sent_at_ms, kind } => (sent_at_ms, kind),
            _ => (now_ms, self.default_kind()),
        }
    }

    fn default_kind(&self) -> RequestKind {
        match self.op {
            Operation::SetVisibility { .. } => RequestKind::SetVisibility,
            Operation::ReadVisibility { .. } => RequestKind::ReadVisibility,
            Operation::WhoAmI => RequestKind::WhoAmI,
        }
    }

    fn on_success(&mut self, now_ms: u64, output: Option<CallOutput>) {
        if let Some(output) = output {
            self.state = State::Finished(Ok(output));
            return;
        }
        match &self.op {
            Operation::SetVisibility { contact, visible } => {
                self.state = State::Finished(Ok(CallOutput::Updated {
                    contact: contact.clone(),
                    visible: *visible,
                }));
            }
            Operation::ReadVisibility { .. } => {
                // Each page gets the full retry budget again.
                self.backoff = self.fresh_backoff.clone();
                let more = self.next_link.is_some() || self.advance_chunk();
                let past_deadline = self.backoff.deadline_ms().is_some_and(|d| now_ms >= d);
                if more && past_deadline {
                    // A server that keeps answering with another page must not keep the caller
                    // past its budget.
                    self.state = State::Finished(Err(DynamicsError::Timeout { after_ms: 0 }));
                } else if more {
                    self.state = State::Ready;
                } else {
                    self.state = State::Finished(Ok(self.visibility_output()));
                }
            }
            Operation::WhoAmI => {
                self.state = State::Finished(Err(DynamicsError::InvalidResponse {
                    message: "WhoAmI answered without a body".to_owned(),
                }));
            }
        }
    }

    fn on_error(&mut self, now_ms: u64, error: DynamicsError, rng: &mut impl Rng) {
        match self.backoff.on_failure(now_ms, error.as_failure(), rng) {
            RetryDecision::RetryAfter { delay_ms, .. } => {
                self.state = State::Sleeping {
                    until_ms: now_ms.saturating_add(delay_ms),
                };
            }
            RetryDecision::GiveUp(_) => self.state = State::Finished(Err(error)),
        }
    }

    fn advance_chunk(&mut self) -> bool {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.current_chunk = chunk;
                true
            }
            None => false,
        }
    }

    fn visibility_output(&mut self) -> CallOutput {
        let contacts = std::mem::take(&mut self.found);
        let Operation::ReadVisibility { contacts: asked } = &self.op else {
            unreachable!("visibility_output is only called for ReadVisibility");
        };
        let seen: std::collections::HashSet<&ContactId> =
            contacts.iter().map(|c| &c.contact_id).collect();
        let mut missing: Vec<ContactId> = asked
            .iter()
            .filter(|id| !seen.contains(id))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        CallOutput::Visibility { contacts, missing }
    }
}
