//! The `portal` binary's library: configuration, wiring of gateway and subgraphs, demo
//! seed. `main.rs` only parses the command line and calls in here, so tests can build the
//! very same apps without a socket or a process.

pub mod audit;
pub mod casbin_adapter;
pub mod config;
pub mod files;
pub mod gateway_client;
pub mod inbound;
pub mod offboarding;
pub mod policies;
pub mod privacy;
pub mod scale;
pub mod seed;
pub mod subgraphs;
pub mod telemetry;
pub mod tls;
pub mod unsubscribe;
pub mod uploads;
pub mod verify_report;
pub mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait as _;

use portal_gateway::auth::Authentication;
use portal_gateway::compose::{self, SubgraphSdl};
use portal_gateway::gateway::{Gateway, Limits, Supergraph};
use portal_gateway::subgraph::{
    Caller, HttpSubgraph, SubgraphClient, SubgraphClients, SubgraphRequest, SubgraphSettings,
};
use portal_gateway::transport::{self, AppState};
use portal_identity::api_keys::DbApiKeys;
use portal_identity::{Authenticator, IdentitySettings};
use portal_kit::access_token::AccessTokenVerifier;
use portal_kit::internal_token::InternalTokenKey;
use portal_kit::{Actor, RequestMeta};

use crate::subgraphs::Subgraph;

/// Installs ring as the process-wide TLS crypto provider (reqwest is built without a
/// default one). Idempotent; call before creating any HTTP client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Opens the database and applies pending migrations.
pub async fn connect_and_migrate(
    url: &str,
    max_connections: u32,
) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = config::sqlite_path(url).filter(|p| !p.starts_with(':')) {
        let path = std::path::Path::new(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            portal_kit::files::create_private_dir(parent)
                .with_context(|| format!("creating database directory {}", parent.display()))?;
        }
        // Owner-only before SQLite opens it (its -wal and -shm files take the same mode).
        if portal_kit::files::ensure_private_file(path)
            .with_context(|| format!("preparing database file {}", path.display()))?
        {
            tracing::warn!(path = %path.display(), "the database file was readable by others; now 0600");
        }
    }
    let db = portal_kit::db::connect(url, max_connections)
        .await
        .context("connecting to the database")?;
    portal_migrations::Migrator::up(&db, None)
        .await
        .context("applying migrations")?;
    Ok(db)
}

/// Prepares what every process holding the data key makes sure of at start: the escrow
/// key that audit events' personal data is sealed to (concurrent starts agree on one).
pub async fn prepare_keys(
    db: &DatabaseConnection,
    data_key: &portal_kit::secret::DataKey,
) -> anyhow::Result<()> {
    let provider = portal_kit::envelope::LocalKeyProvider::new(data_key.clone());
    portal_kit::audit::personal::ensure_escrow(db, &provider)
        .await
        .map_err(|err| anyhow::anyhow!("preparing the audit escrow key: {err:?}"))
}

/// The retention engine: every class of records with its sweeper, the legal holds of
/// every domain respected.
pub fn retention_engine(
    db: &DatabaseConnection,
    keys: &portal_kit::envelope::TenantKeys,
    files: &portal_kit::storage::FileStore,
) -> portal_kit::retention::Engine {
    portal_kit::retention::Engine::new(
        db.clone(),
        vec![
            portal_identity::retention::Sessions::new(db.clone()),
            portal_kit::retention::SentMail::new(db.clone()),
            portal_kit::retention::JobHistory::new(db.clone()),
            portal_integrations::retention::WebhookDeliveries::new(db.clone()),
            portal_kit::retention::MadeFiles::new(db.clone(), files.clone()),
            portal_messages::retention::Messages::new(portal_messages::store::Store {
                db: db.clone(),
                keys: keys.clone(),
                files: files.clone(),
            }),
            portal_kit::audit::retention::AuditSegments::new(db.clone()),
        ],
        privacy_domains(db, keys, files),
    )
    .with_file_default(i32::try_from(files.retention().num_days()).unwrap_or(i32::MAX))
}

