//! Federated subscriptions: the owning subgraph streams its root field's events; the
//! gateway completes each event through the rest of the normal plan (fields of other
//! subgraphs fetched by entity calls, each signed afresh) and projects it exactly like a
//! query result, with field-level RBAC applied to every event.
//!
//! A subscription is authorized when it opens and re-checked at every event and, while
//! no event comes, every [`Limits::subscription_recheck`]: the transport's check of the
//! client's credential (a revoked session or an expired token) and the policies (a policy
//! change that denies the root field ends the stream with `FORBIDDEN`; one that denies
//! another field nulls it from the next event on). Closing the gateway completes every
//! stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use hive_router_query_planner::planner::plan_nodes::{FetchNode, PlanNode};
use parking_lot::Mutex;

use portal_kit::Actor;

use hive_router_query_planner::ast::selection_item::SelectionItem;
use portal_kit::events::feed::Event;

use crate::authz::Decisions;
use crate::events::{EntityFetch, EventRouter, EventSource, Events};
use crate::execute::{Execution, root_request};
use crate::gateway::{AllowedOperations, Gateway, Started};
use crate::limits::Limits;
use crate::response::{GraphQLError, PathSegment, Request, Response};
use crate::schema::OperationKind;
use crate::subgraph::{Caller, SubgraphRequest, SubgraphResponse, SubgraphStream};

/// The transport's re-authentication of the client's credential: the actor it stands for
/// now, or the error that ends the subscription.
pub type Recheck = Arc<dyn Fn() -> BoxFuture<'static, Result<Actor, GraphQLError>> + Send + Sync>;

/// A stream of responses: one for a query or mutation, one per event for a subscription.
pub type Responses = BoxStream<'static, Response>;

/// The subscriptions open on one gateway, by principal, within the limits.
#[derive(Default)]
pub struct OpenSubscriptions {
    total: AtomicUsize,
    by_principal: Mutex<HashMap<String, usize>>,
}

impl OpenSubscriptions {
    /// How many are open.
    pub fn count(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    fn admit(self: &Arc<Self>, caller: &Caller, limits: &Limits) -> Result<Ticket, GraphQLError> {
        let too_many = |what: &str| {
            GraphQLError::new(
                format!("too many open subscriptions {what}; close some first"),
                "TOO_MANY_SUBSCRIPTIONS",
            )
        };
        let principal = caller.actor.id.map(|id| id.to_string());
        let mut by_principal = self.by_principal.lock();
        if let Some(principal) = &principal
            && by_principal.get(principal).copied().unwrap_or(0)
                >= limits.max_subscriptions_per_principal
        {
            return Err(too_many("for this user"));
        }
        if self.total.load(Ordering::Acquire) >= limits.max_subscriptions {
            return Err(too_many("on this gateway"));
        }
        self.total.fetch_add(1, Ordering::AcqRel);
        crate::metrics::subscriptions(1.0);
        if let Some(principal) = &principal {
            *by_principal.entry(principal.clone()).or_default() += 1;
        }
        Ok(Ticket {
            open: self.clone(),
            principal,
        })
    }
}

/// One admitted subscription; gives its place back when dropped.
struct Ticket {
    open: Arc<OpenSubscriptions>,
    principal: Option<String>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.open.total.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::subscriptions(-1.0);
        if let Some(principal) = &self.principal {
            let mut by_principal = self.open.by_principal.lock();
            if let Some(count) = by_principal.get_mut(principal) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    by_principal.remove(principal);
                }
            }
        }
    }
}

