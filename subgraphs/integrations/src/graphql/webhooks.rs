//! Webhook delivery on the wire: registering an endpoint (its signing secret shown once),
//! rotating the secret, a test ping, replays, and the delivery log
//! (`WebhookEndpoint.messages`, `WebhookMessage.attempts`).

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::integrations::{webhook_attempt, webhook_message};
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::envelope::TenantKeys;
use portal_kit::loader::load;
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::scalars::DateTimeArg;
use portal_kit::{ApiError, ApiResult, input};

use super::loaders::{AttemptsByMessage, EndpointStatsById};
use super::types::WebhookEndpoint;
use crate::domain::{self, catalogue::PayloadMode};
use crate::store::{self, webhooks::MessageStatus};

/// How long the secret a rotation replaces keeps signing, unless the caller says.
const DEFAULT_OVERLAP_SECS: i32 = 24 * 3600;
/// The longest overlap a rotation accepts (a week).
const MAX_OVERLAP_SECS: i32 = 7 * 24 * 3600;

/// The tenants' data keys webhook secrets are sealed with (schema data).
pub(super) fn keys<'c>(ctx: &'c Context<'_>) -> ApiResult<&'c TenantKeys> {
    ctx.data::<TenantKeys>()
        .map_err(|_| ApiError::internal("tenant keys missing from schema data"))
}

/// What a webhook payload holds.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "WebhookPayloadMode")]
pub enum PayloadModeGql {
    /// The event's fields that the endpoint's owner may read (the owner's field policies
    /// apply; a field they may not read is never sent).
    Full,
    /// Only the event's type, id, subject and time: the receiver reads the rest through
    /// the API with its own credentials.
    Thin,
}

impl From<PayloadMode> for PayloadModeGql {
    fn from(mode: PayloadMode) -> Self {
        match mode {
            PayloadMode::Full => Self::Full,
            PayloadMode::Thin => Self::Thin,
        }
    }
}

impl From<PayloadModeGql> for PayloadMode {
    fn from(mode: PayloadModeGql) -> Self {
        match mode {
            PayloadModeGql::Full => Self::Full,
            PayloadModeGql::Thin => Self::Thin,
        }
    }
}

/// Where a webhook message stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "WebhookMessageStatus")]
pub enum MessageStatusGql {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: attempts spent, 410 Gone, or the endpoint is disabled. Replay it to try
    /// again.
    Failed,
}

impl From<MessageStatus> for MessageStatusGql {
    fn from(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Pending => Self::Pending,
            MessageStatus::Delivered => Self::Delivered,
            MessageStatus::Failed => Self::Failed,
        }
    }
}

impl From<MessageStatusGql> for MessageStatus {
    fn from(status: MessageStatusGql) -> Self {
        match status {
            MessageStatusGql::Pending => Self::Pending,
            MessageStatusGql::Delivered => Self::Delivered,
            MessageStatusGql::Failed => Self::Failed,
        }
    }
}

/// A registered endpoint and its signing secret — the only time the secret is shown.
#[derive(SimpleObject)]
pub struct WebhookEndpointRegistration {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// The `whsec_…` secret to verify `webhook-signature` with (Standard Webhooks). Store
    /// it now: the portal keeps it sealed and never shows it again.
    pub secret: String,
}

/// One event (or a ping) to deliver to one endpoint.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct WebhookMessage {
    /// Stable id; sent as `webhook-id` (`msg_` + this id without dashes) on every
    /// attempt, so receivers can drop duplicates.
    pub id: ID,
    /// The event type, or `webhook.ping`.
    pub event_type: String,
    /// The domain event delivered; null for a ping.
    pub event_id: Option<ID>,
    /// Where it stands.
    pub status: MessageStatusGql,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// The exact JSON body sent.
    pub body: Json<Value>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    uuid: Uuid,
}

impl From<webhook_message::Model> for WebhookMessage {
    fn from(row: webhook_message::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            event_type: row.event_type,
            event_id: row.event_id.map(|id| ID(id.to_string())),
            status: MessageStatus::from_db(&row.status).into(),
            attempt_count: row.attempts,
            body: Json(row.body),
            created_at: row.created_at,
            delivered_at: row.delivered_at,
            uuid: row.id,
        }
    }
}

impl Node for WebhookMessage {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(WebhookMessageConnection, WebhookMessageEdge, WebhookMessage);

#[ComplexObject]
impl WebhookMessage {
    /// The delivery log: every attempt, first to last.
    async fn attempts(&self, ctx: &Context<'_>) -> ApiResult<Vec<WebhookAttempt>> {
        let found = load::<AttemptsByMessage>(ctx, self.uuid).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(WebhookAttempt::from)
            .collect())
    }
}

/// How one delivery attempt ended.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookAttemptOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Another status, a timeout or a connection failure.
    Failed,
    /// The receiver answered 410 Gone: the endpoint was disabled.
    Gone,
    /// Not sent: the address is not permitted (not public, or not https), or the
    /// endpoint is disabled or has no secret.
    Refused,
}

