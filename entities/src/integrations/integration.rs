//! Table `integrations`: an external system connected to a tenant, with its connector's
//! configuration, health and sync position.

use sea_orm::entity::prelude::*;

/// One row of `integrations`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: String,
    pub provider: String,
    pub name: String,
    pub status: String,
    pub last_sync_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Connector settings: per-field source-of-truth rules (`{"fieldRules": {...}}`), what
    /// a CRM connector creates and syncs (`newAccounts`, `syncContacts`) and how it
    /// authenticates (`authMethod`).
    pub settings: Option<Json>,
    /// The connector's credentials (remote API key, webhook secret, the portal API key
    /// it writes with), sealed with the tenant's data key; never readable back.
    pub credentials_sealed: Option<String>,
    /// `UNKNOWN`, `HEALTHY`, `DEGRADED` or `FAILING`.
    pub health: String,
    pub last_error: Option<String>,
    pub last_checked_at: Option<DateTimeUtc>,
    /// Remote calls that failed in a row (reset by a success).
    pub consecutive_failures: i32,
    /// While in the future, nothing calls the remote (circuit breaker open).
    pub circuit_open_until: Option<DateTimeUtc>,
    /// Where incremental sync goes on from (connector-specific).
    pub sync_cursor: Option<Json>,
    /// When the remote last answered a call well.
    pub last_success_at: Option<DateTimeUtc>,
    /// What kind of error the last failed call was: `AUTH_REVOKED`, `RATE_LIMITED`,
    /// `REMOTE_DOWN` or `BAD_DATA` (`None` after a success).
    pub last_error_kind: Option<String>,
    /// When the last successful sync run started: remote changes made before it are in
    /// the portal.
    pub synced_through: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
