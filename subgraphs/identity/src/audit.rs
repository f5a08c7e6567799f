//! The audit trail as admins and auditors read it: filtered, paged, tenant-scoped, and
//! read-only (the database refuses updates and deletes of audit rows).

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::platform::audit_event;
use portal_kit::context::{actor, db};
use portal_kit::input;
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::scalars::DateTimeArg;
use portal_kit::{ApiError, ApiResult};

use crate::store;

/// One recorded state change.
#[derive(SimpleObject)]
pub struct AuditEvent {
    /// Stable id (time-ordered).
    pub id: ID,
    /// What happened, e.g. `account.update`.
    pub action: String,
    /// Kind of object changed.
    pub target_type: String,
    /// The object changed.
    pub target_id: Option<ID>,
    /// `success` or `failure`.
    pub outcome: String,
    /// `user`, `service`, `anonymous` or `system`.
    pub actor_kind: String,
    /// Who acted.
    pub actor_id: Option<ID>,
    /// The gateway request id.
    pub request_id: Option<String>,
    /// The client's address.
    pub source_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// Non-secret details (for updates: before and after).
    pub details: Option<Json<serde_json::Value>>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
}

impl From<audit_event::Model> for AuditEvent {
    fn from(row: audit_event::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id.map(|id| ID(id.to_string())),
            outcome: row.outcome,
            actor_kind: row.actor_kind,
            actor_id: row.actor_id.map(|id| ID(id.to_string())),
            request_id: row.request_id,
            source_ip: row.source_ip,
            user_agent: row.user_agent,
            details: row.details.map(Json),
            created_at: row.created_at,
            uuid: row.id,
        }
    }
}

impl Node for AuditEvent {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(AuditEventConnection, AuditEventEdge, AuditEvent);

/// Narrows the audit trail; every given criterion must hold.
#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    /// Exact action, e.g. `user.update`.
    pub action: Option<String>,
    /// Who acted.
    pub actor_id: Option<ID>,
    /// Which object was changed.
    pub target_id: Option<ID>,
    /// Not before this instant.
    pub from: Option<DateTimeArg>,
    /// Before this instant.
    pub to: Option<DateTimeArg>,
}

/// Audit queries.
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The caller's tenant's audit trail, oldest first (tenant admins and auditors).
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<AuditEventConnection> {
        let actor = actor(ctx);
        let tenant_id = actor.tenant()?;
        let page = PageRequest::parse(first, after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let from = filter.from.map(|at| at.parse("filter.from")).transpose()?;
        let to = filter.to.map(|at| at.parse("filter.to")).transpose()?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(ApiError::invalid("filter.to", "must not be before `from`"));
        }
        let criteria = store::AuditCriteria {
            action: filter
                .action
                .map(|a| input::text("filter.action", &a, 64))
                .transpose()?,
            actor_id: filter
                .actor_id
                .map(|id| input::id("filter.actorId", &id))
                .transpose()?,
            target_id: filter
                .target_id
                .map(|id| input::id("filter.targetId", &id))
                .transpose()?,
            from,
            to,
        };
        let rows = store::list_audit_events(db(ctx)?, tenant_id, &criteria, page).await?;
        Ok(rows.map(AuditEvent::from).into())
    }
}
