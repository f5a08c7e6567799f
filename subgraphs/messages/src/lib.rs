//! The messages subgraph: threads between users of a tenant (optionally about an
//! account), their participants and messages, and the `User.threads` field it
//! contributes to the identity-owned `User` entity.
//!
//! Only participants may post to a thread, only while it is open, and only authors may
//! edit their messages. Message bodies are stored as plain text for now: encryption at
//! rest of bodies arrives with the messages issue.
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped).

pub mod domain;
pub mod graphql;
pub mod store;

pub use graphql::{MessagesSchema, build_schema};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "messages";
