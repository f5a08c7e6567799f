//! Integrations' wire types: `Integration` and `WebhookEndpoint` (both
//! `@key(fields: "id")`), `ExternalRef`, their enums and connections.

use async_graphql::{ComplexObject, Context, Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::integrations::{external_ref, integration, webhook_endpoint};
use portal_kit::loader::load;
use portal_kit::pagination::Node;
use portal_kit::{ApiError, ApiResult};

use super::loaders::IntegrationsById;
use crate::domain::{IntegrationKind, IntegrationStatus};
use crate::store;

/// What an external system is to the portal.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IntegrationKind")]
pub enum IntegrationKindGql {
    /// Customer relationship management.
    Crm,
    /// Billing and invoicing.
    Billing,
}

impl From<IntegrationKind> for IntegrationKindGql {
    fn from(kind: IntegrationKind) -> Self {
        match kind {
            IntegrationKind::Crm => Self::Crm,
            IntegrationKind::Billing => Self::Billing,
        }
    }
}

impl From<IntegrationKindGql> for IntegrationKind {
    fn from(kind: IntegrationKindGql) -> Self {
        match kind {
            IntegrationKindGql::Crm => Self::Crm,
            IntegrationKindGql::Billing => Self::Billing,
        }
    }
}

/// Lifecycle of an integration.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IntegrationStatus")]
pub enum IntegrationStatusGql {
    /// Synchronizing.
    Active,
    /// Switched off by a user.
    Paused,
    /// Stopped after a failure.
    Error,
}

impl From<IntegrationStatus> for IntegrationStatusGql {
    fn from(status: IntegrationStatus) -> Self {
        match status {
            IntegrationStatus::Active => Self::Active,
            IntegrationStatus::Paused => Self::Paused,
            IntegrationStatus::Error => Self::Error,
        }
    }
}

impl From<IntegrationStatusGql> for IntegrationStatus {
    fn from(status: IntegrationStatusGql) -> Self {
        match status {
            IntegrationStatusGql::Active => Self::Active,
            IntegrationStatusGql::Paused => Self::Paused,
            IntegrationStatusGql::Error => Self::Error,
        }
    }
}

/// A connection to an external CRM or billing system.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Integration {
    /// Stable id.
    pub id: ID,
    /// What the external system is.
    pub kind: IntegrationKindGql,
    /// Provider name, e.g. `hubspot` or `stripe`.
    pub provider: String,
    /// Display name.
    pub name: String,
    /// Lifecycle status.
    pub status: IntegrationStatusGql,
    /// When the last synchronization finished, if ever.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// When the integration was created.
    pub created_at: DateTime<Utc>,
    /// When the integration last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether its connector has credentials (`configureIntegration`); they are never
    /// readable back.
    pub configured: bool,
    /// How its remote is doing, from the last calls.
    pub health: super::connectors::HealthGql,
    /// The last remote call's error, if it failed.
    pub last_error: Option<String>,
    /// When the remote was last called.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// While in the future, nothing calls the remote (it kept failing: the circuit
    /// breaker is open); the first call after it decides whether it closes.
    pub circuit_open_until: Option<DateTime<Utc>>,
    /// Which side wins, per synchronized field.
    pub field_rules: Vec<super::connectors::IntegrationFieldRule>,
    /// HubSpot: whether contacts sync with users too.
    pub sync_contacts: bool,
    /// How its connector authenticates at the remote (the credentials themselves are
    /// never readable).
    pub auth_method: super::connectors::AuthMethodGql,
    /// When the remote last answered a call well (a page pulled, a connection test).
    pub last_success_at: Option<DateTime<Utc>>,
    /// What kind of error the last failed call was — what to do about it; null after a
    /// success.
    pub last_error_kind: Option<super::connectors::ErrorKindGql>,
    /// How far behind the remote the portal may be, in seconds: the time since the last
    /// successful sync run started (changes made before it are in the portal). Null
    /// before the first.
    pub sync_lag_seconds: Option<i64>,
    /// HubSpot: what accounts created from companies get; null: none are created.
    pub new_accounts: Option<super::connectors::IntegrationNewAccounts>,
    #[graphql(skip)]
    uuid: Uuid,
}

