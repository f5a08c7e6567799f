//! Messages' GraphQL surface: `Thread` and `Message` (`@key(fields: "id")`), the
//! `User.threads` field it contributes to identity's `User`, and the thread and message
//! queries and mutations.

mod federation;
mod loaders;
mod subscriptions;
mod types;
mod visibility;

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, Schema};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_kit::context::{actor, db, meta, references};
use portal_kit::error::MaskInternalErrors;
use portal_kit::events::feed::EventFeed;
use portal_kit::input;
use portal_kit::loader::{batch_loader, load_page};
use portal_kit::pagination::PageRequest;
use portal_kit::references::References;
use portal_kit::{ApiError, ApiResult};

use crate::domain::{self, ThreadStatus};
use crate::store;
use visibility::{load_readable_message, load_readable_thread};

pub use federation::{Account, User};
pub use loaders::{
    MessagesById, MessagesByThread, ParticipantsOfThreads, ThreadsById, ThreadsByParticipant,
};
pub use subscriptions::Subscription;
pub use types::{
    Message, MessageConnection, MessageEdge, Thread, ThreadConnection, ThreadEdge, ThreadStatusGql,
};

/// The messages subgraph's executable schema.
pub type MessagesSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over `db`, checking references to other subgraphs' entities through
/// `references` and following committed changes through `feed`; no socket needed (tests
/// call `execute` directly).
pub fn build_schema(
    db: DatabaseConnection,
    references: References,
    feed: Arc<EventFeed>,
) -> MessagesSchema {
    Schema::build(Query, Mutation, Subscription)
        .enable_federation()
        .enable_subscription_in_federation()
        .extension(MaskInternalErrors)
        .data(batch_loader::<ThreadsById>(&db))
        .data(batch_loader::<MessagesById>(&db))
        .data(batch_loader::<ParticipantsOfThreads>(&db))
        .data(batch_loader::<ThreadsByParticipant>(&db))
        .data(batch_loader::<MessagesByThread>(&db))
        .data(references)
        .data(feed)
        .data(db)
        .finish()
}

/// Messages queries.
pub struct Query;

#[Object]
impl Query {
    /// One thread of the caller's tenant, or null.
    async fn thread(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Thread>> {
        let id = input::id("id", &id)?;
        load_thread(ctx, id).await
    }

    /// Threads the caller takes part in, oldest first.
    async fn threads(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ThreadConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let user = actor(ctx).principal()?;
        let found = load_page::<ThreadsByParticipant>(ctx, user, page).await?;
        Ok(found.map(Thread::from).into())
    }

    /// One message of the caller's tenant, or null.
    async fn message(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Message>> {
        let id = input::id("id", &id)?;
        load_message(ctx, id).await
    }

    /// Federation entity resolver for `Thread`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_thread_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Thread>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_thread(ctx, id).await
    }

    /// Federation entity resolver for `Message`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_message_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Message>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_message(ctx, id).await
    }

    /// Federation entity resolver for `User` (only the key is known here).
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> User {
        User::from_key(id)
    }

    /// Federation entity resolver for `Account` (only the key is known here).
    #[graphql(entity)]
    async fn find_account_by_id(&self, id: ID) -> Account {
        Account::from_key(id)
    }
}

async fn load_thread(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Thread>> {
    Ok(load_readable_thread(ctx, id).await?.map(Thread::from))
}

async fn load_message(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Message>> {
    Ok(load_readable_message(ctx, id).await?.map(Message::from))
}

/// Input of `createThread`.
#[derive(InputObject)]
pub struct CreateThreadInput {
    /// Subject line (at most 300 characters).
    pub subject: String,
    /// Body of the first message (at most 20000 characters).
    pub body: String,
    /// The account the thread is about (accounts' id).
    pub account_id: Option<ID>,
    /// Users to take part besides the caller, who always does; at most 50 participants
    /// in all, the caller included.
    pub participant_ids: Option<Vec<ID>>,
}

/// Input of `updateThread`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateThreadInput {
    /// New subject line.
    pub subject: Option<String>,
    /// New status (`CLOSED` makes the thread read-only).
    pub status: Option<ThreadStatusGql>,
}

/// Input of `postMessage`.
#[derive(InputObject)]
pub struct CreateMessageInput {
    /// The thread to post to.
    pub thread_id: ID,
    /// Text of the message (at most 20000 characters).
    pub body: String,
}

/// Input of `editMessage`.
#[derive(InputObject)]
pub struct UpdateMessageInput {
    /// New text of the message (at most 20000 characters).
    pub body: String,
}

/// Messages mutations. Each validates all input before writing anything and records an
/// audit event in the same transaction as the change.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Opens a thread in the caller's tenant with its first message, posted by the caller.
    async fn create_thread(
        &self,
        ctx: &Context<'_>,
        input: CreateThreadInput,
    ) -> ApiResult<Thread> {
        let creator = actor(ctx).principal()?;
        let others = input
            .participant_ids
            .unwrap_or_default()
            .iter()
            .map(|id| input::id("input.participantIds", id))
            .collect::<ApiResult<Vec<Uuid>>>()?;
        let new = store::NewThread {
            subject: domain::subject("input.subject", &input.subject)?,
            body: domain::body("input.body", &input.body)?,
            account_id: input
                .account_id
                .map(|id| input::id("input.accountId", &id))
                .transpose()?,
            participant_ids: domain::participants("input.participantIds", creator, &others)?,
        };
        let references = references(ctx)?;
        references
            .require(
                actor(ctx),
                meta(ctx),
                "input.participantIds",
                &domain::CURRENT_USER,
                // The caller is the creator, always a participant: no need to ask about them.
                &new.participant_ids[1..],
            )
            .await?;
        references
            .require(
                actor(ctx),
                meta(ctx),
                "input.accountId",
                &domain::OPEN_ACCOUNT,
                new.account_id.as_slice(),
            )
            .await?;
        Ok(store::create_thread(db(ctx)?, actor(ctx), meta(ctx), new)
            .await?
            .into())
    }

    /// Changes a thread's subject or status.
    async fn update_thread(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateThreadInput,
    ) -> ApiResult<Thread> {
        let id = input::id("id", &id)?;
        if load_readable_thread(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("thread"));
        }
        let changes = store::ThreadChanges {
            subject: input
                .subject
                .map(|subject| domain::subject("input.subject", &subject))
                .transpose()?,
            status: input.status.map(ThreadStatus::from),
        };
        Ok(
            store::update_thread(db(ctx)?, actor(ctx), meta(ctx), id, changes)
                .await?
                .into(),
        )
    }

    /// Posts a message to an open thread the caller takes part in.
    async fn post_message(
        &self,
        ctx: &Context<'_>,
        input: CreateMessageInput,
    ) -> ApiResult<Message> {
        let thread_id = input::id("input.threadId", &input.thread_id)?;
        let body = domain::body("input.body", &input.body)?;
        Ok(
            store::post_message(db(ctx)?, actor(ctx), meta(ctx), thread_id, body)
                .await?
                .into(),
        )
    }

    /// Replaces the body of one of the caller's own messages in an open thread.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateMessageInput,
    ) -> ApiResult<Message> {
        let id = input::id("id", &id)?;
        let body = domain::body("input.body", &input.body)?;
        Ok(
            store::edit_message(db(ctx)?, actor(ctx), meta(ctx), id, body)
                .await?
                .into(),
        )
    }
}
