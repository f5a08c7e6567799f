//! Tables owned by the messages subgraph.

pub mod message;
pub mod message_edit;
pub mod thread;
pub mod thread_participant;
