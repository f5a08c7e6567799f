//! Tables owned by the accounts subgraph.

pub mod account;
pub mod account_export;
pub mod account_member;
pub mod dashboard_layout;
pub mod invoice;
pub mod ledger_entry;
pub mod ledger_rollup;
pub mod payment;
pub mod usage_daily_rollup;
pub mod usage_event;
pub mod usage_rollup;
