//! Event-driven subscription fields: a `Subscription` field that carries the `@events`
//! directive (see `portal_kit::directives::events`) is followed by the gateway itself.
//! One router per gateway reads the process's feed of committed domain events and hands
//! each event to the subscriptions whose route (tenant, subject type, and the subject id
//! or a payload field) it matches; every such event is completed with an entity fetch
//! *as the subscriber* (the owning subgraph's entity resolver applies its row rule, so a
//! subscriber who loses sight of the subject gets `NOT_FOUND` and the stream ends), then
//! through the rest of the plan like any other event.
//!
//! An idle subscription holds a route entry and a small inbox here — no stream, task or
//! parsed document in the subgraph. A subscription whose inbox overflows
//! ([`INBOX`] events not yet taken) ends with `SLOW_CONSUMER`, as the subgraph streams do.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use graphql_tools::static_graphql::schema::{
    Definition, Document, Type, TypeDefinition, Value as SchemaValue,
};
use hive_router_query_planner::ast::selection_item::SelectionItem;
use hive_router_query_planner::ast::value::Value as PlanValue;
use hive_router_query_planner::planner::plan_nodes::FetchNode;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use portal_kit::events::feed::{Event, EventFeed};

/// Matching events an event-driven subscription may have waiting before it counts as a
/// slow consumer.
pub const INBOX: usize = 64;

/// How a `Subscription` field follows events (its `@events` directive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSource {
    /// The field's type: an entity keyed by `id` (the event's subject id).
    pub entity: String,
    /// The events' subject type (`account`).
    pub subject: Arc<str>,
    /// The field argument the events must match.
    pub argument: String,
    /// The payload field that must equal the argument; `None`: the subject id.
    pub payload: Option<Arc<str>>,
    /// Event types to follow; `None`: every type of the subject.
    pub types: Option<Vec<String>>,
    /// The entity type that must be visible, keyed by the argument, when the field opens.
    pub check: String,
}

/// The event-driven fields of a supergraph's subscription type, by field name.
pub fn event_sources(document: &Document) -> HashMap<String, Arc<EventSource>> {
    let root = document
        .definitions
        .iter()
        .find_map(|definition| match definition {
            Definition::SchemaDefinition(schema) => schema.subscription.clone(),
            _ => None,
        })
        .unwrap_or_else(|| "Subscription".to_owned());
    let mut sources = HashMap::new();
    for definition in &document.definitions {
        let Definition::TypeDefinition(TypeDefinition::Object(object)) = definition else {
            continue;
        };
        if object.name != root {
            continue;
        }
        for field in &object.fields {
            let Some(directive) = field.directives.iter().find(|d| d.name == "events") else {
                continue;
            };
            let text = |name: &str| {
                directive
                    .arguments
                    .iter()
                    .find(|(argument, _)| argument == name)
                    .and_then(|(_, value)| match value {
                        SchemaValue::String(text) => Some(text.clone()),
                        _ => None,
                    })
            };
            let (Some(subject), Some(argument)) = (text("subject"), text("argument")) else {
                tracing::warn!(field = %field.name, "`@events` without subject or argument");
                continue;
            };
            let types = directive
                .arguments
                .iter()
                .find(|(name, _)| name == "types")
                .and_then(|(_, value)| match value {
                    SchemaValue::List(items) => Some(
                        items
                            .iter()
                            .filter_map(|item| match item {
                                SchemaValue::String(text) => Some(text.clone()),
                                _ => None,
                            })
                            .collect(),
                    ),
                    _ => None,
                });
            let entity = named_type(&field.field_type).to_owned();
            sources.insert(
                field.name.clone(),
                Arc::new(EventSource {
                    check: text("check").unwrap_or_else(|| entity.clone()),
                    entity,
                    subject: subject.into(),
                    argument,
                    payload: text("payload").map(Into::into),
                    types,
                }),
            );
        }
    }
    sources
}

