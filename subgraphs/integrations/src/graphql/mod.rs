//! Integrations' GraphQL surface: `Integration` and `WebhookEndpoint`
//! (`@key(fields: "id")`), `ExternalRef`, the `Account.externalRefs` field it contributes
//! to accounts' `Account`, and the integration queries and mutations.

mod connectors;
mod federation;
mod loaders;
mod subscriptions;
mod types;
mod webhooks;

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MergedObject, Object, Schema};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_kit::ApiError;
use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta, references, tenant as tenant_of};
use portal_kit::envelope::TenantKeys;
use portal_kit::error::MaskInternalErrors;
use portal_kit::events::feed::EventFeed;
use portal_kit::input;
use portal_kit::loader::{batch_loader, load};
use portal_kit::pagination::PageRequest;
use portal_kit::references::{References, VisibilityLoader};

use crate::domain::{self, IntegrationKind, IntegrationStatus};
use crate::store;

pub use connectors::{
    ConnectorContext, ConnectorMutation, IntegrationConnectionCheck, IntegrationFieldRule,
    IntegrationSyncFailure, IntegrationSyncRun,
};
pub use federation::Account;
pub use loaders::{
    AttemptsByMessage, EndpointStatsById, IntegrationsById, RefsByAccount, RunStatsByIntegration,
    WebhookEndpointsById,
};
pub use types::{
    ExternalRef, Integration, IntegrationConnection, IntegrationEdge, IntegrationKindGql,
    IntegrationStatusGql, WebhookEndpoint, WebhookEndpointConnection, WebhookEndpointEdge,
};
pub use webhooks::{
    MessageStatusGql, PayloadModeGql, WebhookAttempt, WebhookEndpointRegistration, WebhookMessage,
    WebhookMutation,
};

pub use subscriptions::Subscription;

/// The integrations subgraph's executable schema.
pub type IntegrationsSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over `db`, checking references to other subgraphs' entities through
/// `references`, sealing webhook secrets and connector credentials with the tenants'
/// `keys`, calling remotes as `connectors` says and following committed events on `feed`
/// (subscriptions); no socket needed (tests call `execute` directly).
pub fn build_schema(
    db: DatabaseConnection,
    references: References,
    keys: TenantKeys,
    connectors: ConnectorContext,
    feed: Arc<EventFeed>,
) -> IntegrationsSchema {
    Schema::build(Query, Mutation::default(), Subscription)
        .enable_federation()
        .enable_subscription_in_federation()
        .extension(MaskInternalErrors)
        .data(batch_loader::<IntegrationsById>(&db))
        .data(batch_loader::<WebhookEndpointsById>(&db))
        .data(batch_loader::<RefsByAccount>(&db))
        .data(batch_loader::<AttemptsByMessage>(&db))
        .data(batch_loader::<RunStatsByIntegration>(&db))
        .data(batch_loader::<EndpointStatsById>(&db))
        .data(keys)
        .data(connectors)
        .data(feed)
        .data(async_graphql::dataloader::DataLoader::new(
            VisibilityLoader::new(references.clone(), "Account"),
            portal_kit::telemetry::spawn_traced,
        ))
        .data(references)
        .data(db)
        .finish()
}

/// Integrations queries.
pub struct Query;

#[Object]
impl Query {
    /// One integration of the caller's tenant, or null.
    async fn integration(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Integration>> {
        let id = input::id("id", &id)?;
        load_integration(ctx, id).await
    }

    /// Integrations of the caller's tenant, oldest first.
    async fn integrations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<IntegrationConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = store::list_integrations(db(ctx)?, tenant_of(ctx)?, page).await?;
        Ok(rows.map(Integration::from).into())
    }

    /// Webhook endpoints of the caller's tenant, oldest first.
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<WebhookEndpointConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = store::list_webhook_endpoints(db(ctx)?, tenant_of(ctx)?, page).await?;
        Ok(rows.map(WebhookEndpoint::from).into())
    }

    /// Federation entity resolver for `Integration`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_integration_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<Integration>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_integration(ctx, id).await
    }

    /// Federation entity resolver for `WebhookEndpoint`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_webhook_endpoint_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<WebhookEndpoint>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        let found = load::<WebhookEndpointsById>(ctx, id).await?;
        Ok(found.map(WebhookEndpoint::from))
    }

    /// Federation entity resolver for `Account` (only the key is known here).
    #[graphql(entity)]
    async fn find_account_by_id(&self, id: ID) -> Account {
        Account::from_key(id)
    }
}

async fn load_integration(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Integration>> {
    let found = load::<IntegrationsById>(ctx, id).await?;
    Ok(found.map(Integration::from))
}

/// Input of `createIntegration`.
#[derive(InputObject)]
pub struct CreateIntegrationInput {
    /// What the external system is.
    pub kind: IntegrationKindGql,
    /// Provider name: 2-64 characters of a-z, 0-9, _ and -.
    pub provider: String,
    /// Display name.
    pub name: String,
}

/// Input of `updateIntegration`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateIntegrationInput {
    /// New display name.
    pub name: Option<String>,
    /// New status.
    pub status: Option<IntegrationStatusGql>,
}

