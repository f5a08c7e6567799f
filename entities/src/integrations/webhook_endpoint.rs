//! Table `webhook_endpoints`.

use sea_orm::entity::prelude::*;

/// One row of `webhook_endpoints`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Json,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The `whsec_` signing secret, sealed with the data key; null for endpoints made
    /// before secrets (they get one when it is rotated).
    pub secret_sealed: Option<String>,
    /// The secret before the last rotation, still signed with until `previous_secret_until`.
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_until: Option<DateTimeUtc>,
    /// Whose policies trim the payloads (a serialized `Actor`: who registered it).
    pub owner: Option<Json>,
    /// `FULL` (the event's payload, trimmed) or `THIN` (type, id, time).
    pub payload_mode: String,
    /// Why deliveries stopped (410 Gone, failing for too long); null when enabled by hand.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed; null after a success.
    pub failing_since: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
