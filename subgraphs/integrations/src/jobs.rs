//! Webhook work in the job worker: the [`Dispatcher`] turns committed domain events into
//! messages for the endpoints that subscribe to them, and [`Deliver`] (a job per message)
//! signs and sends one, records the attempt and schedules the next.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::Duration;
use sea_orm::DatabaseConnection;

use portal_kit::clock::SharedClock;
use portal_kit::envelope::TenantKeys;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};

use crate::domain::webhooks::{self as signing, Answer};
use crate::outbound::{Outbound, OutboundError};
use crate::store::webhooks::{self as store, Attempt, EndpointEffect, Outcome, Owners};

/// Events one dispatch round takes.
const DISPATCH_BATCH: u64 = 500;

/// Runs [`store::dispatch`] until the process ends: at once while events wait, then on
/// a `NOTIFY` of a committed event (PostgreSQL) or every `poll`.
pub struct Dispatcher;

impl Dispatcher {
    /// Starts the loop. Several dispatchers (one per worker) take turns: each round runs
    /// alone, under a lock.
    pub fn spawn(
        db: DatabaseConnection,
        owners: Arc<dyn Owners>,
        poll: StdDuration,
    ) -> tokio::task::JoinHandle<()> {
        let wake = portal_kit::notify::wake_on_notify(&db, portal_kit::events::NOTIFY_CHANNEL);
        tokio::spawn(async move {
            loop {
                match store::dispatch(&db, owners.as_ref(), DISPATCH_BATCH).await {
                    Ok(taken) if taken >= DISPATCH_BATCH => continue,
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = ?err, "dispatching webhook events failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = wake.notified() => {}
                }
            }
        })
    }
}

/// Delivers one webhook message (job payload `{ "messageId" }`).
pub struct Deliver {
    db: DatabaseConnection,
    keys: TenantKeys,
    outbound: Outbound,
    clock: SharedClock,
    give_up_after: Duration,
}

impl Deliver {
    /// The job kind.
    pub const KIND: &'static str = store::DELIVER_KIND;

    /// A handler over `db` that opens signing secrets with `keys`, sends through
    /// `outbound` and disables an endpoint that has failed for longer than
    /// `give_up_after`.
    pub fn new(
        db: DatabaseConnection,
        keys: TenantKeys,
        outbound: Outbound,
        clock: SharedClock,
        give_up_after: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            keys,
            outbound,
            clock,
            give_up_after,
        })
    }
}

/// A failure to reach the database or a key: try the job again.
fn retry(err: portal_kit::ApiError) -> JobError {
    JobError::Retry(format!("{err:?}"))
}

