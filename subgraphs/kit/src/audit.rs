//! The append-only audit trail: one row per state change, written in the same
//! transaction as the change it records, so an acknowledged change always has its event.
//! The same call writes the change's domain event ([`crate::events`]) for successful
//! changes: no mutation can write one without the other.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use portal_entities::platform::audit_event;

use crate::actor::{Actor, ActorKind, RequestMeta};
use crate::error::ApiError;

/// One audit event about to be recorded.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    action: &'static str,
    target_type: &'static str,
    target_id: Option<Uuid>,
    outcome: &'static str,
    details: Option<Value>,
    tenant_id: Option<Uuid>,
    /// Whether a success also records the domain event of a change (not for reads).
    change: bool,
}

impl AuditEvent {
    /// A successful `action` (e.g. `account.create`) on the `target_type` object `target_id`.
    pub fn success(action: &'static str, target_type: &'static str, target_id: Uuid) -> Self {
        Self {
            action,
            target_type,
            target_id: Some(target_id),
            outcome: "success",
            details: None,
            tenant_id: None,
            change: true,
        }
    }

    /// A refused or failed `action` (e.g. a sign-in with a wrong password); `target_id`
    /// is `None` when the target does not exist.
    pub fn failure(
        action: &'static str,
        target_type: &'static str,
        target_id: Option<Uuid>,
    ) -> Self {
        Self {
            action,
            target_type,
            target_id,
            outcome: "failure",
            details: None,
            tenant_id: None,
            change: true,
        }
    }

    /// A read worth an audit row (a report previewed, a run viewed): audited like a
    /// change, but no domain event — nothing changed, so nothing follows it.
    pub fn access(
        action: &'static str,
        target_type: &'static str,
        target_id: Option<Uuid>,
    ) -> Self {
        Self {
            action,
            target_type,
            target_id,
            outcome: "success",
            details: None,
            tenant_id: None,
            change: false,
        }
    }

    /// Files the event under `tenant_id` instead of the actor's tenant (for events of
    /// callers who are not signed in yet, such as sign-in attempts).
    pub fn in_tenant(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    /// Attaches non-secret details (for updates: the changed fields before and after).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Writes the audit row through `db` (pass the transaction that makes the change) and,
    /// for a success, the domain event of the change.
    /// A change made by a component acting for the principal (see
    /// [`Actor::delegation`]) records who acted and why under `details.delegation`.
    pub async fn record<C: ConnectionTrait>(
        mut self,
        db: &C,
        actor: &Actor,
        meta: &RequestMeta,
    ) -> Result<(), ApiError> {
        if let Some(delegation) = &actor.delegation {
            let mut details = match self.details.take() {
                Some(Value::Object(map)) => map,
                Some(other) => [("details".to_owned(), other)].into_iter().collect(),
                None => Default::default(),
            };
            details.insert(
                "delegation".into(),
                serde_json::json!({ "by": delegation.by, "purpose": delegation.purpose }),
            );
            self.details = Some(Value::Object(details));
        }
        let kind = match actor.kind {
            ActorKind::User => "user",
            ActorKind::Service => "service",
            ActorKind::Anonymous => "anonymous",
        };
        let now = Utc::now();
        let tenant_id = self.tenant_id.or(actor.tenant_id);
        if self.outcome == "success" && self.change {
            crate::events::write(
                db,
                crate::events::NewEvent {
                    tenant_id,
                    event_type: crate::events::event_type(self.action),
                    subject_type: self.target_type,
                    subject_id: self.target_id,
                    actor,
                    actor_kind: kind,
                    payload: self
                        .details
                        .clone()
                        .unwrap_or_else(|| Value::Object(Default::default())),
                    occurred_at: now,
                },
            )
            .await?;
        }
        audit_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant_id),
            actor_kind: Set(kind.to_owned()),
            actor_id: Set(actor.id),
            action: Set(self.action.to_owned()),
            target_type: Set(self.target_type.to_owned()),
            target_id: Set(self.target_id),
            outcome: Set(self.outcome.to_owned()),
            request_id: Set(meta.request_id.clone()),
            source_ip: Set(meta.source_ip.clone()),
            user_agent: Set(meta.user_agent.clone()),
            details: Set(self.details),
            created_at: Set(now),
        }
        .insert(db)
        .await
        .map_err(ApiError::from_db)?;
        Ok(())
    }
}