fn named_type(ty: &Type) -> &str {
    match ty {
        Type::NamedType(name) => name,
        Type::ListType(inner) | Type::NonNullType(inner) => named_type(inner),
    }
}

/// What the gateway sends the owning subgraph for one event-driven subscription: the
/// entity fetch that completes each event, and the check when it opens.
#[derive(Debug, Clone)]
pub struct EntityFetch {
    /// The subgraph.
    pub service: String,
    /// The entity type each event yields (the field's type).
    pub entity: String,
    /// The entity type checked when the subscription opens, keyed by the argument.
    pub check: String,
    /// The root field's response key in the subgraph's answer.
    pub key: String,
    /// `_entities` with the root field's selection on the entity type.
    pub query: String,
    /// The client's variables that selection uses.
    pub variables: Map<String, Value>,
    /// The argument's value (the route's value), normalized.
    pub value: String,
}

impl EntityFetch {
    /// The fetch of `source`'s entities for the subscription `primary` plans (its root
    /// field with the client's `variables`); `None` when the plan does not have that
    /// shape — one root field, with no argument but `source.argument` and no `@skip` or
    /// `@include` — the argument is not given, or the selection uses a variable named
    /// `representations`. (The subscription then streams from its subgraph.)
    pub fn plan(
        source: &EventSource,
        primary: &FetchNode,
        variables: &Map<String, Value>,
    ) -> Option<Self> {
        let document = &primary.operation.document;
        let [SelectionItem::Field(root)] = document.operation.selection_set.items.as_slice() else {
            return None;
        };
        let arguments = root.arguments.as_ref()?;
        if root.skip_if.is_some()
            || root.include_if.is_some()
            || arguments.keys().any(|name| *name != source.argument)
        {
            return None;
        }
        let value = match arguments.get_argument(&source.argument)? {
            PlanValue::Variable(name) => plain(variables.get(name)?)?,
            PlanValue::String(text) => text.clone(),
            PlanValue::Int(number) => number.to_string(),
            _ => return None,
        };
        let selection = root.selections.to_string();
        let fragments: String = document
            .fragments
            .iter()
            .map(|fragment| format!("\n{fragment}"))
            .collect();
        // The variables the selection (and its fragments) use, from the syntax tree.
        let mut used = root.selections.variable_usages();
        for fragment in &document.fragments {
            used.extend(fragment.selection_set.variable_usages());
        }
        if used.contains("representations") {
            return None;
        }
        let mut definitions = String::from("$representations:[_Any!]!");
        let mut forwarded = Map::new();
        for definition in document.operation.variable_definitions.iter().flatten() {
            if used.contains(&definition.name) {
                definitions.push_str(&format!(",{definition}"));
                if let Some(value) = variables.get(&definition.name) {
                    forwarded.insert(definition.name.clone(), value.clone());
                }
            }
        }
        Some(Self {
            service: primary.service_name.clone(),
            entity: source.entity.clone(),
            check: source.check.clone(),
            key: root.alias.clone().unwrap_or_else(|| root.name.clone()),
            query: format!(
                "query({definitions}){{_entities(representations:$representations){{...on {}{selection}}}}}{fragments}",
                source.entity
            ),
            variables: forwarded,
            value: normalized(&value),
        })
    }

    /// The request for the entity keyed by `id` (an event's subject).
    pub fn request(&self, id: &str) -> crate::subgraph::SubgraphRequest {
        let mut variables = self.variables.clone();
        variables.insert(
            "representations".into(),
            json!([{ "__typename": self.entity, "id": id }]),
        );
        crate::subgraph::SubgraphRequest {
            query: self.query.clone(),
            variables,
        }
    }

    /// The check when the field opens: whether the entity of type `check` keyed by the
    /// argument is visible.
    pub fn check(&self) -> crate::subgraph::SubgraphRequest {
        let mut variables = Map::new();
        variables.insert(
            "representations".into(),
            json!([{ "__typename": self.check, "id": self.value }]),
        );
        crate::subgraph::SubgraphRequest {
            query: "query($representations:[_Any!]!){_entities(representations:$representations){__typename}}".into(),
            variables,
        }
    }
}

