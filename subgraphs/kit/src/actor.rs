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
        });
        self
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
}
