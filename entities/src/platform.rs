//! Platform tables written by every subgraph: the audit trail, the email outbox and the
//! field-level RBAC policies.

pub mod audit_event;
pub mod casbin_rule;
pub mod email_outbox;
pub mod policy_coordinate;
pub mod policy_revision;