impl Integration {
    /// The integration's id.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl From<integration::Model> for Integration {
    fn from(row: integration::Model) -> Self {
        let configured = store::connectors::is_configured(&row);
        Self {
            id: ID(row.id.to_string()),
            kind: IntegrationKind::from_db(&row.kind).into(),
            provider: row.provider,
            name: row.name,
            status: IntegrationStatus::from_db(&row.status).into(),
            last_sync_at: row.last_sync_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            configured,
            health: crate::domain::sync::Health::from_db(&row.health).into(),
            last_error: row.last_error,
            last_checked_at: row.last_checked_at,
            circuit_open_until: row.circuit_open_until,
            field_rules: crate::domain::sync::FieldRules::from_settings(row.settings.as_ref())
                .iter()
                .map(super::connectors::IntegrationFieldRule::from)
                .collect(),
            sync_contacts: crate::domain::sync::syncs_contacts(row.settings.as_ref()),
            last_success_at: row.last_success_at,
            last_error_kind: row
                .last_error_kind
                .as_deref()
                .and_then(crate::domain::sync::ErrorKind::from_db)
                .map(Into::into),
            sync_lag_seconds: row
                .synced_through
                .map(|at| (Utc::now() - at).num_seconds().max(0)),
            auth_method: crate::connectors::AuthMethod::from_db(
                row.settings
                    .as_ref()
                    .and_then(|s| s.get("authMethod"))
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("NONE"),
            )
            .into(),
            new_accounts: crate::domain::sync::NewAccounts::from_settings(row.settings.as_ref())
                .map(Into::into),
            uuid: row.id,
        }
    }
}

#[ComplexObject]
impl Integration {
    /// Its sync runs, newest first.
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<super::connectors::IntegrationSyncRunConnection> {
        super::connectors::runs_of(ctx, self.uuid, first, after).await
    }

    /// The share of records that failed among those its sync runs of the last 24 hours
    /// read (0 to 1); null when they read none.
    async fn error_rate(&self, ctx: &Context<'_>) -> ApiResult<Option<f64>> {
        let stats = load::<super::loaders::RunStatsByIntegration>(ctx, self.uuid).await?;
        Ok(stats.and_then(|stats| stats.error_rate()))
    }
}

impl Node for Integration {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(IntegrationConnection, IntegrationEdge, Integration);

/// A URL the portal delivers events to (Standard Webhooks: signed, retried, logged).
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct WebhookEndpoint {
    /// Stable id.
    pub id: ID,
    /// Target URL (https, or http for localhost).
    pub url: String,
    /// What the endpoint is for; empty when not given.
    pub description: String,
    /// Event types delivered to the endpoint, e.g. `account.updated`.
    pub event_types: Vec<String>,
    /// Whether events are delivered.
    pub enabled: bool,
    /// Why deliveries stopped, when the portal stopped them (410 Gone, failing for too
    /// long); null when enabled, or disabled by hand.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed; null after a success.
    pub failing_since: Option<DateTime<Utc>>,
    /// What payloads hold.
    pub payload_mode: super::webhooks::PayloadModeGql,
    /// Until when the secret replaced by the last rotation still signs deliveries.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    /// Whether the endpoint has a signing secret (endpoints made with the deprecated
    /// `createWebhookEndpoint` before secrets need a rotation first).
    pub has_secret: bool,
    /// When the endpoint was created.
    pub created_at: DateTime<Utc>,
    /// When the endpoint last changed.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
}

impl WebhookEndpoint {
    /// The endpoint's id.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(row: webhook_endpoint::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            url: row.url,
            description: row.description,
            event_types: store::stored_event_types(&row.event_types),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since,
            payload_mode: crate::domain::catalogue::PayloadMode::from_db(&row.payload_mode).into(),
            previous_secret_valid_until: row
                .previous_secret_until
                .filter(|_| row.previous_secret_sealed.is_some()),
            has_secret: row.secret_sealed.is_some(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            uuid: row.id,
        }
    }
}

impl Node for WebhookEndpoint {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(
    WebhookEndpointConnection,
    WebhookEndpointEdge,
    WebhookEndpoint
);

/// A record in an external system and the portal entity it is linked to (by hand with
/// `linkExternalRef`, or by a sync run).
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ExternalRef {
    /// Stable id.
    pub id: ID,
    /// The external system's id of the record.
    pub external_id: String,
    /// The external system's kind of record (`customer`, `invoice`, `company`).
    pub external_type: String,
    /// The portal's type of the linked entity (`Account`, `Invoice`, `Payment`,
    /// `LedgerEntry`).
    pub entity_type: String,
    /// The linked entity's id.
    pub entity_id: ID,
    /// When the link was made.
    pub created_at: DateTime<Utc>,
    /// When a sync last changed it.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    integration_id: Uuid,
}

impl From<external_ref::Model> for ExternalRef {
    fn from(row: external_ref::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            external_id: row.external_id,
            external_type: row.external_type,
            entity_type: row.entity_type,
            entity_id: ID(row.entity_id.to_string()),
            created_at: row.created_at,
            updated_at: row.updated_at,
            integration_id: row.integration_id,
        }
    }
}

#[ComplexObject]
impl ExternalRef {
    /// The integration the external id belongs to.
    async fn integration(&self, ctx: &Context<'_>) -> ApiResult<Integration> {
        load::<IntegrationsById>(ctx, self.integration_id)
            .await?
            .map(Integration::from)
            .ok_or(ApiError::NotFound("integration"))
    }
}
