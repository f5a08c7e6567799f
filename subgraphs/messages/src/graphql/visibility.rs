//! The row rule of messages, applied on every read path (by id, entity reference,
//! `User.threads`, updates): a caller reads a thread — and its messages — when it takes
//! part in it, or holds the `Thread.all` grant the policies give staff who work the
//! tenant's support queue. Any other thread reads as missing.

use async_graphql::Context;
use uuid::Uuid;

use portal_entities::messages::{message, message_attachment, thread};
use portal_kit::ApiResult;
use portal_kit::context::actor;
use portal_kit::loader::{load, load_many};
use portal_kit::policy::THREADS_ALL;

use super::loaders::{AttachmentsById, MessagesById, ParticipantsOfThreads, ThreadsById};
use crate::domain;

/// The ids among `thread_ids` whose threads the caller may read (one batched lookup of
/// participants, none with the grant).
async fn readable(
    ctx: &Context<'_>,
    thread_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<Vec<Uuid>> {
    let actor = actor(ctx);
    let thread_ids: Vec<Uuid> = thread_ids.into_iter().collect();
    if actor.has_grant(THREADS_ALL) {
        return Ok(thread_ids);
    }
    let Some(reader) = actor.id else {
        return Ok(Vec::new());
    };
    let participants = load_many::<ParticipantsOfThreads>(ctx, thread_ids.iter().copied()).await?;
    Ok(thread_ids
        .into_iter()
        .filter(|id| {
            let of_thread: Vec<Uuid> = participants
                .get(id)
                .map(|rows| rows.iter().map(|row| row.user_id).collect())
                .unwrap_or_default();
            domain::takes_part(reader, &of_thread)
        })
        .collect())
}

/// Those of `rows` the caller may read.
pub async fn readable_threads(
    ctx: &Context<'_>,
    rows: Vec<thread::Model>,
) -> ApiResult<Vec<thread::Model>> {
    let ok = readable(ctx, rows.iter().map(|t| t.id)).await?;
    Ok(rows.into_iter().filter(|t| ok.contains(&t.id)).collect())
}

/// The thread `id` of the caller's tenant, if the caller may read it.
pub async fn load_readable_thread(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<thread::Model>> {
    let found = load::<ThreadsById>(ctx, id).await?;
    Ok(readable_threads(ctx, found.into_iter().collect())
        .await?
        .pop())
}

/// The message `id` of the caller's tenant, if the caller may read its thread.
pub async fn load_readable_message(
    ctx: &Context<'_>,
    id: Uuid,
) -> ApiResult<Option<message::Model>> {
    let Some(found) = load::<MessagesById>(ctx, id).await? else {
        return Ok(None);
    };
    let ok = readable(ctx, [found.thread_id]).await?;
    Ok(ok.contains(&found.thread_id).then_some(found))
}

/// The attachment `id` of the caller's tenant, if the caller may read it: its thread is
/// readable, and it is on a message — or the caller uploaded it (not posted yet).
pub async fn load_readable_attachment(
    ctx: &Context<'_>,
    id: Uuid,
) -> ApiResult<Option<message_attachment::Model>> {
    let Some(found) = load::<AttachmentsById>(ctx, id).await? else {
        return Ok(None);
    };
    let mine = actor(ctx).id == Some(found.uploaded_by);
    if found.message_id.is_none() && !mine {
        return Ok(None);
    }
    let ok = readable(ctx, [found.thread_id]).await?;
    Ok(ok.contains(&found.thread_id).then_some(found))
}
