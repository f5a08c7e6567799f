//! Table `report_definitions`.

use sea_orm::entity::prelude::*;

/// One row of `report_definitions`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_definitions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Option<Uuid>,
    pub owner_id: Uuid,
    pub name: String,
    pub kind: String,
    pub format: String,
    pub schedule: Option<String>,
    pub parameters: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// What it reads (dataset, columns, grouping, limit), as saved.
    pub query: Option<Json>,
    /// Changes whenever the query, format or parameters do (runs record it).
    pub version: i32,
    /// IANA time zone the schedule is read in.
    pub time_zone: String,
    /// Whether the schedule is paused (kept, but starts no runs).
    pub paused: bool,
    /// The tenant admin who allowed delivery to external addresses; `None`: not allowed.
    pub external_delivery_allowed_by: Option<Uuid>,
    /// When they allowed it.
    pub external_delivery_allowed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
