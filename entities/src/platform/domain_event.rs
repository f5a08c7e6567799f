//! Table `domain_events` (the outbox; see `docs/events.md`).

use sea_orm::entity::prelude::*;

/// One row of `domain_events`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "domain_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub event_type: String,
    pub subject_type: String,
    pub subject_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub schema_version: i32,
    pub payload: Json,
    pub occurred_at: DateTimeUtc,
    /// Commit order, assigned after commit by the sequencer (`None` until then).
    pub sequence: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
