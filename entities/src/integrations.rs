//! Tables owned by the integrations subgraph.

pub mod external_ref;
pub mod integration;
pub mod webhook_attempt;
pub mod webhook_endpoint;
pub mod webhook_message;
