//! Table `message_search_tokens`: the blind index of message bodies — one row per message
//! and keyed token hash (never a word), with the thread and posting time to filter on.
//! SQLite only: on PostgreSQL the index is `message_search_index` (one row per message, the
//! hashes in a `bigint[]` under GIN; migration m0049), read and written by the messages
//! store's `search` module.

use sea_orm::entity::prelude::*;

/// One row of `message_search_tokens`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "message_search_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub token: i64,
    pub tenant_id: Uuid,
    pub thread_id: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
