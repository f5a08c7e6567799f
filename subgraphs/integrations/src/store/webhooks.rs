//! Webhook delivery state: signing secrets (sealed with the tenant's key), the dispatch of
//! committed domain events to the endpoints that subscribe to them, the messages to
//! deliver and the delivery log.
//!
//! The dispatcher is a consumer of the event sequence (`portal_kit::events::sequence`):
//! one dispatcher at a time (an advisory lock on PostgreSQL, the write lock on SQLite)
//! reads the events after its position, writes one message and one delivery job per
//! subscribing endpoint, and moves its position — all in one transaction, so an event is
//! dispatched exactly once and a crash repeats nothing or everything.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::integrations::{webhook_attempt, webhook_endpoint, webhook_message};
use portal_kit::audit::AuditEvent;
use portal_kit::db::{BeginWrite, begin_exclusive};
use portal_kit::envelope::{Binding, TenantKeys};
use portal_kit::events::sequence;
use portal_kit::jobs::{self, NewJob};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::catalogue::{self, Occurrence, PayloadMode, Rights};
use crate::domain::webhooks as signing;

/// The job kind that delivers one message.
pub const DELIVER_KIND: &str = "webhook.deliver";
/// The job kind that tells the people who may re-enable an endpoint that the platform
/// disabled it (payload `{ endpointId, reason }`).
pub const DISABLED_NOTICE_KIND: &str = "webhook.disabled_notice";
/// The dispatcher's name in `event_cursors`.
pub const CONSUMER: &str = "webhooks";
/// What a signing secret is sealed as.
const SECRET_PURPOSE: &str = "webhook_endpoint.secret";
/// The PostgreSQL advisory lock held while dispatching (one dispatcher at a time).
const DISPATCH_LOCK: i64 = 0x706f_7274_616c_5748; // "portalWH"
/// Most messages one replay of a time range queues.
pub const REPLAY_MAX: u64 = 1_000;

/// A message's delivery state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer arrived.
    Delivered,
    /// Given up: attempts exhausted, 410 Gone, or the endpoint was disabled.
    Failed,
}

impl MessageStatus {
    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses the storage form; unknown values read as `Failed`.
    pub fn from_db(value: &str) -> Self {
        match value {
            "PENDING" => Self::Pending,
            "DELIVERED" => Self::Delivered,
            _ => Self::Failed,
        }
    }
}

/// A new signing secret: its printed form (shown once) and its stored, sealed form.
pub struct NewSecret {
    /// `whsec_…`, for the caller.
    pub printed: String,
    /// What the row keeps.
    pub sealed: String,
}

/// Makes a signing secret for `endpoint_id`, sealed with its tenant's key.
pub async fn new_secret(
    keys: &TenantKeys,
    tenant_id: Uuid,
    endpoint_id: Uuid,
) -> ApiResult<NewSecret> {
    let bytes = portal_kit::secret::random_bytes::<{ signing::SECRET_BYTES }>()?;
    let sealed = keys.seal(binding(tenant_id, endpoint_id), &bytes).await?;
    Ok(NewSecret {
        printed: signing::secret_to_string(&bytes),
        sealed: super::sealed_to_text(&sealed),
    })
}

/// The bytes of a stored secret of `endpoint_id`.
pub async fn open_secret(
    keys: &TenantKeys,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    stored: &str,
) -> ApiResult<Vec<u8>> {
    let sealed = super::sealed_from_text(stored)
        .ok_or_else(|| ApiError::internal("a webhook signing secret cannot be read"))?;
    keys.open(binding(tenant_id, endpoint_id), &sealed).await
}

fn binding(tenant_id: Uuid, endpoint_id: Uuid) -> Binding<'static> {
    Binding {
        purpose: SECRET_PURPOSE,
        tenant_id,
        object_id: endpoint_id,
    }
}

