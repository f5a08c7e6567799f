//! The append-only audit trail: one row per state change, written in the same
//! transaction as the change it records, so an acknowledged change always has its event.
//! The same call writes the change's domain event ([`crate::events`]) for successful
//! changes: no mutation can write one without the other.
//!
//! Each row is chained into its tenant's tamper-evident log after commit ([`chain`], checked
//! by [`verify`]); the personal data it holds is sealed per data subject ([`personal`]).

pub mod chain;
pub mod legacy;
pub mod pack;
pub mod personal;
pub mod retention;
pub mod verify;

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
        let id = Uuid::now_v7();
        let actor_subject = personal::actor_subject(kind, actor.id, tenant_id);
        let (details, personal_details) = match self.details {
            Some(details) => personal::split(self.action, self.target_type, details),
            None => (None, None),
        };
        let actor_personal = personal::seal_request(
            db,
            tenant_id,
            actor_subject,
            id,
            meta.source_ip.as_deref(),
            meta.user_agent.as_deref(),
        )
        .await?;
        let (subject_id, subject_personal) = match personal_details {
            Some(value) => {
                let subject = subject_of(self.target_type, self.target_id, actor_subject);
                let context = format!("subject:{id}");
                let sealed = personal::seal_for(db, tenant_id, subject, &context, &value).await?;
                (subject, sealed)
            }
            None => (actor_subject, None),
        };
        audit_event::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id),
            actor_kind: Set(kind.to_owned()),
            actor_id: Set(actor.id),
            action: Set(self.action.to_owned()),
            target_type: Set(self.target_type.to_owned()),
            target_id: Set(self.target_id),
            outcome: Set(self.outcome.to_owned()),
            request_id: Set(meta.request_id.clone()),
            // Sealed in `actor_personal` instead.
            source_ip: Set(None),
            user_agent: Set(None),
            details: Set(details),
            created_at: Set(now),
            chain_seq: Set(None),
            chain_prev: Set(None),
            chain_hash: Set(None),
            subject_id: Set(Some(subject_id)),
            actor_personal: Set(actor_personal),
            subject_personal: Set(subject_personal),
        }
        .insert(db)
        .await
        .map_err(ApiError::from_db)?;
        if self.outcome == "failure"
            && let Some(reason) = self.action.strip_prefix("auth.")
        {
            crate::telemetry::auth_failure(reason);
        }
        Ok(())
    }
}

/// Whose personal data the details of an event about `target` are: the user it is about,
/// else the actor's subject.
pub(crate) fn subject_of(target_type: &str, target_id: Option<Uuid>, actor_subject: Uuid) -> Uuid {
    match (target_type, target_id) {
        ("user", Some(user)) => user,
        _ => actor_subject,
    }
}
