//! What webhook dispatch asks of identity and the policies: the rights an endpoint's
//! owner has now (their current roles for a user, the key's roles for a service account,
//! under the stored policies of their tenant). The integrations subgraph holds only the
//! [`Owners`] trait; it never reads identity's tables. Also the integrations' notices by
//! email — a webhook endpoint disabled, an integration failing — to the people the
//! policies let act on them.

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

/// Emails the people who may re-enable a webhook endpoint (active users of its tenant
/// whose roles the policies allow `Mutation.updateWebhookEndpoint`) that the platform
/// disabled it, and why (job `webhook.disabled_notice`, queued with the disabling).
pub struct DisabledNotice {
    db: DatabaseConnection,
    data_key: portal_kit::secret::DataKey,
    owners: Arc<PolicyOwners>,
}

impl DisabledNotice {
    /// The job kind.
    pub const KIND: &'static str = portal_integrations::store::webhooks::DISABLED_NOTICE_KIND;

    /// Over `db`, sealing mail with `data_key`.
    pub fn new(db: DatabaseConnection, data_key: portal_kit::secret::DataKey) -> Arc<Self> {
        Arc::new(Self {
            owners: PolicyOwners::new(db.clone()),
            db,
            data_key,
        })
    }

    /// The addresses of who may re-enable endpoints in `tenant_id`.
    async fn recipients(&self, tenant_id: uuid::Uuid) -> ApiResult<Vec<String>> {
        self.owners
            .people_allowed(tenant_id, "Mutation.updateWebhookEndpoint")
            .await
    }
}

impl PolicyOwners {
    /// The addresses of the active users of `tenant_id` whose roles the stored policies
    /// allow to call `coordinate` (a mutation): who to tell when something needs one of
    /// them.
    pub async fn people_allowed(
        &self,
        tenant_id: uuid::Uuid,
        coordinate: &str,
    ) -> ApiResult<Vec<String>> {
        use portal_entities::identity::user;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let users = user::Entity::find()
            .filter(user::Column::TenantId.eq(tenant_id))
            .filter(user::Column::Status.eq("ACTIVE"))
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let roles =
            portal_identity::store::roles_of_users(&self.db, tenant_id, users.iter().map(|u| u.id))
                .await?;
        let policies = self.policies().await?;
        let domain = tenant_id.to_string();
        Ok(users
            .into_iter()
            .filter(|u| {
                let names: Vec<String> = roles
                    .get(&u.id)
                    .map(|list| list.iter().map(|r| r.name.clone()).collect())
                    .unwrap_or_default();
                let held = policies.closure(&with_implicit_roles(&names, true), &domain);
                policies.allows(&held, &domain, coordinate, Action::Write)
            })
            .map(|u| u.email)
            .collect())
    }
}

#[async_trait::async_trait]
impl portal_kit::jobs::runner::JobHandler for DisabledNotice {
    async fn run(
        &self,
        job: &portal_kit::jobs::runner::JobContext,
    ) -> Result<(), portal_kit::jobs::runner::JobError> {
        use portal_kit::jobs::runner::JobError;
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let tenant_id = job.tenant()?;
        let endpoint_id = job.required_id("endpointId")?;
        let reason = job.payload["reason"].as_str().unwrap_or("it kept failing");
        let endpoint =
            match portal_integrations::store::webhook_endpoint(&self.db, tenant_id, endpoint_id)
                .await
            {
                Ok(found) => found,
                // Deleted since: nobody needs telling.
                Err(ApiError::NotFound(_)) => return Ok(()),
                Err(err) => return Err(retry(err)),
            };
        // The host only: a URL may carry a token in its path or query.
        let host = url::Url::parse(&endpoint.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "its receiver".into());
        let recipients = self.recipients(tenant_id).await.map_err(retry)?;
        let text = format!(
            "The portal stopped delivering events to the webhook endpoint {id} ({host}) \
             of your organization: {reason}.\n\nEvents that happen while it is disabled \
             are not queued for it. When the receiver works again, enable the endpoint \
             (updateWebhookEndpoint with enabled: true) and replay the messages that \
             failed (replayWebhookMessages).\n",
            id = endpoint.id,
        );
        mail_all(
            &self.db,
            &self.data_key,
            tenant_id,
            recipients,
            "A webhook endpoint was disabled",
            &text,
        )
        .await
        .map_err(retry)
    }
}

