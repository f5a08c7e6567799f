//! Table `message_retention_rules`: what a tenant does with messages of threads in one
//! status once they are older than a number of days (delete or anonymize).

use sea_orm::entity::prelude::*;

/// One row of `message_retention_rules`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "message_retention_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The thread status it applies to (storage form: `OPEN`, `WAITING`, `RESOLVED`, `CLOSED`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub thread_status: String,
    /// `DELETE` or `ANONYMIZE`.
    pub action: String,
    pub older_than_days: i32,
    pub updated_by: Uuid,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
