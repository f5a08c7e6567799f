//! Table `notification_quiet_hours`: a user's daily quiet hours (`HH:MM` local time in the
//! user's time zone), during which no notification email goes out.

use sea_orm::entity::prelude::*;

/// One row of `notification_quiet_hours`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_quiet_hours")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub starts: String,
    pub ends: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
