//! Entities owned by other subgraphs, as seen from integrations: accounts' `Account`,
//! extended with the account's references in external systems.

use async_graphql::{Context, ID, Object};
use uuid::Uuid;

use portal_kit::ApiResult;
use portal_kit::loader::load;

use super::loaders::RefsByAccount;
use super::types::ExternalRef;

/// Accounts' `Account`, extended with its references in external systems.
pub struct Account {
    id: ID,
}

impl Account {
    /// A reference to the account with the raw key `id`, as the gateway sent it.
    pub fn from_key(id: ID) -> Self {
        Self { id }
    }
}

#[Object]
impl Account {
    /// Stable id (the key shared with accounts).
    async fn id(&self) -> &ID {
        &self.id
    }

    /// The account's ids in external systems, oldest link first.
    async fn external_refs(&self, ctx: &Context<'_>) -> ApiResult<Vec<ExternalRef>> {
        let Ok(account) = Uuid::parse_str(self.id.as_str()) else {
            return Ok(Vec::new());
        };
        let found = load::<RefsByAccount>(ctx, account).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(ExternalRef::from)
            .collect())
    }
}