/// A scalar argument as text.
fn plain(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Ids as events carry them (a UUID in its hyphenated lower-case form).
fn normalized(value: &str) -> String {
    Uuid::parse_str(value).map_or_else(|_| value.to_owned(), |id| id.to_string())
}

/// Where an event is routed: its tenant, subject type, and the subject id or a payload
/// field's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Route {
    tenant: Uuid,
    subject: Arc<str>,
    payload: Option<Arc<str>>,
    value: Box<str>,
}

/// Events waiting for one subscription.
struct Inbox {
    types: Option<Vec<String>>,
    queue: Mutex<VecDeque<Event>>,
    waker: AtomicWaker,
    /// Events were dropped for it (its inbox overflowed, or the router fell behind).
    lagged: AtomicBool,
    /// The feed ended.
    closed: AtomicBool,
}

impl Inbox {
    fn push(&self, event: &Event) {
        if self
            .types
            .as_ref()
            .is_some_and(|types| !types.iter().any(|t| *t == event.event_type))
        {
            return;
        }
        {
            let mut queue = self.queue.lock();
            if self.lagged.load(Ordering::Acquire) {
                // Past a gap nothing more is queued: the stream ends once it is drained.
                return;
            }
            if queue.len() >= INBOX {
                self.lagged.store(true, Ordering::Release);
            } else {
                queue.push_back(event.clone());
            }
        }
        self.waker.wake();
    }
}

#[derive(Default)]
struct Routes {
    inboxes: HashMap<Route, Vec<Arc<Inbox>>>,
    /// Per subject type, the selectors in use (subject id or a payload field) and how
    /// many routes use each.
    selectors: HashMap<Arc<str>, HashMap<Option<Arc<str>>, usize>>,
}

/// The gateway's router of committed domain events to event-driven subscriptions.
pub struct EventRouter {
    feed: Arc<EventFeed>,
    routes: Mutex<Routes>,
    started: OnceLock<()>,
    /// The feed ended (the process is going away): new routes end at once.
    closed: AtomicBool,
}

