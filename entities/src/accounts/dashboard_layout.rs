//! Table `dashboard_layouts`.

use sea_orm::entity::prelude::*;

/// One row of `dashboard_layouts`: a user's saved dashboard (`owner_id` set) or a tenant's
/// default for a role (`role` set).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "dashboard_layouts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub owner_id: Option<Uuid>,
    pub role: Option<String>,
    pub name: String,
    /// The widgets, as `portal_accounts::domain::layout::Widget` JSON.
    pub widgets: Json,
    /// Bumped by every change: a write naming an older version is refused.
    pub version: i32,
    /// The default layout it was last reset from.
    pub reset_from: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
