//! Sync runs in the job worker: [`SyncPages`] (job kind `integration.sync`, payload
//! `{ runId }`) pulls pages of remote records through the integration's connector and
//! applies each through the portal's own GraphQL API — **as the connector's service
//! account** (the portal API key configured on the integration), through the gateway,
//! so the owning domain validates, audits and emits events exactly as for any client.
//! Nothing here writes another domain's tables.
//!
//! - A page's counts, its skipped records and the cursor after it commit together; a
//!   job pulls a few pages and queues the next job, so a run survives a restart and
//!   resumes where it committed. Writes are idempotent (links by external id, the
//!   ledger's idempotency keys), so a page redone after a crash changes nothing twice.
//! - A record that fails is recorded with why and skipped; the run goes on.
//! - Remote outages are retried by the client, then by the job (after the remote's
//!   `Retry-After`, or while the circuit breaker is open, at its end); refused
//!   credentials or an expired cursor end the run as failed, saying so.

mod hubspot;
mod links;
mod stripe;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use sea_orm::DatabaseConnection;
use serde_json::{Map, Value};

use portal_entities::integrations::{integration, sync_run};
use portal_kit::access_token::ApiKeyResolver;
use portal_kit::envelope::TenantKeys;
use portal_kit::gateway_client::GatewayClient;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::{Actor, RequestMeta};

use crate::connectors::{self, Connector, Endpoints, Remote, RemoteError};
use crate::domain::IntegrationStatus;
use crate::domain::sync::{FieldRules, RunMode, RunStatus};
use crate::store::{self, connectors as state};

/// Pages one job pulls before it hands over to the next.
const PAGES_PER_JOB: i32 = 10;
/// Job attempts after which a remote that stays down fails the run.
const OUTAGE_ATTEMPTS: i32 = 6;
/// The job attempt after which any failure fails the run (the job's own limit is one
/// more: a run is never left `RUNNING` by a dead-lettered job).
const LAST_ATTEMPT: i32 = state::SYNC_ATTEMPTS - 1;
/// Longest wait for a remote's `Retry-After`.
const RETRY_AFTER_MAX: Duration = Duration::hours(6);
/// GraphQL error codes that are about the record written, not the portal: the record is
/// recorded as failed and skipped.
const RECORD_CODES: [&str; 5] = [
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "FORBIDDEN",
    "CONFLICT",
    "STEP_UP_REQUIRED",
];

/// What applying one record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A portal entity was created, or a link made.
    Created,
    /// Something changed.
    Updated,
    /// Nothing to do.
    Unchanged,
    /// The link of a record deleted at the remote was removed.
    Deleted,
}

/// Why a record was not applied.
#[derive(Debug)]
pub enum ApplyError {
    /// About this record (the portal refused it, it names nothing linked): recorded and
    /// skipped.
    Record(String),
    /// Worth trying the page again (the gateway or database could not be reached).
    Retry(String),
    /// The remote failed while the record was being applied.
    Remote(RemoteError),
}

/// The portal's GraphQL API, as the connector's service account.
pub struct Portal<'a> {
    gateway: &'a dyn GatewayClient,
    actor: &'a Actor,
    meta: &'a RequestMeta,
}

impl Portal<'_> {
    /// Runs `document` (a query or a mutation) with `variables`: the data, or the first
    /// error as a record error (`CODE: message`).
    async fn run(&self, document: &str, variables: Value) -> Result<Value, ApplyError> {
        let variables: Map<String, Value> = match variables {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mutation = document.trim_start().starts_with("mutation");
        let answered = if mutation {
            self.gateway
                .mutate(self.actor, self.meta, document, variables)
                .await
        } else {
            self.gateway
                .query(self.actor, self.meta, document, variables)
                .await
        };
        let response = answered.map_err(|err| ApplyError::Retry(format!("{err:?}")))?;
        if let Some(error) = response.errors.first() {
            let code = error.code().unwrap_or("ERROR");
            // Only answers about this record skip it; anything else (a timeout, an
            // overloaded gateway, an internal error) is tried again.
            if RECORD_CODES.contains(&code) {
                return Err(ApplyError::Record(format!("{code}: {}", error.message)));
            }
            return Err(ApplyError::Retry(format!("{code}: {}", error.message)));
        }
        response
            .data
            .ok_or_else(|| ApplyError::Retry("the gateway answered no data".into()))
    }
}