impl Gateway {
    /// Runs `request` for `caller` as a stream of responses: a subscription yields one
    /// per event until its source ends, the caller's credential lapses (`recheck`) or the
    /// gateway closes; a query or mutation (where `allowed` permits it) yields one. `Err`
    /// is the response that refuses it before anything runs.
    pub async fn subscribe(
        self: &Arc<Self>,
        request: Request,
        caller: &Caller,
        allowed: AllowedOperations,
        recheck: Recheck,
    ) -> Result<Responses, Response> {
        let started = self.start(request, caller, allowed).await?;
        let primary = match subscription_parts(started.plan.node.as_ref()) {
            Some((primary, _))
                if started.operation.prepared.kind == OperationKind::Subscription =>
            {
                primary.clone()
            }
            // A query, a mutation, or a subscription whose plan fetches nothing: one
            // response, within the gateway's concurrency limit like any other.
            _ => {
                let Some(_admitted) = self.admit(ADMISSION_WAIT).await else {
                    return Err(Response::request_error(GraphQLError::new(
                        "the gateway is overloaded; retry later",
                        "UNAVAILABLE",
                    )));
                };
                let response = self.run(&started).await;
                return Ok(stream::once(async move { response }).boxed());
            }
        };
        if *self.closing().borrow() {
            return Err(Response::request_error(GraphQLError::new(
                "the gateway is shutting down; subscribe again shortly",
                "UNAVAILABLE",
            )));
        }
        let ticket = self
            .open_subscriptions()
            .admit(&started.caller, self.limits())
            .map_err(Response::request_error)?;
        let upstream = match self.event_driven(&started, &primary) {
            Some((router, source, fetch)) => {
                match self.open_events(&started, router, source, fetch).await? {
                    Ok(following) => Upstream::Events(Box::new(following)),
                    // The field refused to open (not visible, bad input): that answer.
                    Err(refusal) => {
                        let response = complete(self, &started.into_owned(), refusal).await;
                        return Ok(stream::once(async move { response }).boxed());
                    }
                }
            }
            None => Upstream::Subgraph(self.open_upstream(&started, &primary).await?),
        };
        let every = self.limits().subscription_recheck;
        let state = Following {
            gateway: self.clone(),
            opened_as: started.caller.actor.clone(),
            opened_with: started.denied.clone(),
            started: started.into_owned(),
            upstream,
            recheck,
            closing: self.closing(),
            ticks: tokio::time::interval_at(tokio::time::Instant::now() + every, every),
            ended: false,
            _ticket: ticket,
        };
        Ok(stream::unfold(state, |mut state| async move {
            let response = state.next().await?;
            Some((response, state))
        })
        .boxed())
    }

    /// The router, source and entity fetch of an event-driven subscription, if this is
    /// one and the gateway follows events.
    fn event_driven(
        &self,
        started: &Started<'_>,
        primary: &FetchNode,
    ) -> Option<(Arc<EventRouter>, Arc<EventSource>, EntityFetch)> {
        let router = self.events()?;
        let [SelectionItem::Field(root)] = primary
            .operation
            .document
            .operation
            .selection_set
            .items
            .as_slice()
        else {
            return None;
        };
        let source = started.served.supergraph.event_source(&root.name)?;
        let fetch = EntityFetch::plan(source, primary, &started.variables)?;
        Some((router.clone(), source.clone(), fetch))
    }

    /// Follows the events of an event-driven subscription — routed before the check, so
    /// nothing committed after it is missed — once the subgraph says that the caller may
    /// see the entity the argument names. `Ok(Err(answer))`: the subgraph's refusal.
    async fn open_events(
        &self,
        started: &Started<'_>,
        router: Arc<EventRouter>,
        source: Arc<EventSource>,
        fetch: EntityFetch,
    ) -> Result<Result<EventDriven, SubgraphResponse>, Response> {
        let refused = |error| SubgraphResponse {
            data: None,
            errors: vec![error],
        };
        let Some(tenant) = started.caller.actor.tenant_id else {
            return Ok(Err(refused(not_found(&fetch, &fetch.check))));
        };
        let events = router.follow(tenant, &source, &fetch.value);
        let checked = self
            .entity(started, &fetch, fetch.check())
            .await
            .map_err(Response::request_error)?;
        Ok(match checked {
            Fetched::Entity(_) | Fetched::Partial(..) => Ok(EventDriven {
                events,
                source,
                fetch,
            }),
            Fetched::Missing => Err(refused(not_found(&fetch, &fetch.check))),
            Fetched::Errors(errors) => Err(SubgraphResponse { data: None, errors }),
        })
    }

