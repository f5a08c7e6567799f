//! Entities owned by other subgraphs, as seen from messages: identity's `User`, extended
//! with the threads the user takes part in, and accounts' `Account`, referenced by key.

use async_graphql::{Context, ID, Object};
use uuid::Uuid;

use portal_kit::ApiResult;
use portal_kit::loader::load_page;
use portal_kit::pagination::PageRequest;

use super::loaders::ThreadsByParticipant;
use super::types::{Thread, ThreadConnection};

/// Identity's `User`, extended with the threads the user takes part in.
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

    /// Threads the user takes part in, oldest first.
    async fn threads(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ThreadConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let Ok(user) = Uuid::parse_str(self.id.as_str()) else {
            return Ok(page.page(Vec::new()).into());
        };
        let found = load_page::<ThreadsByParticipant>(ctx, user, page).await?;
        Ok(found.map(Thread::from).into())
    }
}

/// Accounts' `Account`, referenced by key only.
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
}