/// What applying a record needs.
pub struct Target<'a> {
    /// The database (links only: integrations' own table).
    pub db: &'a DatabaseConnection,
    /// The integration.
    pub integration: &'a integration::Model,
    /// Its connector.
    pub connector: &'a dyn Connector,
    /// Its field rules.
    pub rules: &'a FieldRules,
    /// The portal, as its service account.
    pub portal: Portal<'a>,
}

/// Applies `record` of the integration's provider.
async fn apply(target: &Target<'_>, record: &connectors::Record) -> Result<Applied, ApplyError> {
    match target.integration.provider.as_str() {
        connectors::stripe::PROVIDER => stripe::apply(target, record).await,
        connectors::hubspot::PROVIDER => hubspot::apply(target, record).await,
        other => Err(ApplyError::Record(format!("no sync for provider {other}"))),
    }
}

/// The `integration.sync` job handler.
pub struct SyncPages {
    db: DatabaseConnection,
    keys: TenantKeys,
    gateway: Arc<dyn GatewayClient>,
    api_keys: Arc<dyn ApiKeyResolver>,
    endpoints: Endpoints,
    remote: Remote,
}

impl SyncPages {
    /// The job kind.
    pub const KIND: &'static str = state::SYNC_KIND;

    /// A handler over `db` that opens credentials with `keys`, writes through `gateway` as
    /// the service account `api_keys` resolves the integration's portal key to, and calls
    /// remotes at `endpoints` through `remote`.
    pub fn new(
        db: DatabaseConnection,
        keys: TenantKeys,
        gateway: Arc<dyn GatewayClient>,
        api_keys: Arc<dyn ApiKeyResolver>,
        endpoints: Endpoints,
        remote: Remote,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            keys,
            gateway,
            api_keys,
            endpoints,
            remote,
        })
    }

    async fn fail(&self, run: &sync_run::Model, error: &str) -> Result<(), JobError> {
        state::fail_run(&self.db, run, error).await.map_err(retry)
    }

    /// After the remote failed: recorded in the integration's health; the run fails for
    /// refused credentials or a refused cursor, and is tried again later otherwise.
    async fn remote_failed(
        &self,
        job: &JobContext,
        run: &sync_run::Model,
        row: &integration::Model,
        err: RemoteError,
    ) -> Result<(), JobError> {
        let updated = state::record_remote(&self.db, row, Err(&err), Utc::now(), &job.audit_meta())
            .await
            .map_err(retry)?;
        match &err {
            RemoteError::Unauthorized(_) => self.fail(run, &err.to_string()).await,
            RemoteError::Rejected { .. } => {
                let error = format!(
                    "{err} (a cursor older than the remote keeps changes for needs a BACKFILL)"
                );
                self.fail(run, &error).await
            }
            _ if job.attempt >= OUTAGE_ATTEMPTS => {
                self.fail(run, &format!("the remote stayed unavailable: {err}"))
                    .await
            }
            RemoteError::RateLimited {
                retry_after: Some(after),
            } => Err(JobError::RetryAt {
                reason: err.to_string(),
                at: Utc::now()
                    + Duration::from_std(*after)
                        .unwrap_or(RETRY_AFTER_MAX)
                        .min(RETRY_AFTER_MAX),
            }),
            _ => match updated.circuit_open_until {
                Some(until) => Err(JobError::RetryAt {
                    reason: format!("{err}; the circuit is open"),
                    at: until,
                }),
                None => Err(JobError::Retry(err.to_string())),
            },
        }
    }

    /// Where `run` starts, when it has no cursor yet.
    async fn first_cursor(
        &self,
        run: &sync_run::Model,
        row: &integration::Model,
        connector: &dyn Connector,
    ) -> Result<Value, RemoteError> {
        match RunMode::from_db(&run.mode) {
            RunMode::Backfill => connector.backfill_cursor().await,
            RunMode::Incremental => {
                match run.from_cursor.clone().or_else(|| row.sync_cursor.clone()) {
                    Some(cursor) => Ok(cursor),
                    None => connector.incremental_cursor().await,
                }
            }
        }
    }
}

/// A failure to reach the database: try the job again.
fn retry(err: portal_kit::ApiError) -> JobError {
    JobError::Retry(format!("{err:?}"))
}