impl EventRouter {
    /// A router over `feed` (it starts reading with its first subscription).
    pub fn new(feed: Arc<EventFeed>) -> Arc<Self> {
        Arc::new(Self {
            feed,
            routes: Mutex::default(),
            started: OnceLock::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Every event of `tenant` that `source` follows for the argument `value`, from now
    /// on, until the returned stream is dropped.
    pub fn follow(self: &Arc<Self>, tenant: Uuid, source: &EventSource, value: &str) -> Events {
        self.started.get_or_init(|| {
            // Subscribed before the first route exists: nothing committed after it is missed.
            let receiver = self.feed.subscribe();
            tokio::spawn(route_events(Arc::downgrade(self), receiver));
        });
        let route = Route {
            tenant,
            subject: source.subject.clone(),
            payload: source.payload.clone(),
            value: value.into(),
        };
        let inbox = Arc::new(Inbox {
            types: source.types.clone(),
            queue: Mutex::default(),
            waker: AtomicWaker::new(),
            lagged: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let mut routes = self.routes.lock();
        // Under the routes' lock, which the router's close takes too.
        if self.closed.load(Ordering::Acquire) {
            inbox.closed.store(true, Ordering::Release);
        }
        *routes
            .selectors
            .entry(route.subject.clone())
            .or_default()
            .entry(route.payload.clone())
            .or_default() += 1;
        routes
            .inboxes
            .entry(route.clone())
            .or_default()
            .push(inbox.clone());
        Events {
            router: self.clone(),
            route,
            inbox,
        }
    }

    /// How many subscriptions it routes to.
    pub fn subscriptions(&self) -> usize {
        self.routes.lock().inboxes.values().map(Vec::len).sum()
    }

    fn deliver(&self, event: &Event) {
        let Some(tenant) = event.tenant_id else {
            return;
        };
        let routes = self.routes.lock();
        let Some((subject, selectors)) =
            routes.selectors.get_key_value(event.subject_type.as_str())
        else {
            return;
        };
        for payload in selectors.keys() {
            let value = match payload {
                None => event.subject_id.map(|id| id.to_string()),
                Some(field) => event
                    .payload
                    .get(&**field)
                    .and_then(plain)
                    .map(|v| normalized(&v)),
            };
            let Some(value) = value else {
                continue;
            };
            let route = Route {
                tenant,
                subject: subject.clone(),
                payload: payload.clone(),
                value: value.into(),
            };
            for inbox in routes.inboxes.get(&route).into_iter().flatten() {
                inbox.push(event);
            }
        }
    }

    /// Marks every inbox with `mark` (and the router as closed, with `close`).
    fn every_inbox(&self, mark: impl Fn(&Inbox), close: bool) {
        let routes = self.routes.lock();
        if close {
            self.closed.store(true, Ordering::Release);
        }
        for inbox in routes.inboxes.values().flatten() {
            mark(inbox);
            inbox.waker.wake();
        }
    }

    fn remove(&self, route: &Route, inbox: &Arc<Inbox>) {
        let mut routes = self.routes.lock();
        if let Some(inboxes) = routes.inboxes.get_mut(route) {
            inboxes.retain(|other| !Arc::ptr_eq(other, inbox));
            if inboxes.is_empty() {
                routes.inboxes.remove(route);
            }
        }
        if let Some(selectors) = routes.selectors.get_mut(&route.subject) {
            if let Some(count) = selectors.get_mut(&route.payload) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    selectors.remove(&route.payload);
                }
            }
            if selectors.is_empty() {
                routes.selectors.remove(&route.subject);
            }
        }
    }
}

async fn route_events(
    router: Weak<EventRouter>,
    mut receiver: tokio::sync::broadcast::Receiver<Event>,
) {
    loop {
        let received = receiver.recv().await;
        let Some(router) = router.upgrade() else {
            return;
        };
        match received {
            Ok(event) => router.deliver(&event),
            Err(RecvError::Lagged(missed)) => {
                // Some subscriber may have missed one: every stream ends, clients refetch.
                tracing::warn!(missed, "the event router fell behind the feed");
                router.every_inbox(|inbox| inbox.lagged.store(true, Ordering::Release), false);
            }
            Err(RecvError::Closed) => {
                // Under the routes' lock: a route opened meanwhile is closed by `follow`.
                router.every_inbox(|inbox| inbox.closed.store(true, Ordering::Release), true);
                return;
            }
        }
    }
}

/// One subscription's events: each matching event, then `Err(Lagged)` once events were
/// dropped for it (after those that arrived before); ends when the feed does. Leaves its
/// route when dropped.
pub struct Events {
    router: Arc<EventRouter>,
    route: Route,
    inbox: Arc<Inbox>,
}

/// Events were dropped for a subscription (a slow consumer).
#[derive(Debug)]
pub struct Lagged;

impl futures::Stream for Events {
    type Item = Result<Event, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inbox = &self.inbox;
        inbox.waker.register(cx.waker());
        // What arrived before an overflow is delivered first, then the overflow.
        if let Some(event) = inbox.queue.lock().pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        if inbox.lagged.swap(false, Ordering::AcqRel) {
            return Poll::Ready(Some(Err(Lagged)));
        }
        if inbox.closed.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.router.remove(&self.route, &self.inbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn event(tenant: Uuid, subject: &str, id: Uuid, kind: &str, payload: Value) -> Event {
        Arc::new(portal_entities::platform::domain_event::Model {
            id: Uuid::now_v7(),
            tenant_id: Some(tenant),
            event_type: kind.into(),
            subject_type: subject.into(),
            subject_id: Some(id),
            actor_kind: "system".into(),
            actor_id: None,
            occurred_at: chrono::Utc::now(),
            schema_version: 1,
            payload,
            sequence: None,
        })
    }

    fn source(subject: &str, payload: Option<&str>, types: Option<Vec<String>>) -> EventSource {
        EventSource {
            entity: "Thing".into(),
            subject: subject.into(),
            argument: "id".into(),
            payload: payload.map(Into::into),
            types,
            check: "Thing".into(),
        }
    }

    #[test]
    fn the_directive_is_read_from_the_supergraph() {
        let sdl = r#"
schema { query: Query subscription: Subscription }
type Query { a: Int }
type Subscription {
  accountUpdated(id: ID!): Account! @events(subject: "account", argument: "id")
  messagePosted(threadId: ID!): Message! @events(subject: "message", argument: "threadId", payload: "threadId", types: ["message.posted"], check: "Thread")
  plain: Int
}
type Account { id: ID! }
type Message { id: ID! }
"#;
        let document = hive_router_query_planner::utils::parsing::safe_parse_schema(sdl)
            .map_err(|e| e.to_string());
        let sources = event_sources(&document.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(sources.len(), 2);
        let account = &sources["accountUpdated"];
        assert_eq!(
            (
                account.entity.as_str(),
                &*account.subject,
                account.check.as_str()
            ),
            ("Account", "account", "Account")
        );
        let posted = &sources["messagePosted"];
        assert_eq!(posted.payload.as_deref(), Some("threadId"));
        assert_eq!(posted.types, Some(vec!["message.posted".to_owned()]));
        assert_eq!(posted.check, "Thread");
    }

    #[tokio::test]
    async fn events_reach_only_their_routes_and_a_full_inbox_ends_its_stream() {
        let db = sea_orm::Database::connect("sqlite::memory:").await;
        let feed = EventFeed::lazy(
            db.unwrap_or_else(|e| panic!("{e}")),
            std::time::Duration::from_secs(3600),
        );
        let router = EventRouter::new(feed);
        let (tenant, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (account, thread) = (Uuid::now_v7(), Uuid::now_v7());
        let accounts = source("account", None, None);
        let posted = source(
            "message",
            Some("threadId"),
            Some(vec!["message.posted".into()]),
        );
        let mut follows = router.follow(tenant, &accounts, &account.to_string());
        let mut messages = router.follow(tenant, &posted, &thread.to_string());
        assert_eq!(router.subscriptions(), 2);

        router.deliver(&event(
            other,
            "account",
            account,
            "account.updated",
            json!({}),
        ));
        router.deliver(&event(
            tenant,
            "account",
            Uuid::now_v7(),
            "account.updated",
            json!({}),
        ));
        let mine = event(tenant, "account", account, "account.updated", json!({}));
        router.deliver(&mine);
        let message = Uuid::now_v7();
        router.deliver(&event(
            tenant,
            "message",
            message,
            "message.edited",
            json!({ "threadId": thread.to_string() }),
        ));
        router.deliver(&event(
            tenant,
            "message",
            message,
            "message.posted",
            json!({ "threadId": thread.to_string().to_uppercase() }),
        ));
        let got = follows.next().await.and_then(Result::ok);
        assert_eq!(got.map(|e| e.id), Some(mine.id));
        let got = messages.next().await.and_then(Result::ok);
        assert_eq!(
            got.map(|e| e.event_type.clone()).as_deref(),
            Some("message.posted")
        );
        assert!(
            futures::FutureExt::now_or_never(follows.next()).is_none(),
            "nothing else"
        );

        for _ in 0..=INBOX {
            router.deliver(&mine);
        }
        // Past the gap nothing more is queued: the stream ends once drained.
        router.deliver(&mine);
        let mut taken = 0;
        while let Some(Ok(_)) = follows.next().await {
            taken += 1;
        }
        assert_eq!(taken, INBOX, "then the overflow is reported");
        drop((follows, messages));
        assert_eq!(router.subscriptions(), 0);
        assert!(router.routes.lock().selectors.is_empty());
    }
}
