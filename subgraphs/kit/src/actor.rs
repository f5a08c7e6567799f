//! The authenticated caller of a request, as established by the gateway.
//!
//! Subgraphs never authenticate end users themselves: they trust the actor the gateway
//! names (verified through [`crate::internal_token`] over HTTP, passed directly in process).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// What kind of principal is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A signed-in human user.
    User,
    /// An integrator's service account (API key).
    Service,
    /// Nobody authenticated.
    Anonymous,
}

/// The caller of one request: who, in which tenant, holding which roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Kind of principal.
    pub kind: ActorKind,
    /// The user or service account id; `None` for anonymous callers.
    pub id: Option<Uuid>,
    /// The tenant every read and write of this request is confined to.
    pub tenant_id: Option<Uuid>,
    /// Role names held in that tenant.
    pub roles: Vec<String>,
    /// The session the request belongs to, when there is one.
    pub session_id: Option<Uuid>,
    /// Grants the policies give this actor's roles in its tenant (see
    /// [`crate::policy::GRANTS`]): decided by the gateway with the field decisions, and
    /// consulted by subgraphs' row rules instead of role names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// Set when a platform component acts for this principal without them being present
    /// (a scheduled report run): audit events record it, and the gateway accepts such an
    /// actor only from an internal caller (see [`crate::internal_token`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
}

/// Who acts for a principal, and why: a worker running their report, say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// The component acting (`reports`).
    pub by: String,
    /// What for, naming the entity (`report run 0190…`).
    pub purpose: String,
    /// Whether it may change things: only a service account's own agent (a connector's
    /// sync writing as its service account) — a component acting for an absent *user*
    /// only reads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writes: bool,
}

impl Actor {
    /// The unauthenticated caller: belongs to no tenant and can read nothing tenant-scoped.
    pub fn anonymous() -> Self {
        Self {
            kind: ActorKind::Anonymous,
            id: None,
            tenant_id: None,
            roles: Vec::new(),
            session_id: None,
            grants: Vec::new(),
            delegation: None,
        }
    }

    /// A signed-in user of `tenant_id` holding `roles`.
    pub fn user(id: Uuid, tenant_id: Uuid, roles: Vec<String>) -> Self {
        Self {
            kind: ActorKind::User,
            id: Some(id),
            tenant_id: Some(tenant_id),
            roles,
            session_id: None,
            grants: Vec::new(),
            delegation: None,
        }
    }

    /// This actor, acted for by `by` for `purpose`.
    pub fn delegated(mut self, by: &str, purpose: impl Into<String>) -> Self {
        self.delegation = Some(Delegation {
            by: by.to_owned(),
            purpose: purpose.into(),
            writes: false,
        });
        self
    }

    /// This service account, acted for by its agent `by` (a connector's sync) for
    /// `purpose`, allowed to write — as the account's own API key would be: its roles and
    /// the policies bound what. `None` for anyone but a service account (a component
    /// acting for a user never changes anything for them).
    pub fn delegated_writer(self, by: &str, purpose: impl Into<String>) -> Option<Self> {
        if self.kind != ActorKind::Service {
            return None;
        }
        let mut actor = self.delegated(by, purpose);
        if let Some(delegation) = actor.delegation.as_mut() {
            delegation.writes = true;
        }
        Some(actor)
    }

    /// Whether this actor may change things: anyone not delegated, or a service account's
    /// writing agent ([`Actor::delegated_writer`]).
    pub fn may_write(&self) -> bool {
        match &self.delegation {
            None => true,
            Some(delegation) => delegation.writes && self.kind == ActorKind::Service,
        }
    }

    /// The tenant this actor is confined to, or `UNAUTHENTICATED` for anonymous callers.
    pub fn tenant(&self) -> Result<Uuid, ApiError> {
        self.tenant_id.ok_or(ApiError::Unauthenticated)
    }

    /// The acting principal's id, or `UNAUTHENTICATED` for anonymous callers.
    pub fn principal(&self) -> Result<Uuid, ApiError> {
        self.id.ok_or(ApiError::Unauthenticated)
    }

    /// Whether the policies give this actor `grant` (one of [`crate::policy::GRANTS`]).
    pub fn has_grant(&self, grant: &str) -> bool {
        self.grants.iter().any(|g| g == grant)
    }
}

/// Transport facts about a request, recorded in audit events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// The gateway's request id, for correlating logs and audit events.
    pub request_id: Option<String>,
    /// The client's address as the gateway saw it.
    pub source_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The W3C `traceparent` of the span that made this request (the gateway's subgraph
    /// fetch), so a subgraph's work joins the client's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl RequestMeta {
    /// The trace this request belongs to (a new one when it came without).
    pub fn trace(&self) -> crate::telemetry::TraceContext {
        crate::telemetry::TraceContext::continue_or_root(self.traceparent.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_service_accounts_agent_writes() {
        let tenant = Uuid::now_v7();
        let user = Actor::user(Uuid::now_v7(), tenant, vec!["tenant_admin".into()]);
        assert!(user.may_write());
        assert!(!user.clone().delegated("reports", "report run").may_write());
        assert!(user.delegated_writer("integrations", "sync").is_none());
        let service = Actor {
            kind: ActorKind::Service,
            ..Actor::user(Uuid::now_v7(), tenant, vec!["billing_admin".into()])
        };
        assert!(
            !service
                .clone()
                .delegated("reports", "report run")
                .may_write()
        );
        let writer = service.delegated_writer("integrations", "sync");
        assert!(writer.is_some_and(|w| w.may_write()));
    }
}
