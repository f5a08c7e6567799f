//! The GraphQL surface of service accounts and API keys (tenant admins only).

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::identity::{api_key, service_account};
use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta};
use portal_kit::input;
use portal_kit::scalars::DateTimeArg;

use crate::api_keys::{self, NewApiKey};

/// A non-human principal that integrations act as, through its API keys.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ServiceAccount {
    /// Stable id.
    pub id: ID,
    /// Unique name within the tenant.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// `ACTIVE` or `DISABLED` (a disabled account's keys do not work).
    pub status: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    tenant_id: Uuid,
}

impl From<service_account::Model> for ServiceAccount {
    fn from(row: service_account::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            description: row.description,
            status: row.status,
            created_at: row.created_at,
            uuid: row.id,
            tenant_id: row.tenant_id,
        }
    }
}

#[ComplexObject]
impl ServiceAccount {
    /// Its API keys, newest first (revoked and expired ones included).
    async fn api_keys(&self, ctx: &Context<'_>) -> ApiResult<Vec<ApiKey>> {
        let rows = api_keys::keys_of(db(ctx)?, self.tenant_id, self.uuid).await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }
}

/// An API key, as listed: never the key itself.
#[derive(SimpleObject)]
pub struct ApiKey {
    /// Stable id.
    pub id: ID,
    /// A label.
    pub name: String,
    /// The key's first characters (`pk_` + 8), to recognise it.
    pub prefix: String,
    /// Roles the key acts with.
    pub roles: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_key::Model> for ApiKey {
    fn from(row: api_key::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            roles: api_keys::roles_of(&row),
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A new key: `key` is shown this once and cannot be read again.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key, for `Authorization: Bearer …` or `X-API-Key: …`.
    pub key: String,
    /// Its listing.
    pub api_key: ApiKey,
}

/// Input of `createServiceAccount`.
#[derive(InputObject)]
pub struct CreateServiceAccountInput {
    /// Unique name within the tenant.
    pub name: String,
    /// What it is for.
    #[graphql(default)]
    pub description: String,
}

/// Input of `createApiKey`.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// The service account the key acts as.
    pub service_account_id: ID,
    /// A label.
    pub name: String,
    /// Roles of the tenant the key acts with.
    pub roles: Vec<String>,
    /// When the key stops working; omit for never.
    pub expires_at: Option<DateTimeArg>,
}

/// Service-account queries.
#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// The tenant's service accounts (tenant admins).
    async fn service_accounts(&self, ctx: &Context<'_>) -> ApiResult<Vec<ServiceAccount>> {
        let rows = api_keys::service_accounts(db(ctx)?, actor(ctx)).await?;
        Ok(rows.into_iter().map(ServiceAccount::from).collect())
    }
}

/// Service-account and API-key mutations (tenant admins).
#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates a service account.
    async fn create_service_account(
        &self,
        ctx: &Context<'_>,
        input: CreateServiceAccountInput,
    ) -> ApiResult<ServiceAccount> {
        let name = input::text("input.name", &input.name, 200)?;
        let description = match input.description.trim() {
            "" => String::new(),
            text => input::text("input.description", text, 500)?,
        };
        let created =
            api_keys::create_service_account(db(ctx)?, actor(ctx), meta(ctx), name, description)
                .await?;
        Ok(created.into())
    }

    /// Disables a service account; its keys stop working within seconds.
    async fn disable_service_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<ServiceAccount> {
        let id = input::id("id", &id)?;
        let updated =
            api_keys::disable_service_account(db(ctx)?, actor(ctx), meta(ctx), id).await?;
        Ok(updated.into())
    }

    /// Creates an API key; the key is in the answer and nowhere else.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> ApiResult<CreatedApiKey> {
        let roles = input
            .roles
            .iter()
            .map(|role| crate::domain::role_name("input.roles", role))
            .collect::<ApiResult<Vec<_>>>()?;
        let new = NewApiKey {
            service_account_id: input::id("input.serviceAccountId", &input.service_account_id)?,
            name: input::text("input.name", &input.name, 200)?,
            roles,
            expires_at: input
                .expires_at
                .map(|at| at.parse("input.expiresAt"))
                .transpose()?,
        };
        let (key, row) = api_keys::create_api_key(db(ctx)?, actor(ctx), meta(ctx), new).await?;
        Ok(CreatedApiKey {
            key,
            api_key: row.into(),
        })
    }

    /// Revokes an API key; it stops working within seconds.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ApiKey> {
        let id = input::id("id", &id)?;
        Ok(
            api_keys::revoke_api_key(db(ctx)?, actor(ctx), meta(ctx), id)
                .await?
                .into(),
        )
    }
}
