//! Table `email_outbox`: emails waiting for delivery, written in the transaction of the change that causes them.

use sea_orm::entity::prelude::*;

/// One row of `email_outbox`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "email_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub recipient: String,
    pub subject: String,
    pub body_sealed: String,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub next_attempt_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    /// A stored file sent as the message's attachment.
    pub attachment_file_id: Option<Uuid>,
    /// The one-click unsubscribe address (RFC 8058), sealed like the body.
    pub unsubscribe_sealed: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
