//! Integrations persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.
//!
//! Audit events of webhook endpoints never copy the URL (it may carry a token in its
//! query); they only say whether it changed.

use portal_kit::db::BeginWrite;
use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Select, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::integrations::{external_ref, integration, webhook_endpoint};
use portal_kit::audit::AuditEvent;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::store::{one_or_not_found, rows_by_ids};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::catalogue::PayloadMode;
use crate::domain::{IntegrationKind, IntegrationStatus};

pub mod connectors;
pub mod erasure;

/// A sealed value as the integrations tables store it: `<key version>.<base64>`.
pub(crate) fn sealed_to_text(sealed: &portal_kit::envelope::Sealed) -> String {
    use base64::Engine;
    format!(
        "{}.{}",
        sealed.version,
        base64::engine::general_purpose::STANDARD.encode(&sealed.bytes)
    )
}

/// The sealed value of [`sealed_to_text`]'s text, or `None` when it is not one.
pub(crate) fn sealed_from_text(stored: &str) -> Option<portal_kit::envelope::Sealed> {
    use base64::Engine;
    let (version, bytes) = stored.split_once('.')?;
    Some(portal_kit::envelope::Sealed {
        version: version.parse().ok()?,
        bytes: base64::engine::general_purpose::STANDARD
            .decode(bytes)
            .ok()?,
    })
}

/// The entity type of account links.
pub const ACCOUNT_ENTITY: &str = "Account";
/// The entity type of user links (HubSpot contact sync links contacts to users).
pub const USER_ENTITY: &str = "User";
pub mod webhooks;

/// Validated fields of a new integration.
pub struct NewIntegration {
    /// What the external system is.
    pub kind: IntegrationKind,
    /// Provider name (`hubspot`, `stripe`, …).
    pub provider: String,
    /// Display name.
    pub name: String,
}

/// Validated changes to an integration; `None` leaves a field as it is.
#[derive(Default)]
pub struct IntegrationChanges {
    /// New display name.
    pub name: Option<String>,
    /// New status.
    pub status: Option<IntegrationStatus>,
}

/// Validated fields of a new webhook endpoint.
pub struct NewWebhookEndpoint {
    /// Target URL.
    pub url: String,
    /// Description; empty for none.
    pub description: String,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// What its payloads hold.
    pub payload_mode: PayloadMode,
}

/// Validated changes to a webhook endpoint; `None` leaves a field as it is.
#[derive(Default)]
pub struct WebhookEndpointChanges {
    /// New target URL.
    pub url: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New subscribed event types.
    pub event_types: Option<Vec<String>>,
    /// Whether deliveries are made.
    pub enabled: Option<bool>,
    /// What its payloads hold.
    pub payload_mode: Option<PayloadMode>,
}

/// Validated fields of a new external reference.
pub struct NewExternalRef {
    /// The integration (of the actor's tenant) the reference belongs to.
    pub integration_id: Uuid,
    /// The portal account (accounts' id).
    pub account_id: Uuid,
    /// The external system's id of the account.
    pub external_id: String,
}