    /// Runs one entity fetch of an event-driven subscription as its caller.
    async fn entity(
        &self,
        started: &Started<'_>,
        fetch: &EntityFetch,
        request: SubgraphRequest,
    ) -> Result<Fetched, GraphQLError> {
        let caller = started.caller.as_ref();
        let response = self
            .subgraph_settings()
            .call(&started.served.clients, &fetch.service, |client| {
                client.execute(request, caller)
            })
            .await?;
        let entity = response
            .data
            .as_ref()
            .and_then(|data| data.get("_entities"))
            .and_then(|entities| entities.get(0))
            .filter(|entity| !entity.is_null())
            .cloned();
        let mut errors = response.errors;
        for error in &mut errors {
            // `_entities.0.field` is `<root field>.field` to the client.
            if let Some(path) = &mut error.path
                && path.first() == Some(&PathSegment::Key("_entities".into()))
            {
                let rest = path.split_off(path.len().min(2));
                *path = std::iter::once(PathSegment::Key(fetch.key.clone()))
                    .chain(rest)
                    .collect();
            }
        }
        Ok(match entity {
            Some(entity) if errors.is_empty() => Fetched::Entity(entity),
            Some(entity) => Fetched::Partial(entity, errors),
            None if errors.is_empty() => Fetched::Missing,
            None => Fetched::Errors(errors),
        })
    }

    async fn open_upstream(
        &self,
        started: &Started<'_>,
        primary: &FetchNode,
    ) -> Result<SubgraphStream, Response> {
        let request = root_request(primary, &started.variables);
        let caller = started.caller.as_ref();
        self.subgraph_settings()
            .call(&started.served.clients, &primary.service_name, |client| {
                client.subscribe(request, caller)
            })
            .await
            .map_err(Response::request_error)
    }
}

/// An open subscription: its source and what each event is completed with.
struct Following {
    gateway: Arc<Gateway>,
    /// Who the stream was opened for, with the grants it was opened with: the subgraph's
    /// side of the stream applies them to every event.
    opened_as: Actor,
    /// What was denied when it opened (the plan lacks those fields).
    opened_with: Option<Arc<Decisions>>,
    started: Started<'static>,
    upstream: Upstream,
    recheck: Recheck,
    closing: tokio::sync::watch::Receiver<bool>,
    ticks: tokio::time::Interval,
    ended: bool,
    _ticket: Ticket,
}

impl Following {
    /// The next response, or `None` when the stream is over.
    async fn next(&mut self) -> Option<Response> {
        if self.ended {
            return None;
        }
        loop {
            let woke = tokio::select! {
                biased;
                () = closed(&mut self.closing) => Woke::Closing,
                event = self.upstream.next() => Woke::Event(event),
                _ = self.ticks.tick() => Woke::Tick,
            };
            match woke {
                Woke::Closing | Woke::Event(None) => return None,
                Woke::Event(Some(incoming)) => {
                    // Boxed: the (large) futures of re-checks and completions live only while
                    // they run, not in every idle subscription.
                    if let Err(error) = Box::pin(self.still_allowed()).await {
                        self.ended = true;
                        return Some(Response::request_error(error));
                    }
                    let event = match incoming {
                        Incoming::Response(event) => event,
                        Incoming::Event(event) => {
                            let Upstream::Events(following) = &self.upstream else {
                                continue;
                            };
                            let fetched =
                                fetch_entity(&self.gateway, &self.started, following, event);
                            match Box::pin(fetched).await {
                                Ok(Some(event)) => event,
                                // Not about anything this subscriber is told of.
                                Ok(None) => continue,
                                Err(ended) => {
                                    self.ended = true;
                                    return Some(ended);
                                }
                            }
                        }
                        Incoming::Lagged => {
                            self.ended = true;
                            let error = GraphQLError::new(
                                "this subscription fell behind its events; subscribe again and refetch",
                                "SLOW_CONSUMER",
                            );
                            return Some(
                                self.started.respond(serde_json::Value::Null, vec![error]),
                            );
                        }
                    };
                    return Some(Box::pin(complete(&self.gateway, &self.started, event)).await);
                }
                Woke::Tick => {
                    if let Err(error) = Box::pin(self.still_allowed()).await {
                        self.ended = true;
                        return Some(Response::request_error(error));
                    }
                }
            }
        }
    }
}

