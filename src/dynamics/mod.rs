//! The Dataverse Web API v9.2 client, without I/O: configuration, request builders, response
//! classification and the [`Call`] state machine that drives one operation.

pub mod call;
pub mod config;
pub mod error;
pub mod request;
pub mod response;

pub use call::{AttemptRecord, Call, CallOutput, CallResult, Operation, Poll, RequestKind};
pub use config::{BaseUrl, Credentials, DynamicsConfig};
pub use error::DynamicsError;
pub use request::{ContactId, HttpRequest, Method};
pub use response::{ContactVisibility, HttpResponse, TokenGrant, WhoAmI};
