//! What webhook dispatch asks of identity and the policies: the rights an endpoint's
//! owner has now (their current roles for a user, the key's roles for a service account,
//! under the stored policies of their tenant). The integrations subgraph holds only the
//! [`Owners`] trait; it never reads identity's tables.

use std::collections::BTreeSet;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;

use portal_integrations::domain::catalogue::Rights;
use portal_integrations::store::webhooks::Owners;
use portal_kit::policy::{Action, Policies, with_implicit_roles};
use portal_kit::principal::{Principal, Standing};
use portal_kit::{Actor, ApiError, ApiResult};

/// Owners' rights from identity and the stored policies (reloaded when their revision
/// moves).
pub struct PolicyOwners {
    db: DatabaseConnection,
    standing: Arc<dyn Standing>,
    policies: Mutex<Option<Arc<Policies>>>,
}

impl PolicyOwners {
    /// Over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self {
            standing: portal_identity::principals::FromIdentity::new(db.clone()),
            db,
            policies: Mutex::new(None),
        })
    }

    async fn policies(&self) -> ApiResult<Arc<Policies>> {
        let revision = crate::policies::revision(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut cached = self.policies.lock().await;
        if let Some(policies) = cached.as_ref().filter(|p| p.revision == revision) {
            return Ok(policies.clone());
        }
        let loaded = Arc::new(portal_identity::policy_store::load(&self.db).await?);
        *cached = Some(loaded.clone());
        Ok(loaded)
    }
}

/// An owner's roles (with every role they inherit) under one revision of the policies.
struct OwnerRights {
    policies: Arc<Policies>,
    held: BTreeSet<String>,
    domain: String,
    grants: Vec<String>,
}

impl Rights for OwnerRights {
    fn may_read(&self, coordinate: &str) -> bool {
        self.policies
            .allows(&self.held, &self.domain, coordinate, Action::Read)
    }

    fn holds(&self, grant: &str) -> bool {
        self.grants.iter().any(|held| held == grant)
    }
}

#[async_trait::async_trait]
impl Owners for PolicyOwners {
    async fn rights(&self, owner: &Actor) -> ApiResult<Option<Box<dyn Rights + Send + Sync>>> {
        let (Some(id), Some(tenant_id)) = (owner.id, owner.tenant_id) else {
            return Ok(None);
        };
        let who = Principal {
            kind: owner.kind,
            tenant_id,
            id,
            session: None,
            key_roles: &owner.roles,
        };
        let Some(current) = self.standing.current(who).await? else {
            return Ok(None);
        };
        let policies = self.policies().await?;
        let domain = tenant_id.to_string();
        let held = policies.closure(&with_implicit_roles(&current.roles, true), &domain);
        Ok(Some(Box::new(OwnerRights {
            grants: policies.grants(&held, &domain),
            policies,
            held,
            domain,
        })))
    }
}