/// The event-driven subscription's entity for `event`, fetched as the caller, as the
/// subgraph's answer for the root field; `Err` ends the stream with that response (the
/// caller no longer sees the subject: `NOT_FOUND`).
async fn fetch_entity(
    gateway: &Gateway,
    started: &Started<'static>,
    following: &EventDriven,
    event: Event,
) -> Result<Option<SubgraphResponse>, Response> {
    let Some(subject) = event.subject_id else {
        return Ok(None);
    };
    let fetch = &following.fetch;
    // A failed fetch fails this event; the stream goes on.
    let fetch_as_caller = |request| async move {
        gateway
            .entity(started, fetch, request)
            .await
            .unwrap_or_else(|error| Fetched::Errors(vec![error]))
    };
    let answer = |entity: serde_json::Value, errors| SubgraphResponse {
        data: Some(serde_json::json!({ fetch.key.clone(): entity })),
        errors,
    };
    let mut gone = &fetch.entity;
    match fetch_as_caller(fetch.request(&subject.to_string())).await {
        Fetched::Entity(entity) => return Ok(Some(answer(entity, Vec::new()))),
        Fetched::Partial(entity, errors) => return Ok(Some(answer(entity, errors))),
        Fetched::Errors(errors) => return Ok(Some(SubgraphResponse { data: None, errors })),
        Fetched::Missing if following.source.payload.is_some() => {
            // Routed by another object (a message by its thread): the subject may just be
            // gone again (deleted) while that object is still visible — nothing to tell
            // then. The stream ends only when that object is not.
            match fetch_as_caller(fetch.check()).await {
                Fetched::Entity(_) | Fetched::Partial(..) => return Ok(None),
                Fetched::Errors(errors) => {
                    return Ok(Some(SubgraphResponse { data: None, errors }));
                }
                Fetched::Missing => gone = &fetch.check,
            }
        }
        Fetched::Missing => {}
    }
    Err(started.respond(serde_json::Value::Null, vec![not_found(fetch, gone)]))
}

/// `NOT_FOUND` for the entity type `what` of an event-driven subscription.
fn not_found(fetch: &EntityFetch, what: &str) -> GraphQLError {
    GraphQLError::new(format!("{} not found", what.to_lowercase()), "NOT_FOUND")
        .with_path(vec![PathSegment::Key(fetch.key.clone())])
}

impl Following {
    /// Re-checks the caller's credential and the policies. The stream keeps the plan it
    /// opened with; fields denied since are nulled too. A credential that now stands for
    /// someone else or other roles, and grants that changed, end it: the subgraph's side
    /// was opened — and applies row rules — with the old ones.
    async fn still_allowed(&mut self) -> Result<(), GraphQLError> {
        let actor = (self.recheck)().await?;
        let opened = &self.opened_as;
        let same = actor.kind == opened.kind
            && actor.id == opened.id
            && actor.tenant_id == opened.tenant_id
            && actor.roles == opened.roles;
        if !same {
            return Err(access_changed());
        }
        let started = &self.started;
        let granted = self
            .gateway
            .authorized_plan(
                &started.served,
                &started.operation,
                &started.caller,
                started.variant,
            )
            .await?;
        if granted.grants.unwrap_or_default() != opened.grants {
            return Err(access_changed());
        }
        self.started.denied = match (&self.opened_with, granted.denied) {
            (Some(then), Some(now)) => Some(Arc::new(then.union(&now))),
            (then, now) => now.or_else(|| then.clone()),
        };
        Ok(())
    }
}

fn access_changed() -> GraphQLError {
    GraphQLError::new(
        "your access changed while this subscription was open; subscribe again",
        "FORBIDDEN",
    )
}

