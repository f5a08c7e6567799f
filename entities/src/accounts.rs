//! Tables owned by the accounts subgraph.

pub mod account;
pub mod account_member;
