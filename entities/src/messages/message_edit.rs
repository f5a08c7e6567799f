//! Table `message_edits`: the earlier bodies of edited messages (sealed like bodies), one
//! row per edit, deleted with the message's body.

use sea_orm::entity::prelude::*;

/// One row of `message_edits`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "message_edits")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub message_id: Uuid,
    #[sea_orm(column_type = "Blob", nullable)]
    pub body_sealed: Option<Vec<u8>>,
    pub key_version: Option<i32>,
    /// When this body was replaced by the next one.
    pub replaced_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
