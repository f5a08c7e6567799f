//! The integrations subgraph: connections to external CRM and billing systems, webhook
//! endpoints the portal delivers events to, and the references linking portal accounts
//! to their records in external systems (contributed as `Account.externalRefs` to the
//! accounts-owned `Account` entity).
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped); [`outbound`] is
//! the SSRF-safe HTTP client webhook deliveries leave through; [`jobs`] dispatch events to
//! endpoints and deliver them. [`connectors`] speak to external systems (Stripe) and
//! [`sync`] runs their data into the portal through its own GraphQL API.

pub mod connectors;
pub mod domain;
pub mod graphql;
pub mod jobs;
pub mod outbound;
pub mod privacy;
pub mod retention;
pub mod store;
pub mod sync;

pub use graphql::{IntegrationsSchema, build_schema};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "integrations";
