//! sea-orm table models for every Portal table, grouped by the domain that owns them.
//!
//! These are storage models only: no GraphQL derives live here (subgraphs convert
//! models into their own wire types), and no domain may query another domain's tables.

pub mod accounts;
pub mod identity;
pub mod integrations;
pub mod messages;
pub mod platform;
pub mod reports;
