//! Table `messages`. The body is sealed with the tenant's data key (`body_sealed` under
//! `key_version`); `legacy_body` holds plaintext written before encryption until the
//! reseal job seals it. A deleted message keeps its row (a tombstone) without a body.

use sea_orm::entity::prelude::*;

/// One row of `messages`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub thread_id: Uuid,
    pub author_id: Uuid,
    pub created_at: DateTimeUtc,
    pub edited_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub legacy_body: Option<String>,
    #[sea_orm(column_type = "Blob", nullable)]
    pub body_sealed: Option<Vec<u8>>,
    pub key_version: Option<i32>,
    /// The message this one replies to (same thread).
    pub reply_to_id: Option<Uuid>,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
