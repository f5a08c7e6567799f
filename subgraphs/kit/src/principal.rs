//! A principal's standing *now*, for components that act for someone who is not present
//! (a download through a link made minutes ago, a report run scheduled weeks ago).
//! Identity answers it ([`Standing`] is implemented there); other components hold the
//! trait, so they never read identity's tables themselves.

use uuid::Uuid;

use crate::actor::{Actor, ActorKind};
use crate::error::ApiResult;

/// Who to look up.
#[derive(Clone, Copy, Debug)]
pub struct Principal<'a> {
    /// A user or a service account.
    pub kind: ActorKind,
    /// Their tenant.
    pub tenant_id: Uuid,
    /// Their id.
    pub id: Uuid,
    /// The session the standing is bound to: `None` when it does not depend on one;
    /// otherwise that session must still be live (not signed out, revoked or timed out).
    pub session: Option<Uuid>,
    /// A service account acts with the roles of the API key it called with, which the
    /// caller kept; users' roles are read afresh.
    pub key_roles: &'a [String],
}

/// Looks principals up as they stand now.
#[async_trait::async_trait]
pub trait Standing: Send + Sync {
    /// The principal as an actor with their current roles, or `None` when they (or their
    /// tenant, or the session they were bound to) are no longer active.
    async fn current(&self, who: Principal<'_>) -> ApiResult<Option<Actor>>;
}
