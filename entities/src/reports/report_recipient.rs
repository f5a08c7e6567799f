//! Table `report_recipients`: who receives a report's scheduled runs — a user of the
//! tenant (who gets a run read as themselves) or, where a tenant admin allows it for the
//! report, an external address (which gets the owner's run, vouched for by the owner).

use sea_orm::entity::prelude::*;

/// One row of `report_recipients`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "report_recipients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub definition_id: Uuid,
    /// A user of the tenant; `None` for an external address.
    pub user_id: Option<Uuid>,
    /// An external address (lower-cased); `None` for a user.
    pub email: Option<String>,
    /// The owner who vouched for an external address.
    pub vouched_by: Option<Uuid>,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
