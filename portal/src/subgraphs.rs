//! The five subgraphs as the binary wires them: their schemas over one database, their
//! SDLs for composition, in-process clients for the all-in-one mode and HTTP apps for the
//! process-per-role mode. This is the one place that knows every subgraph crate.

use std::sync::Arc;

use async_graphql::Executor;
use async_graphql::{SDLExportOptions, Variables};
use axum::Router;
use futures::future::BoxFuture;
use sea_orm::DatabaseConnection;

use portal_gateway::compose::SubgraphSdl;
use portal_gateway::subgraph::{
    Caller, SubgraphClient, SubgraphError, SubgraphRequest, SubgraphResponse, SubgraphStream,
};
use portal_identity::Authenticator;
use portal_kit::envelope::TenantKeys;
use portal_kit::events::feed::{DEFAULT_POLL, EventFeed};
use portal_kit::gateway_client::LateGateway;
use portal_kit::internal_token::InternalTokenKey;
use portal_kit::references::{EntityOwner, References};
use portal_kit::serve::Closing;
use portal_kit::storage::FileStore;
use portal_kit::{Actor, RequestMeta};

/// Subgraph names, in composition order.
pub const NAMES: [&str; 5] = [
    "identity",
    "accounts",
    "reports",
    "messages",
    "integrations",
];

/// One subgraph, built over a database.
pub struct Subgraph {
    /// Its name in the supergraph.
    pub name: &'static str,
    /// Its Federation v2 SDL.
    pub sdl: String,
    /// An in-process client (no HTTP hop).
    pub client: Arc<dyn SubgraphClient>,
    router: Box<dyn Fn(InternalTokenKey, Option<Closing>) -> Router + Send + Sync>,
}

impl Subgraph {
    fn new<E: Executor + Clone + 'static>(name: &'static str, executor: E, sdl: String) -> Self {
        let for_router = executor.clone();
        Self {
            name,
            sdl,
            client: Arc::new(InProcess { executor }),
            router: Box::new(move |key, closing| {
                portal_kit::serve::router_until(name, for_router.clone(), key, closing)
            }),
        }
    }

    /// The subgraph's HTTP app, trusting internal tokens signed with `key`.
    pub fn router(&self, key: InternalTokenKey) -> Router {
        (self.router)(key, None)
    }

    /// [`Subgraph::router`] whose open event streams end (without `complete`, so the
    /// gateway's clients subscribe again elsewhere) once `closing` turns `true`.
    pub fn router_until(&self, key: InternalTokenKey, closing: Closing) -> Router {
        (self.router)(key, Some(closing))
    }

    /// Composition input for this subgraph reachable at `url` (empty: in process).
    pub fn composition_input(&self, url: &str) -> SubgraphSdl {
        SubgraphSdl {
            name: self.name.to_owned(),
            url: url.to_owned(),
            sdl: self.sdl.clone(),
        }
    }
}

fn federation_sdl() -> SDLExportOptions {
    SDLExportOptions::new().federation().compose_directive()
}

/// What the subgraphs work with besides the database.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Checks references to other subgraphs' entities.
    pub references: References,
    /// Committed changes, for subscription fields.
    pub feed: Arc<EventFeed>,
    /// Where files (exports, report files) are kept.
    pub files: FileStore,
    /// Reads through the gateway as a user (report runs, definition checks).
    pub gateway: LateGateway,
    /// The tenants' data keys (messages are sealed with them).
    pub keys: TenantKeys,
    /// Where integrations' connectors call (each provider's API).
    pub connectors: portal_integrations::connectors::Endpoints,
}

/// Builds the subgraph `name` over `db` with `shared`; identity needs the sign-in
/// service. `None` for an unknown name, or identity without `authenticator`.
pub fn build(
    name: &str,
    db: &DatabaseConnection,
    authenticator: Option<Arc<Authenticator>>,
    shared: &Shared,
) -> Option<Subgraph> {
    let Shared {
        references,
        feed,
        files,
        gateway,
        keys,
        connectors,
    } = shared;
    match name {
        "identity" => {
            let schema = portal_identity::build_schema(
                db.clone(),
                authenticator?,
                feed.clone(),
                (files.clone(), crate::retention_engine(db, keys, files)),
            );
            let sdl = schema.sdl_with_options(federation_sdl());
            Some(Subgraph::new("identity", schema, sdl))
        }
        "accounts" => {
            let schema = portal_accounts::build_schema(
                db.clone(),
                references.clone(),
                feed.clone(),
                files.clone(),
            );
            let sdl = schema.sdl_with_options(federation_sdl());
            Some(Subgraph::new("accounts", schema, sdl))
        }
        "reports" => {
            let schema = portal_reports::build_schema(
                db.clone(),
                references.clone(),
                gateway.clone(),
                files.clone(),
                feed.clone(),
                keys.provider(),
            );
            let sdl = schema.sdl_with_options(federation_sdl());
            Some(Subgraph::new("reports", schema, sdl))
        }
        "messages" => {
            let schema = portal_messages::build_schema(
                db.clone(),
                references.clone(),
                feed.clone(),
                keys.clone(),
                files.clone(),
            );
            let sdl = schema.sdl_with_options(federation_sdl());
            Some(Subgraph::new("messages", schema, sdl))
        }
        "integrations" => {
            let remote = match portal_integrations::sync::remote_for_requests() {
                Ok(remote) => remote,
                Err(err) => {
                    tracing::error!(%err, "the connectors' HTTP client cannot be built");
                    return None;
                }
            };
            let schema = portal_integrations::build_schema(
                db.clone(),
                references.clone(),
                keys.clone(),
                portal_integrations::graphql::ConnectorContext {
                    endpoints: connectors.clone(),
                    remote,
                },
                feed.clone(),
            );
            let sdl = schema.sdl_with_options(federation_sdl());
            Some(Subgraph::new("integrations", schema, sdl))
        }
        _ => None,
    }
}