/// Every domain's side of the privacy contract, in archive order.
pub fn privacy_domains(
    db: &DatabaseConnection,
    keys: &portal_kit::envelope::TenantKeys,
    files: &portal_kit::storage::FileStore,
) -> Vec<Arc<dyn portal_kit::privacy::PrivacyDomain>> {
    vec![
        Arc::new(portal_identity::privacy::Privacy::new(
            db.clone(),
            keys.provider(),
        )),
        Arc::new(portal_accounts::privacy::Privacy::new(
            db.clone(),
            files.clone(),
        )),
        Arc::new(portal_reports::privacy::Privacy::new(
            db.clone(),
            files.clone(),
        )),
        Arc::new(portal_messages::privacy::Privacy::new(
            portal_messages::store::Store {
                db: db.clone(),
                keys: keys.clone(),
                files: files.clone(),
            },
        )),
        Arc::new(portal_integrations::privacy::Privacy::new(db.clone())),
    ]
}

/// Composes the subgraphs into a supergraph whose `join__graph` URLs are `urls` (by
/// subgraph name; a missing name gets an empty URL, i.e. in-process only).
pub fn compose_subgraphs(
    subgraphs: &[Subgraph],
    urls: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let inputs: Vec<SubgraphSdl> = subgraphs
        .iter()
        .map(|s| s.composition_input(urls.get(s.name).map(String::as_str).unwrap_or("")))
        .collect();
    Ok(compose::compose(&inputs)?)
}

/// Gateway options shared by both deployment modes.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// How callers are authenticated.
    pub authentication: Authentication,
    /// Request limits.
    pub limits: Limits,
    /// Subgraph timeouts and error exposure.
    pub subgraphs: SubgraphSettings,
    /// The in-browser IDE: `None` when off, else the request headers it starts with.
    pub ide: Option<Vec<(String, String)>>,
    /// Field-level authorization (`None`: off).
    pub authorizer: Option<Arc<portal_gateway::authz::Authorizer>>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Custom progressive-override labels treated as active.
    pub override_labels: std::collections::BTreeSet<String>,
    /// Web origins allowed to call from the browser (CORS); empty: none.
    pub cors_origins: Vec<String>,
    /// The feed of committed domain events the gateway follows event-driven subscription
    /// fields on (`@events`); `None`: they stream from their subgraphs. The all-in-one
    /// app shares its subgraphs' feed.
    pub events: Option<Arc<portal_kit::events::feed::EventFeed>>,
    /// Stored files: when set, the gateway serves their downloads at `/files/…` (and the
    /// all-in-one app's subgraphs keep their exports there). `None`: no downloads.
    pub files: Option<files::FileService>,
    /// How components of this process read through the gateway as a user (report runs,
    /// report checks): the all-in-one app sets it to its gateway once that exists.
    pub gateway_client: portal_kit::gateway_client::LateGateway,
    /// The tenants' data keys the all-in-one app's subgraphs seal messages with; `None`:
    /// wrapped with the identity settings' data key.
    pub keys: Option<portal_kit::envelope::TenantKeys>,
    /// Where integrations' connectors call (each provider's API); also what the
    /// gateway's inbound-webhook route verifies with.
    pub connectors: portal_integrations::connectors::Endpoints,
    /// Rate limits per client address, user, API key and tenant (`None`: none).
    pub rate_limiter: Option<portal_gateway::rate_limit::Limiter>,
}

/// The HTTP app of a gateway serving `supergraph_sdl` through `clients`.
pub fn gateway_app(
    supergraph_sdl: &str,
    clients: SubgraphClients,
    options: &GatewayOptions,
) -> anyhow::Result<(Router, Arc<Gateway>)> {
    let supergraph = Supergraph::load(supergraph_sdl, &options.limits)?;
    Ok(gateway_app_for(supergraph, clients, options))
}

