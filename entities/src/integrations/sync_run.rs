//! Table `integration_sync_runs`: one synchronization run of an integration (a chain of
//! jobs, a page of remote records each), with what it did.

use sea_orm::entity::prelude::*;

/// One row of `integration_sync_runs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_sync_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub integration_id: Uuid,
    /// `BACKFILL` or `INCREMENTAL`.
    pub mode: String,
    /// `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub status: String,
    /// The cursor the run started from (a replay names one).
    pub from_cursor: Option<Json>,
    /// Where the run is now.
    pub cursor: Option<Json>,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub deleted: i32,
    pub failed: i32,
    pub pages: i32,
    /// Who started it (`{"kind", "id"}`), or the scheduler.
    pub requested_by: Json,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
