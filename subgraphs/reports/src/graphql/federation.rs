//! Entities owned by other subgraphs, as seen from reports: accounts' `Account`, extended
//! with the report definitions about it, and identity's `User`, referenced by key only.

use async_graphql::{Context, ID, Object};

use portal_kit::ApiResult;
use portal_kit::loader::load_page;
use portal_kit::pagination::{PageRequest, visible_page};

use super::loaders::DefinitionsByAccount;
use super::types::{ReportDefinition, ReportDefinitionConnection};

portal_kit::entity_key!(
    /// Accounts' `Account`, extended with the report definitions about it.
    Account
);

#[Object]
impl Account {
    /// Stable id (the key shared with accounts).
    async fn id(&self) -> &ID {
        self.key_id()
    }

    /// Report definitions about this account that the caller may read, oldest first.
    async fn reports(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ReportDefinitionConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let Some(account) = self.key() else {
            return Ok(page.page(Vec::new()).into());
        };
        let found = visible_page(
            page,
            |row: &portal_entities::reports::report_definition::Model| row.id,
            |page| load_page::<DefinitionsByAccount>(ctx, account, page),
            |rows| async move { Ok(super::visibility::readable(ctx, rows)) },
        )
        .await?;
        Ok(found.map(ReportDefinition::from).into())
    }
}

portal_kit::entity_reference!(
    /// Identity's `User`, referenced by key only.
    User,
    "Stable id (the key shared with identity)."
);
