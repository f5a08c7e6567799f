//! Table `webhook_attempts`: the delivery log, one row per attempt.

use sea_orm::entity::prelude::*;

/// One row of `webhook_attempts`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub message_id: Uuid,
    pub endpoint_id: Uuid,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub started_at: DateTimeUtc,
    /// `DELIVERED`, `FAILED`, `GONE` (410) or `REFUSED` (not sent: the address is not
    /// permitted, or the endpoint is disabled).
    pub outcome: String,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    /// At most 1 KiB of the response body, as text.
    pub response_excerpt: Option<String>,
    /// When the next attempt is due; null when none will follow.
    pub next_attempt_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
