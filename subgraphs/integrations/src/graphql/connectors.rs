//! Connectors on the wire: configuring an integration's credentials and field rules
//! (never readable back), testing the connection, starting a sync run (or replaying from
//! a cursor), and the run log (`Integration.syncRuns`, `IntegrationSyncRun.failures`).

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::integrations::{sync_failure, sync_run};
use portal_kit::context::{actor, db, meta, references, tenant as tenant_of};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::references::CURRENT_USER;
use portal_kit::{ApiError, ApiResult, input};

use super::types::Integration;
use super::webhooks::keys;
use crate::connectors::{self, AuthMethod, Endpoints, Remote, oauth};
use crate::domain::sync::{
    ErrorKind, FieldRules, Health, NewAccounts, RunMode, RunStatus, SourceOfTruth, with_setting,
};
use crate::store::{self, connectors as state};

/// Longest accepted secret or key, in characters.
const SECRET_MAX: usize = 500;
/// Skipped records listed per run, at most.
const FAILURES_MAX: i32 = 500;

/// Where connectors call, and how (schema data).
#[derive(Clone, Debug)]
pub struct ConnectorContext {
    /// Each provider's API.
    pub endpoints: Endpoints,
    /// The client calls go through (one attempt: a person is waiting).
    pub remote: Remote,
}

fn connector_context<'c>(ctx: &'c Context<'_>) -> ApiResult<&'c ConnectorContext> {
    ctx.data::<ConnectorContext>()
        .map_err(|_| ApiError::internal("connector settings missing from schema data"))
}

/// How an integration's remote is doing.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IntegrationHealth")]
pub enum HealthGql {
    /// Not called yet (or credentials just changed).
    Unknown,
    /// The last call succeeded.
    Healthy,
    /// Recent calls failed; retries go on.
    Degraded,
    /// The circuit breaker is open, or the credentials were refused.
    Failing,
}

impl From<Health> for HealthGql {
    fn from(health: Health) -> Self {
        match health {
            Health::Unknown => Self::Unknown,
            Health::Healthy => Self::Healthy,
            Health::Degraded => Self::Degraded,
            Health::Failing => Self::Failing,
        }
    }
}

/// Which side wins when a synchronized field differs.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "SourceOfTruth")]
pub enum SourceOfTruthGql {
    /// The portal's value stands and is pushed to the remote.
    Portal,
    /// The remote's value is written into the portal.
    Remote,
}

impl From<SourceOfTruth> for SourceOfTruthGql {
    fn from(rule: SourceOfTruth) -> Self {
        match rule {
            SourceOfTruth::Portal => Self::Portal,
            SourceOfTruth::Remote => Self::Remote,
        }
    }
}

impl From<SourceOfTruthGql> for SourceOfTruth {
    fn from(rule: SourceOfTruthGql) -> Self {
        match rule {
            SourceOfTruthGql::Portal => Self::Portal,
            SourceOfTruthGql::Remote => Self::Remote,
        }
    }
}

/// A synchronized field and which side wins.
#[derive(SimpleObject, Clone)]
pub struct IntegrationFieldRule {
    /// The portal field, as `Type.field`.
    pub field: String,
    /// The side whose value wins.
    pub source_of_truth: SourceOfTruthGql,
}

impl From<(&str, SourceOfTruth)> for IntegrationFieldRule {
    fn from((field, rule): (&str, SourceOfTruth)) -> Self {
        Self {
            field: field.to_owned(),
            source_of_truth: rule.into(),
        }
    }
}

/// What a CRM connector creates accounts with when a company is linked to none.
#[derive(SimpleObject, Clone)]
pub struct IntegrationNewAccounts {
    /// The owner (a user of the tenant) of the accounts created.
    pub owner_id: ID,
    /// Their currency (ISO 4217).
    pub currency: String,
}

impl From<NewAccounts> for IntegrationNewAccounts {
    fn from(new: NewAccounts) -> Self {
        Self {
            owner_id: ID(new.owner_id.to_string()),
            currency: new.currency,
        }
    }
}

