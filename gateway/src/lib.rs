//! The Portal gateway: composes subgraph schemas into a supergraph, then serves it as one
//! GraphQL API. The request pipeline is visible as modules:
//! [`transport`] → [`auth`] → [`request`] (parse, [`limits`], validate, [`variables`]) →
//! [`authz`] → [`plan`] (with [`overrides`]) → [`execute`] → [`project`] (with [`introspection`]), with [`subgraph`] clients
//! underneath, [`compose`] for building supergraphs and [`reload`] for swapping them.
//!
//! The gateway knows contracts (the supergraph SDL, subgraph URLs or in-process
//! transports), never subgraph code.

pub mod auth;
pub mod authz;
pub mod compose;
pub mod events;
pub mod execute;
pub mod gateway;
pub mod ide;
pub mod introspection;
pub mod limits;
pub mod metrics;
pub mod overrides;
pub mod persisted;
pub mod plan;
pub mod project;
pub mod rate_limit;
pub mod reload;
pub mod request;
pub mod response;
pub mod schema;
pub mod schema_diff;
pub mod sse;
pub mod streaming;
pub mod subgraph;
pub mod subscribe;
pub mod transport;
pub mod variables;
pub mod ws;