#[async_trait]
impl JobHandler for SyncPages {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let tenant_id = job.tenant()?;
        let run_id = job.required_id("runId")?;
        let Some(run) = state::sync_run(&self.db, tenant_id, run_id)
            .await
            .map_err(retry)?
        else {
            return Ok(());
        };
        if RunStatus::from_db(&run.status) != RunStatus::Running {
            return Ok(());
        }
        // A job whose successor was queued (it died after handing over) leaves the run
        // to it: one job works on a run at a time.
        let first_page = job
            .payload
            .get("page")
            .and_then(Value::as_i64)
            .and_then(|page| i32::try_from(page).ok())
            .unwrap_or(run.pages);
        if run.pages >= first_page + PAGES_PER_JOB {
            return Ok(());
        }
        let outcome = self.run_pages(job, run.clone(), first_page).await;
        match outcome {
            Err(JobError::Retry(reason) | JobError::RetryAt { reason, .. })
                if job.attempt >= LAST_ATTEMPT =>
            {
                // Reread: pages may have been saved before the failure.
                let now = state::sync_run(&self.db, tenant_id, run_id)
                    .await
                    .map_err(retry)?
                    .unwrap_or(run);
                self.fail(
                    &now,
                    &format!("gave up after {} attempts: {reason}", job.attempt),
                )
                .await
            }
            other => other,
        }
    }
}

impl SyncPages {
    /// Pulls and applies pages of `run` from its saved cursor, up to this job's share
    /// (pages `first_page` to `first_page + PAGES_PER_JOB`).
    async fn run_pages(
        &self,
        job: &JobContext,
        mut run: sync_run::Model,
        first_page: i32,
    ) -> Result<(), JobError> {
        let tenant_id = run.tenant_id;
        let row = match store::integration(&self.db, tenant_id, run.integration_id).await {
            Ok(row) => row,
            Err(portal_kit::ApiError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(retry(err)),
        };
        if IntegrationStatus::from_db(&row.status) == IntegrationStatus::Paused {
            return self.fail(&run, "the integration was paused").await;
        }
        if let Some(until) = row.circuit_open_until
            && until > Utc::now()
        {
            if job.attempt >= OUTAGE_ATTEMPTS {
                let error = row
                    .last_error
                    .as_deref()
                    .unwrap_or("the remote kept failing");
                return self
                    .fail(&run, &format!("the remote stayed unavailable: {error}"))
                    .await;
            }
            return Err(JobError::RetryAt {
                reason: "the remote kept failing: the circuit is open".into(),
                at: until,
            });
        }
        let creds = state::credentials(&self.keys, &row).await.map_err(retry)?;
        let Some(connector) = connectors::connector_for(
            &row,
            &creds,
            &self.endpoints,
            &self.remote,
            Some(Arc::new(state::TokenSaver::new(
                self.db.clone(),
                self.keys.clone(),
                row.tenant_id,
                row.id,
            ))),
        ) else {
            return self
                .fail(&run, "the portal has no connector for this provider")
                .await;
        };
        let Some(portal_key) = creds.portal_api_key.as_deref() else {
            return self
                .fail(
                    &run,
                    "no portal API key is configured: sync has no identity to write with",
                )
                .await;
        };
        let actor = match self.api_keys.resolve(portal_key).await {
            // A key of another tenant would write there: refused like a revoked one.
            Some(actor) if actor.tenant_id == Some(row.tenant_id) => actor,
            _ => {
                let refused = RemoteError::Unauthorized(
                    "the portal API key is unknown, revoked or expired, belongs to another \
                     tenant, or its service account is disabled"
                        .into(),
                );
                state::record_remote(&self.db, &row, Err(&refused), Utc::now(), &job.audit_meta())
                    .await
                    .map_err(retry)?;
                return self.fail(&run, &refused.to_string()).await;
            }
        };
        let Some(actor) = actor.delegated_writer("integrations", format!("sync run {}", run.id))
        else {
            return self
                .fail(&run, "the portal API key does not act as a service account")
                .await;
        };
        let meta = job.audit_meta();
        let rules = FieldRules::from_settings(row.settings.as_ref());
        let mut cursor = match run.cursor.clone() {
            Some(cursor) => cursor,
            None => match self.first_cursor(&run, &row, connector.as_ref()).await {
                Ok(cursor) => cursor,
                Err(err) => return self.remote_failed(job, &run, &row, err).await,
            },
        };
        let target = Target {
            db: &self.db,
            integration: &row,
            connector: connector.as_ref(),
            rules: &rules,
            portal: Portal {
                gateway: self.gateway.as_ref(),
                actor: &actor,
                meta: &meta,
            },
        };
        let mut healthy = row.health == crate::domain::sync::Health::Healthy.as_str();
        while run.pages < first_page + PAGES_PER_JOB {
            let page = match connector.pull(&cursor).await {
                Ok(page) => page,
                Err(err) => return self.remote_failed(job, &run, &row, err).await,
            };
            if !healthy {
                state::record_remote(&self.db, &row, Ok(()), Utc::now(), &meta)
                    .await
                    .map_err(retry)?;
                healthy = true;
            }
            let mut counts = state::Counts::default();
            let mut skipped = Vec::new();
            for record in &page.records {
                match apply(&target, record).await {
                    Ok(Applied::Created) => counts.created += 1,
                    Ok(Applied::Updated) => counts.updated += 1,
                    Ok(Applied::Unchanged) => counts.unchanged += 1,
                    Ok(Applied::Deleted) => counts.deleted += 1,
                    Err(ApplyError::Record(error)) => {
                        counts.failed += 1;
                        skipped.push(state::Skipped {
                            external_type: record.external_type.clone(),
                            external_id: record.external_id.clone(),
                            error,
                        });
                    }
                    // Nothing of this page is saved: it is pulled and applied again
                    // (idempotently) by the retry.
                    Err(ApplyError::Retry(error)) => return Err(JobError::Retry(error)),
                    Err(ApplyError::Remote(err)) => {
                        return self.remote_failed(job, &run, &row, err).await;
                    }
                }
            }
            let step = if !page.more {
                state::Step::Done
            } else if run.pages + 1 >= first_page + PAGES_PER_JOB {
                state::Step::NextJob
            } else {
                state::Step::Continue
            };
            run = match state::save_page(&self.db, &run, &page.next, &counts, skipped, step).await {
                Ok(saved) => saved,
                // Another job moved the run on (or ended it): it is theirs now.
                Err(portal_kit::ApiError::Conflict(_)) => return Ok(()),
                Err(err) => return Err(retry(err)),
            };
            if step != state::Step::Continue {
                return Ok(());
            }
            cursor = page.next;
        }
        Ok(())
    }
}

/// The remote client sync calls through: retries with backoff inside a call.
pub fn remote_for_jobs() -> Result<Remote, RemoteError> {
    Remote::new(connectors::remote::RetryPolicy::default())
}

/// The remote client requests call through (a person waits: one attempt, a short
/// timeout).
pub fn remote_for_requests() -> Result<Remote, RemoteError> {
    Remote::new(connectors::remote::RetryPolicy {
        attempts: 1,
        timeout: StdDuration::from_secs(10),
        ..connectors::remote::RetryPolicy::default()
    })
}

/// Starts an incremental run of every configured, active integration with a connector
/// that has no run in progress and whose circuit is closed (job kind
/// `integration.sync_due`, every five minutes): how changes arrive when the remote's
/// webhooks are not set up, or one was missed. First it ends runs whose job is gone
/// (cancelled by an administrator, or dead-lettered), which would otherwise keep their
/// integration from syncing for good.
pub struct SyncDue {
    db: DatabaseConnection,
}

impl SyncDue {
    /// The job kind.
    pub const KIND: &'static str = "integration.sync_due";