/// The HTTP app of a gateway serving an already loaded `supergraph` through `clients`.
pub fn gateway_app_for(
    supergraph: Supergraph,
    clients: SubgraphClients,
    options: &GatewayOptions,
) -> (Router, Arc<Gateway>) {
    let mut gateway = Gateway::new(
        supergraph,
        clients,
        options.limits.clone(),
        options.subgraphs.clone(),
    )
    .with_override_labels(options.override_labels.clone());
    if let Some(authorizer) = &options.authorizer {
        gateway = gateway.with_authorizer(authorizer.clone());
    }
    if let Some(feed) = &options.events {
        gateway = gateway.with_events(feed.clone());
    }
    let gateway = Arc::new(gateway);
    let state = Arc::new(AppState {
        gateway: gateway.clone(),
        authentication: options.authentication.clone(),
        ide: options.ide.clone(),
        trusted_proxies: options.trusted_proxies.clone(),
        rate_limiter: options.rate_limiter.clone(),
    });
    let mut router = transport::router(state);
    if let Some(files) = &options.files {
        router = router.merge(files::router(
            files.clone(),
            gateway.clone(),
            options.trusted_proxies.clone(),
        ));
        let messages = portal_messages::store::Store {
            db: files.db.clone(),
            keys: files.keys.clone(),
            files: files.store.clone(),
        };
        router = router.merge(uploads::router(
            messages.clone(),
            options.trusted_proxies.clone(),
        ));
        router = router.merge(unsubscribe::router(
            messages,
            options.trusted_proxies.clone(),
        ));
        match inbound::router(
            files.db.clone(),
            files.keys.clone(),
            options.connectors.clone(),
            options.trusted_proxies.clone(),
        ) {
            Ok(inbound) => router = router.merge(inbound),
            Err(err) => tracing::error!(%err, "inbound integration webhooks are not served"),
        }
    }
    (with_cors(router, &options.cors_origins), gateway)
}

/// Lets pages of `origins` call `router` from the browser: preflights are answered for
/// them (POST and GET, the headers a GraphQL client sends), and only for them.
fn with_cors(router: Router, origins: &[String]) -> Router {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return router;
    }
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::ACCEPT,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}

/// The public keys, for anyone who checks what the portal signed:
/// - `GET /.well-known/jwks.json`: the keys that verify access tokens (JSON Web Key Set),
///   for integrators and services that verify portal tokens themselves;
/// - `GET /.well-known/portal-evidence-keys.json`: every evidence key ever used, with its
///   signing period, for checking report manifests (`portal verify-report`) offline.
pub fn well_known_router(db: DatabaseConnection) -> Router {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    fn public<T: serde::Serialize>(found: portal_kit::ApiResult<T>, what: &str) -> Response {
        match found {
            Ok(keys) => {
                let mut response = axum::Json(keys).into_response();
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=60"),
                );
                response
            }
            Err(err) => {
                tracing::error!(?err, "reading the {what} failed");
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        }
    }
    let jwks = {
        let db = db.clone();
        move || {
            let db = db.clone();
            async move { public(portal_identity::keys::jwks(&db).await, "verification keys") }
        }
    };
    let evidence = move || {
        let db = db.clone();
        async move { public(portal_kit::evidence::published(&db).await, "evidence keys") }
    };
    Router::new()
        .route("/.well-known/jwks.json", axum::routing::get(jwks))
        .route(
            portal_kit::evidence::KEYS_PATH,
            axum::routing::get(evidence),
        )
}

