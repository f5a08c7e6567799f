//! Platform tables written by every subgraph: the audit trail, the domain events outbox,
//! the email outbox, stored files, jobs, the evidence keys, the tenants' data keys and the
//! field-level RBAC policies.

pub mod audit_checkpoint;
pub mod audit_escrow_key;
pub mod audit_event;
pub mod audit_guard_lift;
pub mod audit_subject_key;
pub mod casbin_rule;
pub mod domain_event;
pub mod email_outbox;
pub mod evidence_key;
pub mod file;
pub mod job;
pub mod job_schedule;
pub mod policy_coordinate;
pub mod policy_revision;
pub mod retention_setting;
pub mod tenant_key;