/// One delivery attempt.
#[derive(SimpleObject, Clone)]
pub struct WebhookAttempt {
    /// 1 for the first.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: WebhookAttemptOutcome,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Milliseconds until the answer (or giving up).
    pub latency_ms: i32,
    /// Why it was not delivered.
    pub error: Option<String>,
    /// At most 1 KiB of the receiver's answer.
    pub response_excerpt: Option<String>,
    /// When the next attempt is due; null when none follows.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<webhook_attempt::Model> for WebhookAttempt {
    fn from(row: webhook_attempt::Model) -> Self {
        Self {
            attempt: row.attempt,
            started_at: row.started_at,
            outcome: match row.outcome.as_str() {
                "DELIVERED" => WebhookAttemptOutcome::Delivered,
                "GONE" => WebhookAttemptOutcome::Gone,
                "REFUSED" => WebhookAttemptOutcome::Refused,
                _ => WebhookAttemptOutcome::Failed,
            },
            status_code: row.status_code,
            latency_ms: row.latency_ms,
            error: row.error,
            response_excerpt: row.response_excerpt,
            next_attempt_at: row.next_attempt_at,
        }
    }
}

#[ComplexObject]
impl WebhookEndpoint {
    /// What was and is to be delivered here, oldest first; `status` filters.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        status: Option<MessageStatusGql>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<WebhookMessageConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = store::webhooks::messages_of_endpoint(
            db(ctx)?,
            tenant_of(ctx)?,
            self.uuid(),
            status.map(MessageStatus::from),
            page,
        )
        .await?;
        Ok(rows.map(WebhookMessage::from).into())
    }

    /// When a delivery here last succeeded (in the last 7 days).
    async fn last_delivered_at(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        Ok(self.stats(ctx).await?.last_delivered_at)
    }

    /// The last failed attempt's error (status code and what went wrong) in the last 7
    /// days, if any.
    async fn last_error(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        Ok(self
            .stats(ctx)
            .await?
            .last_failure
            .map(|(outcome, status, error)| {
                let status = status.map(|code| format!("{code} ")).unwrap_or_default();
                format!("{status}{}", error.unwrap_or(outcome))
            }))
    }

    /// What kind of failure the last failed attempt was.
    async fn last_error_kind(&self, ctx: &Context<'_>) -> ApiResult<Option<WebhookFailureKind>> {
        Ok(self
            .stats(ctx)
            .await?
            .last_failure
            .map(|(outcome, status, _)| WebhookFailureKind::of(&outcome, status)))
    }

    /// The share of the last 24 hours' attempts that did not deliver (0 to 1); null
    /// without attempts.
    async fn error_rate(&self, ctx: &Context<'_>) -> ApiResult<Option<f64>> {
        Ok(self.stats(ctx).await?.error_rate())
    }

    /// How far behind deliveries are, in seconds: the age of the oldest message still
    /// waiting to be delivered (0 when none waits; a replayed message counts from when
    /// it was first made).
    async fn delivery_lag_seconds(&self, ctx: &Context<'_>) -> ApiResult<i64> {
        Ok(self
            .stats(ctx)
            .await?
            .oldest_pending
            .map_or(0, |at| (Utc::now() - at).num_seconds().max(0)))
    }
}

impl WebhookEndpoint {
    async fn stats(&self, ctx: &Context<'_>) -> ApiResult<store::webhooks::EndpointStats> {
        Ok(load::<EndpointStatsById>(ctx, self.uuid())
            .await?
            .unwrap_or_default())
    }
}

/// What kind of failure a delivery attempt was.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookFailureKind {
    /// The receiver failed (5xx) or could not be reached in time: retried.
    ReceiverDown,
    /// The receiver refused the delivery (another 4xx): check what it expects.
    Rejected,
    /// The receiver refused our credentials or signature (401, 403).
    AuthRejected,
    /// The receiver is limiting deliveries (429): retried.
    RateLimited,
    /// The receiver said the endpoint is gone (410): it was disabled.
    Gone,
    /// Not sent: the address is not permitted (SSRF protection), or the endpoint is
    /// disabled.
    NotPermitted,
}

impl WebhookFailureKind {
    fn of(outcome: &str, status: Option<i32>) -> Self {
        match (outcome, status) {
            ("GONE", _) => Self::Gone,
            ("REFUSED", _) => Self::NotPermitted,
            (_, Some(429)) => Self::RateLimited,
            (_, Some(401 | 403)) => Self::AuthRejected,
            (_, Some(code)) if (400..500).contains(&code) => Self::Rejected,
            _ => Self::ReceiverDown,
        }
    }
}

