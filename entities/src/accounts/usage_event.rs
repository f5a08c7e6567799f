//! Table `usage_events`.

use sea_orm::entity::prelude::*;

/// One row of `usage_events`: a metered quantity as a client reported it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub metric: String,
    /// The quantity times 10^4.
    pub quantity_e4: i64,
    pub occurred_at: DateTimeUtc,
    /// The client's key: a retried event is stored once.
    pub client_key: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
