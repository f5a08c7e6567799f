//! Table `notifications`: what a user was notified of — an event about a thread (never its
//! text), shown in the in-app list when `in_app`, and emailed when `email_due_at` is set
//! (`emailed_at` once it was).

use sea_orm::entity::prelude::*;

/// One row of `notifications`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The recipient.
    pub user_id: Uuid,
    /// `NEW_MESSAGE`, `THREAD_ASSIGNED`, `THREAD_STATUS_CHANGED`.
    pub event: String,
    pub thread_id: Uuid,
    pub message_id: Option<Uuid>,
    /// Who caused it.
    pub actor_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// Shown in the in-app list.
    pub in_app: bool,
    pub read_at: Option<DateTimeUtc>,
    /// When its email is due (digests gather what is due together); none: not emailed.
    pub email_due_at: Option<DateTimeUtc>,
    pub emailed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
