//! Entities owned by other subgraphs, as seen from reports: accounts' `Account`, extended
//! with the report definitions about it, and identity's `User`, referenced by key only.

use async_graphql::{Context, ID, Object};
use uuid::Uuid;

use portal_kit::ApiResult;
use portal_kit::loader::load_page;
use portal_kit::pagination::PageRequest;

use super::loaders::DefinitionsByAccount;
use super::types::{ReportDefinition, ReportDefinitionConnection};

/// Accounts' `Account`, extended with the report definitions about it.
pub struct Account {
    id: ID,
}

impl Account {
    /// A reference to the account `id` (only the key is known here).
    pub fn stub(id: Uuid) -> Self {
        Self {
            id: ID(id.to_string()),
        }
    }

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

    /// Report definitions about this account, oldest first.
    async fn reports(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ReportDefinitionConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let Ok(account) = Uuid::parse_str(self.id.as_str()) else {
            return Ok(page.page(Vec::new()).into());
        };
        let found = load_page::<DefinitionsByAccount>(ctx, account, page).await?;
        Ok(found.map(ReportDefinition::from).into())
    }
}

/// Identity's `User`, referenced by key only.
pub struct User {
    id: ID,
}

impl User {
    /// A reference to the user `id` (only the key is known here).
    pub fn stub(id: Uuid) -> Self {
        Self {
            id: ID(id.to_string()),
        }
    }

    /// A reference to the user with the raw key `id`, as the gateway sent it.
    pub fn from_key(id: ID) -> Self {
        Self { id }
    }
}

#[Object]
impl User {
    /// Stable id (the key shared with identity).
    async fn id(&self) -> &ID {
        &self.id
    }
}
