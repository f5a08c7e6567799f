//! The accounts subgraph: customer accounts, their ledgers (entries, invoices, payments;
//! the balance is the ledger's running total), and the `User.accounts` field it
//! contributes to the identity-owned `User` entity.
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped).

pub mod domain;
pub mod graphql;
pub mod jobs;
pub mod privacy;
pub mod store;

pub use graphql::{AccountsSchema, build_schema};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "accounts";
