//! Table `notification_defaults`: a tenant's default frequency for one event and channel,
//! for users who did not choose their own.

use sea_orm::entity::prelude::*;

/// One row of `notification_defaults`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_defaults")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    /// `OFF`, `IMMEDIATE`, `HOURLY`, `DAILY`.
    pub frequency: String,
    pub updated_by: Uuid,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
