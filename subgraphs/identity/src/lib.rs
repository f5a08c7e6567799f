//! The identity subgraph: tenants, users and roles.
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped).

pub mod audit;
pub mod domain;
pub mod graphql;
pub mod password;
pub mod store;

pub use graphql::{IdentitySchema, build_schema};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "identity";
