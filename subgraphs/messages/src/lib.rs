//! The messages subgraph: the secure channel between a customer's users and the
//! supplier's staff — threads (optionally about an account), their participants,
//! assignment and status, messages with replies, edit history and tombstones, read state,
//! and the `User.threads` field it contributes to the identity-owned `User` entity.
//!
//! Subjects and bodies are sealed with the tenant's data key (envelope encryption, see
//! [`portal_kit::envelope`] and `docs/messages.md`); [`jobs`] re-seals them after a key
//! rotation.
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped).

pub mod domain;
pub mod graphql;
pub mod jobs;
pub mod privacy;
pub mod retention;
pub mod store;

pub use graphql::{MessagesSchema, build_schema};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "messages";
