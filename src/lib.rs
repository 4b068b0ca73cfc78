//! # hlf_dynamics_sync
//!
//! The core of the HLF Dynamics 365 portal sync, compiled to WebAssembly for a Supabase Edge
//! Function and natively for tests.
//!
//! The core is sans-IO: it holds state machines and pure decisions and takes `now` as an
//! argument. It decides *what* to send ([`decision`]), *how* to send it ([`dynamics`]: request
//! builders, response classification, the [`dynamics::Call`] state machine), *when* to retry
//! ([`retry`]) and *which token* to use ([`token`]). The [`wasm`] adapter, compiled only for
//! `wasm32`, is the one place that touches `JsValue`, `fetch` and timers: it runs a `Call` against
//! the runtime's `fetch`, sleeps with timers and hands results to the TypeScript shim.
//!
//! One job, end to end:
//! 1. the shim claims a job and its mentor facts from Postgres;
//! 2. [`decision::plan_job`] computes the visibility the portal should show now;
//! 3. the adapter drives a [`dynamics::Call`]: [`token::TokenCache`] → `fetch` →
//!    [`dynamics::response::classify`] → [`retry::RetryPolicy`] (Retry-After, jitter) → result;
//! 4. [`decision::job_outcome`] turns the result into synced / retry at T / dead letter /
//!    auth failure, which the shim applies in one database call.

pub mod decision;
pub mod dynamics;
pub mod retry;
pub mod rng;
pub mod secret;
pub mod token;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