/// Replaces the signing secret of an endpoint of the actor's tenant; the one it replaces
/// keeps signing (a second signature) for `overlap`. An endpoint without an owner (made
/// before owners) gets the actor as its owner.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    keys: &TenantKeys,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    overlap: Duration,
) -> ApiResult<(webhook_endpoint::Model, String)> {
    let tenant_id = actor.tenant()?;
    let secret = new_secret(keys, tenant_id, id).await?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = super::webhook_endpoint(&txn, tenant_id, id).await?;
    let keep_previous = overlap > Duration::zero() && current.secret_sealed.is_some();
    let adopt = current.owner.is_none();
    let mut active: webhook_endpoint::ActiveModel = current.clone().into();
    active.previous_secret_sealed = Set(current.secret_sealed.filter(|_| keep_previous));
    active.previous_secret_until = Set(keep_previous.then(|| now + overlap));
    active.secret_sealed = Set(Some(secret.sealed));
    if adopt {
        active.owner = Set(Some(owner_value(actor)?));
    }
    active.updated_at = Set(now);
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("webhook_endpoint.secret_rotate", "webhook_endpoint", id)
        .with_details(json!({
            "previousValidUntil": updated.previous_secret_until,
            "ownerAdopted": adopt,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok((updated, secret.printed))
}

/// The stored form of an endpoint's owner.
pub fn owner_value(actor: &Actor) -> ApiResult<Value> {
    // Only who they are: their rights are read afresh at every dispatch.
    let owner = Actor {
        session_id: None,
        grants: Vec::new(),
        delegation: None,
        ..actor.clone()
    };
    serde_json::to_value(owner).map_err(|err| ApiError::internal(format!("owner: {err}")))
}

/// What a dispatch asks about an endpoint's owner.
#[async_trait::async_trait]
pub trait Owners: Send + Sync {
    /// What `owner` may read now, or `None` when they are no longer active (then their
    /// endpoints receive nothing).
    async fn rights(&self, owner: &Actor) -> ApiResult<Option<Box<dyn Rights + Send + Sync>>>;
}

/// Numbers newly committed events, then dispatches up to `batch` of them to the
/// endpoints subscribing to them; how many events it took (0: none waiting).
pub async fn dispatch(db: &DatabaseConnection, owners: &dyn Owners, batch: u64) -> ApiResult<u64> {
    sequence::assign(db, batch.max(1_000)).await?;
    // Nothing new (the usual answer of an idle poll): no write transaction, no lock.
    let seen = sequence::position(db, CONSUMER).await?;
    if sequence::after(db, seen, 1).await?.is_empty() {
        return Ok(0);
    }
    let txn = begin_exclusive(db, DISPATCH_LOCK)
        .await
        .map_err(ApiError::from_db)?;
    let position = sequence::position(&txn, CONSUMER).await?;
    let events = sequence::after(&txn, position, batch).await?;
    let Some(last) = events.last().and_then(|e| e.sequence) else {
        txn.commit().await.map_err(ApiError::from_db)?;
        return Ok(0);
    };
    let tenants: std::collections::BTreeSet<Uuid> =
        events.iter().filter_map(|e| e.tenant_id).collect();
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .filter(webhook_endpoint::Column::TenantId.is_in(tenants))
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let mut rights: HashMap<Uuid, Option<Box<dyn Rights + Send + Sync>>> = HashMap::new();
    let now = Utc::now();
    for event in &events {
        let Some(listed) = catalogue::find(&event.event_type) else {
            continue;
        };
        let subscribed = endpoints.iter().filter(|endpoint| {
            Some(endpoint.tenant_id) == event.tenant_id
                // An endpoint receives what happens after it exists.
                && event.occurred_at >= endpoint.created_at
                && super::stored_event_types(&endpoint.event_types).contains(&event.event_type)
        });
        for endpoint in subscribed {
            let owner_rights = match rights.entry(endpoint.id) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    let found = match owner_of(endpoint) {
                        Some(owner) => owners.rights(&owner).await?,
                        None => None,
                    };
                    vacant.insert(found)
                }
            };
            let Some(owner_rights) = owner_rights else {
                continue;
            };
            let occurrence = Occurrence {
                event_id: event.id,
                subject_id: event.subject_id,
                occurred_at: event.occurred_at,
                payload: &event.payload,
            };
            let mode = PayloadMode::from_db(&endpoint.payload_mode);
            let Some(body) = catalogue::body(listed, occurrence, mode, owner_rights.as_ref())
            else {
                continue;
            };
            queue_message(&txn, endpoint, Some(event.id), listed.event_type, body, now).await?;
        }
    }
    sequence::advance(&txn, CONSUMER, last).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(events.len() as u64)
}

/// The owner an endpoint's payloads are trimmed for, if it has one that reads back.
fn owner_of(endpoint: &webhook_endpoint::Model) -> Option<Actor> {
    let owner: Actor = serde_json::from_value(endpoint.owner.clone()?).ok()?;
    // An owner of another tenant would be a corrupt row: deliver nothing.
    (owner.tenant_id == Some(endpoint.tenant_id)).then_some(owner)
}

/// Writes a message for `endpoint` and the job that delivers it.
async fn queue_message(
    db: &impl ConnectionTrait,
    endpoint: &webhook_endpoint::Model,
    event_id: Option<Uuid>,
    event_type: &str,
    body: Value,
    now: DateTime<Utc>,
) -> ApiResult<webhook_message::Model> {
    let message = webhook_message::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(endpoint.tenant_id),
        endpoint_id: Set(endpoint.id),
        event_id: Set(event_id),
        event_type: Set(event_type.to_owned()),
        body: Set(body),
        status: Set(MessageStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        created_at: Set(now),
        delivered_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    enqueue_delivery(db, &message, now).await?;
    Ok(message)
}

/// Queues the job that delivers `message` now.
async fn enqueue_delivery(
    db: &impl ConnectionTrait,
    message: &webhook_message::Model,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let mut job = NewJob::new(DELIVER_KIND, json!({ "messageId": message.id }))
        // The delivery decides when to give up (its own schedule); the job runner's
        // limit only backs that up.
        .max_attempts(signing::RETRY_DELAYS.len() as i32 + 2);
    job.tenant_id = Some(message.tenant_id);
    jobs::enqueue(db, now, job).await?;
    Ok(())
}

/// Queues a test delivery (`webhook.ping`) to an endpoint of the actor's tenant.
pub async fn ping(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    endpoint_id: Uuid,
) -> ApiResult<webhook_message::Model> {
    let tenant_id = actor.tenant()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let endpoint = super::webhook_endpoint(&txn, tenant_id, endpoint_id).await?;
    let body = catalogue::ping_body(endpoint.id, now);
    let message = queue_message(&txn, &endpoint, None, catalogue::PING, body, now).await?;
    AuditEvent::success("webhook_endpoint.ping", "webhook_endpoint", endpoint_id)
        .with_details(json!({ "messageId": message.id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(message)
}

/// Delivers a message of the actor's tenant again (same id and body: receivers that
/// already have it drop it), whatever its state.
pub async fn replay_message(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
) -> ApiResult<webhook_message::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let message = messages_in(tenant_id)
        .filter(webhook_message::Column::Id.eq(id))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("webhook message"))?;
    let replayed = requeue(&txn, message).await?;
    AuditEvent::success("webhook_message.replay", "webhook_message", id)
        .with_details(json!({ "endpointId": replayed.endpoint_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(replayed)
}

/// What a replay of a time range covers.
pub struct ReplayRange {
    /// The endpoint (of the actor's tenant).
    pub endpoint_id: Uuid,
    /// Messages made at or after this instant…
    pub since: DateTime<Utc>,
    /// …and before this one.
    pub until: DateTime<Utc>,
    /// Only messages that were not delivered.
    pub failed_only: bool,
}

/// Delivers again every message of an endpoint made in a time range (at most
/// [`REPLAY_MAX`], oldest first); how many were queued.
pub async fn replay_messages(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    range: ReplayRange,
) -> ApiResult<u64> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    super::webhook_endpoint(&txn, tenant_id, range.endpoint_id).await?;
    let mut select = messages_in(tenant_id)
        .filter(webhook_message::Column::EndpointId.eq(range.endpoint_id))
        .filter(webhook_message::Column::CreatedAt.gte(range.since))
        .filter(webhook_message::Column::CreatedAt.lt(range.until));
    if range.failed_only {
        select = select.filter(webhook_message::Column::Status.eq(MessageStatus::Failed.as_str()));
    }
    let found = select
        .order_by_asc(webhook_message::Column::Id)
        .limit(REPLAY_MAX + 1)
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if found.len() as u64 > REPLAY_MAX {
        return Err(ApiError::invalid(
            "input.since",
            format!("the range holds more than {REPLAY_MAX} messages: replay a shorter one"),
        ));
    }
    let count = found.len() as u64;
    for message in found {
        requeue(&txn, message).await?;
    }
    AuditEvent::success(
        "webhook_endpoint.replay",
        "webhook_endpoint",
        range.endpoint_id,
    )
    .with_details(json!({
        "since": range.since,
        "until": range.until,
        "failedOnly": range.failed_only,
        "messages": count,
    }))
    .record(&txn, actor, meta)
    .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(count)
}

async fn requeue(
    db: &impl ConnectionTrait,
    message: webhook_message::Model,
) -> ApiResult<webhook_message::Model> {
    let mut active: webhook_message::ActiveModel = message.into();
    active.status = Set(MessageStatus::Pending.as_str().to_owned());
    let message = active.update(db).await.map_err(ApiError::from_db)?;
    enqueue_delivery(db, &message, Utc::now()).await?;
    Ok(message)
}

/// The tenant's webhook messages.
fn messages_in(tenant_id: Uuid) -> Select<webhook_message::Entity> {
    webhook_message::Entity::find().filter(webhook_message::Column::TenantId.eq(tenant_id))
}

/// A page of an endpoint's messages, oldest first; `status` filters.
pub async fn messages_of_endpoint(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    status: Option<MessageStatus>,
    page: PageRequest,
) -> ApiResult<Page<webhook_message::Model>> {
    let mut select =
        messages_in(tenant_id).filter(webhook_message::Column::EndpointId.eq(endpoint_id));
    if let Some(status) = status {
        select = select.filter(webhook_message::Column::Status.eq(status.as_str()));
    }
    page.fetch(db, select, webhook_message::Column::Id).await
}

/// The delivery log of each of `message_ids` (of the tenant), in attempt order.
pub async fn attempts_by_messages(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    message_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<webhook_attempt::Model>>> {
    let rows = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::TenantId.eq(tenant_id))
        .filter(webhook_attempt::Column::MessageId.is_in(message_ids))
        .order_by_asc(webhook_attempt::Column::Attempt)
        .order_by_asc(webhook_attempt::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_message: HashMap<Uuid, Vec<webhook_attempt::Model>> = HashMap::new();
    for row in rows {
        by_message.entry(row.message_id).or_default().push(row);
    }
    Ok(by_message)
}

/// A message and its endpoint, as a delivery reads them.
pub async fn delivery(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    message_id: Uuid,
) -> ApiResult<Option<(webhook_message::Model, webhook_endpoint::Model)>> {
    let found = messages_in(tenant_id)
        .filter(webhook_message::Column::Id.eq(message_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    let Some(message) = found else {
        return Ok(None);
    };
    let endpoint = super::webhook_endpoint(db, tenant_id, message.endpoint_id).await?;
    Ok(Some((message, endpoint)))
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Any other answer, or none; retried unless `next_attempt_at` is `None`.
    Failed,
    /// 410: the endpoint is disabled.
    Gone,
    /// Not sent: the address is not permitted, or the endpoint is disabled.
    Refused,
}

impl Outcome {
    /// How the attempt is counted in metrics.
    fn metric_label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Gone => "gone",
            Self::Refused => "refused",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
            Self::Gone => "GONE",
            Self::Refused => "REFUSED",
        }
    }
}

/// One attempt, as the delivery log keeps it.
pub struct Attempt {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// The answer's status.
    pub status_code: Option<u16>,
    /// From sending to the answer (or giving up).
    pub latency_ms: i32,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The start of the answer's body.
    pub response_excerpt: Option<String>,
    /// When the next attempt is due (`None`: none follows).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What an attempt does to its endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointEffect {
    /// Nothing beyond its failure state.
    None,
    /// Deliveries stop, for this reason.
    Disable(String),
}

/// Records an attempt at `message` and what follows from it, in one transaction: the
/// log row, the message's state, the endpoint's failure state (cleared by a delivery,
/// started by the first failure) and, for `effect`, disabling it (audited, with its
/// event).
pub async fn record_attempt(
    db: &DatabaseConnection,
    message: &webhook_message::Model,
    attempt: Attempt,
    effect: EndpointEffect,
    meta: &RequestMeta,
) -> ApiResult<()> {
    let outcome_label = attempt.outcome.metric_label();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let number = message.attempts + 1;
    webhook_attempt::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(message.tenant_id),
        message_id: Set(message.id),
        endpoint_id: Set(message.endpoint_id),
        attempt: Set(number),
        started_at: Set(attempt.started_at),
        outcome: Set(attempt.outcome.as_str().to_owned()),
        status_code: Set(attempt.status_code.map(i32::from)),
        latency_ms: Set(attempt.latency_ms),
        error: Set(attempt.error.clone()),
        response_excerpt: Set(attempt.response_excerpt.clone()),
        next_attempt_at: Set(attempt.next_attempt_at),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let status = match attempt.outcome {
        Outcome::Delivered => MessageStatus::Delivered,
        _ if attempt.next_attempt_at.is_some() => MessageStatus::Pending,
        _ => MessageStatus::Failed,
    };
    let now = Utc::now();
    webhook_message::ActiveModel {
        id: Set(message.id),
        attempts: Set(number),
        status: Set(status.as_str().to_owned()),
        delivered_at: Set((status == MessageStatus::Delivered)
            .then_some(now)
            .or(message.delivered_at)),
        ..Default::default()
    }
    .update(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let endpoint = super::webhook_endpoint(&txn, message.tenant_id, message.endpoint_id).await?;
    let failing_since = match attempt.outcome {
        Outcome::Delivered => None,
        // A refusal before sending says nothing about the receiver.
        Outcome::Refused => endpoint.failing_since,
        _ => endpoint.failing_since.or(Some(attempt.started_at)),
    };
    let mut active: webhook_endpoint::ActiveModel = endpoint.clone().into();
    active.failing_since = Set(failing_since);
    if let EndpointEffect::Disable(reason) = &effect
        && endpoint.enabled
    {
        active.enabled = Set(false);
        active.disabled_reason = Set(Some(reason.clone()));
        active.updated_at = Set(now);
        AuditEvent::success("webhook_endpoint.disable", "webhook_endpoint", endpoint.id)
            .in_tenant(endpoint.tenant_id)
            .with_details(json!({ "reason": reason, "messageId": message.id }))
            .record(&txn, &Actor::anonymous(), meta)
            .await?;
        let mut notice = NewJob::new(
            DISABLED_NOTICE_KIND,
            json!({ "endpointId": endpoint.id, "reason": reason }),
        );
        notice.tenant_id = Some(endpoint.tenant_id);
        jobs::enqueue(&txn, now, notice).await?;
    }
    active.update(&txn).await.map_err(ApiError::from_db)?;
    txn.commit().await.map_err(ApiError::from_db)?;
    portal_kit::telemetry::webhook_delivery(outcome_label);
    Ok(())
}

/// How an endpoint's deliveries have been going (its health).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointStats {
    /// Attempts in the last day.
    pub attempts: i64,
    /// Of those, the ones that did not deliver.
    pub failed: i64,
    /// The last delivery.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// The last attempt that did not deliver: its outcome, status code and error.
    pub last_failure: Option<(String, Option<i32>, Option<String>)>,
    /// When the oldest message still waiting to be delivered was made.
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl EndpointStats {
    /// The share of the last day's attempts that did not deliver.
    pub fn error_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.failed as f64 / self.attempts as f64)
    }
}

/// How far back [`endpoint_stats`] counts attempts.
pub const STATS_WINDOW: chrono::Duration = chrono::Duration::hours(24);
/// How far back [`endpoint_stats`] looks for the last delivery and the last failure.
pub const LOOKBACK: chrono::Duration = chrono::Duration::days(7);

/// The health of each endpoint in `endpoint_ids`: the last day's attempts counted in
/// one query (by the index on an endpoint's attempts by time), then per endpoint its last
/// delivery, its last failure and its oldest waiting message (by the partial index on
/// waiting messages).
pub async fn endpoint_stats(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    endpoint_ids: Vec<Uuid>,
) -> ApiResult<HashMap<Uuid, EndpointStats>> {
    use sea_orm::sea_query::Expr;
    let since = Utc::now() - STATS_WINDOW;
    let counted: Vec<(Uuid, i64, i64)> = webhook_attempt::Entity::find()
        .select_only()
        .column(webhook_attempt::Column::EndpointId)
        .expr_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "attempts")
        .expr_as(
            Expr::cust("CAST(SUM(CASE WHEN outcome = 'DELIVERED' THEN 0 ELSE 1 END) AS BIGINT)"),
            "failed",
        )
        .filter(webhook_attempt::Column::TenantId.eq(tenant_id))
        .filter(webhook_attempt::Column::EndpointId.is_in(endpoint_ids.clone()))
        .filter(webhook_attempt::Column::StartedAt.gte(since))
        .group_by(webhook_attempt::Column::EndpointId)
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut stats: HashMap<Uuid, EndpointStats> = HashMap::new();
    for (endpoint_id, attempts, failed) in counted {
        let entry = stats.entry(endpoint_id).or_default();
        entry.attempts = attempts;
        entry.failed = failed;
    }
    for endpoint_id in endpoint_ids {
        let entry = stats.entry(endpoint_id).or_default();
        // Bounded: an endpoint that never failed (or never delivered) is not read back
        // to its first attempt.
        let attempts = || {
            webhook_attempt::Entity::find()
                .filter(webhook_attempt::Column::TenantId.eq(tenant_id))
                .filter(webhook_attempt::Column::EndpointId.eq(endpoint_id))
                .filter(webhook_attempt::Column::StartedAt.gte(Utc::now() - LOOKBACK))
                .order_by_desc(webhook_attempt::Column::StartedAt)
        };
        entry.last_delivered_at = attempts()
            .filter(webhook_attempt::Column::Outcome.eq(Outcome::Delivered.as_str()))
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .map(|attempt| attempt.started_at);
        entry.last_failure = attempts()
            .filter(webhook_attempt::Column::Outcome.ne(Outcome::Delivered.as_str()))
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .map(|attempt| (attempt.outcome, attempt.status_code, attempt.error));
        entry.oldest_pending = webhook_message::Entity::find()
            .filter(webhook_message::Column::TenantId.eq(tenant_id))
            .filter(webhook_message::Column::EndpointId.eq(endpoint_id))
            // A literal, as the partial index says it: a bound value would not let
            // PostgreSQL's generic plans use it.
            .filter(Expr::cust("status = 'PENDING'"))
            .order_by_asc(webhook_message::Column::Id)
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .map(|message| message.created_at);
    }
    Ok(stats)
}
