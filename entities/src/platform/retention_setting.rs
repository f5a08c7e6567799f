//! Table `retention_settings`: a tenant's retention period for one class of records (see
//! `portal_kit::retention`); a class without a row keeps the platform's default.

use sea_orm::entity::prelude::*;

/// One row of `retention_settings`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "retention_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// The class (`SESSIONS`, `MAIL_OUTBOX`, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub class: String,
    /// The period, in days, within the platform's bounds for the class.
    pub days: i32,
    pub updated_by: Option<Uuid>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
