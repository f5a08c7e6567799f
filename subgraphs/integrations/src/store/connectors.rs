//! Connector state: the sealed credentials and settings of an integration, its health
//! and circuit breaker, sync runs (a chain of jobs, one page of remote records each) with
//! their counts and skipped records, and the external references sync keeps.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::integrations::{external_ref, integration, sync_failure, sync_run};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::envelope::{Binding, TenantKeys};
use portal_kit::jobs::{self, NewJob};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::connectors::{Credentials, RemoteError, oauth};
use crate::domain::sync::{Breaker, ErrorKind, Health, RunMode, RunStatus, with_setting};

/// The job kind that pulls and applies pages of one sync run (payload `{ runId }`).
pub const SYNC_KIND: &str = "integration.sync";
/// Attempts of a sync job (its handler fails the run on the last one).
pub const SYNC_ATTEMPTS: i32 = 8;
/// The job kind that tells the people who may configure an integration that it is
/// failing (payload `{ integrationId, error }`).
pub const FAILING_NOTICE_KIND: &str = "integration.failing_notice";
/// What credentials are sealed as.
const CREDENTIALS_PURPOSE: &str = "integration.credentials";
/// Longest error text kept on a run or a skipped record.
const ERROR_MAX: usize = 1000;

/// The credential changes of a configuration: `Some(None)` clears one, `None` keeps it.
#[derive(Default)]
pub struct CredentialChanges {
    /// The remote's API key.
    pub api_key: Option<Option<String>>,
    /// The secret of the remote's webhooks.
    pub webhook_secret: Option<Option<String>>,
    /// The portal API key the sync writes with.
    pub portal_api_key: Option<Option<String>>,
    /// The OAuth app's client id.
    pub oauth_client_id: Option<Option<String>>,
    /// The OAuth app's client secret.
    pub oauth_client_secret: Option<Option<String>>,
}

/// Seals `credentials` of integration `id`.
async fn seal(
    keys: &TenantKeys,
    tenant_id: Uuid,
    id: Uuid,
    credentials: &Credentials,
) -> ApiResult<String> {
    let plain = serde_json::to_vec(credentials)
        .map_err(|_| ApiError::internal("credentials cannot be encoded"))?;
    let sealed = keys.seal(binding(tenant_id, id), &plain).await?;
    Ok(super::sealed_to_text(&sealed))
}

/// The credentials of `row` (none configured: all empty).
pub async fn credentials(keys: &TenantKeys, row: &integration::Model) -> ApiResult<Credentials> {
    let Some(stored) = row.credentials_sealed.as_deref() else {
        return Ok(Credentials::default());
    };
    let unreadable = || ApiError::internal("an integration's credentials cannot be read");
    let sealed = super::sealed_from_text(stored).ok_or_else(unreadable)?;
    let plain = keys.open(binding(row.tenant_id, row.id), &sealed).await?;
    serde_json::from_slice(&plain).map_err(|_| unreadable())
}

fn binding(tenant_id: Uuid, id: Uuid) -> Binding<'static> {
    Binding {
        purpose: CREDENTIALS_PURPOSE,
        tenant_id,
        object_id: id,
    }
}

/// Sets an integration's credentials and settings. The audit event says which
/// credentials changed, never their values.
pub async fn configure(
    db: &DatabaseConnection,
    keys: &TenantKeys,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: CredentialChanges,
    settings: Option<Value>,
) -> ApiResult<integration::Model> {
    let tenant_id = actor.tenant()?;
    let writes = |current: &integration::Model, creds: &mut Credentials| {
        let mut changed = Vec::new();
        for (name, change, slot) in [
            ("apiKey", &changes.api_key, &mut creds.api_key),
            (
                "webhookSecret",
                &changes.webhook_secret,
                &mut creds.webhook_secret,
            ),
            (
                "portalApiKey",
                &changes.portal_api_key,
                &mut creds.portal_api_key,
            ),
            (
                "oauthClientId",
                &changes.oauth_client_id,
                &mut creds.oauth_client_id,
            ),
            (
                "oauthClientSecret",
                &changes.oauth_client_secret,
                &mut creds.oauth_client_secret,
            ),
        ] {
            if let Some(value) = change {
                slot.clone_from(value);
                changed.push(name);
            }
        }
        // Another OAuth app: what the old one was granted does not carry over.
        if changed.iter().any(|name| name.starts_with("oauth")) {
            creds.oauth = None;
            creds.pending = None;
        }
        let settings = (settings.is_some() || !changed.is_empty()).then(|| {
            with_setting(
                settings.as_ref().or(current.settings.as_ref()),
                "authMethod",
                Some(creds.auth_method().as_str().into()),
            )
        });
        Ok(Some(Saved {
            action: Some("integration.configure"),
            settings,
            fresh_start: !changed.is_empty(),
            details: json!({ "credentialsChanged": changed }),
            refused: false,
        }))
    };
    save_credentials(db, keys, actor, meta, tenant_id, id, writes).await
}

