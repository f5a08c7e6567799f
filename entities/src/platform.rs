//! Platform tables written by every subgraph (the audit trail).

pub mod audit_event;