    /// A handler over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { db })
    }

    /// Schedules it (idempotent: run at every worker start).
    pub async fn schedule(db: &impl sea_orm::ConnectionTrait) -> portal_kit::ApiResult<()> {
        portal_kit::jobs::schedule::upsert(
            db,
            Utc::now(),
            Self::KIND,
            portal_kit::jobs::schedule::NewSchedule {
                name: Self::KIND.to_owned(),
                kind: Self::KIND.to_owned(),
                payload: serde_json::json!({}),
                tenant_id: None,
                principal: None,
                cron: "*/5 * * * *".to_owned(),
                time_zone: "UTC".to_owned(),
            },
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl JobHandler for SyncDue {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let ended = state::fail_orphaned_runs(&self.db, Utc::now())
            .await
            .map_err(retry)?;
        if ended > 0 {
            tracing::warn!(ended, "ended sync runs whose job was gone");
        }
        let due = state::due_for_sync(&self.db, Utc::now())
            .await
            .map_err(retry)?;
        for row in due {
            let started = state::start_run(
                &self.db,
                &Actor::anonymous(),
                &job.audit_meta(),
                row.tenant_id,
                row.id,
                RunMode::Incremental,
                None,
            )
            .await;
            match started {
                Ok(_) | Err(portal_kit::ApiError::Conflict(_)) => {}
                Err(err) => {
                    tracing::warn!(integration = %row.id, error = ?err, "starting a sync run")
                }
            }
        }
        Ok(())
    }
}
