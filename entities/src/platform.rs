//! Platform tables written by every subgraph: the audit trail and the email outbox.

pub mod audit_event;
pub mod email_outbox;
