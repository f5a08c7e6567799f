//! Entities owned by other subgraphs, as seen from messages: identity's `User`, extended
//! with the threads the user takes part in, and accounts' `Account`, referenced by key.

use async_graphql::{Context, ID, Object};

use portal_kit::ApiResult;
use portal_kit::loader::load_page;
use portal_kit::pagination::{PageRequest, visible_page};

use super::loaders::ThreadsByParticipant;
use super::types::{Thread, ThreadConnection};

portal_kit::entity_key!(
    /// Identity's `User`, extended with the threads the user takes part in.
    User
);

#[Object]
impl User {
    /// Stable id (the key shared with identity).
    async fn id(&self) -> &ID {
        self.key_id()
    }

    /// Threads the user takes part in that the caller may read, oldest first.
    async fn threads(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ThreadConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let Some(user) = self.key() else {
            return Ok(page.page(Vec::new()).into());
        };
        // Another user's threads: only those the caller may read too.
        let found = visible_page(
            page,
            |row: &portal_entities::messages::thread::Model| row.id,
            |page| load_page::<ThreadsByParticipant>(ctx, user, page),
            |rows| super::visibility::readable_threads(ctx, rows),
        )
        .await?;
        Ok(found.map(Thread::from).into())
    }
}

portal_kit::entity_reference!(
    /// Accounts' `Account`, referenced by key only.
    Account,
    "Stable id (the key shared with accounts)."
);