/// The event types stored in a webhook endpoint row (non-strings are skipped).
pub fn stored_event_types(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One integration of the tenant.
pub async fn integration(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<integration::Model> {
    let scoped =
        integration::Entity::find_by_id(id).filter(integration::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "integration").await
}

/// Integrations of the tenant among `ids`, in one query.
pub async fn integrations_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, integration::Model>> {
    rows_by_ids(db, integrations_in(tenant_id), integration::Column::Id, ids).await
}

/// A page of the tenant's integrations.
pub async fn list_integrations(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    page: PageRequest,
) -> ApiResult<Page<integration::Model>> {
    page.fetch(db, integrations_in(tenant_id), integration::Column::Id)
        .await
}

/// The tenant's integrations.
fn integrations_in(tenant_id: Uuid) -> Select<integration::Entity> {
    integration::Entity::find().filter(integration::Column::TenantId.eq(tenant_id))
}

/// Creates an integration in the actor's tenant (status `ACTIVE`, never synced).
pub async fn create_integration(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewIntegration,
) -> ApiResult<integration::Model> {
    let tenant_id = actor.tenant()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = integration::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        kind: Set(new.kind.as_str().to_owned()),
        provider: Set(new.provider),
        name: Set(new.name),
        status: Set(IntegrationStatus::Active.as_str().to_owned()),
        last_sync_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        settings: Set(None),
        credentials_sealed: Set(None),
        health: Set(crate::domain::sync::Health::Unknown.as_str().to_owned()),
        last_error: Set(None),
        last_checked_at: Set(None),
        consecutive_failures: Set(0),
        circuit_open_until: Set(None),
        sync_cursor: Set(None),
        last_success_at: Set(None),
        last_error_kind: Set(None),
        synced_through: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("integration.create", "integration", created.id)
        .with_details(json!({ "kind": created.kind, "provider": created.provider }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Applies `changes` to an integration of the actor's tenant.
pub async fn update_integration(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: IntegrationChanges,
) -> ApiResult<integration::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = integration(&txn, tenant_id, id).await?;
    let before = json!({ "name": current.name, "status": current.status });
    let mut active: integration::ActiveModel = current.into();
    if let Some(name) = changes.name {
        active.name = Set(name);
    }
    if let Some(status) = changes.status {
        active.status = Set(status.as_str().to_owned());
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    let after = json!({ "name": updated.name, "status": updated.status });
    AuditEvent::success("integration.update", "integration", id)
        .with_details(json!({ "before": before, "after": after }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// One webhook endpoint of the tenant.
pub async fn webhook_endpoint(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<webhook_endpoint::Model> {
    let scoped = webhook_endpoint::Entity::find_by_id(id)
        .filter(webhook_endpoint::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "webhook endpoint").await
}

/// Webhook endpoints of the tenant among `ids`, in one query.
pub async fn webhook_endpoints_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, webhook_endpoint::Model>> {
    let id = webhook_endpoint::Column::Id;
    rows_by_ids(db, endpoints_in(tenant_id), id, ids).await
}

/// A page of the tenant's webhook endpoints.
pub async fn list_webhook_endpoints(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    page: PageRequest,
) -> ApiResult<Page<webhook_endpoint::Model>> {
    page.fetch(db, endpoints_in(tenant_id), webhook_endpoint::Column::Id)
        .await
}

/// The tenant's webhook endpoints.
fn endpoints_in(tenant_id: Uuid) -> Select<webhook_endpoint::Entity> {
    webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
}

/// Creates an enabled webhook endpoint in the actor's tenant, owned by the actor (its
/// payloads are trimmed to what they may read), with a new signing secret: the endpoint
/// and the secret's printed form, which is not kept.
pub async fn create_webhook_endpoint(
    db: &DatabaseConnection,
    keys: &portal_kit::envelope::TenantKeys,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewWebhookEndpoint,
) -> ApiResult<(webhook_endpoint::Model, String)> {
    let tenant_id = actor.tenant()?;
    let id = Uuid::now_v7();
    let secret = webhooks::new_secret(keys, tenant_id, id).await?;
    let owner = webhooks::owner_value(actor)?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = webhook_endpoint::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        url: Set(new.url),
        description: Set(new.description),
        event_types: Set(json!(new.event_types)),
        enabled: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        secret_sealed: Set(Some(secret.sealed)),
        previous_secret_sealed: Set(None),
        previous_secret_until: Set(None),
        owner: Set(Some(owner)),
        payload_mode: Set(new.payload_mode.as_str().to_owned()),
        disabled_reason: Set(None),
        failing_since: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("webhook_endpoint.create", "webhook_endpoint", created.id)
        .with_details(json!({
            "eventTypes": created.event_types,
            "payloadMode": created.payload_mode,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok((created, secret.printed))
}

/// Applies `changes` to a webhook endpoint of the actor's tenant.
pub async fn update_webhook_endpoint(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: WebhookEndpointChanges,
) -> ApiResult<webhook_endpoint::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = webhook_endpoint(&txn, tenant_id, id).await?;
    let before = json!({
        "description": current.description,
        "eventTypes": current.event_types,
        "enabled": current.enabled,
        "payloadMode": current.payload_mode,
    });
    let url_changed = changes.url.as_ref().is_some_and(|url| *url != current.url);
    let mut active: webhook_endpoint::ActiveModel = current.into();
    if let Some(url) = changes.url {
        active.url = Set(url);
    }
    if let Some(description) = changes.description {
        active.description = Set(description);
    }
    if let Some(event_types) = changes.event_types {
        active.event_types = Set(json!(event_types));
    }
    if let Some(enabled) = changes.enabled {
        active.enabled = Set(enabled);
        // Switched by hand: whatever disabled it before no longer applies, and failures
        // count afresh.
        active.disabled_reason = Set(None);
        active.failing_since = Set(None);
    }
    if let Some(mode) = changes.payload_mode {
        active.payload_mode = Set(mode.as_str().to_owned());
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    let after = json!({
        "description": updated.description,
        "eventTypes": updated.event_types,
        "enabled": updated.enabled,
        "payloadMode": updated.payload_mode,
    });
    AuditEvent::success("webhook_endpoint.update", "webhook_endpoint", id)
        .with_details(json!({ "before": before, "after": after, "urlChanged": url_changed }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// The external references of each of `account_ids`, oldest first, in one query.
pub async fn refs_by_accounts(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<external_ref::Model>>> {
    let rows = external_ref::Entity::find()
        .filter(external_ref::Column::TenantId.eq(tenant_id))
        .filter(external_ref::Column::EntityType.eq(ACCOUNT_ENTITY))
        .filter(external_ref::Column::EntityId.is_in(account_ids))
        .order_by_asc(external_ref::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_account: HashMap<Uuid, Vec<external_ref::Model>> = HashMap::new();
    for row in rows {
        by_account.entry(row.entity_id).or_default().push(row);
    }
    Ok(by_account)
}

/// Links an account to its record in an integration of the actor's tenant.
///
/// `NOT_FOUND` when the integration is not in the tenant; `CONFLICT` (from the unique
/// indexes on `external_refs`, mapped by [`ApiError::from_db`]) when the account is
/// already linked through that integration or the external id already names another
/// account in it. A refused link writes nothing, audit event included.
pub async fn link_external_ref(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewExternalRef,
) -> ApiResult<external_ref::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let owner = integration(&txn, tenant_id, new.integration_id).await?;
    let now = Utc::now();
    let created = external_ref::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        integration_id: Set(new.integration_id),
        external_type: Set(crate::domain::account_type_of(&owner.provider).to_owned()),
        external_id: Set(new.external_id),
        entity_type: Set(ACCOUNT_ENTITY.to_owned()),
        entity_id: Set(new.account_id),
        fingerprint: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("external_ref.link", "external_ref", created.id)
        .with_details(json!({
            "integrationId": created.integration_id,
            "accountId": created.entity_id,
            "externalType": created.external_type,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use portal_entities::platform::audit_event;
    use portal_kit::error::ErrorCode;
    use sea_orm::sea_query::Index;
    use sea_orm::{Database, DbBackend, PaginatorTrait, Schema};

    use super::*;

    /// The integrations tables, with the unique indexes of migration m0056.
    async fn integrations_tables() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        let schema = Schema::new(DbBackend::Sqlite);
        db.execute(&schema.create_table_from_entity(integration::Entity))
            .await
            .expect("integrations");
        db.execute(&schema.create_table_from_entity(external_ref::Entity))
            .await
            .expect("external_refs");
        db.execute(&schema.create_table_from_entity(audit_event::Entity))
            .await
            .expect("audit_events");
        db.execute(
            &schema.create_table_from_entity(portal_entities::platform::domain_event::Entity),
        )
        .await
        .expect("domain_events");
        for (name, columns) in [
            (
                "ux_external_refs_entity",
                &[
                    "entity_id",
                    "integration_id",
                    "external_type",
                    "entity_type",
                ][..],
            ),
            (
                "ux_external_refs_external",
                &["integration_id", "external_type", "external_id"][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table("external_refs").unique();
            for column in columns {
                index.col(*column);
            }
            db.execute(&index.to_owned()).await.expect("index");
        }
        db
    }

    #[tokio::test]
    async fn an_external_id_links_one_account_per_integration() {
        let db = integrations_tables().await;
        let actor = Actor::user(Uuid::now_v7(), Uuid::now_v7(), vec!["admin".into()]);
        let meta = RequestMeta::default();
        let new = NewIntegration {
            kind: IntegrationKind::Billing,
            provider: "chargebee".into(),
            name: "Chargebee".into(),
        };
        let billing = create_integration(&db, &actor, &meta, new)
            .await
            .expect("integration");
        let link = |account_id: Uuid, external_id: &str| NewExternalRef {
            integration_id: billing.id,
            account_id,
            external_id: external_id.into(),
        };
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        link_external_ref(&db, &actor, &meta, link(first, "cb_1"))
            .await
            .expect("first link");
        let audit_before = audit_event::Entity::find().count(&db).await.expect("count");

        let taken = link_external_ref(&db, &actor, &meta, link(second, "cb_1")).await;
        assert!(
            taken
                .as_ref()
                .is_err_and(|err| err.code() == ErrorCode::Conflict),
            "{taken:?}"
        );
        let refs = external_ref::Entity::find()
            .count(&db)
            .await
            .expect("count");
        let audit_after = audit_event::Entity::find().count(&db).await.expect("count");
        assert_eq!((refs, audit_after), (1, audit_before));

        link_external_ref(&db, &actor, &meta, link(second, "cb_2"))
            .await
            .expect("another external id links");
    }
}