/// How long a query or mutation over a streaming transport waits for an execution slot.
const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Completes one event through the rest of the plan and projects it.
async fn complete(
    gateway: &Gateway,
    started: &Started<'static>,
    event: crate::subgraph::SubgraphResponse,
) -> Response {
    let Some((primary, rest)) = subscription_parts(started.plan.node.as_ref()) else {
        return started.respond(serde_json::Value::Null, Vec::new());
    };
    let served = &started.served;
    let execution = Execution::new(
        served.supergraph.index(),
        &served.clients,
        &started.caller,
        &started.variables,
        gateway.subgraph_settings(),
    );
    let (data, errors) = execution.run_event(primary, event, &rest).await;
    started.respond(data, errors)
}

/// Returns once the gateway closes its streams.
pub async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the gateway is gone: closed too.
    let _ = closing.wait_for(|closing| *closing).await;
}

/// What a waiting subscription woke up for.
enum Woke {
    Closing,
    Event(Option<Incoming>),
    Tick,
}

/// Where a subscription's events come from: the owning subgraph's stream, or (for an
/// event-driven field) the gateway's event router.
enum Upstream {
    Subgraph(SubgraphStream),
    Events(Box<EventDriven>),
}

/// An event-driven subscription: its routed events, and how each is completed.
struct EventDriven {
    events: Events,
    source: Arc<EventSource>,
    fetch: EntityFetch,
}

/// What came from upstream.
enum Incoming {
    /// The subgraph's answer for one event.
    Response(SubgraphResponse),
    /// A routed domain event, to fetch the entity of.
    Event(Event),
    /// Events were dropped for this subscription.
    Lagged,
}

impl futures::Stream for Upstream {
    type Item = Incoming;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Incoming>> {
        match self.get_mut() {
            Upstream::Subgraph(stream) => stream
                .poll_next_unpin(cx)
                .map(|r| r.map(Incoming::Response)),
            Upstream::Events(following) => following.events.poll_next_unpin(cx).map(|event| {
                event.map(|event| match event {
                    Ok(event) => Incoming::Event(event),
                    Err(crate::events::Lagged) => Incoming::Lagged,
                })
            }),
        }
    }
}

/// One entity fetch's outcome.
enum Fetched {
    Entity(serde_json::Value),
    Partial(serde_json::Value, Vec<GraphQLError>),
    Missing,
    Errors(Vec<GraphQLError>),
}

/// A subscription plan's primary fetch (the owning subgraph's stream) and the nodes that
/// complete each of its events.
fn subscription_parts(node: Option<&PlanNode>) -> Option<(&FetchNode, Vec<&PlanNode>)> {
    match node? {
        PlanNode::Subscription(subscription) => Some((&subscription.primary, Vec::new())),
        PlanNode::Sequence(sequence) => {
            let (first, rest) = sequence.nodes.split_first()?;
            match first {
                PlanNode::Subscription(subscription) => {
                    Some((&subscription.primary, rest.iter().collect()))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_kit::{Actor, RequestMeta};
    use uuid::Uuid;

    fn caller(user: Uuid) -> Caller {
        Caller {
            actor: Actor::user(user, Uuid::now_v7(), vec![]),
            meta: RequestMeta::default(),
        }
    }

    #[test]
    fn subscriptions_are_limited_per_principal_and_per_gateway_and_given_back() {
        let limits = Limits {
            max_subscriptions: 3,
            max_subscriptions_per_principal: 2,
            ..Limits::default()
        };
        let open = Arc::new(OpenSubscriptions::default());
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let first = open.admit(&caller(ann), &limits);
        let second = open.admit(&caller(ann), &limits);
        assert!(first.is_ok() && second.is_ok());
        let refused = open.admit(&caller(ann), &limits).err();
        assert_eq!(
            refused.as_ref().and_then(GraphQLError::code),
            Some("TOO_MANY_SUBSCRIPTIONS")
        );
        let third = open.admit(&caller(bob), &limits);
        assert!(third.is_ok());
        assert!(
            open.admit(&caller(Uuid::now_v7()), &limits).is_err(),
            "gateway full"
        );
        assert_eq!(open.count(), 3);
        drop(first);
        assert_eq!(open.count(), 2);
        assert!(
            open.admit(&caller(ann), &limits).is_ok(),
            "a place was given back"
        );
        drop((second, third));
        assert!(open.by_principal.lock().get(&bob.to_string()).is_none());
    }
}
