//! The reports subgraph: saved report definitions (optionally scheduled by a cron
//! expression), their runs, and the `Account.reports` field it contributes to the
//! accounts-owned `Account` entity.
//!
//! A report reads a paginated list field of the supergraph (`domain::query`) through the
//! gateway as its owner (`engine`); a job produces each run's file (`jobs`).
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped).

pub mod domain;
pub mod engine;
pub mod graphql;
pub mod jobs;
pub mod monthly;
pub mod privacy;
pub mod store;

pub use graphql::{ReportsSchema, build_schema};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "reports";
