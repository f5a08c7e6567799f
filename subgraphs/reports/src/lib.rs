//! The reports subgraph: saved report definitions (optionally scheduled by a cron
//! expression), their runs, and the `Account.reports` field it contributes to the
//! accounts-owned `Account` entity.
//!
//! Requesting a run only queues it (`QUEUED`); the runner that produces reports arrives
//! in a later issue.
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped).

pub mod domain;
pub mod graphql;
pub mod store;

pub use graphql::{ReportsSchema, build_schema};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "reports";
