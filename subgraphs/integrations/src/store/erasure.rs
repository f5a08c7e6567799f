//! Erasure of one person from integrations (its side of a GDPR Art. 17 erasure, driven by
//! the privacy workflow).
//!
//! Their links to records of connected systems (a HubSpot contact linked to their user)
//! are deleted: the portal no longer ties them to those records. The remote records
//! themselves are not touched — they live in the tenant's CRM or billing system, and
//! erasing them there is the tenant's to do; while a contact remains there, a later sync
//! may find it again and invite a new user from it.
//!
//! What is the tenant's stays, without naming them. Webhook endpoints they registered
//! remain the tenant's configuration but lose their owner (a serialized actor, whose
//! rights trim the payloads): an endpoint without an owner receives nothing — as one
//! whose owner left — until an administrator rotates its secret and so adopts it. Sync
//! runs they started keep their history with a requester that says only "a user".
//!
//! Text and JSON kept for the tenant are scrubbed of their identifiers (addresses replaced
//! wherever they appear, a value equal to an address or their name replaced whole, see
//! [`portal_kit::privacy::scrub`]): the bodies of webhook messages — the tenant's
//! deliveries to its own endpoints, where any string equal to their user id is replaced
//! too (a message still waiting is delivered scrubbed) — the delivery log's response
//! excerpts and errors, endpoint descriptions, and the errors of sync runs, of skipped
//! records and of connections (a remote's error can quote a contact's address). Candidate
//! rows are found with a lower-cased `LIKE` over the column as text, in batches by id,
//! and each is decided and rewritten one by one.
//!
//! Out of reach here: the domain events the webhook messages were made from (the platform
//! part of the erasure scrubs them), and the copies already delivered to the tenant's
//! endpoints — those are in the tenant's own systems, outside the portal.
//!
//! Everything happens in one transaction with one audit event (`user_integrations.erase`,
//! counts only). A second run finds nothing left to change and reports zeros.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::integrations::{
    external_ref, integration, sync_failure, sync_run, webhook_attempt, webhook_endpoint,
    webhook_message,
};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::privacy::{
    DataSubject, ERASED, Erasure, contains, mentioning, rewrite, scrub, scrubbed,
};
use portal_kit::{Actor, ActorKind, ApiError, ApiResult};

use super::USER_ENTITY;

/// What an erasure did, table by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Links between them and records of connected systems, deleted.
    pub external_refs: u64,
    /// Webhook endpoints changed: owner cleared, description scrubbed, or both.
    pub webhook_endpoints: u64,
    /// Of those, the ones they had registered (owner cleared).
    pub webhook_endpoints_owned: u64,
    /// Sync runs changed: requester cleared, error scrubbed, or both.
    pub sync_runs: u64,
    /// Of those, the ones they had started (requester cleared).
    pub sync_runs_requested: u64,
    /// Records skipped by a sync whose error or remote id was scrubbed.
    pub sync_failures: u64,
    /// Webhook messages whose body was scrubbed.
    pub webhook_messages: u64,
    /// Delivery attempts whose response excerpt or error was scrubbed.
    pub webhook_attempts: u64,
    /// Connections whose last error was scrubbed.
    pub integrations: u64,
}