/// Builds all five subgraphs over `db`, in [`NAMES`] order; they check references to
/// each other's entities in process and share one event feed. Files they write are kept
/// in memory: for composition and tests that download nothing.
pub fn build_all(db: &DatabaseConnection, authenticator: &Arc<Authenticator>) -> Vec<Subgraph> {
    let files = FileStore::in_memory(&authenticator.settings().data_key);
    build_all_with(
        db,
        authenticator,
        &EventFeed::lazy(db.clone(), DEFAULT_POLL),
        &files,
        &LateGateway::default(),
        &TenantKeys::local(db.clone(), authenticator.settings().data_key.clone()),
        &portal_integrations::connectors::Endpoints::default(),
    )
}

/// [`build_all`] on the event feed `feed` (shared with a gateway in the same process),
/// keeping files in `files`, reading through the gateway as a user with `gateway`,
/// sealing with the tenants' data keys `keys`, with connectors calling `connectors`.
pub fn build_all_with(
    db: &DatabaseConnection,
    authenticator: &Arc<Authenticator>,
    feed: &Arc<EventFeed>,
    files: &FileStore,
    gateway: &LateGateway,
    keys: &TenantKeys,
    connectors: &portal_integrations::connectors::Endpoints,
) -> Vec<Subgraph> {
    let references = References::default();
    let shared = Shared {
        references: references.clone(),
        feed: feed.clone(),
        files: files.clone(),
        gateway: gateway.clone(),
        keys: keys.clone(),
        connectors: connectors.clone(),
    };
    let subgraphs: Vec<Subgraph> = NAMES
        .iter()
        .filter_map(|name| build(name, db, Some(authenticator.clone()), &shared))
        .collect();
    register_owners(&references, |name| {
        subgraphs
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.client.clone())
    });
    subgraphs
}

/// Which subgraph owns each entity type other subgraphs reference.
pub const OWNERS: [(&str, &str); 2] = [("User", "identity"), ("Account", "accounts")];

/// Registers, for each type in [`OWNERS`], the client `client_of` gives for its owner
/// (in process, or HTTP with an internal token in process-per-role mode).
pub fn register_owners(
    references: &References,
    client_of: impl Fn(&str) -> Option<Arc<dyn SubgraphClient>>,
) {
    for (typename, owner) in OWNERS {
        if let Some(client) = client_of(owner) {
            references.register(typename, Arc::new(OwnerClient(client)));
        }
    }
}

/// A reference check sent through a subgraph client, as the checking request's actor.
struct OwnerClient(Arc<dyn SubgraphClient>);

#[async_trait::async_trait]
impl EntityOwner for OwnerClient {
    async fn execute(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let serde_json::Value::Object(variables) = variables else {
            return Err("variables must be an object".into());
        };
        let caller = Caller {
            actor: actor.clone(),
            meta: meta.clone(),
        };
        let request = SubgraphRequest {
            query: query.to_owned(),
            variables,
        };
        let response = self
            .0
            .execute(request, &caller)
            .await
            .map_err(|err| err.to_string())?;
        Ok(serde_json::json!({ "data": response.data, "errors": response.errors }))
    }
}

/// Executes subgraph requests by calling the schema directly, passing the actor as data.
struct InProcess<E> {
    executor: E,
}

impl<E: Executor> SubgraphClient for InProcess<E> {
    fn execute<'a>(
        &'a self,
        request: SubgraphRequest,
        caller: &'a Caller,
    ) -> BoxFuture<'a, Result<SubgraphResponse, SubgraphError>> {
        Box::pin(async move {
            let largest = portal_kit::pagination::largest_page_for(&caller.actor);
            let response = portal_kit::pagination::with_largest_page_of(
                largest,
                self.executor.execute(in_process(request, caller)),
            )
            .await;
            convert(&response).ok_or(SubgraphError::InvalidResponse { status: 200 })
        })
    }

    fn subscribe<'a>(
        &'a self,
        request: SubgraphRequest,
        caller: &'a Caller,
    ) -> BoxFuture<'a, Result<SubgraphStream, SubgraphError>> {
        use futures::StreamExt;
        let (ready, opened) = portal_kit::subscription::ready_signal();
        let request = in_process(request, caller).data(ready);
        let responses = self.executor.execute_stream(request, None);
        Box::pin(async move {
            // Returned once the field follows events: nothing committed later is missed.
            let responses = portal_kit::subscription::until_ready(responses, opened).await;
            Ok(responses
                .map(|response| {
                    convert(&response).unwrap_or_else(|| SubgraphResponse {
                        data: None,
                        errors: vec![portal_gateway::response::GraphQLError::new(
                            "the subgraph returned an invalid event",
                            "INTERNAL",
                        )],
                    })
                })
                .boxed())
        })
    }
}

/// `request` as the schema takes it, with the caller as request data.
fn in_process(request: SubgraphRequest, caller: &Caller) -> async_graphql::Request {
    let request = async_graphql::Request::new(request.query).variables(Variables::from_json(
        serde_json::Value::Object(request.variables),
    ));
    portal_kit::variables::leave_out_absent(request)
        .data(caller.actor.clone())
        .data(caller.meta.clone())
}

/// A schema's response in the gateway's terms (as if it had crossed the wire).
fn convert(response: &async_graphql::Response) -> Option<SubgraphResponse> {
    let value = serde_json::to_value(response).ok()?;
    serde_json::from_value(value).ok()
}
