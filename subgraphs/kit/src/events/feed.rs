//! The event feed of one process: a single poller reads committed domain events and
//! broadcasts them to every local subscriber (subscriptions filter them by tenant and
//! subject). On PostgreSQL each commit's `NOTIFY portal_events` wakes the poller at once;
//! on SQLite it polls — which also serves several processes on one SQLite file, with more
//! latency.
//!
//! No event committed after a subscriber joined is missed: the poller re-reads a window
//! of recent events (ids are time-ordered UUIDv7s, but transactions commit out of order)
//! and forwards each id once. A subscriber too slow for the channel's capacity is told it
//! lagged (`RecvError::Lagged`) and decides what to do — the policy of subscriptions is to
//! end the stream with an error rather than silently skip events.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::broadcast;
use uuid::Uuid;

use portal_entities::platform::domain_event;

use super::NOTIFY_CHANNEL;

/// How far back each poll re-reads: a transaction that records its event and commits
/// more than this later is missed by subscribers (transactions are short; the bound is
/// generous).
pub const OVERLAP: Duration = Duration::from_secs(10);

/// Events read per query while polling.
const PAGE: u64 = 2_000;

/// How often a feed polls by default: the latency of events on SQLite (PostgreSQL's
/// `NOTIFY` wakes it at once). A poll is one indexed range read, and only a process with
/// a subscriber polls at all.
pub const DEFAULT_POLL: Duration = Duration::from_millis(50);

/// Events buffered per subscriber before it counts as lagging.
pub const CAPACITY: usize = 1024;

/// A committed domain event, shared by every subscriber.
pub type Event = Arc<domain_event::Model>;

/// The process's feed of committed domain events. Started on first use (a process that
/// serves no subscription reads no events); stopped when dropped.
#[derive(Debug)]
pub struct EventFeed {
    db: DatabaseConnection,
    poll: Duration,
    running: OnceLock<Running>,
}

#[derive(Debug)]
struct Running {
    sender: broadcast::Sender<Event>,
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for EventFeed {
    fn drop(&mut self) {
        if let Some(running) = self.running.get() {
            running.poller.abort();
        }
    }
}

impl EventFeed {
    /// A feed over `db` that starts polling (every `poll`, and at each `NOTIFY` on
    /// PostgreSQL) when its first subscriber arrives.
    pub fn lazy(db: DatabaseConnection, poll: Duration) -> Arc<Self> {
        Arc::new(Self {
            db,
            poll,
            running: OnceLock::new(),
        })
    }

    /// A feed over `db` polling from now on. Events committed before the start are not
    /// replayed. Needs a Tokio runtime.
    pub fn start(db: DatabaseConnection, poll: Duration) -> Arc<Self> {
        let feed = Self::lazy(db, poll);
        feed.running();
        feed
    }

    /// Every event committed from now on (until the receiver is dropped). Needs a Tokio
    /// runtime (the first call starts the poller).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.running().sender.subscribe()
    }

    fn running(&self) -> &Running {
        self.running.get_or_init(|| {
            let (sender, _) = broadcast::channel(CAPACITY);
            // From the moment of the first subscription, not from when the task first runs.
            let from = Poller::new(chrono::Utc::now());
            let poller = tokio::spawn(poll_forever(
                self.db.clone(),
                self.poll,
                sender.clone(),
                from,
            ));
            Running { sender, poller }
        })
    }
}

async fn poll_forever(
    db: DatabaseConnection,
    poll: Duration,
    sender: broadcast::Sender<Event>,
    mut poller: Poller,
) {
    let wake = crate::notify::wake_on_notify(&db, NOTIFY_CHANNEL);
    loop {
        match poller.poll(&db).await {
            Ok(events) => {
                for event in events {
                    // No receiver right now is fine: nobody is subscribed.
                    let _ = sender.send(event);
                }
            }
            Err(err) => tracing::warn!(%err, "reading domain events failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = wake.notified() => {}
        }
    }
}

/// Reads events not forwarded yet, re-reading an overlap window.
struct Poller {
    started: chrono::DateTime<chrono::Utc>,
    seen: HashSet<Uuid>,
    order: VecDeque<(chrono::DateTime<chrono::Utc>, Uuid)>,
}

impl Poller {
    fn new(started: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            started,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    async fn poll(&mut self, db: &DatabaseConnection) -> Result<Vec<Event>, sea_orm::DbErr> {
        let now = chrono::Utc::now();
        let window = chrono::Duration::from_std(OVERLAP).unwrap_or(chrono::Duration::seconds(10));
        let from = (now - window).max(self.started - chrono::Duration::seconds(1));
        let millis = u64::try_from(from.timestamp_millis()).unwrap_or(0);
        let lower = uuid::Builder::from_unix_timestamp_millis(millis, &[0; 10]).into_uuid();
        // Page by id through the whole window: a burst larger than one page is read in full.
        let mut rows = Vec::new();
        let mut after: Option<Uuid> = None;
        loop {
            let mut select = domain_event::Entity::find()
                .filter(domain_event::Column::Id.gte(lower))
                // A transaction that recorded its event just before the start may commit
                // after it: a second of tolerance, as for the ids.
                .filter(
                    domain_event::Column::OccurredAt
                        .gte(self.started - chrono::Duration::seconds(1)),
                );
            if let Some(last) = after {
                select = select.filter(domain_event::Column::Id.gt(last));
            }
            let page = select
                .order_by_asc(domain_event::Column::Id)
                .limit(PAGE)
                .all(db)
                .await?;
            let full = page.len() as u64 == PAGE;
            after = page.last().map(|row| row.id);
            rows.extend(page);
            if !full {
                break;
            }
        }
        let mut fresh = Vec::new();
        for row in rows {
            if self.seen.insert(row.id) {
                self.order.push_back((row.occurred_at, row.id));
                fresh.push(Arc::new(row));
            }
        }
        // Forget what left the window: it is never read again.
        while let Some((at, id)) = self.order.front().copied() {
            if at >= from - window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
        Ok(fresh)
    }
}