/// Erases `subject` from integrations, in one transaction audited as
/// `user_integrations.erase` by `erasure.actor` (the details hold counts only).
pub async fn erase_user(
    db: &DatabaseConnection,
    subject: DataSubject,
    erasure: &Erasure,
) -> ApiResult<Erased> {
    let identifiers = erasure.identifiers.as_slice();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let (endpoints, endpoints_owned) = webhook_endpoints(&txn, subject, identifiers).await?;
    let (runs, runs_requested) = sync_runs(&txn, subject, identifiers).await?;
    let erased = Erased {
        external_refs: external_refs(&txn, subject).await?,
        webhook_endpoints: endpoints,
        webhook_endpoints_owned: endpoints_owned,
        sync_runs: runs,
        sync_runs_requested: runs_requested,
        sync_failures: sync_failures(&txn, subject, identifiers).await?,
        webhook_messages: webhook_messages(&txn, subject, identifiers).await?,
        webhook_attempts: webhook_attempts(&txn, subject, identifiers).await?,
        integrations: integrations(&txn, subject, identifiers).await?,
    };
    AuditEvent::success("user_integrations.erase", "user", subject.user_id)
        .in_tenant(subject.tenant_id)
        .with_details(json!({
            "externalReferences": erased.external_refs,
            "webhookEndpoints": erased.webhook_endpoints,
            "webhookEndpointsOwned": erased.webhook_endpoints_owned,
            "syncRuns": erased.sync_runs,
            "syncRunsRequested": erased.sync_runs_requested,
            "syncFailures": erased.sync_failures,
            "webhookMessages": erased.webhook_messages,
            "webhookAttempts": erased.webhook_attempts,
            "integrations": erased.integrations,
        }))
        .record(&txn, &erasure.actor, &erasure.meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(erased)
}

/// Deletes the tenant's links between the person and remote records; how many.
async fn external_refs(txn: &DatabaseTransaction, subject: DataSubject) -> ApiResult<u64> {
    let deleted = external_ref::Entity::delete_many()
        .filter(external_ref::Column::TenantId.eq(subject.tenant_id))
        .filter(external_ref::Column::EntityType.eq(USER_ENTITY))
        .filter(external_ref::Column::EntityId.eq(subject.user_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(deleted.rows_affected)
}

/// Clears the owner of the tenant's endpoints the person registered and scrubs the
/// descriptions that mention them; how many endpoints changed, and how many were theirs.
async fn webhook_endpoints(
    txn: &DatabaseTransaction,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<(u64, u64)> {
    let candidates = Condition::any()
        .add(contains(
            Expr::col(webhook_endpoint::Column::Owner),
            &subject.user_id.to_string(),
        ))
        .add(mentioning(
            &Expr::col(webhook_endpoint::Column::Description),
            identifiers,
        ));
    let select = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(subject.tenant_id))
        .filter(candidates);
    let mut owned = 0;
    let changed = rewrite(
        txn,
        select,
        webhook_endpoint::Column::Id,
        |row: &webhook_endpoint::Model| row.id,
        |row: &webhook_endpoint::Model| {
            let theirs = row
                .owner
                .as_ref()
                .is_some_and(|owner| owned_by(owner, subject.user_id));
            let description = scrubbed(&row.description, identifiers);
            if !theirs && description.is_none() {
                return None;
            }
            let mut update = webhook_endpoint::Entity::update_many()
                .filter(webhook_endpoint::Column::TenantId.eq(subject.tenant_id));
            if theirs {
                owned += 1;
                update = update.col_expr(
                    webhook_endpoint::Column::Owner,
                    Expr::value(Option::<Value>::None),
                );
            }
            if let Some(description) = description {
                update = update.col_expr(
                    webhook_endpoint::Column::Description,
                    Expr::value(description),
                );
            }
            Some(update)
        },
    )
    .await?;
    Ok((changed, owned))
}

/// Clears the requester of the tenant's sync runs the person started and scrubs the run
/// errors that mention them; how many runs changed, and how many they had started.
async fn sync_runs(
    txn: &DatabaseTransaction,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<(u64, u64)> {
    let candidates = Condition::any()
        .add(contains(
            Expr::col(sync_run::Column::RequestedBy),
            &subject.user_id.to_string(),
        ))
        .add(mentioning(&Expr::col(sync_run::Column::Error), identifiers));
    let select = sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(subject.tenant_id))
        .filter(candidates);
    let mut requested = 0;
    let changed = rewrite(
        txn,
        select,
        sync_run::Column::Id,
        |row: &sync_run::Model| row.id,
        |row: &sync_run::Model| {
            let theirs = requested_by(&row.requested_by, subject.user_id);
            let error = row
                .error
                .as_deref()
                .and_then(|error| scrubbed(error, identifiers));
            if !theirs && error.is_none() {
                return None;
            }
            let mut update = sync_run::Entity::update_many()
                .filter(sync_run::Column::TenantId.eq(subject.tenant_id));
            if theirs {
                requested += 1;
                // The column is required: it keeps that a person (not the schedule)
                // started the run, and no longer who.
                update = update.col_expr(
                    sync_run::Column::RequestedBy,
                    Expr::value(json!({ "kind": "user" })),
                );
            }
            if let Some(error) = error {
                update = update.col_expr(sync_run::Column::Error, Expr::value(error));
            }
            Some(update)
        },
    )
    .await?;
    Ok((changed, requested))
}

/// Scrubs the tenant's skipped records whose error or remote id mentions the person; how
/// many.
async fn sync_failures(
    txn: &DatabaseTransaction,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<u64> {
    let candidates = Condition::any()
        .add(mentioning(
            &Expr::col(sync_failure::Column::Error),
            identifiers,
        ))
        .add(mentioning(
            &Expr::col(sync_failure::Column::ExternalId),
            identifiers,
        ));
    let select = sync_failure::Entity::find()
        .filter(sync_failure::Column::TenantId.eq(subject.tenant_id))
        .filter(candidates);
    rewrite(
        txn,
        select,
        sync_failure::Column::Id,
        |row: &sync_failure::Model| row.id,
        |row: &sync_failure::Model| {
            let error = scrubbed(&row.error, identifiers);
            let external_id = scrubbed(&row.external_id, identifiers);
            if error.is_none() && external_id.is_none() {
                return None;
            }
            let mut update = sync_failure::Entity::update_many()
                .filter(sync_failure::Column::TenantId.eq(subject.tenant_id));
            if let Some(error) = error {
                update = update.col_expr(sync_failure::Column::Error, Expr::value(error));
            }
            if let Some(external_id) = external_id {
                update =
                    update.col_expr(sync_failure::Column::ExternalId, Expr::value(external_id));
            }
            Some(update)
        },
    )
    .await
}

/// Scrubs the bodies of the tenant's webhook messages that mention the person (their
/// user id or an identifier); how many.
async fn webhook_messages(
    txn: &DatabaseTransaction,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<u64> {
    let needles: Vec<String> = identifiers
        .iter()
        .cloned()
        .chain([subject.user_id.to_string()])
        .collect();
    let select = webhook_message::Entity::find()
        .filter(webhook_message::Column::TenantId.eq(subject.tenant_id))
        .filter(mentioning(
            &Expr::col(webhook_message::Column::Body),
            &needles,
        ));
    rewrite(
        txn,
        select,
        webhook_message::Column::Id,
        |row: &webhook_message::Model| row.id,
        |row: &webhook_message::Model| {
            let mut body = row.body.clone();
            if !scrub_body(&mut body, identifiers, subject.user_id) {
                return None;
            }
            Some(
                webhook_message::Entity::update_many()
                    .col_expr(webhook_message::Column::Body, Expr::value(body))
                    .filter(webhook_message::Column::TenantId.eq(subject.tenant_id)),
            )
        },
    )
    .await
}

/// Scrubs the tenant's delivery attempts whose response excerpt or error mentions the
/// person; how many.
async fn webhook_attempts(
    txn: &DatabaseTransaction,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<u64> {
    let candidates = Condition::any()
        .add(mentioning(
            &Expr::col(webhook_attempt::Column::ResponseExcerpt),
            identifiers,
        ))
        .add(mentioning(
            &Expr::col(webhook_attempt::Column::Error),
            identifiers,
        ));
    let select = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::TenantId.eq(subject.tenant_id))
        .filter(candidates);
    rewrite(
        txn,
        select,
        webhook_attempt::Column::Id,
        |row: &webhook_attempt::Model| row.id,
        |row: &webhook_attempt::Model| {
            let excerpt = row
                .response_excerpt
                .as_deref()
                .and_then(|excerpt| scrubbed(excerpt, identifiers));
            let error = row
                .error
                .as_deref()
                .and_then(|error| scrubbed(error, identifiers));
            if excerpt.is_none() && error.is_none() {
                return None;
            }
            let mut update = webhook_attempt::Entity::update_many()
                .filter(webhook_attempt::Column::TenantId.eq(subject.tenant_id));
            if let Some(excerpt) = excerpt {
                update = update.col_expr(
                    webhook_attempt::Column::ResponseExcerpt,
                    Expr::value(excerpt),
                );
            }
            if let Some(error) = error {
                update = update.col_expr(webhook_attempt::Column::Error, Expr::value(error));
            }
            Some(update)
        },
    )
    .await
}

/// Scrubs the last error of the tenant's connections that mentions the person; how many.
async fn integrations(
    txn: &DatabaseTransaction,
    subject: DataSubject,
    identifiers: &[String],
) -> ApiResult<u64> {
    let select = integration::Entity::find()
        .filter(integration::Column::TenantId.eq(subject.tenant_id))
        .filter(mentioning(
            &Expr::col(integration::Column::LastError),
            identifiers,
        ));
    rewrite(
        txn,
        select,
        integration::Column::Id,
        |row: &integration::Model| row.id,
        |row: &integration::Model| {
            let error = row
                .last_error
                .as_deref()
                .and_then(|error| scrubbed(error, identifiers))?;
            Some(
                integration::Entity::update_many()
                    .col_expr(integration::Column::LastError, Expr::value(error))
                    .filter(integration::Column::TenantId.eq(subject.tenant_id)),
            )
        },
    )
    .await
}

/// A webhook message's `body` scrubbed of `identifiers`, and every string in it equal to
/// `user_id` replaced; whether it changed.
fn scrub_body(body: &mut Value, identifiers: &[String], user_id: Uuid) -> bool {
    let named = scrub(body, identifiers);
    erase_id(body, &user_id.to_string()) | named
}

/// Replaces every string of `value` equal to `id` (ignoring case and surrounding space)
/// with [`ERASED`]; whether any was.
fn erase_id(value: &mut Value, id: &str) -> bool {
    match value {
        Value::String(text) => {
            let hit = text.trim().eq_ignore_ascii_case(id);
            if hit {
                *text = ERASED.to_owned();
            }
            hit
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| erase_id(item, id) | changed),
        Value::Object(members) => members
            .values_mut()
            .fold(false, |changed, item| erase_id(item, id) | changed),
        _ => false,
    }
}

/// Whether an endpoint's `owner` (a serialized [`Actor`]) is `user_id` as a user; one
/// that no longer reads as an actor is theirs when its `id` is.
fn owned_by(owner: &Value, user_id: Uuid) -> bool {
    match serde_json::from_value::<Actor>(owner.clone()) {
        Ok(actor) => actor.kind == ActorKind::User && actor.id == Some(user_id),
        Err(_) => uuid_member(owner, "id") == Some(user_id),
    }
}

/// Whether a sync run's `requested_by` (`{"kind", "id"}`) is `user_id` as a user.
fn requested_by(requested: &Value, user_id: Uuid) -> bool {
    requested.get("kind").and_then(Value::as_str) == Some("user")
        && uuid_member(requested, "id") == Some(user_id)
}

/// The UUID in `value`'s member `name`, if it holds one.
fn uuid_member(value: &Value, name: &str) -> Option<Uuid> {
    value
        .get(name)
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use portal_entities::platform::{audit_event, domain_event};
    use portal_kit::RequestMeta;
    use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, DbBackend, Schema, Set};

    use super::*;
    use crate::store::webhooks::owner_value;

    const EMAIL: &str = "Bob@Acme.example";
    const NAME: &str = "Bob Builder";

    fn ids() -> Vec<String> {
        vec![EMAIL.into(), NAME.into()]
    }

    #[test]
    fn a_body_loses_their_id_address_and_name() {
        let user = Uuid::now_v7();
        let mut body = json!({
            "type": "user.updated",
            "data": {
                "id": user.to_string().to_uppercase(),
                "email": "bob@acme.example",
                "displayName": NAME,
                "note": "mailed bob@acme.example",
                "members": [{ "userId": user }, { "userId": "someone-else" }],
                "path": format!("/users/{user}"),
            },
        });
        assert!(scrub_body(&mut body, &ids(), user));
        assert_eq!(
            body,
            json!({
                "type": "user.updated",
                "data": {
                    "id": ERASED,
                    "email": ERASED,
                    "displayName": ERASED,
                    "note": format!("mailed {ERASED}"),
                    "members": [{ "userId": ERASED }, { "userId": "someone-else" }],
                    "path": format!("/users/{user}"),
                },
            })
        );
        // Scrubbed once, nothing is left to scrub.
        assert!(!scrub_body(&mut body, &ids(), user));
    }

    #[test]
    fn only_they_as_a_user_own_an_endpoint_or_requested_a_run() {
        let (user, tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let theirs = owner_value(&Actor::user(user, tenant, vec!["admin".into()])).expect("owner");
        let other = owner_value(&Actor::user(Uuid::now_v7(), tenant, Vec::new())).expect("owner");
        assert!(owned_by(&theirs, user));
        assert!(!owned_by(&other, user));
        assert!(owned_by(&json!({ "id": user.to_string() }), user));
        assert!(requested_by(&json!({ "kind": "user", "id": user }), user));
        assert!(!requested_by(
            &json!({ "kind": "service", "id": user }),
            user
        ));
        assert!(!requested_by(&json!({ "kind": "user" }), user));
        assert!(!requested_by(&json!({ "kind": "scheduler" }), user));
    }

    #[test]
    fn text_is_scrubbed_only_when_it_mentions_them() {
        assert_eq!(
            scrubbed("400: bob@acme.example exists", &ids()).as_deref(),
            Some("400: [erased] exists")
        );
        // A name in free text is not matched (only under a name member of JSON).
        assert_eq!(scrubbed(" bob builder ", &ids()), None);
        assert_eq!(scrubbed("Bobby", &ids()), None);
        assert_eq!(scrubbed("anything", &[]), None);
    }

    /// The tables an erasure touches, and those its audit event writes.
    async fn tables() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        let schema = Schema::new(DbBackend::Sqlite);
        for statement in [
            schema.create_table_from_entity(integration::Entity),
            schema.create_table_from_entity(external_ref::Entity),
            schema.create_table_from_entity(webhook_endpoint::Entity),
            schema.create_table_from_entity(webhook_message::Entity),
            schema.create_table_from_entity(webhook_attempt::Entity),
            schema.create_table_from_entity(sync_run::Entity),
            schema.create_table_from_entity(sync_failure::Entity),
            schema.create_table_from_entity(audit_event::Entity),
            schema.create_table_from_entity(domain_event::Entity),
        ] {
            db.execute(&statement).await.expect("table");
        }
        db
    }

    fn endpoint(
        tenant: Uuid,
        owner: Option<Value>,
        description: &str,
    ) -> webhook_endpoint::ActiveModel {
        let now = Utc::now();
        webhook_endpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            url: Set("https://hooks.example/in".into()),
            description: Set(description.into()),
            event_types: Set(json!(["user.updated"])),
            enabled: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            secret_sealed: Set(None),
            previous_secret_sealed: Set(None),
            previous_secret_until: Set(None),
            owner: Set(owner),
            payload_mode: Set("FULL".into()),
            disabled_reason: Set(None),
            failing_since: Set(None),
        }
    }

    fn message(tenant: Uuid, endpoint_id: Uuid, body: Value) -> webhook_message::ActiveModel {
        webhook_message::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            endpoint_id: Set(endpoint_id),
            event_id: Set(None),
            event_type: Set("user.updated".into()),
            body: Set(body),
            status: Set("DELIVERED".into()),
            attempts: Set(1),
            created_at: Set(Utc::now()),
            delivered_at: Set(None),
        }
    }

    fn run(
        tenant: Uuid,
        integration_id: Uuid,
        requested_by: Value,
        error: Option<&str>,
    ) -> sync_run::ActiveModel {
        sync_run::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            integration_id: Set(integration_id),
            mode: Set("BACKFILL".into()),
            status: Set("FAILED".into()),
            from_cursor: Set(None),
            cursor: Set(None),
            created: Set(0),
            updated: Set(0),
            unchanged: Set(0),
            deleted: Set(0),
            failed: Set(1),
            pages: Set(1),
            requested_by: Set(requested_by),
            started_at: Set(Utc::now()),
            finished_at: Set(None),
            error: Set(error.map(str::to_owned)),
        }
    }

    fn link(
        tenant: Uuid,
        integration_id: Uuid,
        entity_type: &str,
        entity_id: Uuid,
    ) -> external_ref::ActiveModel {
        let now = Utc::now();
        external_ref::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            integration_id: Set(integration_id),
            external_type: Set("contact".into()),
            external_id: Set(Uuid::now_v7().to_string()),
            entity_type: Set(entity_type.into()),
            entity_id: Set(entity_id),
            fingerprint: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
    }

    #[tokio::test]
    async fn an_erasure_unlinks_and_scrubs_only_them_in_their_tenant_and_repeats_as_a_no_op() {
        let db = tables().await;
        let (tenant, elsewhere) = (Uuid::now_v7(), Uuid::now_v7());
        let user = Uuid::now_v7();
        let colleague = Uuid::now_v7();
        let now = Utc::now();
        let crm = integration::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            kind: Set("CRM".into()),
            provider: Set("hubspot".into()),
            name: Set("HubSpot".into()),
            status: Set("ACTIVE".into()),
            last_sync_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            settings: Set(None),
            credentials_sealed: Set(None),
            health: Set("DEGRADED".into()),
            last_error: Set(Some(
                "the remote refused the request (400): bob@acme.example".into(),
            )),
            last_checked_at: Set(None),
            consecutive_failures: Set(1),
            circuit_open_until: Set(None),
            sync_cursor: Set(None),
            last_success_at: Set(None),
            last_error_kind: Set(Some("BAD_DATA".into())),
            synced_through: Set(None),
        }
        .insert(&db)
        .await
        .expect("integration");

        link(tenant, crm.id, USER_ENTITY, user)
            .insert(&db)
            .await
            .expect("their link");
        link(tenant, crm.id, "Account", user)
            .insert(&db)
            .await
            .expect("an account link");
        link(elsewhere, crm.id, USER_ENTITY, user)
            .insert(&db)
            .await
            .expect("another tenant");

        let owner = owner_value(&Actor::user(user, tenant, Vec::new())).expect("owner");
        let theirs = endpoint(tenant, Some(owner.clone()), "Bob's hooks")
            .insert(&db)
            .await
            .expect("their endpoint");
        let colleagues = owner_value(&Actor::user(colleague, tenant, Vec::new())).expect("owner");
        let described = endpoint(tenant, Some(colleagues.clone()), "for bob@acme.example")
            .insert(&db)
            .await
            .expect("an endpoint mentioning them");
        let foreign = endpoint(elsewhere, Some(owner.clone()), "for bob@acme.example")
            .insert(&db)
            .await
            .expect("another tenant's endpoint");

        let body = json!({ "data": { "id": user, "email": "bob@acme.example" } });
        let about = message(tenant, theirs.id, body.clone())
            .insert(&db)
            .await
            .expect("message");
        let other = message(tenant, theirs.id, json!({ "data": { "id": colleague } }))
            .insert(&db)
            .await
            .expect("message");
        let away = message(elsewhere, foreign.id, body.clone())
            .insert(&db)
            .await
            .expect("message");

        let attempt = webhook_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            message_id: Set(about.id),
            endpoint_id: Set(theirs.id),
            attempt: Set(1),
            started_at: Set(now),
            outcome: Set("FAILED".into()),
            status_code: Set(Some(422)),
            latency_ms: Set(12),
            error: Set(None),
            response_excerpt: Set(Some("{\"rejected\":\"Bob@acme.example\"}".into())),
            next_attempt_at: Set(None),
        }
        .insert(&db)
        .await
        .expect("attempt");

        let started = run(tenant, crm.id, json!({ "kind": "user", "id": user }), None)
            .insert(&db)
            .await
            .expect("their run");
        let scheduled = run(
            tenant,
            crm.id,
            json!({ "kind": "scheduler" }),
            Some("rejected bob@acme.example"),
        )
        .insert(&db)
        .await
        .expect("a scheduled run");
        let failure = sync_failure::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            run_id: Set(scheduled.id),
            external_type: Set("contact".into()),
            external_id: Set("501".into()),
            error: Set("CONFLICT: bob@acme.example is taken".into()),
            created_at: Set(now),
        }
        .insert(&db)
        .await
        .expect("failure");

        let erasure = Erasure {
            identifiers: ids(),
            actor: Actor::user(user, tenant, Vec::new()),
            meta: RequestMeta::default(),
        };
        let subject = DataSubject {
            tenant_id: tenant,
            user_id: user,
        };
        let erased = erase_user(&db, subject, &erasure).await.expect("erase");
        assert_eq!(
            erased,
            Erased {
                external_refs: 1,
                webhook_endpoints: 2,
                webhook_endpoints_owned: 1,
                sync_runs: 2,
                sync_runs_requested: 1,
                sync_failures: 1,
                webhook_messages: 1,
                webhook_attempts: 1,
                integrations: 1,
            }
        );

        let remaining = external_ref::Entity::find().all(&db).await.expect("links");
        assert_eq!(remaining.len(), 2);
        assert!(
            remaining
                .iter()
                .all(|l| l.entity_type != USER_ENTITY || l.tenant_id == elsewhere)
        );

        let read = |id: Uuid| webhook_endpoint::Entity::find_by_id(id).one(&db);
        let theirs = read(theirs.id).await.expect("read").expect("kept");
        assert_eq!(
            (theirs.owner, theirs.description.as_str()),
            (None, "Bob's hooks")
        );
        let described = read(described.id).await.expect("read").expect("kept");
        assert_eq!(described.owner, Some(colleagues));
        assert_eq!(described.description, format!("for {ERASED}"));
        let foreign = read(foreign.id).await.expect("read").expect("kept");
        assert_eq!(foreign.owner, Some(owner));
        assert_eq!(foreign.description, "for bob@acme.example");

        let body_of = |id: Uuid| webhook_message::Entity::find_by_id(id).one(&db);
        assert_eq!(
            body_of(about.id).await.expect("read").expect("kept").body,
            json!({ "data": { "id": ERASED, "email": ERASED } })
        );
        assert_eq!(
            body_of(other.id).await.expect("read").expect("kept").body,
            other.body
        );
        assert_eq!(
            body_of(away.id).await.expect("read").expect("kept").body,
            body
        );

        let attempt = webhook_attempt::Entity::find_by_id(attempt.id)
            .one(&db)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(
            attempt.response_excerpt.as_deref(),
            Some(format!("{{\"rejected\":\"{ERASED}\"}}").as_str())
        );

        let run_of = |id: Uuid| sync_run::Entity::find_by_id(id).one(&db);
        let started = run_of(started.id).await.expect("read").expect("kept");
        assert_eq!(started.requested_by, json!({ "kind": "user" }));
        let scheduled = run_of(scheduled.id).await.expect("read").expect("kept");
        assert_eq!(scheduled.requested_by, json!({ "kind": "scheduler" }));
        assert_eq!(scheduled.error, Some(format!("rejected {ERASED}")));
        let failure = sync_failure::Entity::find_by_id(failure.id)
            .one(&db)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(failure.error, format!("CONFLICT: {ERASED} is taken"));
        let crm = integration::Entity::find_by_id(crm.id)
            .one(&db)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(
            crm.last_error,
            Some(format!("the remote refused the request (400): {ERASED}"))
        );

        let audited = audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq("user_integrations.erase"))
            .all(&db)
            .await
            .expect("audit");
        assert_eq!(audited.len(), 1);

        let again = erase_user(&db, subject, &erasure)
            .await
            .expect("erase again");
        assert_eq!(again, Erased::default());
    }
}
