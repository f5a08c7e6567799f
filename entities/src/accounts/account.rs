//! Table `accounts`.

use sea_orm::entity::prelude::*;

/// One row of `accounts`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub owner_id: Uuid,
    pub number: String,
    pub name: String,
    pub status: String,
    pub currency: String,
    /// The balance times 10^4: exact on every database (SQLite has no exact decimal).
    pub balance_e4: i64,
    /// The client's idempotency key for `createAccount`, if it sent one.
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request that first used the key.
    pub request_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