/// Input of `ConfigureIntegrationInput.newAccounts`.
#[derive(InputObject)]
pub struct IntegrationNewAccountsInput {
    /// The owner of the accounts created: a user of the tenant.
    pub owner_id: ID,
    /// Their currency (ISO 4217).
    pub currency: String,
}

/// How a sync run starts.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IntegrationSyncMode")]
pub enum RunModeGql {
    /// Everything the remote has, then on as incremental.
    Backfill,
    /// Changes since the last run (or since `fromCursor`: a replay).
    Incremental,
}

impl From<RunModeGql> for RunMode {
    fn from(mode: RunModeGql) -> Self {
        match mode {
            RunModeGql::Backfill => Self::Backfill,
            RunModeGql::Incremental => Self::Incremental,
        }
    }
}

impl From<RunMode> for RunModeGql {
    fn from(mode: RunMode) -> Self {
        match mode {
            RunMode::Backfill => Self::Backfill,
            RunMode::Incremental => Self::Incremental,
        }
    }
}

/// Where a sync run is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IntegrationSyncStatus")]
pub enum RunStatusGql {
    /// Pulling pages.
    Running,
    /// Done; records that failed are listed and were skipped.
    Succeeded,
    /// Stopped (see `error`).
    Failed,
}

impl From<RunStatus> for RunStatusGql {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Running => Self::Running,
            RunStatus::Succeeded => Self::Succeeded,
            RunStatus::Failed => Self::Failed,
        }
    }
}

/// One synchronization run: a job per page of remote records.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct IntegrationSyncRun {
    /// Stable id.
    pub id: ID,
    /// How it started.
    pub mode: RunModeGql,
    /// Where it is.
    pub status: RunStatusGql,
    /// Portal records created (or linked).
    pub created_count: i32,
    /// Portal records changed.
    pub updated_count: i32,
    /// Remote records with nothing to do.
    pub unchanged_count: i32,
    /// Links removed because the remote record was deleted.
    pub deleted_count: i32,
    /// Remote records skipped after an error (see `failures`).
    pub failed_count: i32,
    /// Pages pulled.
    pub pages: i32,
    /// The cursor it started from (JSON; pass it as `fromCursor` to replay).
    pub from_cursor: Option<String>,
    /// Where it is now (JSON).
    pub cursor: Option<String>,
    /// Why it stopped, when it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long it took (so far, while running), in milliseconds.
    pub duration_ms: i64,
    #[graphql(skip)]
    uuid: Uuid,
}

impl From<sync_run::Model> for IntegrationSyncRun {
    fn from(row: sync_run::Model) -> Self {
        let end = row.finished_at.unwrap_or_else(Utc::now);
        Self {
            id: ID(row.id.to_string()),
            mode: RunMode::from_db(&row.mode).into(),
            status: RunStatus::from_db(&row.status).into(),
            created_count: row.created,
            updated_count: row.updated,
            unchanged_count: row.unchanged,
            deleted_count: row.deleted,
            failed_count: row.failed,
            pages: row.pages,
            from_cursor: row.from_cursor.map(|c| c.to_string()),
            cursor: row.cursor.map(|c| c.to_string()),
            error: row.error,
            started_at: row.started_at,
            finished_at: row.finished_at,
            duration_ms: (end - row.started_at).num_milliseconds().max(0),
            uuid: row.id,
        }
    }
}