/// HTTP clients for `supergraph`'s subgraphs at the URLs its `join__Graph` names, except
/// where `overrides` names a subgraph.
pub fn clients_for_supergraph(
    supergraph: &Supergraph,
    overrides: &BTreeMap<String, String>,
    key: Option<&InternalTokenKey>,
) -> anyhow::Result<SubgraphClients> {
    let mut urls = supergraph.subgraph_urls();
    for (name, url) in overrides {
        urls.insert(name.clone(), url.clone());
    }
    for (name, url) in &urls {
        anyhow::ensure!(
            !url.is_empty(),
            "the supergraph names no URL for subgraph `{name}`: set gateway.subgraphs.{name}"
        );
    }
    // Without the secret the portal's own subgraphs refuse every request (fail closed);
    // someone else's learn nothing about the caller.
    build_http_clients(&urls, key)
}

/// Identity's sign-in service and what a gateway needs to verify its tokens.
pub struct IdentityRuntime {
    /// Signs users in and manages sessions (identity subgraph).
    pub authenticator: Arc<Authenticator>,
    /// Verifies access tokens (gateway), kept current by `feed`.
    pub verifier: Arc<AccessTokenVerifier>,
    /// Resolves integrators' API keys (gateway).
    pub api_keys: Arc<DbApiKeys>,
    /// The task polling keys and revocations into `verifier`; abort to stop.
    pub feed: tokio::task::JoinHandle<()>,
}

impl IdentityRuntime {
    /// Gateway authentication by access tokens and API keys.
    pub fn authentication(&self) -> Authentication {
        Authentication::tokens(self.verifier.clone()).with_api_keys(self.api_keys.clone())
    }
}

/// Starts identity's sign-in service over `db`: makes sure a signing key exists, loads
/// keys and revocations into a verifier and keeps polling them every second.
pub async fn start_identity(
    db: &DatabaseConnection,
    settings: IdentitySettings,
) -> anyhow::Result<IdentityRuntime> {
    let verifier = Arc::new(AccessTokenVerifier::new(&settings.issuer));
    prepare_keys(db, &settings.data_key).await?;
    let authenticator = Arc::new(Authenticator::new(db.clone(), settings));
    authenticator
        .keys()
        .signing_key(db)
        .await
        .map_err(|err| anyhow::anyhow!("preparing the token signing key: {err:?}"))?;
    let feed = watch_sessions(db, verifier.clone()).await?;
    Ok(IdentityRuntime {
        authenticator,
        verifier,
        api_keys: Arc::new(DbApiKeys::new(db.clone())),
        feed,
    })
}

/// Keeps `verifier` current with the keys and revoked sessions in `db`, polling every
/// second.
pub async fn watch_sessions(
    db: &DatabaseConnection,
    verifier: Arc<AccessTokenVerifier>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    portal_identity::feed::watch(db.clone(), verifier, Duration::from_secs(1))
        .await
        .map_err(|err| anyhow::anyhow!("loading token keys and revocations: {err:?}"))
}

/// The tenant with the slug or id `slug_or_id`.
pub async fn find_tenant(
    db: &DatabaseConnection,
    slug_or_id: &str,
) -> anyhow::Result<portal_entities::identity::tenant::Model> {
    use portal_entities::identity::tenant;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let by = match uuid::Uuid::parse_str(slug_or_id) {
        Ok(id) => tenant::Column::Id.eq(id),
        Err(_) => tenant::Column::Slug.eq(slug_or_id),
    };
    tenant::Entity::find()
        .filter(by)
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant {slug_or_id}"))
}

