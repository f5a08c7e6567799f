//! Table `notification_preferences`: a user's choice of frequency for one event and
//! channel (absent: the tenant's default, else the platform's).

use sea_orm::entity::prelude::*;

/// One row of `notification_preferences`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_preferences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: String,
    /// `OFF`, `IMMEDIATE`, `HOURLY`, `DAILY`.
    pub frequency: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