/// Input of `createWebhookEndpoint`.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// Target URL: https (http only for localhost), at most 2048 characters.
    pub url: String,
    /// What the endpoint is for (at most 500 characters).
    pub description: Option<String>,
    /// 1 to 50 event types like `account.updated`.
    pub event_types: Vec<String>,
}

/// Input of `updateWebhookEndpoint`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    /// New target URL.
    pub url: Option<String>,
    /// New description; blank clears it.
    pub description: Option<String>,
    /// New event types (replace the current ones).
    pub event_types: Option<Vec<String>>,
    /// Whether events are delivered (enabling clears why the portal disabled it).
    pub enabled: Option<bool>,
    /// What payloads hold.
    pub payload_mode: Option<PayloadModeGql>,
}

/// Input of `linkExternalRef`.
#[derive(InputObject)]
pub struct CreateExternalRefInput {
    /// An integration of the caller's tenant.
    pub integration_id: ID,
    /// The portal account (accounts' id).
    pub account_id: ID,
    /// The external system's id of the account.
    pub external_id: String,
}

/// Integrations mutations. Each validates all input before writing anything and records
/// an audit event in the same transaction as the change.
#[derive(MergedObject, Default)]
pub struct Mutation(IntegrationMutation, WebhookMutation, ConnectorMutation);

/// Integrations and external references, and webhook endpoints' settings.
#[derive(Default)]
pub struct IntegrationMutation;

#[Object]
impl IntegrationMutation {
    /// Connects an external system to the caller's tenant (status `ACTIVE`).
    async fn create_integration(
        &self,
        ctx: &Context<'_>,
        input: CreateIntegrationInput,
    ) -> ApiResult<Integration> {
        let new = store::NewIntegration {
            kind: IntegrationKind::from(input.kind),
            provider: domain::provider("input.provider", &input.provider)?,
            name: input::text("input.name", &input.name, domain::NAME_MAX)?,
        };
        Ok(
            store::create_integration(db(ctx)?, actor(ctx), meta(ctx), new)
                .await?
                .into(),
        )
    }

    /// Renames an integration or changes its status.
    async fn update_integration(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateIntegrationInput,
    ) -> ApiResult<Integration> {
        let id = input::id("id", &id)?;
        let changes = store::IntegrationChanges {
            name: input
                .name
                .map(|name| input::text("input.name", &name, domain::NAME_MAX))
                .transpose()?,
            status: input.status.map(IntegrationStatus::from),
        };
        let updated =
            store::update_integration(db(ctx)?, actor(ctx), meta(ctx), id, changes).await?;
        Ok(updated.into())
    }

    /// Registers an enabled webhook endpoint in the caller's tenant, without showing its
    /// signing secret (rotate it to get one).
    #[graphql(deprecation = "Use registerWebhookEndpoint: it returns the signing secret.")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> ApiResult<WebhookEndpoint> {
        let new = webhooks::new_endpoint(
            &input.url,
            input.description.as_deref(),
            &input.event_types,
            domain::catalogue::PayloadMode::Full,
        )?;
        let keys = webhooks::keys(ctx)?;
        let (created, _secret) =
            store::create_webhook_endpoint(db(ctx)?, keys, actor(ctx), meta(ctx), new).await?;
        Ok(created.into())
    }

    /// Changes a webhook endpoint's URL, description, event types or enabled flag.
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookEndpointInput,
    ) -> ApiResult<WebhookEndpoint> {
        let id = input::id("id", &id)?;
        let changes = store::WebhookEndpointChanges {
            url: input
                .url
                .map(|url| domain::webhook_url("input.url", &url))
                .transpose()?,
            description: input
                .description
                .map(|text| domain::description("input.description", &text))
                .transpose()?,
            event_types: input
                .event_types
                .map(|types| domain::event_types("input.eventTypes", &types))
                .transpose()?,
            enabled: input.enabled,
            payload_mode: input.payload_mode.map(domain::catalogue::PayloadMode::from),
        };
        let updated =
            store::update_webhook_endpoint(db(ctx)?, actor(ctx), meta(ctx), id, changes).await?;
        Ok(updated.into())
    }

    /// Records an account's id in an integration of the caller's tenant: `NOT_FOUND` for
    /// an integration outside the tenant, `CONFLICT` when the account is already linked
    /// through that integration.
    async fn link_external_ref(
        &self,
        ctx: &Context<'_>,
        input: CreateExternalRefInput,
    ) -> ApiResult<ExternalRef> {
        let new = store::NewExternalRef {
            integration_id: input::id("input.integrationId", &input.integration_id)?,
            account_id: input::id("input.accountId", &input.account_id)?,
            external_id: domain::external_id("input.externalId", &input.external_id)?,
        };
        // An integration of another tenant stays indistinguishable from a missing one.
        load::<IntegrationsById>(ctx, new.integration_id)
            .await?
            .ok_or(ApiError::NotFound("integration"))?;
        references(ctx)?
            .require(
                actor(ctx),
                meta(ctx),
                "input.accountId",
                &domain::OPEN_ACCOUNT,
                &[new.account_id],
            )
            .await?;
        Ok(
            store::link_external_ref(db(ctx)?, actor(ctx), meta(ctx), new)
                .await?
                .into(),
        )
    }
}
