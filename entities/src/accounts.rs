//! Tables owned by the accounts subgraph.

pub mod account;