impl Node for IntegrationSyncRun {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(
    IntegrationSyncRunConnection,
    IntegrationSyncRunEdge,
    IntegrationSyncRun
);

#[ComplexObject]
impl IntegrationSyncRun {
    /// Remote records the run skipped, and why (oldest first, at most `first`, up to
    /// 500).
    async fn failures(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> ApiResult<Vec<IntegrationSyncFailure>> {
        if !(1..=FAILURES_MAX).contains(&first) {
            return Err(ApiError::invalid(
                "first",
                format!("must be between 1 and {FAILURES_MAX}"),
            ));
        }
        let rows = state::failures_of_run(
            db(ctx)?,
            tenant_of(ctx)?,
            self.uuid,
            u64::try_from(first).unwrap_or(50),
        )
        .await?;
        Ok(rows.into_iter().map(IntegrationSyncFailure::from).collect())
    }
}

/// A remote record a sync run could not apply and skipped.
#[derive(SimpleObject, Clone)]
pub struct IntegrationSyncFailure {
    /// The remote's kind of record.
    pub external_type: String,
    /// Its id there.
    pub external_id: String,
    /// Why it was skipped.
    pub error: String,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<sync_failure::Model> for IntegrationSyncFailure {
    fn from(row: sync_failure::Model) -> Self {
        Self {
            external_type: row.external_type,
            external_id: row.external_id,
            error: row.error,
            at: row.created_at,
        }
    }
}

/// What a connection test found.
#[derive(SimpleObject, Clone)]
pub struct IntegrationConnectionCheck {
    /// Whether the remote accepted the credentials and answered.
    pub ok: bool,
    /// The remote account connected to, or what went wrong.
    pub message: String,
    /// Round-trip time of the check, in milliseconds.
    pub latency_ms: i32,
    /// The integration, with its health as the test left it.
    pub integration: Integration,
}

/// One field rule to set.
#[derive(InputObject)]
pub struct IntegrationFieldRuleInput {
    /// The portal field, as `Type.field` (see `Integration.fieldRules`).
    pub field: String,
    /// The side whose value wins.
    pub source_of_truth: SourceOfTruthGql,
}

/// Input of `configureIntegration`: omitted fields stay as they are, an empty string
/// removes a secret. Secrets are sealed with the tenant's data key and never shown again.
#[derive(InputObject)]
pub struct ConfigureIntegrationInput {
    /// The remote's API key (Stripe: a secret `sk_` or restricted `rk_` key).
    pub api_key: Option<String>,
    /// The secret the remote signs its webhooks with (Stripe: `whsec_…`); inbound
    /// webhooks go to `/integrations/<id>/webhook`.
    pub webhook_secret: Option<String>,
    /// A portal API key (of a service account) that sync writes with: its roles' policies
    /// decide what the connector may change.
    pub portal_api_key: Option<String>,
    /// Per-field source-of-truth rules to change.
    pub field_rules: Option<Vec<IntegrationFieldRuleInput>>,
    /// HubSpot: also sync contacts with users (invited by email, linked to the
    /// accounts of their companies).
    pub sync_contacts: Option<bool>,
    /// HubSpot: what accounts created from companies linked to none get; `null` stops
    /// creating them (an unlinked company is then skipped until linked by hand).
    pub new_accounts: MaybeUndefined<IntegrationNewAccountsInput>,
    /// OAuth (HubSpot): the app's client id. Connect with
    /// `startIntegrationAuthorization`; with no authorization, the app's own token
    /// (client credentials) is used. An API key, when set, is used instead.
    pub oauth_client_id: Option<String>,
    /// OAuth: the app's client secret (HubSpot also signs the app's webhooks with it).
    pub oauth_client_secret: Option<String>,
}

/// A started OAuth authorization: send the person to `authorizeUrl`; the remote
/// redirects back with `code` and `state` for `completeIntegrationAuthorization`.
#[derive(SimpleObject, Clone)]
pub struct IntegrationAuthorizationStart {
    /// The remote's consent page, with the state and a PKCE challenge.
    pub authorize_url: String,
    /// Until when the authorization may complete.
    pub expires_at: DateTime<Utc>,
}

/// What kind of error a remote call ended with.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IntegrationErrorKind")]
pub enum ErrorKindGql {
    /// The credentials were refused or the authorization revoked: reconnect (new
    /// credentials, or authorize again).
    AuthRevoked,
    /// The remote is limiting the portal's calls: sync waits and goes on by itself.
    RateLimited,
    /// The remote failed or could not be reached: retried, then the circuit breaker
    /// stops calling it for a while.
    RemoteDown,
    /// The remote refused a request or answered something unreadable.
    BadData,
}

impl From<ErrorKind> for ErrorKindGql {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::AuthRevoked => Self::AuthRevoked,
            ErrorKind::RateLimited => Self::RateLimited,
            ErrorKind::RemoteDown => Self::RemoteDown,
            ErrorKind::BadData => Self::BadData,
        }
    }
}

/// How an integration's connector authenticates at its remote.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "IntegrationAuthMethod")]
pub enum AuthMethodGql {
    /// Nothing configured.
    None,
    /// A static API key or private-app token.
    ApiKey,
    /// OAuth tokens a person authorized (renewed as needed).
    OauthAuthorizationCode,
    /// OAuth tokens the app obtains itself (client credentials).
    OauthClientCredentials,
}

impl From<AuthMethod> for AuthMethodGql {
    fn from(method: AuthMethod) -> Self {
        match method {
            AuthMethod::None => Self::None,
            AuthMethod::ApiKey => Self::ApiKey,
            AuthMethod::OAuthAuthorizationCode => Self::OauthAuthorizationCode,
            AuthMethod::OAuthClientCredentials => Self::OauthClientCredentials,
        }
    }
}

/// A redirect URI: an absolute https URL (http only to this machine), no fragment.
fn redirect_uri(field: &'static str, raw: &str) -> ApiResult<String> {
    let parsed = url::Url::parse(raw.trim())
        .map_err(|_| ApiError::invalid(field, "must be an absolute URL"))?;
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && local)) {
        return Err(ApiError::invalid(
            field,
            "must be https (http only for localhost)",
        ));
    }
    if parsed.fragment().is_some() || raw.len() > 2000 {
        return Err(ApiError::invalid(
            field,
            "must have no fragment and at most 2000 characters",
        ));
    }
    Ok(parsed.to_string())
}