/// The all-in-one app: the gateway with in-process transports to all five subgraphs.
pub fn all_in_one_app(
    db: &DatabaseConnection,
    authenticator: &Arc<Authenticator>,
    options: &GatewayOptions,
) -> anyhow::Result<(Router, Arc<Gateway>)> {
    // One feed of committed events for the subgraphs and the gateway.
    let feed = options.events.clone().unwrap_or_else(|| {
        portal_kit::events::feed::EventFeed::lazy(
            db.clone(),
            portal_kit::events::feed::DEFAULT_POLL,
        )
    });
    let files = match &options.files {
        Some(files) => files.store.clone(),
        None => portal_kit::storage::FileStore::in_memory(&authenticator.settings().data_key),
    };
    let late = &options.gateway_client;
    let keys = options.keys.clone().unwrap_or_else(|| {
        portal_kit::envelope::TenantKeys::local(
            db.clone(),
            authenticator.settings().data_key.clone(),
        )
    });
    let subgraphs = subgraphs::build_all_with(
        db,
        authenticator,
        &feed,
        &files,
        late,
        &keys,
        &options.connectors,
    );
    let supergraph = compose_subgraphs(&subgraphs, &BTreeMap::new())?;
    let clients: SubgraphClients = subgraphs
        .iter()
        .map(|s| (s.name.to_owned(), s.client.clone()))
        .collect();
    let options = GatewayOptions {
        events: Some(feed),
        ..options.clone()
    };
    let (app, gateway) = gateway_app(&supergraph, clients, &options)?;
    late.set(gateway_client::InProcess::new(gateway.clone()));
    Ok((app, gateway))
}

/// HTTP clients for the subgraphs at `urls`, signing requests with `key`.
pub fn http_clients(
    urls: &BTreeMap<String, String>,
    key: &InternalTokenKey,
) -> anyhow::Result<SubgraphClients> {
    build_http_clients(urls, Some(key))
}

/// HTTP clients for the subgraphs at `urls`, signing requests with `key` when there is one.
fn build_http_clients(
    urls: &BTreeMap<String, String>,
    key: Option<&InternalTokenKey>,
) -> anyhow::Result<SubgraphClients> {
    install_crypto_provider();
    let client = reqwest::Client::builder()
        // A redirect would carry the internal token to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    Ok(urls
        .iter()
        .map(|(name, url)| {
            let subgraph: Arc<dyn SubgraphClient> = Arc::new(HttpSubgraph::new(
                client.clone(),
                name.clone(),
                url.clone(),
                key.cloned(),
            ));
            (name.clone(), subgraph)
        })
        .collect())
}

/// Fetches each subgraph's SDL over HTTP (`_service { sdl }`) and composes them, retrying
/// for up to `wait` while subgraphs start.
pub async fn compose_remote(
    clients: &SubgraphClients,
    urls: &BTreeMap<String, String>,
    wait: Duration,
) -> anyhow::Result<String> {
    let caller = Caller {
        actor: Actor::anonymous(),
        meta: RequestMeta::default(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut inputs = Vec::new();
    for (name, url) in urls {
        let client = clients.get(name).context("no client for subgraph")?;
        let sdl = loop {
            let request = SubgraphRequest {
                query: "{ _service { sdl } }".into(),
                variables: Default::default(),
            };
            let attempt =
                tokio::time::timeout(Duration::from_secs(5), client.execute(request, &caller))
                    .await;
            let sdl = attempt.ok().and_then(Result::ok).and_then(|r| {
                r.data?
                    .get("_service")?
                    .get("sdl")?
                    .as_str()
                    .map(str::to_owned)
            });
            match sdl {
                Some(sdl) => break sdl,
                None if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                None => anyhow::bail!("subgraph `{name}` at {url} did not return its SDL"),
            }
        };
        inputs.push(SubgraphSdl {
            name: name.clone(),
            url: url.clone(),
            sdl,
        });
    }
    Ok(compose::compose(&inputs)?)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_sqlite_database_gets_its_directory_in_either_url_form() -> anyhow::Result<()> {
        let base = std::env::temp_dir().join(format!("portal-db-dir-{}", uuid::Uuid::now_v7()));
        for (form, dir) in [("sqlite://", "a/b"), ("sqlite:", "c/d")] {
            let path = base.join(dir).join("portal.db");
            let url = format!("{form}{}?mode=rwc", path.display());
            let db = super::connect_and_migrate(&url, 1).await?;
            db.close().await?;
            assert!(path.exists(), "{url}");
        }
        let _ = std::fs::remove_dir_all(&base);
        Ok(())
    }
}
