//! Subscription fields over the process's event feed ([`crate::events::feed`]).
//!
//! A subscription field follows committed domain events of the caller's tenant: it picks
//! the events it cares about, reloads the object each one is about (the event says *that*
//! something changed; the row says what it is now) and re-applies its row rule to every
//! event, so a caller who loses sight of an object stops hearing about it. The stream ends
//! after its first error: `SLOW_CONSUMER` when the subscriber fell behind the feed (events
//! were missed, so the client must resubscribe and refetch rather than trust a gap), or
//! the row rule's `NOT_FOUND` when the object is no longer visible.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::Context;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use portal_entities::platform::domain_event;

use crate::error::{ApiError, ApiResult};
use crate::events::feed::{Event, EventFeed};

/// Matching events buffered per subscriber: one that falls further behind gets
/// `SLOW_CONSUMER` and its stream ends.
pub const SUBSCRIBER_BUFFER: usize = 64;

/// What a subscription field returns: its items, ending after the first error.
pub type Updates<T> = BoxStream<'static, ApiResult<T>>;

/// Request data of a subscription request: fired once its field follows events (see
/// [`until_ready`]).
pub struct Ready(parking_lot::Mutex<Option<oneshot::Sender<()>>>);

/// A [`Ready`] to put in a subscription request's data, and what fires when it is.
pub fn ready_signal() -> (Ready, oneshot::Receiver<()>) {
    let (sender, receiver) = oneshot::channel();
    (Ready(parking_lot::Mutex::new(Some(sender))), receiver)
}

/// The committed events a subscription field is about to follow: subscribed to the
/// process's feed before the field checks anything, so nothing committed after the check
/// is missed.
pub struct Subscribed {
    receiver: broadcast::Receiver<Event>,
    ready: Option<oneshot::Sender<()>>,
}

impl Subscribed {
    /// Every event `feed` reads from now on (no request to tell when it follows them).
    pub fn to(feed: &EventFeed) -> Self {
        Self {
            receiver: feed.subscribe(),
            ready: None,
        }
    }
}

/// Subscribes the field resolving in `ctx` to the process's event feed (schema data).
pub fn events(ctx: &Context<'_>) -> ApiResult<Subscribed> {
    let feed = ctx
        .data::<Arc<EventFeed>>()
        .map_err(|_| ApiError::internal("event feed missing from schema data"))?;
    Ok(Subscribed {
        receiver: feed.subscribe(),
        ready: ctx
            .data_opt::<Ready>()
            .and_then(|ready| ready.0.lock().take()),
    })
}

/// Drives a subscription request's `responses` until its field follows events (`ready`
/// fired) or it yielded a first response (an early error) or ended — so whoever opened
/// it knows that every event committed from then on reaches it. Returns the stream with
/// that first response, if any, put back in front.
pub async fn until_ready<R: Send + 'static>(
    mut responses: BoxStream<'static, R>,
    ready: oneshot::Receiver<()>,
) -> BoxStream<'static, R> {
    let first = tokio::select! {
        // Fired, or dropped by a field that failed before following: either way go on.
        _ = ready => None,
        first = responses.next() => Some(first),
    };
    match first {
        None => responses,
        Some(Some(first)) => stream::once(async move { first }).chain(responses).boxed(),
        Some(None) => stream::empty().boxed(),
    }
}

/// Each committed event of `tenant` among `events` that `wanted` accepts, turned into an
/// item by `load` (`None`: nothing to tell this subscriber). Ends after the first error,
/// which it yields.
pub fn follow<T, W, L, F>(events: Subscribed, tenant: Uuid, wanted: W, load: L) -> Updates<T>
where
    T: Send + 'static,
    W: Fn(&domain_event::Model) -> bool + Send + 'static,
    L: FnMut(Event) -> F + Send + 'static,
    F: Future<Output = ApiResult<Option<T>>> + Send + 'static,
{
    let Subscribed {
        mut receiver,
        ready,
    } = events;
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let (sender, mut matching) = mpsc::channel::<Event>(SUBSCRIBER_BUFFER);
    let lagged = Arc::new(AtomicBool::new(false));
    let lag = lagged.clone();
    // The filter runs as events arrive, whether or not the subscriber reads: what it
    // keeps waits in the subscriber's own bounded buffer.
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                () = sender.closed() => return,
                received = receiver.recv() => received,
            };
            match received {
                Ok(event) if event.tenant_id == Some(tenant) && wanted(&event) => {
                    match sender.try_send(event) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            lag.store(true, Ordering::Release);
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    lag.store(true, Ordering::Release);
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    let events = stream::poll_fn(move |cx| {
        matching.poll_recv(cx).map(|event| match event {
            Some(event) => Some(Ok(event)),
            None if lagged.swap(false, Ordering::AcqRel) => {
                tracing::warn!("a subscriber fell behind its events");
                Some(Err(ApiError::SlowConsumer))
            }
            None => None,
        })
    });
    let mut load = load;
    let items = events
        .then(move |event| {
            let loaded = event.map(&mut load);
            // Boxed: a reload's (database) future exists only while it runs, instead of
            // taking room in every idle subscription's stream.
            Box::pin(async move {
                match loaded {
                    Ok(future) => future.await,
                    Err(err) => Err(err),
                }
            })
        })
        .filter_map(|item| async move { item.transpose() });
    until_error(items)
}

/// `stream` up to and including its first error (ending at once, without waiting for
/// another item of `stream`).
pub fn until_error<T: Send + 'static>(
    stream: impl futures::Stream<Item = ApiResult<T>> + Send + 'static,
) -> BoxStream<'static, ApiResult<T>> {
    stream::unfold(Some(stream.boxed()), |stream| async move {
        let mut stream = stream?;
        let item = stream.next().await?;
        let rest = item.is_ok().then_some(stream);
        Some((item, rest))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_end_after_their_first_error() {
        let items = stream::iter(vec![Ok(1), Err(ApiError::SlowConsumer), Ok(2)]);
        let seen: Vec<ApiResult<i32>> = until_error(items).collect().await;
        assert_eq!(seen.len(), 2);
        assert!(matches!(seen[1], Err(ApiError::SlowConsumer)));
        // Ends after the error even if the source would never yield again.
        let stuck = stream::iter(vec![Err(ApiError::Forbidden)]).chain(stream::pending());
        let seen: Vec<ApiResult<i32>> = until_error(stuck).collect().await;
        assert_eq!(seen.len(), 1);
    }
}