/// An ISO 4217 currency code (three letters), upper-cased.
fn currency(field: &'static str, raw: &str) -> ApiResult<String> {
    let code = raw.trim().to_ascii_uppercase();
    if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(ApiError::invalid(
            field,
            "must be an ISO 4217 code such as EUR",
        ))
    }
}

/// A secret change: `None` keeps it, blank removes it.
fn secret(field: &'static str, raw: Option<String>) -> ApiResult<Option<Option<String>>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let value = raw.trim();
    if value.is_empty() {
        return Ok(Some(None));
    }
    if value.chars().count() > SECRET_MAX || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("must be one line of at most {SECRET_MAX} characters"),
        ));
    }
    Ok(Some(Some(value.to_owned())))
}

/// The runs of an integration (for `Integration.syncRuns`).
pub(super) async fn runs_of(
    ctx: &Context<'_>,
    integration_id: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<IntegrationSyncRunConnection> {
    let page = PageRequest::parse(first, after.as_deref())?;
    let rows = state::runs_of_integration(db(ctx)?, tenant_of(ctx)?, integration_id, page).await?;
    Ok(rows.map(IntegrationSyncRun::from).into())
}

/// Connector mutations.
#[derive(Default)]
pub struct ConnectorMutation;

#[Object]
impl ConnectorMutation {
    /// Sets an integration's connector credentials and field rules. `BAD_USER_INPUT`
    /// for a provider the portal has no connector for.
    async fn configure_integration(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ConfigureIntegrationInput,
    ) -> ApiResult<Integration> {
        let id = input::id("id", &id)?;
        let tenant_id = tenant_of(ctx)?;
        let row = store::integration(db(ctx)?, tenant_id, id).await?;
        if !connectors::PROVIDERS.contains(&row.provider.as_str()) {
            return Err(ApiError::invalid(
                "id",
                format!(
                    "the portal has no connector for `{}` (it has: {})",
                    row.provider,
                    connectors::PROVIDERS.join(", ")
                ),
            ));
        }
        let changes = state::CredentialChanges {
            api_key: secret("input.apiKey", input.api_key)?,
            webhook_secret: secret("input.webhookSecret", input.webhook_secret)?,
            portal_api_key: secret("input.portalApiKey", input.portal_api_key)?,
            oauth_client_id: secret("input.oauthClientId", input.oauth_client_id)?,
            oauth_client_secret: secret("input.oauthClientSecret", input.oauth_client_secret)?,
        };
        let mut settings = None;
        if let Some(rules) = input.field_rules {
            let changes: Vec<(String, SourceOfTruth)> = rules
                .into_iter()
                .map(|rule| (rule.field.trim().to_owned(), rule.source_of_truth.into()))
                .collect();
            let rules = FieldRules::from_settings(row.settings.as_ref())
                .with_changes("input.fieldRules", &changes)?;
            settings = Some(with_setting(
                row.settings.as_ref(),
                "fieldRules",
                Some(rules.to_value()),
            ));
        }
        if let Some(contacts) = input.sync_contacts {
            let current = settings.take().or_else(|| row.settings.clone());
            settings = Some(with_setting(
                current.as_ref(),
                "syncContacts",
                Some(contacts.into()),
            ));
        }
        let new_accounts = match input.new_accounts {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(new) => {
                let owner_id = input::id("input.newAccounts.ownerId", &new.owner_id)?;
                let currency = currency("input.newAccounts.currency", &new.currency)?;
                references(ctx)?
                    .require(
                        actor(ctx),
                        meta(ctx),
                        "input.newAccounts.ownerId",
                        &CURRENT_USER,
                        &[owner_id],
                    )
                    .await?;
                Some(Some(NewAccounts { owner_id, currency }.to_value()))
            }
        };
        if let Some(value) = new_accounts {
            let current = settings.take().or_else(|| row.settings.clone());
            settings = Some(with_setting(current.as_ref(), "newAccounts", value));
        }
        let updated = state::configure(
            db(ctx)?,
            keys(ctx)?,
            actor(ctx),
            meta(ctx),
            id,
            changes,
            settings,
        )
        .await?;
        Ok(updated.into())
    }

    /// Starts connecting an integration with OAuth (its `oauthClientId` and
    /// `oauthClientSecret` configured): the remote's consent URL, with a state and a PKCE
    /// challenge kept sealed for ten minutes. A new start replaces one not completed.
    async fn start_integration_authorization(
        &self,
        ctx: &Context<'_>,
        id: ID,
        redirect_uri: String,
    ) -> ApiResult<IntegrationAuthorizationStart> {
        let id = input::id("id", &id)?;
        let redirect = self::redirect_uri("redirectUri", &redirect_uri)?;
        let row = store::integration(db(ctx)?, tenant_of(ctx)?, id).await?;
        let creds = state::credentials(keys(ctx)?, &row).await?;
        let endpoints = &connector_context(ctx)?.endpoints;
        let app = connectors::oauth_app(&row.provider, &creds, endpoints).ok_or_else(|| {
            ApiError::invalid(
                "id",
                "configure the integration's oauthClientId and oauthClientSecret first (and \
                 only HubSpot connects with OAuth)",
            )
        })?;
        let scopes = connectors::oauth_scopes(&row.provider, row.settings.as_ref());
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let now = Utc::now();
        let (url, pending) = oauth::start(&app, &redirect, &scopes, now.timestamp_millis())
            .map_err(|err| ApiError::invalid("redirectUri", err.to_string()))?;
        let expires_at = DateTime::from_timestamp_millis(pending.expires_at).unwrap_or(now);
        state::start_authorization(db(ctx)?, keys(ctx)?, actor(ctx), meta(ctx), &row, pending)
            .await?;
        Ok(IntegrationAuthorizationStart {
            authorize_url: url,
            expires_at,
        })
    }

    /// Completes an OAuth authorization with the `code` and `state` the remote redirected
    /// back with: the code is traded for tokens (sealed; never readable back), and sync
    /// uses them from then on. `BAD_USER_INPUT` for a state that does not match, an
    /// authorization not started or older than ten minutes, or a code the remote refused
    /// (a code is good once: start again).
    async fn complete_integration_authorization(
        &self,
        ctx: &Context<'_>,
        id: ID,
        code: String,
        state: String,
    ) -> ApiResult<Integration> {
        let id = input::id("id", &id)?;
        let code = input::text("code", &code, 2000)?;
        let row = store::integration(db(ctx)?, tenant_of(ctx)?, id).await?;
        let context = connector_context(ctx)?;
        // Taken once: of two completions racing, only one exchanges the code.
        let pending = state::take_authorization(
            db(ctx)?,
            keys(ctx)?,
            actor(ctx),
            meta(ctx),
            &row,
            state.trim(),
            Utc::now().timestamp_millis(),
        )
        .await?;
        let creds = state::credentials(keys(ctx)?, &row).await?;
        let Some(app) = connectors::oauth_app(&row.provider, &creds, &context.endpoints) else {
            return Err(ApiError::invalid("id", "no OAuth app is configured"));
        };
        let tokens = oauth::exchange_code(&app, context.remote.http(), &pending, &code)
            .await
            .map_err(|err| err.to_string());
        let updated = state::complete_authorization(
            db(ctx)?,
            keys(ctx)?,
            actor(ctx),
            meta(ctx),
            &row,
            tokens,
        )
        .await?;
        Ok(updated.into())
    }

    /// Calls the integration's remote with its credentials and records the outcome in
    /// its health (a refused key makes it `FAILING`).
    async fn test_integration_connection(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<IntegrationConnectionCheck> {
        let id = input::id("id", &id)?;
        let tenant_id = tenant_of(ctx)?;
        let db = db(ctx)?;
        let row = store::integration(db, tenant_id, id).await?;
        let creds = state::credentials(keys(ctx)?, &row).await?;
        let settings = connector_context(ctx)?;
        let connector = connectors::connector_for(
            &row,
            &creds,
            &settings.endpoints,
            &settings.remote,
            Some(Arc::new(state::TokenSaver::new(
                db.clone(),
                keys(ctx)?.clone(),
                row.tenant_id,
                row.id,
            ))),
        )
        .ok_or_else(|| ApiError::invalid("id", "the portal has no connector for this provider"))?;
        let started = std::time::Instant::now();
        let tested = connector.test_connection().await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let outcome = tested.as_ref().map(|_| ());
        let updated = state::record_remote(db, &row, outcome, Utc::now(), meta(ctx)).await?;
        state::record_connection_test(db, actor(ctx), meta(ctx), &updated, tested.is_ok()).await?;
        let (ok, message) = match tested {
            Ok(info) => (true, format!("connected to {}", info.account)),
            Err(err) => (false, err.to_string()),
        };
        Ok(IntegrationConnectionCheck {
            ok,
            message,
            latency_ms,
            integration: updated.into(),
        })
    }

    /// Stops a sync run in progress: it ends `FAILED` ("cancelled by a person") and its
    /// job stops at its next page (what it already wrote stays). `CONFLICT` once it has
    /// ended.
    async fn cancel_integration_sync(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
    ) -> ApiResult<IntegrationSyncRun> {
        let run_id = input::id("runId", &run_id)?;
        let run = state::cancel_run(db(ctx)?, actor(ctx), meta(ctx), run_id).await?;
        Ok(run.into())
    }

    /// Starts a sync run: `BACKFILL` (everything, then on as incremental) or
    /// `INCREMENTAL` (since the last run, or from `fromCursor` — a run's `cursor` or
    /// `fromCursor` — to replay). `CONFLICT` while a run is in progress.
    async fn start_integration_sync(
        &self,
        ctx: &Context<'_>,
        id: ID,
        mode: RunModeGql,
        from_cursor: Option<String>,
    ) -> ApiResult<IntegrationSyncRun> {
        let id = input::id("id", &id)?;
        let from_cursor = match from_cursor {
            None => None,
            Some(raw) => {
                let parsed: Value = serde_json::from_str(&raw).map_err(|_| {
                    ApiError::invalid("fromCursor", "must be a cursor a run reported (JSON)")
                })?;
                if !parsed.is_object() || raw.len() > 2000 {
                    return Err(ApiError::invalid(
                        "fromCursor",
                        "must be a cursor a run reported (a JSON object)",
                    ));
                }
                if mode == RunModeGql::Backfill {
                    return Err(ApiError::invalid(
                        "fromCursor",
                        "a backfill starts from the beginning: replay with INCREMENTAL",
                    ));
                }
                Some(parsed)
            }
        };
        let run = state::start_run(
            db(ctx)?,
            actor(ctx),
            meta(ctx),
            tenant_of(ctx)?,
            id,
            mode.into(),
            from_cursor,
        )
        .await?;
        Ok(run.into())
    }
}
