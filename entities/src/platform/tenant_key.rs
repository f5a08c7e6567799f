//! Table `tenant_keys`: each tenant's data keys (one row per key version) for envelope
//! encryption of its data, wrapped by the master key through a key provider. A destroyed
//! version keeps its row (what happened stays visible) but loses its wrapped key.

use sea_orm::entity::prelude::*;

/// One row of `tenant_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    /// Which key provider wrapped it (`local`: the configured data key).
    pub provider: String,
    /// The wrapped key; `None` once destroyed.
    #[sea_orm(column_type = "Text", nullable)]
    pub wrapped: Option<String>,
    /// `active` (new writes), `retired` (reads only) or `destroyed`.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub retired_at: Option<DateTimeUtc>,
    pub destroyed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
