//! Shared plumbing for every Portal subgraph: who is calling ([`actor`]), how the gateway
//! proves it ([`internal_token`]), the client-facing error vocabulary ([`error`]), cursor
//! pagination ([`pagination`]), database connections ([`db`]), the audit trail ([`audit`]),
//! batched DataLoaders ([`loader`]) and the batched queries behind them ([`store`]), and
//! serving a subgraph over HTTP ([`serve`]).
//!
//! This crate holds no domain logic: nothing here knows what a user or an account is.

pub mod access_token;
pub mod actor;
pub mod archive;
pub mod audit;
pub mod blind_index;
pub mod clock;
pub mod context;
pub mod db;
pub mod directives;
pub mod envelope;
pub mod error;
pub mod events;
pub mod evidence;
pub mod export;
pub mod federation;
pub mod files;
pub mod gateway_client;
pub mod input;
pub mod internal_token;
pub mod jobs;
pub mod loader;
pub mod mail;
pub mod notify;
pub mod pagination;
pub mod policy;
pub mod principal;
pub mod privacy;
pub mod references;
pub mod retention;
pub mod scalars;
pub mod scan;
pub mod secret;
pub mod serve;
pub mod storage;
pub mod store;
pub mod subscription;
pub mod telemetry;
pub mod variables;

pub use actor::{Actor, ActorKind, RequestMeta};
pub use error::{ApiError, ApiResult, ErrorCode};

/// A `std` duration as a `chrono` one (saturating: absurdly long durations become the
/// longest `chrono` can hold).
pub fn chrono_duration(duration: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