/// Emails the people who may configure an integration (active users of its tenant whose
/// roles the policies allow `Mutation.configureIntegration`) that its remote is failing —
/// the circuit breaker opened or the credentials were refused — and what to do (job
/// `integration.failing_notice`, queued when its health becomes `FAILING`).
pub struct IntegrationFailingNotice {
    db: DatabaseConnection,
    data_key: portal_kit::secret::DataKey,
    owners: Arc<PolicyOwners>,
}

impl IntegrationFailingNotice {
    /// The job kind.
    pub const KIND: &'static str = portal_integrations::store::connectors::FAILING_NOTICE_KIND;

    /// Over `db`, sealing mail with `data_key`.
    pub fn new(db: DatabaseConnection, data_key: portal_kit::secret::DataKey) -> Arc<Self> {
        Arc::new(Self {
            owners: PolicyOwners::new(db.clone()),
            db,
            data_key,
        })
    }
}

#[async_trait::async_trait]
impl portal_kit::jobs::runner::JobHandler for IntegrationFailingNotice {
    async fn run(
        &self,
        job: &portal_kit::jobs::runner::JobContext,
    ) -> Result<(), portal_kit::jobs::runner::JobError> {
        use portal_kit::jobs::runner::JobError;
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let tenant_id = job.tenant()?;
        let id = job.required_id("integrationId")?;
        let integration =
            match portal_integrations::store::integration(&self.db, tenant_id, id).await {
                Ok(found) => found,
                Err(ApiError::NotFound(_)) => return Ok(()),
                Err(err) => return Err(retry(err)),
            };
        // Recovered before anyone was told: nothing to say.
        if integration.health != "FAILING" {
            return Ok(());
        }
        let error = job.payload["error"]
            .as_str()
            .unwrap_or("its remote keeps failing");
        let what_next = match integration.circuit_open_until {
            Some(until) => format!(
                "The portal stops calling it until {until} and then tries again; runs wait \
                 meanwhile. If the remote is down, nothing needs doing."
            ),
            None => "The remote refused the credentials: configure new ones \
                     (configureIntegration) and test the connection (testIntegrationConnection)."
                .to_owned(),
        };
        let recipients = self
            .owners
            .people_allowed(tenant_id, "Mutation.configureIntegration")
            .await
            .map_err(retry)?;
        let subject = format!("The {} integration is failing", integration.provider);
        let text = format!(
            "The integration \"{name}\" ({provider}, {id}) of your organization is \
             failing: {error}.\n\n{what_next}\n",
            name = integration.name,
            provider = integration.provider,
            id = integration.id,
        );
        mail_all(
            &self.db,
            &self.data_key,
            tenant_id,
            recipients,
            &subject,
            &text,
        )
        .await
        .map_err(retry)
    }
}

/// Queues `subject` and `text` to each of `recipients` (of `tenant_id`) in one
/// transaction: all of them are sent, or the job runs again.
async fn mail_all(
    db: &DatabaseConnection,
    data_key: &portal_kit::secret::DataKey,
    tenant_id: uuid::Uuid,
    recipients: Vec<String>,
    subject: &str,
    text: &str,
) -> ApiResult<()> {
    use portal_kit::db::BeginWrite;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    for to in recipients {
        let email = portal_kit::mail::Email {
            to,
            subject: subject.to_owned(),
            text: text.to_owned(),
            unsubscribe: None,
        };
        portal_kit::mail::enqueue(&txn, data_key, Some(tenant_id), email).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)
}
