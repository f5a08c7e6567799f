//! Messages' subscription fields. The row rule of every read path holds per event: a
//! caller reads a thread's news while it takes part in it (or holds the `Thread.all`
//! grant); removed from it, the caller gets `NOT_FOUND` and the stream ends.

use async_graphql::{Context, ID, MergedSubscription, Subscription as SubscriptionRoot};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_kit::context::{actor, db, tenant as tenant_of};
use portal_kit::directives::events as event_source;
use portal_kit::policy::THREADS_ALL;
use portal_kit::subscription::{Updates, events, follow};
use portal_kit::{Actor, ApiError, ApiResult, input};

use super::notifications::Notification;
use super::types::{Message, Thread};
use super::visibility::load_readable_thread;
use crate::store::{self, notifications};

/// Messages subscriptions.
#[derive(MergedSubscription, Default)]
pub struct Subscription(ThreadSubscription, NotificationSubscription);

/// News of threads and messages.
#[derive(Default)]
pub struct ThreadSubscription;

/// The caller's notifications.
#[derive(Default)]
pub struct NotificationSubscription;

#[SubscriptionRoot]
impl ThreadSubscription {
    /// Each message posted to the thread `threadId` from now on, while the caller may
    /// read the thread. `NOT_FOUND` when it may not (now or later: the stream then ends).
    #[graphql(directive = event_source::apply(
        "message".into(),
        "threadId".into(),
        Some("threadId".into()),
        Some(vec!["message.posted".into()]),
        Some("Thread".into()),
    ))]
    async fn message_posted(
        &self,
        ctx: &Context<'_>,
        thread_id: ID,
    ) -> Result<Updates<Message>, ApiError> {
        let thread_id = input::id("threadId", &thread_id)?;
        let subscribed = events(ctx)?;
        let (tenant, db, reader) = open(ctx, thread_id).await?;
        let thread = thread_id.to_string();
        Ok(follow(
            subscribed,
            tenant,
            move |event| {
                event.event_type == "message.posted"
                    && event.payload.get("threadId").and_then(|v| v.as_str()) == Some(&thread)
            },
            move |event| {
                let (db, reader) = (db.clone(), reader.clone());
                async move {
                    require_readable(&db, tenant, &reader, thread_id).await?;
                    let Some(id) = event.subject_id else {
                        return Ok(None);
                    };
                    match store::message(&db, tenant, id).await {
                        Ok(row) => Ok(Some(Message::from(row))),
                        // Gone again before we read it: nothing to show.
                        Err(ApiError::NotFound(_)) => Ok(None),
                        Err(err) => Err(err),
                    }
                }
            },
        ))
    }

    /// The thread `id` as it is after each change to it (subject, status), while the
    /// caller may read it. `NOT_FOUND` when it may not (now or later: the stream then
    /// ends).
    #[graphql(directive = event_source::apply("thread".into(), "id".into(), None, None, None))]
    async fn thread_updated(&self, ctx: &Context<'_>, id: ID) -> Result<Updates<Thread>, ApiError> {
        let id = input::id("id", &id)?;
        let subscribed = events(ctx)?;
        let (tenant, db, reader) = open(ctx, id).await?;
        Ok(follow(
            subscribed,
            tenant,
            move |event| event.subject_type == "thread" && event.subject_id == Some(id),
            move |_event| {
                let (db, reader) = (db.clone(), reader.clone());
                async move {
                    require_readable(&db, tenant, &reader, id).await?;
                    match store::thread(&db, tenant, id).await {
                        Ok(row) => Ok(Some(Thread::from(row))),
                        Err(ApiError::NotFound(_)) => Err(ApiError::NotFound("thread")),
                        Err(err) => Err(err),
                    }
                }
            },
        ))
    }
}

#[SubscriptionRoot]
impl NotificationSubscription {
    /// Each in-app notification of the caller from now on (only the caller's own: the
    /// events of other users are never matched).
    async fn notification_received(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Updates<Notification>, ApiError> {
        let subscribed = events(ctx)?;
        let tenant = tenant_of(ctx)?;
        let user = actor(ctx).principal()?;
        let db = db(ctx)?.clone();
        let mine = user.to_string();
        Ok(follow(
            subscribed,
            tenant,
            move |event| {
                event.event_type == "notification.created"
                    && event.payload.get("userId").and_then(|v| v.as_str()) == Some(&mine)
                    && event.payload.get("inApp").and_then(|v| v.as_bool()) == Some(true)
            },
            move |event| {
                let db = db.clone();
                async move {
                    let Some(id) = event.subject_id else {
                        return Ok(None);
                    };
                    let found = notifications::notification(&db, tenant, user, id).await?;
                    Ok(found.map(Notification::from))
                }
            },
        ))
    }
}

/// Checks that the caller may read `thread_id` now; what a stream needs later.
async fn open(ctx: &Context<'_>, thread_id: Uuid) -> ApiResult<(Uuid, DatabaseConnection, Actor)> {
    let tenant = tenant_of(ctx)?;
    if load_readable_thread(ctx, thread_id).await?.is_none() {
        return Err(ApiError::NotFound("thread"));
    }
    Ok((tenant, db(ctx)?.clone(), actor(ctx).clone()))
}

/// `NOT_FOUND` unless `reader` may read the thread `thread_id` now.
async fn require_readable(
    db: &DatabaseConnection,
    tenant: Uuid,
    reader: &Actor,
    thread_id: Uuid,
) -> ApiResult<()> {
    if reader.has_grant(THREADS_ALL) {
        return Ok(());
    }
    let Some(user) = reader.id else {
        return Err(ApiError::NotFound("thread"));
    };
    if store::is_participant(db, tenant, thread_id, user).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound("thread"))
    }
}
