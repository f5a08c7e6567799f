//! Integrations' side of the privacy contract ([`portal_kit::privacy`]): the links between
//! the person and their records in connected systems (a HubSpot contact), the webhook
//! endpoints they registered, the sync runs they started, and how many webhook messages
//! mention them.
//!
//! Left out: every secret (sealed connector credentials, OAuth tokens, webhook signing
//! secrets); the webhook messages and delivery attempts themselves (the tenant's deliveries
//! of events, mostly about other people — only a count of those whose payload names the
//! person); sync failures (keyed by remote record, not by portal user) and link
//! fingerprints (sync's bookkeeping hashes). Who configured an integration is not stored
//! here (`integrations` has no creator column): identity's audit events hold it.
//!
//! Erasure ([`crate::store::erasure`]) deletes their links to remote records (the remote
//! records stay in the tenant's systems: the portal does not delete them), keeps the
//! endpoints and sync runs that are the tenant's without naming them, and scrubs their
//! identifiers from the webhook messages, delivery log and sync errors it keeps for the
//! tenant. Nothing here is kept for a legal obligation, so no line is `KEPT`.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait as _, Func};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::integrations::{
    external_ref, integration, sync_run, webhook_endpoint, webhook_message,
};
use portal_kit::privacy::{DataSubject, DomainErasure, DomainExport, Erasure, PrivacyDomain};
use portal_kit::{Actor, ActorKind, ApiError, ApiResult};

use crate::store::{USER_ENTITY, stored_event_types};

/// Integrations' export and erasure of a data subject.
pub struct Privacy {
    db: DatabaseConnection,
}

impl Privacy {
    /// Over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The person's links to records of connected systems, with their integration.
    async fn external_references(&self, subject: DataSubject) -> ApiResult<Vec<Value>> {
        let links = external_ref::Entity::find()
            .filter(external_ref::Column::TenantId.eq(subject.tenant_id))
            .filter(external_ref::Column::EntityType.eq(USER_ENTITY))
            .filter(external_ref::Column::EntityId.eq(subject.user_id))
            .order_by_asc(external_ref::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let integrations: HashMap<Uuid, integration::Model> = integration::Entity::find()
            .filter(integration::Column::TenantId.eq(subject.tenant_id))
            .filter(integration::Column::Id.is_in(links.iter().map(|l| l.integration_id)))
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|i| (i.id, i))
            .collect();
        Ok(links
            .into_iter()
            .map(|link| {
                let of = integrations.get(&link.integration_id);
                json!({
                    "id": link.id.to_string(),
                    "integrationId": link.integration_id.to_string(),
                    "integrationKind": of.map(|i| i.kind.as_str()),
                    "provider": of.map(|i| i.provider.as_str()),
                    "externalType": link.external_type,
                    "externalId": link.external_id,
                    "linkedAt": link.created_at,
                    "updatedAt": link.updated_at,
                })
            })
            .collect())
    }

    /// The webhook endpoints the person registered (their owner), without secrets.
    async fn webhook_endpoints(&self, subject: DataSubject) -> ApiResult<Vec<Value>> {
        let rows = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(subject.tenant_id))
            .filter(mentions(
                Expr::col(webhook_endpoint::Column::Owner),
                subject.user_id,
            ))
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        Ok(rows
            .into_iter()
            .filter(|e| {
                // The owner is a serialized `Actor`: theirs only when it is them as a user.
                e.owner
                    .clone()
                    .and_then(|o| serde_json::from_value::<Actor>(o).ok())
                    .is_some_and(|o| o.kind == ActorKind::User && o.id == Some(subject.user_id))
            })
            .map(|e| {
                json!({
                    "id": e.id.to_string(),
                    "url": e.url,
                    "description": e.description,
                    "eventTypes": stored_event_types(&e.event_types),
                    "payloadMode": e.payload_mode,
                    "status": if e.enabled { "ENABLED" } else { "DISABLED" },
                    "disabledReason": e.disabled_reason,
                    "createdAt": e.created_at,
                    "updatedAt": e.updated_at,
                })
            })
            .collect())
    }

    /// The sync runs the person started by hand (`requested_by` `{"kind": "user", "id"}`).
    async fn sync_runs_requested(&self, subject: DataSubject) -> ApiResult<Vec<Value>> {
        let rows = sync_run::Entity::find()
            .filter(sync_run::Column::TenantId.eq(subject.tenant_id))
            .filter(mentions(
                Expr::col(sync_run::Column::RequestedBy),
                subject.user_id,
            ))
            .order_by_asc(sync_run::Column::StartedAt)
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let person = subject.user_id.to_string();
        Ok(rows
            .into_iter()
            .filter(|r| {
                r.requested_by.get("kind").and_then(Value::as_str) == Some("user")
                    && r.requested_by.get("id").and_then(Value::as_str) == Some(person.as_str())
            })
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "integrationId": r.integration_id.to_string(),
                    "mode": r.mode,
                    "status": r.status,
                    "startedAt": r.started_at,
                    "finishedAt": r.finished_at,
                })
            })
            .collect())
    }

    /// How many webhook messages of the tenant carry the person's id in their payload.
    async fn webhook_messages_mentioning(&self, subject: DataSubject) -> ApiResult<u64> {
        webhook_message::Entity::find()
            .filter(webhook_message::Column::TenantId.eq(subject.tenant_id))
            .filter(mentions(
                Expr::col(webhook_message::Column::Body),
                subject.user_id,
            ))
            .count(&self.db)
            .await
            .map_err(ApiError::from_db)
    }
}

