//! Tables owned by the identity subgraph.

pub mod role;
pub mod tenant;
pub mod user;
pub mod user_role;