/// Input of `registerWebhookEndpoint`.
#[derive(InputObject)]
pub struct RegisterWebhookEndpointInput {
    /// Target URL: https (http only for localhost in demo mode), at most 2048 characters.
    pub url: String,
    /// What the endpoint is for (at most 500 characters).
    pub description: Option<String>,
    /// 1 to 50 event types from the webhook catalogue (`docs/integrations.md`).
    pub event_types: Vec<String>,
    /// What payloads hold (default `FULL`).
    pub payload_mode: Option<PayloadModeGql>,
}

/// Input of `replayWebhookMessages`.
#[derive(InputObject)]
pub struct ReplayWebhookMessagesInput {
    /// The endpoint.
    pub endpoint_id: ID,
    /// Messages made at or after this instant…
    pub since: DateTimeArg,
    /// …and before this one (default: now).
    pub until: Option<DateTimeArg>,
    /// Only messages that were not delivered (default true).
    pub failed_only: Option<bool>,
}

/// A new endpoint's validated fields (`input.url`, `input.description`,
/// `input.eventTypes`), for both registration mutations.
pub(super) fn new_endpoint(
    url: &str,
    description: Option<&str>,
    event_types: &[String],
    payload_mode: PayloadMode,
) -> ApiResult<store::NewWebhookEndpoint> {
    Ok(store::NewWebhookEndpoint {
        url: domain::webhook_url("input.url", url)?,
        description: description
            .map(|text| domain::description("input.description", text))
            .transpose()?
            .unwrap_or_default(),
        event_types: domain::event_types("input.eventTypes", event_types)?,
        payload_mode,
    })
}

/// Webhook delivery mutations.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an enabled webhook endpoint owned by the caller (payloads are trimmed to
    /// what the caller may read) and returns its signing secret, shown only this once.
    async fn register_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: RegisterWebhookEndpointInput,
    ) -> ApiResult<WebhookEndpointRegistration> {
        let mode = input
            .payload_mode
            .map_or(PayloadMode::Full, PayloadMode::from);
        let new = new_endpoint(
            &input.url,
            input.description.as_deref(),
            &input.event_types,
            mode,
        )?;
        let (created, secret) =
            store::create_webhook_endpoint(db(ctx)?, keys(ctx)?, actor(ctx), meta(ctx), new)
                .await?;
        Ok(WebhookEndpointRegistration {
            endpoint: created.into(),
            secret,
        })
    }

    /// Gives an endpoint a new signing secret, returned this once. The secret it replaces
    /// keeps signing alongside (two signatures per delivery) for
    /// `previousValidForSeconds` (default a day, 0 to 604800), so receivers can switch
    /// without missing a delivery.
    async fn rotate_webhook_endpoint_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
        previous_valid_for_seconds: Option<i32>,
    ) -> ApiResult<WebhookEndpointRegistration> {
        let id = input::id("id", &id)?;
        let seconds = previous_valid_for_seconds.unwrap_or(DEFAULT_OVERLAP_SECS);
        if !(0..=MAX_OVERLAP_SECS).contains(&seconds) {
            return Err(ApiError::invalid(
                "previousValidForSeconds",
                format!("must be 0 to {MAX_OVERLAP_SECS}"),
            ));
        }
        let (updated, secret) = store::webhooks::rotate_secret(
            db(ctx)?,
            keys(ctx)?,
            actor(ctx),
            meta(ctx),
            id,
            chrono::Duration::seconds(i64::from(seconds)),
        )
        .await?;
        Ok(WebhookEndpointRegistration {
            endpoint: updated.into(),
            secret,
        })
    }

    /// Sends a test event (`webhook.ping`) to an endpoint, through the normal delivery
    /// (signed, logged, retried).
    async fn ping_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> ApiResult<WebhookMessage> {
        let id = input::id("id", &id)?;
        let message = store::webhooks::ping(db(ctx)?, actor(ctx), meta(ctx), id).await?;
        Ok(message.into())
    }

    /// Delivers a message again, with its id and body unchanged.
    async fn replay_webhook_message(&self, ctx: &Context<'_>, id: ID) -> ApiResult<WebhookMessage> {
        let id = input::id("id", &id)?;
        let message = store::webhooks::replay_message(db(ctx)?, actor(ctx), meta(ctx), id).await?;
        Ok(message.into())
    }

    /// Delivers again an endpoint's messages made in a time range (at most 1000; by
    /// default only those not delivered); how many were queued.
    async fn replay_webhook_messages(
        &self,
        ctx: &Context<'_>,
        input: ReplayWebhookMessagesInput,
    ) -> ApiResult<i32> {
        let range = store::webhooks::ReplayRange {
            endpoint_id: input::id("input.endpointId", &input.endpoint_id)?,
            since: input.since.parse("input.since")?,
            until: input
                .until
                .map(|until| until.parse("input.until"))
                .transpose()?
                .unwrap_or_else(Utc::now),
            failed_only: input.failed_only.unwrap_or(true),
        };
        if range.until <= range.since {
            return Err(ApiError::invalid("input.until", "must be after `since`"));
        }
        let count =
            store::webhooks::replay_messages(db(ctx)?, actor(ctx), meta(ctx), range).await?;
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }
}
