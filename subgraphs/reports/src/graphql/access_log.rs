//! A report's access log, for tenant admins and auditors (the policies decide who): who
//! previewed the report, asked for its runs, viewed them and downloaded their files, when
//! and from where — read from the audit trail, where each was recorded as it happened.

use async_graphql::{ComplexObject, Context, Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::platform::audit_event;
use portal_kit::audit::AuditEvent;
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiResult, input};

use super::federation::User;
use crate::store;

/// What was done with a report.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ReportAccessAction")]
pub enum AccessAction {
    /// Its first rows were previewed.
    Preview,
    /// A run was asked for (or its schedule came due).
    Run,
    /// A run was read (`reportRun`; a download reads it too).
    View,
    /// A run's file was downloaded (or a download was refused: see `outcome`).
    Download,
}

/// One access to a report.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ReportAccessEntry {
    /// The audit event's id.
    pub id: ID,
    /// What was done.
    pub action: AccessAction,
    /// `success`, or `failure` for a refused download.
    pub outcome: String,
    /// When.
    pub at: DateTime<Utc>,
    /// `user`, `service` (an API key), or `system`.
    pub actor_kind: String,
    /// The run it was about, if any (runs and views).
    pub run_id: Option<ID>,
    /// The client's address as the gateway saw it.
    pub source_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The component that acted for the user, when one did (`reports`).
    pub delegated_by: Option<String>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    actor_id: Option<Uuid>,
}

impl ReportAccessEntry {
    fn of(row: audit_event::Model, opened: portal_kit::audit::personal::Opened) -> Self {
        let action = match row.action.as_str() {
            "report.preview" => AccessAction::Preview,
            "report_run.request" => AccessAction::Run,
            "report_run.view" => AccessAction::View,
            _ => AccessAction::Download,
        };
        let run_id = (row.target_type == "report_run")
            .then_some(row.target_id)
            .flatten()
            .map(|id| ID(id.to_string()));
        let delegated_by = opened
            .details
            .as_ref()
            .and_then(|d| d["delegation"]["by"].as_str())
            .map(str::to_owned);
        Self {
            id: ID(row.id.to_string()),
            action,
            outcome: row.outcome,
            at: row.created_at,
            actor_kind: row.actor_kind,
            run_id,
            source_ip: opened.source_ip,
            user_agent: opened.user_agent,
            delegated_by,
            uuid: row.id,
            actor_id: row.actor_id,
        }
    }
}

impl Node for ReportAccessEntry {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl ReportAccessEntry {
    /// Who (resolved by identity); null for the system.
    async fn actor(&self) -> Option<User> {
        self.actor_id.map(User::stub)
    }
}

portal_kit::connection!(
    ReportAccessEntryConnection,
    ReportAccessEntryEdge,
    ReportAccessEntry
);

/// `Query.reportAccessLog`: the definition must be of the caller's tenant.
pub async fn access_log(
    ctx: &Context<'_>,
    definition_id: &ID,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<ReportAccessEntryConnection> {
    let id = input::id("definitionId", definition_id)?;
    let page = PageRequest::parse(first, after.as_deref())?;
    let (db, tenant) = (db(ctx)?, tenant_of(ctx)?);
    store::definition(db, tenant, id).await?;
    let rows = store::access_log(db, tenant, id, page).await?;
    let keys = ctx
        .data::<std::sync::Arc<dyn portal_kit::envelope::KeyProvider>>()
        .map_err(|_| portal_kit::ApiError::internal("no key provider in the schema"))?;
    let mut reader = portal_kit::audit::personal::Reader::new(keys.clone());
    Ok(reader
        .open_page(db, rows, ReportAccessEntry::of)
        .await?
        .into())
}

/// How long repeated views of a run by the same principal count as one.
pub const VIEW_WINDOW_SECS: i64 = 60;

/// Records that the caller read `target` (`report.preview` of a definition,
/// `report_run.view` of a run): an audit row, no domain event. A run viewed again by the
/// same principal within [`VIEW_WINDOW_SECS`] (a client polling it) is recorded once.
pub async fn record(
    ctx: &Context<'_>,
    action: &'static str,
    target: (&'static str, Option<Uuid>),
    details: serde_json::Value,
) -> ApiResult<()> {
    if action == "report_run.view"
        && let (Some(run), Some(who)) = (target.1, actor(ctx).id)
        && store::viewed_since(
            db(ctx)?,
            (tenant_of(ctx)?, who, run),
            chrono::Utc::now() - chrono::Duration::seconds(VIEW_WINDOW_SECS),
        )
        .await?
    {
        return Ok(());
    }
    AuditEvent::access(action, target.0, target.1)
        .with_details(details)
        .record(db(ctx)?, actor(ctx), meta(ctx))
        .await
}
