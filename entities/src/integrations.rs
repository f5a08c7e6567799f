//! Tables owned by the integrations subgraph.

pub mod external_ref;
pub mod integration;
pub mod sync_failure;
pub mod sync_run;
pub mod webhook_attempt;
pub mod webhook_endpoint;
pub mod webhook_message;
