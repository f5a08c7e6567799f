//! Table `audit_guard_lifts`: each time the audit log's append-only guard was lifted, by
//! whom and why (sealing legacy personal data, a retention segment). Append-only; a lift is
//! closed once, by the transaction that opened it.

use sea_orm::entity::prelude::*;

/// One row of `audit_guard_lifts`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_guard_lifts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub reason: String,
    pub rows_changed: i64,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
