//! DataLoaders of the reports subgraph, built once per schema: each batches the lookups
//! of one request tick into one query per tenant (and page request).

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_run};
use portal_kit::ApiError;
use portal_kit::pagination::{Page, PageRequest};

use crate::store;

/// Batches report definition lookups by `(tenant, id)` into one query per tenant.
pub struct DefinitionLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for DefinitionLoader {
    type Value = report_definition::Model;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), report_definition::Model>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::definitions_by_ids(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, row)| ((tenant_id, id), row)));
        }
        Ok(found)
    }
}

/// Batches report run lookups by `(tenant, id)` into one query per tenant.
pub struct RunLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<(Uuid, Uuid)> for RunLoader {
    type Value = report_run::Model;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), report_run::Model>, ApiError> {
        let mut found = HashMap::new();
        for tenant_id in distinct(keys.iter().map(|k| k.0)) {
            let ids = keys.iter().filter(|k| k.0 == tenant_id).map(|k| k.1);
            let rows = store::runs_by_ids(&self.db, tenant_id, ids).await?;
            found.extend(rows.into_iter().map(|(id, row)| ((tenant_id, id), row)));
        }
        Ok(found)
    }
}

/// One account's page of report definitions, as a DataLoader key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountPage {
    /// The caller's tenant.
    pub tenant_id: Uuid,
    /// The account (accounts' id).
    pub account: Uuid,
    /// The page wanted.
    pub page: PageRequest,
}

/// Batches `Account.reports` for many accounts (an `_entities` call) into one query per
/// distinct `(tenant, page request)`.
pub struct AccountReportsLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<AccountPage> for AccountReportsLoader {
    type Value = Page<report_definition::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[AccountPage],
    ) -> Result<HashMap<AccountPage, Page<report_definition::Model>>, ApiError> {
        let mut found = HashMap::new();
        for (tenant_id, page) in distinct(keys.iter().map(|k| (k.tenant_id, k.page))) {
            let accounts: Vec<Uuid> = keys
                .iter()
                .filter(|k| k.tenant_id == tenant_id && k.page == page)
                .map(|k| k.account)
                .collect();
            let pages = store::pages_by_account(&self.db, tenant_id, &accounts, page).await?;
            found.extend(pages.into_iter().map(|(account, rows)| {
                let key = AccountPage {
                    tenant_id,
                    account,
                    page,
                };
                (key, rows)
            }));
        }
        Ok(found)
    }
}

/// One report definition's page of runs, as a DataLoader key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DefinitionRunsPage {
    /// The caller's tenant.
    pub tenant_id: Uuid,
    /// The report definition.
    pub definition: Uuid,
    /// The page wanted.
    pub page: PageRequest,
}

/// Batches `ReportDefinition.runs` for many definitions (a list of definitions, or an
/// `_entities` call) into one query per distinct `(tenant, page request)`.
pub struct DefinitionRunsLoader {
    /// The subgraph's pool.
    pub db: DatabaseConnection,
}

impl Loader<DefinitionRunsPage> for DefinitionRunsLoader {
    type Value = Page<report_run::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[DefinitionRunsPage],
    ) -> Result<HashMap<DefinitionRunsPage, Page<report_run::Model>>, ApiError> {
        let mut found = HashMap::new();
        for (tenant_id, page) in distinct(keys.iter().map(|k| (k.tenant_id, k.page))) {
            let definitions: Vec<Uuid> = keys
                .iter()
                .filter(|k| k.tenant_id == tenant_id && k.page == page)
                .map(|k| k.definition)
                .collect();
            let pages = store::pages_by_definition(&self.db, tenant_id, &definitions, page).await?;
            found.extend(pages.into_iter().map(|(definition, rows)| {
                let key = DefinitionRunsPage {
                    tenant_id,
                    definition,
                    page,
                };
                (key, rows)
            }));
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