/// Whether the JSON `column`, as text, contains `id` (hyphenated, as serde writes a UUID;
/// a UUID has no `%` or `_` to escape). A coarse filter: callers check what they decode.
fn mentions(column: Expr, id: Uuid) -> Expr {
    Func::cast_as(column, "TEXT").like(format!("%{id}%"))
}

#[async_trait::async_trait]
impl PrivacyDomain for Privacy {
    fn name(&self) -> &'static str {
        crate::SUBGRAPH_NAME
    }

    async fn export_tenant(&self, tenant: Uuid) -> ApiResult<DomainExport> {
        portal_kit::privacy::tenant::export(&self.db, tenant, &tenant_tables()).await
    }

    async fn erase_tenant(
        &self,
        tenant: Uuid,
        by: &portal_kit::privacy::TenantErasure,
    ) -> ApiResult<DomainErasure> {
        portal_kit::privacy::tenant::erase_tables(
            &self.db,
            ("integrations.tenant_erase", tenant),
            &tenant_tables(),
            by,
        )
        .await
    }

    async fn export(&self, subject: DataSubject) -> ApiResult<DomainExport> {
        // `integrationsConfigured` is absent: no column records who created or configured
        // an integration (see the module comment).
        let data = json!({
            "externalReferences": self.external_references(subject).await?,
            "webhookEndpoints": self.webhook_endpoints(subject).await?,
            "syncRunsRequested": self.sync_runs_requested(subject).await?,
            "webhookMessagesMentioning": self.webhook_messages_mentioning(subject).await?,
        });
        Ok(DomainExport {
            data,
            files: Vec::new(),
        })
    }

    async fn erase(&self, subject: DataSubject, erasure: &Erasure) -> ApiResult<DomainErasure> {
        let done = crate::store::erasure::erase_user(&self.db, subject, erasure).await?;
        let mut result = DomainErasure::default();
        result
            .erased(
                "externalReferences",
                done.external_refs,
                "The links between them and records of connected systems (CRM contacts, \
                 billing customers) were deleted. The portal does not delete remote records: \
                 those copies are the tenant's, in its own systems, to erase there; \
                 while they remain there, a later sync may link or invite them again",
            )
            .anonymized(
                "webhookEndpoints",
                done.webhook_endpoints,
                "Webhook endpoints they registered remain as the tenant's configuration, \
                 no longer naming them as owner (they deliver again once an administrator \
                 takes one over by rotating its secret); descriptions that mentioned them had \
                 their address or name replaced",
            )
            .anonymized(
                "syncRuns",
                done.sync_runs,
                "Sync runs they started remain in the connection's history without saying \
                 who started them; run errors that mentioned them had their address or name \
                 replaced",
            )
            .anonymized(
                "syncFailures",
                done.sync_failures,
                "Records a sync skipped whose error mentioned them had their address or name \
                 replaced",
            )
            .anonymized(
                "webhookMessages",
                done.webhook_messages,
                "The tenant's deliveries to its own endpoints that mentioned them had \
                 their id, address and name replaced; copies already delivered are in the \
                 tenant's receiving systems, outside the portal",
            )
            .anonymized(
                "webhookAttempts",
                done.webhook_attempts,
                "Delivery log entries whose response or error mentioned them had their \
                 address or name replaced",
            )
            .anonymized(
                "integrations",
                done.integrations,
                "Connections whose last error mentioned them had their address or name \
                 replaced",
            );
        Ok(result)
    }
}

/// Integrations' tables of a tenant, children before parents; connector credentials and
/// webhook signing secrets are left out of exports.
fn tenant_tables() -> Vec<Box<dyn portal_kit::privacy::tenant::TenantTable>> {
    use portal_entities::integrations::{sync_failure, webhook_attempt};
    use portal_kit::privacy::tenant::table;
    vec![
        table::<webhook_attempt::Entity>(webhook_attempt::Column::TenantId, &[]),
        table::<webhook_message::Entity>(webhook_message::Column::TenantId, &[]),
        table::<webhook_endpoint::Entity>(
            webhook_endpoint::Column::TenantId,
            &["secret_sealed", "previous_secret_sealed"],
        ),
        table::<external_ref::Entity>(external_ref::Column::TenantId, &[]),
        table::<sync_failure::Entity>(sync_failure::Column::TenantId, &[]),
        table::<sync_run::Entity>(sync_run::Column::TenantId, &[]),
        table::<integration::Entity>(integration::Column::TenantId, &["credentials_sealed"]),
    ]
}
