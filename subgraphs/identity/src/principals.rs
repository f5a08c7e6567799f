//! A principal's standing *now* ([`portal_kit::principal`]): an active user of an active
//! tenant with the roles held now, or an active service account.

use chrono::Utc;
use sea_orm::{DatabaseConnection, EntityTrait};

use portal_entities::identity::{service_account, session, tenant, user};
use portal_kit::principal::{Principal, Standing};
use portal_kit::{Actor, ActorKind, ApiError, ApiResult};

/// The principal as it stands now, or `None` when they (or their tenant, or the session
/// they were bound to) are no longer active.
pub async fn current(db: &DatabaseConnection, who: Principal<'_>) -> ApiResult<Option<Actor>> {
    let Some(tenant) = tenant::Entity::find_by_id(who.tenant_id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|t| t.status == "ACTIVE")
    else {
        return Ok(None);
    };
    if let Some(id) = who.session {
        let live = session::Entity::find_by_id(id)
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .filter(|s| s.user_id == who.id && s.revoked_at.is_none())
            .is_some_and(|s| crate::sessions::expiry(&tenant, &s).0 > Utc::now());
        if !live {
            return Ok(None);
        }
    }
    match who.kind {
        ActorKind::User => {
            let Some(found) = user::Entity::find_by_id(who.id)
                .one(db)
                .await
                .map_err(ApiError::from_db)?
                .filter(|u| u.tenant_id == who.tenant_id && u.status == "ACTIVE")
            else {
                return Ok(None);
            };
            let roles = crate::store::roles_of_users(db, who.tenant_id, [found.id])
                .await?
                .remove(&found.id)
                .unwrap_or_default()
                .into_iter()
                .map(|role| role.name)
                .collect();
            let mut actor = Actor::user(found.id, who.tenant_id, roles);
            actor.session_id = who.session;
            Ok(Some(actor))
        }
        ActorKind::Service => {
            let active = service_account::Entity::find_by_id(who.id)
                .one(db)
                .await
                .map_err(ApiError::from_db)?
                .is_some_and(|s| s.tenant_id == who.tenant_id && s.status == "ACTIVE");
            Ok(active.then(|| Actor {
                kind: ActorKind::Service,
                id: Some(who.id),
                tenant_id: Some(who.tenant_id),
                roles: who.key_roles.to_vec(),
                session_id: None,
                grants: Vec::new(),
                delegation: None,
            }))
        }
        ActorKind::Anonymous => Ok(None),
    }
}

/// [`Standing`] answered from identity's tables.
#[derive(Clone, Debug)]
pub struct FromIdentity {
    db: DatabaseConnection,
}

impl FromIdentity {
    /// Looks principals up in `db`.
    pub fn new(db: DatabaseConnection) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self { db })
    }
}

#[async_trait::async_trait]
impl Standing for FromIdentity {
    async fn current(&self, who: Principal<'_>) -> ApiResult<Option<Actor>> {
        current(&self.db, who).await
    }
}
