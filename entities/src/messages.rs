//! Tables owned by the messages subgraph.

pub mod legal_hold;
pub mod message;
pub mod message_attachment;
pub mod message_edit;
pub mod message_retention_rule;
pub mod message_search_token;
pub mod messaging_setting;
pub mod notification;
pub mod notification_default;
pub mod notification_preference;
pub mod notification_quiet_hours;
pub mod thread;
pub mod thread_participant;
