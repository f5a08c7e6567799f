//! Entities owned by other subgraphs, as seen from integrations: accounts' `Account`,
//! extended with the account's references in external systems.

use async_graphql::{Context, ID, Object};

use portal_kit::ApiResult;
use portal_kit::loader::load;

use super::loaders::RefsByAccount;
use super::types::ExternalRef;

portal_kit::entity_key!(
    /// Accounts' `Account`, extended with its references in external systems.
    Account
);

#[Object]
impl Account {
    /// Stable id (the key shared with accounts).
    async fn id(&self) -> &ID {
        self.key_id()
    }

    /// The account's ids in external systems, oldest link first.
    async fn external_refs(&self, ctx: &Context<'_>) -> ApiResult<Vec<ExternalRef>> {
        let Some(account) = self.key() else {
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
