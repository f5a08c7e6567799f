//! Entities owned by other subgraphs, as seen from integrations: accounts' `Account`,
//! extended with the account's references in external systems.

use async_graphql::{Context, ID, Object};

use portal_kit::ApiResult;
use portal_kit::context::actor;
use portal_kit::loader::{load, registered};
use portal_kit::references::VisibilityLoader;

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

    /// The account's ids in external systems, oldest link first; empty for an account the
    /// caller may not see (accounts' row rule, asked in one batch per request).
    async fn external_refs(&self, ctx: &Context<'_>) -> ApiResult<Vec<ExternalRef>> {
        let Some(account) = self.key() else {
            return Ok(Vec::new());
        };
        let visible = registered::<VisibilityLoader>(ctx)?
            .load_one(VisibilityLoader::key(actor(ctx), account))
            .await?
            .unwrap_or(false);
        if !visible {
            return Ok(Vec::new());
        }
        let found = load::<RefsByAccount>(ctx, account).await?;
        Ok(found
            .unwrap_or_default()
            .into_iter()
            .map(ExternalRef::from)
            .collect())
    }
}