/// What [`save_credentials`] records besides the credentials.
struct Saved {
    /// The audit action (`None`: not audited).
    action: Option<&'static str>,
    settings: Option<Value>,
    /// The breaker closes and health is unknown until the next call (new credentials).
    fresh_start: bool,
    details: Value,
    /// Audited as refused (the action did not happen, though something was saved).
    refused: bool,
}

/// Attempts of [`save_credentials`] against writers racing it.
const SAVE_ATTEMPTS: usize = 5;

/// Changes the sealed credentials of integration `id` with `change` (which sees the row
/// and the credentials as they are, changes them and says what else to record, or
/// `None` to leave them) and seals and stores them — only if no one stored others
/// meanwhile; `change` runs again on what they stored (a configuration racing a token
/// renewal loses neither).
async fn save_credentials<F>(
    db: &DatabaseConnection,
    keys: &TenantKeys,
    actor: &Actor,
    meta: &RequestMeta,
    tenant_id: Uuid,
    id: Uuid,
    mut change: F,
) -> ApiResult<integration::Model>
where
    F: FnMut(&integration::Model, &mut Credentials) -> ApiResult<Option<Saved>>,
{
    for _ in 0..SAVE_ATTEMPTS {
        let current = super::integration(db, tenant_id, id).await?;
        let mut creds = credentials(keys, &current).await?;
        let Some(saved) = change(&current, &mut creds)? else {
            return Ok(current);
        };
        let sealed = if creds.is_empty() {
            None
        } else {
            Some(seal(keys, tenant_id, id, &creds).await?)
        };
        let txn = db.begin_write().await.map_err(ApiError::from_db)?;
        let mut update = integration::Entity::update_many()
            .col_expr(integration::Column::CredentialsSealed, Expr::value(sealed))
            .col_expr(integration::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(integration::Column::Id.eq(id))
            .filter(integration::Column::TenantId.eq(tenant_id));
        update = match &current.credentials_sealed {
            Some(stored) => {
                update.filter(integration::Column::CredentialsSealed.eq(stored.clone()))
            }
            None => update.filter(integration::Column::CredentialsSealed.is_null()),
        };
        let mut details = saved.details;
        if let Some(settings) = &saved.settings {
            update = update.col_expr(integration::Column::Settings, Expr::value(settings.clone()));
            if let Some(map) = details.as_object_mut() {
                map.insert("settings".into(), settings.clone());
            }
        }
        if saved.fresh_start {
            update = update
                .col_expr(
                    integration::Column::Health,
                    Expr::value(Health::Unknown.as_str()),
                )
                .col_expr(integration::Column::ConsecutiveFailures, Expr::value(0))
                .col_expr(
                    integration::Column::CircuitOpenUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(
                    integration::Column::LastError,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    integration::Column::LastErrorKind,
                    Expr::value(Option::<String>::None),
                );
        }
        let moved = update.exec(&txn).await.map_err(ApiError::from_db)?;
        if moved.rows_affected == 0 {
            // Someone stored other credentials meanwhile: start again from theirs.
            continue;
        }
        if let Some(action) = saved.action {
            let event = if saved.refused {
                AuditEvent::failure(action, "integration", Some(id))
            } else {
                AuditEvent::success(action, "integration", id)
            };
            event
                .with_details(details)
                .record(&txn, actor, meta)
                .await?;
        }
        txn.commit().await.map_err(ApiError::from_db)?;
        return super::integration(db, tenant_id, id).await;
    }
    Err(ApiError::Conflict(
        "the integration's credentials kept changing meanwhile: try again".into(),
    ))
}

/// Keeps an OAuth authorization just started (its state and PKCE verifier, sealed;
/// one started before is replaced); audited as `integration.authorization_start`.
pub async fn start_authorization(
    db: &DatabaseConnection,
    keys: &TenantKeys,
    actor: &Actor,
    meta: &RequestMeta,
    current: &integration::Model,
    pending: oauth::Pending,
) -> ApiResult<integration::Model> {
    let redirect_uri = pending.redirect_uri.clone();
    save_credentials(
        db,
        keys,
        actor,
        meta,
        current.tenant_id,
        current.id,
        |_, creds| {
            creds.pending = Some(pending.clone());
            Ok(Some(Saved {
                action: Some("integration.authorization_start"),
                settings: None,
                fresh_start: false,
                details: json!({ "redirectUri": redirect_uri }),
                refused: false,
            }))
        },
    )
    .await
}

/// Takes the waiting authorization of `current` if `state` is its state (constant time)
/// and it has not expired: it is gone once taken, so of two completions racing, one gets
/// it. A state that does not match leaves it waiting.
pub async fn take_authorization(
    db: &DatabaseConnection,
    keys: &TenantKeys,
    actor: &Actor,
    meta: &RequestMeta,
    current: &integration::Model,
    state: &str,
    now_ms: i64,
) -> ApiResult<oauth::Pending> {
    let mut taken = None;
    save_credentials(
        db,
        keys,
        actor,
        meta,
        current.tenant_id,
        current.id,
        |_, creds| {
            oauth::check_state(creds.pending.as_ref(), state, now_ms)
                .map_err(|err| ApiError::invalid("state", err.to_string()))?;
            taken = creds.pending.take();
            Ok(Some(Saved {
                action: None,
                settings: None,
                fresh_start: false,
                details: Value::Null,
                refused: false,
            }))
        },
    )
    .await?;
    taken.ok_or_else(|| ApiError::invalid("state", oauth::CompleteError::NotStarted.to_string()))
}

/// Ends an authorization taken with [`take_authorization`]: the tokens granted are kept
/// (audited as `integration.authorize`), or the refusal is audited as a failed
/// `integration.authorize` and is `BAD_USER_INPUT` about the code (start again: a code
/// is good once).
pub async fn complete_authorization(
    db: &DatabaseConnection,
    keys: &TenantKeys,
    actor: &Actor,
    meta: &RequestMeta,
    current: &integration::Model,
    tokens: Result<oauth::Tokens, String>,
) -> ApiResult<integration::Model> {
    let refused = tokens.as_ref().err().cloned();
    let saved = save_credentials(
        db,
        keys,
        actor,
        meta,
        current.tenant_id,
        current.id,
        |row, creds| {
            // Granted to an app the integration no longer has: not kept.
            if let Ok(granted) = &tokens
                && granted.client_id != creds.oauth_client_id
            {
                return Err(ApiError::Conflict(
                    "the integration's OAuth app changed meanwhile: start again".into(),
                ));
            }
            let settings = match &tokens {
                Ok(granted) => {
                    creds.oauth = Some(granted.clone());
                    Some(with_setting(
                        row.settings.as_ref(),
                        "authMethod",
                        Some(creds.auth_method().as_str().into()),
                    ))
                }
                Err(_) => None,
            };
            Ok(Some(Saved {
                action: Some("integration.authorize"),
                settings,
                fresh_start: refused.is_none(),
                details: json!({ "refused": refused }),
                refused: refused.is_some(),
            }))
        },
    )
    .await?;
    match refused {
        Some(error) => Err(ApiError::invalid("code", error)),
        None => Ok(saved),
    }
}

/// Keeps tokens a connector's OAuth session renewed (sealed, not audited: a machine
/// credential's routine rotation) — unless the integration was given another OAuth app
/// or authorized again meanwhile, whose credentials stand.
pub struct TokenSaver {
    db: DatabaseConnection,
    keys: TenantKeys,
    tenant_id: Uuid,
    id: Uuid,
}

impl TokenSaver {
    /// A sink for the tokens of integration `id`.
    pub fn new(db: DatabaseConnection, keys: TenantKeys, tenant_id: Uuid, id: Uuid) -> Self {
        Self {
            db,
            keys,
            tenant_id,
            id,
        }
    }
}

#[async_trait::async_trait]
impl oauth::TokenSink for TokenSaver {
    async fn save(
        &self,
        renewed_from: &oauth::Tokens,
        tokens: &oauth::Tokens,
    ) -> Result<(), String> {
        save_credentials(
            &self.db,
            &self.keys,
            &Actor::anonymous(),
            &RequestMeta::default(),
            self.tenant_id,
            self.id,
            |_, creds| {
                // Renewed under the app the integration has now, from the grant it keeps.
                let same_app =
                    tokens.client_id.is_some() && tokens.client_id == creds.oauth_client_id;
                let same_grant = creds.oauth.as_ref().map(|t| &t.refresh_token)
                    == Some(&renewed_from.refresh_token)
                    || creds.oauth.is_none() && renewed_from.refresh_token.is_none();
                if !same_app || !same_grant {
                    return Ok(None);
                }
                creds.oauth = Some(tokens.clone());
                Ok(Some(Saved {
                    action: None,
                    settings: None,
                    fresh_start: false,
                    details: Value::Null,
                    refused: false,
                }))
            },
        )
        .await
        .map(|_| ())
        .map_err(|err| format!("{err:?}"))
    }
}

/// Whether `row` has what a connector needs to call its remote.
pub fn is_configured(row: &integration::Model) -> bool {
    row.credentials_sealed.is_some()
}

/// Records the outcome of calls to the remote of `row` at `now`: the breaker and health
/// move, and a change of health is audited (and so becomes an
/// `integration.health_changed` event).
pub async fn record_remote(
    db: &DatabaseConnection,
    row: &integration::Model,
    outcome: Result<(), &RemoteError>,
    now: DateTime<Utc>,
    meta: &RequestMeta,
) -> ApiResult<integration::Model> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = super::integration(&txn, row.tenant_id, row.id).await?;
    let (breaker, error) = match outcome {
        Ok(()) => (Breaker::closed(), None),
        Err(err @ RemoteError::Unauthorized(_)) => (
            Breaker::refused(current.consecutive_failures),
            Some(err.to_string()),
        ),
        Err(err) if err.is_outage() => (
            Breaker::after_outage(current.consecutive_failures, now),
            Some(err.to_string()),
        ),
        // A refusal of one request says nothing about the remote's health.
        Err(err) => (
            Breaker {
                failures: current.consecutive_failures,
                open_until: current.circuit_open_until,
                health: Health::from_db(&current.health),
            },
            Some(err.to_string()),
        ),
    };
    let before = current.health.clone();
    let mut active: integration::ActiveModel = current.into();
    active.consecutive_failures = Set(breaker.failures);
    active.circuit_open_until = Set(breaker.open_until);
    active.health = Set(breaker.health.as_str().to_owned());
    active.last_checked_at = Set(Some(now));
    active.last_error = Set(error.map(|e| truncate(&e)));
    match outcome {
        Ok(()) => {
            active.last_success_at = Set(Some(now));
            active.last_error_kind = Set(None);
        }
        Err(err) => active.last_error_kind = Set(Some(ErrorKind::of(err).as_str().to_owned())),
    }
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    if before != updated.health {
        AuditEvent::success("integration.health_change", "integration", updated.id)
            .in_tenant(updated.tenant_id)
            .with_details(json!({
                "before": before,
                "after": updated.health,
                "circuitOpenUntil": updated.circuit_open_until,
                "error": updated.last_error,
            }))
            .record(&txn, &Actor::anonymous(), meta)
            .await?;
        if breaker.health == Health::Failing {
            let mut notice = NewJob::new(
                FAILING_NOTICE_KIND,
                json!({ "integrationId": updated.id, "error": updated.last_error }),
            );
            notice.tenant_id = Some(updated.tenant_id);
            jobs::enqueue(&txn, now, notice).await?;
        }
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// How long a run's last job must have ended (and the run have run) before
/// [`fail_orphaned_runs`] ends it.
const ORPHANED_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// Ends runs left `RUNNING` without a job to move them on — their job was cancelled by
/// an administrator (`cancelJob`), dead-lettered, or ended without finishing them — so
/// that the integration can sync again; how many. Each ends `FAILED`, saying why.
pub async fn fail_orphaned_runs(db: &DatabaseConnection, now: DateTime<Utc>) -> ApiResult<usize> {
    use portal_entities::platform::job;
    let running = sync_run::Entity::find()
        .filter(sync_run::Column::Status.eq(RunStatus::Running.as_str()))
        .filter(sync_run::Column::StartedAt.lt(now - ORPHANED_AFTER))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut ended = 0;
    for run in running {
        // Its jobs: one per batch of pages, keyed `<run id>:<first page>`.
        let jobs_of_run = job::Entity::find()
            .filter(job::Column::Kind.eq(SYNC_KIND))
            .filter(job::Column::IdempotencyKey.starts_with(format!("{}:", run.id)))
            .order_by_desc(job::Column::UpdatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let live = jobs_of_run.iter().any(|job| {
            matches!(
                jobs::JobState::from_db(&job.state),
                jobs::JobState::Queued | jobs::JobState::Running
            )
        });
        if live {
            continue;
        }
        let why = match jobs_of_run.first() {
            None => "its job is gone",
            // Ended a moment ago: its successor may be committing.
            Some(job) if job.updated_at > now - ORPHANED_AFTER => continue,
            Some(job) => match jobs::JobState::from_db(&job.state) {
                jobs::JobState::Cancelled => "its job was cancelled",
                jobs::JobState::Dead => "its job gave up",
                _ => "its job ended without finishing it",
            },
        };
        fail_run(db, &run, &format!("stopped: {why}")).await?;
        ended += 1;
    }
    Ok(ended)
}

/// Integrations an incremental run should start for now: configured, active, of an
/// active tenant (not one being off-boarded), of a provider with a connector, circuit
/// closed, and having finished a run before (a first run is a person's choice: backfill or
/// not).
pub async fn due_for_sync(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> ApiResult<Vec<integration::Model>> {
    let rows = integration::Entity::find()
        .filter(integration::Column::TenantId.in_subquery(active_tenants()))
        .filter(integration::Column::CredentialsSealed.is_not_null())
        .filter(integration::Column::Status.eq(crate::domain::IntegrationStatus::Active.as_str()))
        .filter(integration::Column::Provider.is_in(crate::connectors::PROVIDERS))
        .filter(integration::Column::SyncCursor.is_not_null())
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows
        .into_iter()
        .filter(|row| row.circuit_open_until.is_none_or(|until| until <= now))
        .collect())
}

/// The ids of active tenants (a frozen or off-boarded tenant's integrations take nothing).
fn active_tenants() -> sea_orm::sea_query::SelectStatement {
    use portal_entities::identity::tenant;
    sea_orm::sea_query::Query::select()
        .column(tenant::Column::Id)
        .from(tenant::Entity)
        .and_where(tenant::Column::Status.eq("ACTIVE"))
        .to_owned()
}

/// The integration an inbound webhook names, in whichever active tenant: the URL's id is
/// only an address — the signature, checked with that integration's secret, is what is
/// trusted.
pub async fn integration_for_webhook(
    db: &DatabaseConnection,
    id: Uuid,
) -> ApiResult<Option<integration::Model>> {
    integration::Entity::find_by_id(id)
        .filter(integration::Column::TenantId.in_subquery(active_tenants()))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// Audits an inbound webhook of `row` that was refused, and why (an accepted one is
/// audited as the run it starts).
pub async fn record_refused_webhook(
    db: &DatabaseConnection,
    row: &integration::Model,
    meta: &RequestMeta,
    reason: &str,
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    AuditEvent::failure("integration.webhook_receive", "integration", Some(row.id))
        .with_details(json!({ "reason": reason }))
        .in_tenant(row.tenant_id)
        .record(&txn, &Actor::anonymous(), meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// Audits a connection test by `actor`.
pub async fn record_connection_test(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    row: &integration::Model,
    ok: bool,
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    AuditEvent::success("integration.connection_test", "integration", row.id)
        .with_details(json!({ "ok": ok, "health": row.health }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// Starts a sync run of an integration of the actor's tenant (from `from_cursor` when
/// given: a replay) and queues its first job. `CONFLICT` while another run is in
/// progress; `BAD_USER_INPUT` for an integration that is not configured or is paused.
pub async fn start_run(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    tenant_id: Uuid,
    integration_id: Uuid,
    mode: RunMode,
    from_cursor: Option<Value>,
) -> ApiResult<sync_run::Model> {
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let row = super::integration(&txn, tenant_id, integration_id).await?;
    if !is_configured(&row) {
        return Err(ApiError::invalid(
            "id",
            "the integration has no credentials: configure it first",
        ));
    }
    if row.status == crate::domain::IntegrationStatus::Paused.as_str() {
        return Err(ApiError::invalid("id", "the integration is paused"));
    }
    let running = sync_run::Entity::find()
        .filter(sync_run::Column::IntegrationId.eq(integration_id))
        .filter(sync_run::Column::Status.eq(RunStatus::Running.as_str()))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if running.is_some() {
        return Err(ApiError::Conflict(
            "a sync run of this integration is in progress".into(),
        ));
    }
    let requested_by = match actor.id {
        Some(id) => json!({ "kind": format!("{:?}", actor.kind).to_lowercase(), "id": id }),
        None => json!({ "kind": "scheduler" }),
    };
    let run = sync_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        integration_id: Set(integration_id),
        mode: Set(mode.as_str().to_owned()),
        status: Set(RunStatus::Running.as_str().to_owned()),
        from_cursor: Set(from_cursor.clone()),
        cursor: Set(None),
        created: Set(0),
        updated: Set(0),
        unchanged: Set(0),
        deleted: Set(0),
        failed: Set(0),
        pages: Set(0),
        requested_by: Set(requested_by),
        started_at: Set(now),
        finished_at: Set(None),
        error: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    jobs::enqueue(&txn, now, next_page_job(&run)).await?;
    // A person's start is audited; the scheduler's and webhooks' (every few minutes)
    // only when they finish having changed something or failed.
    if actor.id.is_some() {
        AuditEvent::success("integration_sync.start", "integration", integration_id)
            .in_tenant(tenant_id)
            .with_details(json!({
                "runId": run.id,
                "mode": run.mode,
                "fromCursor": from_cursor,
            }))
            .record(&txn, actor, meta)
            .await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(run)
}

/// The job that pulls the next page of `run` (at most once per page number).
fn next_page_job(run: &sync_run::Model) -> NewJob {
    let mut job = NewJob::new(SYNC_KIND, json!({ "runId": run.id, "page": run.pages }))
        .idempotency_key(format!("{}:{}", run.id, run.pages))
        .max_attempts(SYNC_ATTEMPTS);
    job.tenant_id = Some(run.tenant_id);
    job
}

/// One sync run of the tenant.
pub async fn sync_run(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<Option<sync_run::Model>> {
    sync_run::Entity::find_by_id(id)
        .filter(sync_run::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// What an integration's recent runs did (for its error rate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Records the runs applied, skipped ones included.
    pub records: i64,
    /// Records skipped because they failed.
    pub failed: i64,
}

impl RunStats {
    /// The share of records that failed (`None` without records).
    pub fn error_rate(&self) -> Option<f64> {
        (self.records > 0).then(|| self.failed as f64 / self.records as f64)
    }
}

/// How long [`recent_run_stats`] looks back.
pub const STATS_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// What the runs started in the last [`STATS_WINDOW`] did, by integration (one query).
pub async fn recent_run_stats(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    integration_ids: Vec<Uuid>,
) -> ApiResult<std::collections::HashMap<Uuid, RunStats>> {
    let rows = sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant_id))
        .filter(sync_run::Column::IntegrationId.is_in(integration_ids))
        .filter(sync_run::Column::StartedAt.gte(Utc::now() - STATS_WINDOW))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut stats: std::collections::HashMap<Uuid, RunStats> = std::collections::HashMap::new();
    for run in rows {
        let entry = stats.entry(run.integration_id).or_default();
        entry.records += i64::from(run.created)
            + i64::from(run.updated)
            + i64::from(run.unchanged)
            + i64::from(run.deleted)
            + i64::from(run.failed);
        entry.failed += i64::from(run.failed);
    }
    Ok(stats)
}

/// A page of an integration's runs, newest first.
pub async fn runs_of_integration(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    integration_id: Uuid,
    page: PageRequest,
) -> ApiResult<Page<sync_run::Model>> {
    let mut query = sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant_id))
        .filter(sync_run::Column::IntegrationId.eq(integration_id));
    if let Some(after) = page.after {
        query = query.filter(sync_run::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(sync_run::Column::Id)
        .limit(page.first + 1)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(page.page(rows))
}

/// The first `limit` records a run skipped, oldest first.
pub async fn failures_of_run(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    run_id: Uuid,
    limit: u64,
) -> ApiResult<Vec<sync_failure::Model>> {
    sync_failure::Entity::find()
        .filter(sync_failure::Column::TenantId.eq(tenant_id))
        .filter(sync_failure::Column::RunId.eq(run_id))
        .order_by_asc(sync_failure::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// What applying one page did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Portal entities created (or links made).
    pub created: i32,
    /// Changed.
    pub updated: i32,
    /// Nothing to do.
    pub unchanged: i32,
    /// Links removed after a remote delete.
    pub deleted: i32,
    /// Skipped after an error (each listed).
    pub failed: i32,
}

/// A record a run skipped.
pub struct Skipped {
    /// Its type at the remote.
    pub external_type: String,
    /// Its id there.
    pub external_id: String,
    /// Why.
    pub error: String,
}

/// What follows a saved page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The same job pulls the next page.
    Continue,
    /// A new job pulls the next page (queued with this page).
    NextJob,
    /// The run is done: it succeeded, and its cursor becomes the integration's (where
    /// the next incremental run starts).
    Done,
}

/// Records a page of `run`: its counts and skipped records, the cursor after it, and
/// what follows (see [`Step`]), all in one transaction.
pub async fn save_page(
    db: &DatabaseConnection,
    run: &sync_run::Model,
    cursor: &Value,
    counts: &Counts,
    skipped: Vec<Skipped>,
    step: Step,
) -> ApiResult<sync_run::Model> {
    let done = step == Step::Done;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    for skip in skipped {
        sync_failure::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(run.tenant_id),
            run_id: Set(run.id),
            external_type: Set(truncate_to(&skip.external_type, 64)),
            external_id: Set(truncate_to(&skip.external_id, 200)),
            error: Set(truncate(&skip.error)),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
    }
    let saved = sync_run::Model {
        cursor: Some(cursor.clone()),
        created: run.created + counts.created,
        updated: run.updated + counts.updated,
        unchanged: run.unchanged + counts.unchanged,
        deleted: run.deleted + counts.deleted,
        failed: run.failed + counts.failed,
        pages: run.pages + 1,
        status: if done {
            RunStatus::Succeeded.as_str().to_owned()
        } else {
            run.status.clone()
        },
        finished_at: if done { Some(now) } else { run.finished_at },
        ..run.clone()
    };
    // Only from the page this job read: a second job on the same run (one that died
    // after handing over, claimed again) changes nothing.
    let moved = sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Cursor, Expr::value(saved.cursor.clone()))
        .col_expr(sync_run::Column::Created, Expr::value(saved.created))
        .col_expr(sync_run::Column::Updated, Expr::value(saved.updated))
        .col_expr(sync_run::Column::Unchanged, Expr::value(saved.unchanged))
        .col_expr(sync_run::Column::Deleted, Expr::value(saved.deleted))
        .col_expr(sync_run::Column::Failed, Expr::value(saved.failed))
        .col_expr(sync_run::Column::Pages, Expr::value(saved.pages))
        .col_expr(sync_run::Column::Status, Expr::value(saved.status.clone()))
        .col_expr(sync_run::Column::FinishedAt, Expr::value(saved.finished_at))
        .filter(sync_run::Column::Id.eq(run.id))
        .filter(sync_run::Column::Pages.eq(run.pages))
        .filter(sync_run::Column::Status.eq(RunStatus::Running.as_str()))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if moved.rows_affected == 0 {
        return Err(ApiError::Conflict(
            "the run moved on without this job".into(),
        ));
    }
    // The page was pulled: the remote answered well.
    let mut integration = integration::Entity::update_many()
        .col_expr(integration::Column::LastSuccessAt, Expr::value(now))
        .filter(integration::Column::Id.eq(run.integration_id));
    if done {
        integration = integration
            .col_expr(integration::Column::SyncCursor, Expr::value(cursor.clone()))
            .col_expr(integration::Column::LastSyncAt, Expr::value(now))
            .col_expr(
                integration::Column::SyncedThrough,
                Expr::value(run.started_at),
            );
    }
    integration.exec(&txn).await.map_err(ApiError::from_db)?;
    if done {
        if !is_quiet(&saved) {
            finished_event(&saved)
                .record(&txn, &Actor::anonymous(), &RequestMeta::default())
                .await?;
        }
    } else if step == Step::NextJob {
        jobs::enqueue(&txn, now, next_page_job(&saved)).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(saved)
}

/// Stops a run of the actor's tenant in progress (`NOT_FOUND` outside it, `CONFLICT`
/// once it has ended): it ends as failed, saying who stopped it; its job stops at its
/// next page.
pub async fn cancel_run(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    run_id: Uuid,
) -> ApiResult<sync_run::Model> {
    let tenant_id = actor.tenant()?;
    let run = sync_run(db, tenant_id, run_id)
        .await?
        .ok_or(ApiError::NotFound("sync run"))?;
    if run.status != RunStatus::Running.as_str() {
        return Err(ApiError::Conflict("the sync run has ended".into()));
    }
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let ended = end_run(&txn, &run, "cancelled by a person").await?;
    let Some(ended) = ended else {
        return Err(ApiError::Conflict("the sync run has ended".into()));
    };
    AuditEvent::success("integration_sync.cancel", "integration", run.integration_id)
        .with_details(json!({ "runId": run.id }))
        .record(&txn, actor, meta)
        .await?;
    finished_event(&ended)
        .record(&txn, &Actor::anonymous(), &RequestMeta::default())
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(ended)
}

/// Marks `run` failed with `error` if it is still running: the run as it ended, or
/// `None` when it had ended already.
async fn end_run(
    txn: &impl ConnectionTrait,
    run: &sync_run::Model,
    error: &str,
) -> ApiResult<Option<sync_run::Model>> {
    let saved = sync_run::Model {
        status: RunStatus::Failed.as_str().to_owned(),
        finished_at: Some(Utc::now()),
        error: Some(truncate(error)),
        ..run.clone()
    };
    let ended = sync_run::Entity::update_many()
        .col_expr(sync_run::Column::Status, Expr::value(saved.status.clone()))
        .col_expr(sync_run::Column::FinishedAt, Expr::value(saved.finished_at))
        .col_expr(sync_run::Column::Error, Expr::value(saved.error.clone()))
        .filter(sync_run::Column::Id.eq(run.id))
        .filter(sync_run::Column::Status.eq(RunStatus::Running.as_str()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok((ended.rows_affected > 0).then_some(saved))
}

/// Ends `run` as failed with `error`.
pub async fn fail_run(
    db: &DatabaseConnection,
    run: &sync_run::Model,
    error: &str,
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let Some(saved) = end_run(&txn, run, error).await? else {
        // Ended already (by the job that moved it on, or a person).
        return Ok(());
    };
    finished_event(&saved)
        .record(&txn, &Actor::anonymous(), &RequestMeta::default())
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// A run nobody asked for (the schedule, a webhook) that succeeded and changed nothing:
/// not worth an audit row and an event every few minutes.
fn is_quiet(run: &sync_run::Model) -> bool {
    let scheduled = run.requested_by.get("kind").and_then(Value::as_str) == Some("scheduler");
    scheduled
        && run.status == RunStatus::Succeeded.as_str()
        && run.created + run.updated + run.deleted + run.failed == 0
}

fn finished_event(run: &sync_run::Model) -> AuditEvent {
    AuditEvent::success("integration_sync.finish", "integration", run.integration_id)
        .in_tenant(run.tenant_id)
        .with_details(json!({
            "runId": run.id,
            "mode": run.mode,
            "status": run.status,
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "deleted": run.deleted,
            "failed": run.failed,
            "error": run.error,
        }))
}

/// The link of a remote record, if sync (or a person) made one.
pub async fn link(
    db: &DatabaseConnection,
    integration_id: Uuid,
    external_type: &str,
    external_id: &str,
) -> ApiResult<Option<external_ref::Model>> {
    external_ref::Entity::find()
        .filter(external_ref::Column::IntegrationId.eq(integration_id))
        .filter(external_ref::Column::ExternalType.eq(external_type))
        .filter(external_ref::Column::ExternalId.eq(external_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// Where [`link_of_entity`] looks.
#[derive(Clone, Copy, Debug)]
pub enum Within {
    /// One integration's links.
    Integration(Uuid),
    /// Every integration of a tenant.
    Tenant(Uuid),
}

/// A link to the portal entity from a record of `external_type`, within `scope`.
pub async fn link_of_entity(
    db: &DatabaseConnection,
    scope: Within,
    external_type: &str,
    entity_type: &str,
    entity_id: Uuid,
) -> ApiResult<Option<external_ref::Model>> {
    let query = match scope {
        Within::Integration(id) => {
            external_ref::Entity::find().filter(external_ref::Column::IntegrationId.eq(id))
        }
        Within::Tenant(id) => {
            external_ref::Entity::find().filter(external_ref::Column::TenantId.eq(id))
        }
    };
    query
        .filter(external_ref::Column::ExternalType.eq(external_type))
        .filter(external_ref::Column::EntityType.eq(entity_type))
        .filter(external_ref::Column::EntityId.eq(entity_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// A link to make or refresh.
pub struct LinkTo<'a> {
    /// The integration's tenant.
    pub tenant_id: Uuid,
    /// The integration.
    pub integration_id: Uuid,
    /// The remote's type.
    pub external_type: &'a str,
    /// The remote's id.
    pub external_id: &'a str,
    /// The portal's type.
    pub entity_type: &'a str,
    /// The portal's id.
    pub entity_id: Uuid,
    /// What was synchronized.
    pub fingerprint: String,
}

/// Makes the link, or moves an existing one to the new entity and fingerprint. Links are
/// sync's bookkeeping: audited once per run (`integration_sync.finish`), not one by one.
pub async fn upsert_link(db: &DatabaseConnection, to: LinkTo<'_>) -> ApiResult<()> {
    let now = Utc::now();
    if let Some(existing) = link(db, to.integration_id, to.external_type, to.external_id).await? {
        let mut active: external_ref::ActiveModel = existing.into();
        active.entity_type = Set(to.entity_type.to_owned());
        active.entity_id = Set(to.entity_id);
        active.fingerprint = Set(Some(to.fingerprint));
        active.updated_at = Set(now);
        active.update(db).await.map_err(ApiError::from_db)?;
        return Ok(());
    }
    external_ref::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(to.tenant_id),
        integration_id: Set(to.integration_id),
        external_type: Set(to.external_type.to_owned()),
        external_id: Set(to.external_id.to_owned()),
        entity_type: Set(to.entity_type.to_owned()),
        entity_id: Set(to.entity_id),
        fingerprint: Set(Some(to.fingerprint)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    Ok(())
}

/// Removes a link (the remote record was deleted; the portal entity stays).
pub async fn remove_link(db: &DatabaseConnection, id: Uuid) -> ApiResult<()> {
    external_ref::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

fn truncate(text: &str) -> String {
    truncate_to(text, ERROR_MAX)
}

fn truncate_to(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
