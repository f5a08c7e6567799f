//! Table `thread_participants`: who takes part in a thread, as what, and how far they read.

use sea_orm::entity::prelude::*;

/// One row of `thread_participants`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "thread_participants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub thread_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub created_at: DateTimeUtc,
    /// Messages posted up to this instant count as read.
    pub last_read_at: Option<DateTimeUtc>,
    /// `CUSTOMER` or `STAFF`.
    pub kind: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
