//! DataLoaders of the integrations subgraph, built once per schema: each batches the
//! lookups of one request tick into one query per tenant.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::integrations::{external_ref, integration, webhook_endpoint};
use portal_kit::ApiError;

use crate::store;

/// Batches integration lookups by `(tenant, id)` into one query per tenant.
pub struct IntegrationLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for IntegrationLoader {
    type Value = integration::Model;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), integration::Model>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::integrations_by_ids(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, row)| ((tenant_id, id), row)));
        }
        Ok(found)
    }
}

/// Batches webhook endpoint lookups by `(tenant, id)` into one query per tenant.
pub struct WebhookEndpointLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for WebhookEndpointLoader {
    type Value = webhook_endpoint::Model;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), webhook_endpoint::Model>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::webhook_endpoints_by_ids(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, row)| ((tenant_id, id), row)));
        }
        Ok(found)
    }
}

/// Batches `Account.externalRefs` by `(tenant, account id)` into one query per tenant
/// (their integrations then go through [`IntegrationLoader`], one more query).
pub struct AccountRefsLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for AccountRefsLoader {
    type Value = Vec<external_ref::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), Vec<external_ref::Model>>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::refs_by_accounts(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, refs)| ((tenant_id, id), refs)));
        }
        Ok(found)
    }
}

fn distinct<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort_unstable();
    items.dedup();
    items
}