#[async_trait]
impl JobHandler for Deliver {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let tenant_id = job.tenant()?;
        let message_id = job.required_id("messageId")?;
        let Some((message, endpoint)) = store::delivery(&self.db, tenant_id, message_id)
            .await
            .map_err(retry)?
        else {
            // Its endpoint was deleted: nothing to deliver.
            return Ok(());
        };
        if message.status == store::MessageStatus::Delivered.as_str() {
            return Ok(());
        }
        let meta = job.audit_meta();
        let started_at = self.clock.now();
        let refused = |reason: String| Attempt {
            started_at,
            outcome: Outcome::Refused,
            status_code: None,
            latency_ms: 0,
            error: Some(reason),
            response_excerpt: None,
            next_attempt_at: None,
        };
        if !endpoint.enabled {
            let attempt = refused("the endpoint is disabled".into());
            return store::record_attempt(&self.db, &message, attempt, EndpointEffect::None, &meta)
                .await
                .map_err(retry);
        }
        let Some(current) = endpoint.secret_sealed.as_deref() else {
            let attempt = refused("the endpoint has no signing secret: rotate it".into());
            return store::record_attempt(&self.db, &message, attempt, EndpointEffect::None, &meta)
                .await
                .map_err(retry);
        };
        let mut keys = vec![
            store::open_secret(&self.keys, tenant_id, endpoint.id, current)
                .await
                .map_err(retry)?,
        ];
        if let (Some(previous), Some(until)) = (
            endpoint.previous_secret_sealed.as_deref(),
            endpoint.previous_secret_until,
        ) && until > started_at
        {
            keys.push(
                store::open_secret(&self.keys, tenant_id, endpoint.id, previous)
                    .await
                    .map_err(retry)?,
            );
        }
        let body = serde_json::to_vec(&message.body)
            .map_err(|err| JobError::Permanent(format!("the body does not serialize: {err}")))?;
        let webhook_id = format!("msg_{}", message.id.simple());
        let timestamp = started_at.timestamp();
        let signature = signing::signature_header(
            keys.iter().map(Vec::as_slice),
            &webhook_id,
            timestamp,
            &body,
        );
        let headers = [
            ("webhook-id", webhook_id),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        let sent = match url::Url::parse(&endpoint.url) {
            Ok(url) => self.outbound.post(&url, &headers, body).await,
            Err(err) => Err(OutboundError::Refused(format!(
                "the URL does not parse: {err}"
            ))),
        };
        let (outcome, status, retry_after, error, excerpt, latency) = match sent {
            Ok(reply) => {
                let outcome = match signing::answer(Some(reply.status)) {
                    Answer::Delivered => Outcome::Delivered,
                    Answer::Gone => Outcome::Gone,
                    Answer::Failed => Outcome::Failed,
                };
                let retry_after = reply
                    .retry_after
                    .as_deref()
                    .and_then(|value| signing::parse_retry_after(value, started_at));
                let error = (outcome != Outcome::Delivered)
                    .then(|| format!("the receiver answered {}", reply.status));
                (
                    outcome,
                    Some(reply.status),
                    retry_after,
                    error,
                    Some(reply.excerpt),
                    reply.latency,
                )
            }
            Err(OutboundError::Refused(reason)) => (
                Outcome::Refused,
                None,
                None,
                Some(reason),
                None,
                StdDuration::ZERO,
            ),
            Err(OutboundError::NoAnswer(reason)) => {
                let latency = (self.clock.now() - started_at).to_std().unwrap_or_default();
                (Outcome::Failed, None, None, Some(reason), None, latency)
            }
        };
        let latency_ms = i32::try_from(latency.as_millis()).unwrap_or(i32::MAX);
        let mut effect = EndpointEffect::None;
        let mut next_attempt_at = None;
        match outcome {
            Outcome::Delivered => {}
            Outcome::Gone => {
                effect = EndpointEffect::Disable("the receiver answered 410 Gone".into());
            }
            Outcome::Failed | Outcome::Refused => {
                let failing_since = endpoint.failing_since.unwrap_or(started_at);
                if outcome == Outcome::Failed && started_at - failing_since >= self.give_up_after {
                    effect = EndpointEffect::Disable(format!(
                        "every delivery has failed since {}",
                        failing_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ));
                } else {
                    let attempt = u32::try_from(job.attempt).unwrap_or(u32::MAX);
                    let jitter = rand::random_range(0.0..1.0);
                    next_attempt_at = signing::next_retry(attempt, retry_after, jitter)
                        .and_then(|delay| Duration::from_std(delay).ok())
                        .map(|delay| started_at + delay);
                }
            }
        }
        let attempt = Attempt {
            started_at,
            outcome,
            status_code: status,
            latency_ms,
            error: error.clone(),
            response_excerpt: excerpt.filter(|text| !text.is_empty()),
            next_attempt_at,
        };
        store::record_attempt(&self.db, &message, attempt, effect, &meta)
            .await
            .map_err(retry)?;
        match next_attempt_at {
            Some(at) => Err(JobError::RetryAt {
                reason: error.unwrap_or_else(|| "not delivered".into()),
                at,
            }),
            None => Ok(()),
        }
    }
}
