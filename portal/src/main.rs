//! `portal`: the command line of the Portal backend. Thin: parses arguments, sets up
//! logging, and calls the library.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use portal::config::{AuthorizationMode, Config, parse_listen};
use portal::{GatewayOptions, subgraphs};
use std::sync::Arc;

use portal_gateway::auth::Authentication;
use portal_gateway::gateway::Supergraph;
use portal_gateway::reload::{self, SupergraphSource};
use portal_kit::access_token::AccessTokenVerifier;
use portal_kit::internal_token::InternalTokenKey;

// mimalloc returns freed memory to the OS far better than glibc's malloc under many
// threads and connections: measured with bench/ at 1000 connections (docs/performance.md).
// Built without transparent huge pages (feature `no_thp`): with them, its arenas grow the
// resident set in 2 MiB steps (idle gateway 23 → 9 MiB of heap, peak at 1000 connections
// 150 → 128 MiB, same run conditions).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Portal: an enterprise customer portal served as one federated GraphQL API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Defaults to ./portal.toml when present.
    #[arg(long, global = true, env = "PORTAL_CONFIG")]
    config: Option<PathBuf>,
    /// Log line format: `text` or `json` (overrides `telemetry.log_format` and
    /// `PORTAL_LOG_FORMAT`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<portal::telemetry::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the whole portal in one process (default), or one role of it.
    Serve {
        /// Which role to run; omit for all-in-one (gateway + five subgraphs, in process).
        role: Option<Role>,
        /// Address to listen on (default 127.0.0.1:4000 for the gateway, 4001-4005 for
        /// identity, accounts, reports, messages, integrations).
        #[arg(long, env = "PORTAL_LISTEN", value_parser = parse_listen)]
        listen: Option<SocketAddr>,
        /// Gateway role: serve this supergraph (a file path or an http(s) URL) instead of
        /// composing the subgraphs' SDLs fetched at start. It is polled every second and a
        /// changed supergraph is swapped in without dropping requests.
        #[arg(long)]
        supergraph: Option<String>,
        /// Trust the development identity headers (x-portal-tenant-id, x-portal-user-id,
        /// x-portal-roles) — all-in-one and gateway roles; all-in-one also seeds the demo
        /// data on first start and pre-fills the IDE. Never use in production.
        #[arg(long)]
        demo: bool,
        /// Serve HTTPS with this PEM certificate chain (with `--tls-key`); overrides
        /// `gateway.tls_cert`.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of `--tls-cert`; overrides `gateway.tls_key`.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve Prometheus metrics at `GET /metrics` on this address (its own listener;
        /// overrides `telemetry.metrics_listen`).
        #[arg(long, value_parser = parse_listen)]
        metrics_listen: Option<SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Compose the subgraphs and write schema/<subgraph>.graphql and schema/supergraph.graphql.
    Compose {
        /// Directory to write into.
        #[arg(long, default_value = "schema")]
        out: PathBuf,
    },
    /// Insert the demo data (two tenants with users, accounts, reports, threads, integrations).
    Seed {
        /// Also load benchmark volume into the demo tenant: 10×N accounts, 100 000×N ledger
        /// entries, 1 000 000×N usage events (seeds the demo data first if it is missing).
        #[arg(long)]
        scale: Option<u32>,
    },
    /// Publish a new access-token signing key now; it signs after 15 s, the old keys keep
    /// verifying for two hours.
    RotateKeys,
    /// Start a new evidence key (report manifests are signed with it from now on); the
    /// previous one stops signing but stays published, so what it signed keeps verifying.
    RotateEvidenceKey,
    /// Destroy every data key of a tenant (off-boarding): its messages become unreadable
    /// for good — crypto-shredding. Asks for `--yes`.
    DestroyTenantKeys {
        /// The tenant's slug or id.
        tenant: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Check a downloaded report file offline against its signed manifest and the published
    /// evidence keys (exit status 1 when it does not verify).
    VerifyReport {
        /// The report file.
        file: PathBuf,
        /// Its manifest (`ReportRun.manifest`); default `FILE.manifest.json`.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The evidence keys, as saved from the portal's
        /// `/.well-known/portal-evidence-keys.json`.
        #[arg(long)]
        keys: PathBuf,
    },
    /// The tamper-evident audit log: verify it, export evidence packs.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Field-level RBAC policies: lint, test assertions, explain a decision.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
        /// Policy directory (`*.csv`); with `--database`, the policies in the database.
        #[arg(long, global = true, default_value = "policies")]
        dir: PathBuf,
        /// Read the policies from the configured database instead of `--dir`.
        #[arg(long, global = true)]
        database: bool,
        /// The supergraph to check coordinates against.
        #[arg(long, global = true, default_value = "schema/supergraph.graphql")]
        supergraph: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check audit chains (exit status 1 when one does not verify): every chain in the
    /// database, one tenant's, or an evidence pack offline (no database needed).
    Verify {
        /// Only this tenant's chain (slug or id).
        #[arg(long)]
        tenant: Option<String>,
        /// Verify an evidence pack instead of the database: its directory, or the zip
        /// archive `auditEvidenceExport` downloads.
        #[arg(long)]
        pack: Option<PathBuf>,
        /// With `--pack`: the evidence keys to trust, as saved from the portal's
        /// `/.well-known/portal-evidence-keys.json` (without it, the pack's own `keys.json`
        /// is used, which shows the pack is consistent but not who signed it).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Report events left unchained for longer than this, in seconds.
        #[arg(long, default_value_t = 300)]
        unchained_secs: u64,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a tenant's evidence pack (the chain, signed checkpoints, public keys, a signed
    /// manifest and a README) into a directory.
    Export {
        /// The tenant (slug or id).
        #[arg(long)]
        tenant: String,
        /// The directory to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Unknown coordinates, wrong actions, duplicates, conflicts, unreachable rules.
    Lint,
    /// Check assertions (`can|cannot ROLE read|write Type.field [in TENANT]`, one per line).
    Test {
        /// The assertions file.
        file: PathBuf,
    },
    /// Why holders of ROLEs may or may not use a coordinate.
    Explain {
        /// `Type.field`.
        coordinate: String,
        /// Roles held (repeatable); `public` and `authenticated` are added.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Tenant id (default: rules of every tenant only).
        #[arg(long, default_value = "any-tenant")]
        tenant: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Gateway,
    Identity,
    Accounts,
    Reports,
    Messages,
    Integrations,
    /// Runs jobs (mail delivery, …): as many worker processes as wanted share the queue.
    Worker,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Identity => "identity",
            Self::Accounts => "accounts",
            Self::Reports => "reports",
            Self::Messages => "messages",
            Self::Integrations => "integrations",
            Self::Worker => "worker",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Gateway => 4000,
            Self::Identity => 4001,
            Self::Accounts => 4002,
            Self::Reports => 4003,
            Self::Messages => 4004,
            Self::Integrations => 4005,
            Self::Worker => 4006,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    let role = match &cli.command {
        Command::Serve { role, .. } => role.map(Role::name),
        _ => None,
    };
    // Only serving processes export spans; commands log.
    let export = matches!(cli.command, Command::Serve { .. })
        .then(|| config.telemetry.trace_export(role))
        .flatten();
    let telemetry = portal::telemetry::init(
        cli.log_format.unwrap_or(config.telemetry.log_format),
        export.as_ref(),
    )?;
    let ran = run(cli, config).await;
    telemetry.shutdown();
    ran
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    portal_kit::db::set_sqlite_durability(config.database.sqlite_synchronous);
    match cli.command {
        Command::Serve {
            role,
            listen,
            supergraph,
            demo,
            tls_cert,
            tls_key,
            metrics_listen,
        } => {
            let mut config = config;
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                config.gateway.tls_cert = Some(cert);
                config.gateway.tls_key = Some(key);
            }
            if metrics_listen.is_some() {
                config.telemetry.metrics_listen = metrics_listen;
            }
            serve(&config, role, listen, supergraph, demo).await
        }
        Command::Migrate => {
            let db = portal::connect_and_migrate(&config.database.url, 2).await?;
            if let Ok(data_key) = config.data_key() {
                portal::prepare_keys(&db, &data_key).await?;
            }
            println!("migrations applied");
            Ok(())
        }
        Command::Compose { out } => compose(&config, &out).await,
        Command::Policy {
            command,
            dir,
            database,
            supergraph,
        } => policy(&config, command, &dir, database, &supergraph).await,
        Command::RotateKeys => {
            let db = portal::connect_and_migrate(&config.database.url, 2).await?;
            let settings = config.identity_settings()?;
            let authenticator = portal_identity::Authenticator::new(db.clone(), settings);
            let kid = authenticator
                .keys()
                .rotate(&db)
                .await
                .map_err(|err| anyhow::anyhow!("rotating the signing key: {err:?}"))?;
            println!("published signing key {kid}; it signs from 15 s on");
            Ok(())
        }
        Command::RotateEvidenceKey => {
            let db = portal::connect_and_migrate(&config.database.url, 2).await?;
            let settings = config.identity_settings()?;
            let id = portal_kit::evidence::EvidenceSigner::new(db, settings.data_key)
                .rotate()
                .await
                .map_err(|err| anyhow::anyhow!("rotating the evidence key: {err:?}"))?;
            println!("evidence key {id} signs from now on; earlier keys stay published");
            Ok(())
        }
        Command::DestroyTenantKeys { tenant, yes } => {
            anyhow::ensure!(
                yes,
                "destroying a tenant's keys makes its messages unreadable for good: \
                 repeat with --yes"
            );
            let db = portal::connect_and_migrate(&config.database.url, 2).await?;
            portal::prepare_keys(&db, &config.data_key()?).await?;
            let tenant = portal::find_tenant(&db, &tenant).await?;
            let keys = portal_kit::envelope::TenantKeys::local(db.clone(), config.data_key()?);
            let meta = portal_kit::RequestMeta {
                request_id: None,
                source_ip: None,
                user_agent: Some("portal destroy-tenant-keys".into()),
                traceparent: None,
            };
            let destroyed = keys
                .destroy(tenant.id, &portal_kit::Actor::anonymous(), &meta)
                .await
                .map_err(|err| anyhow::anyhow!("destroying the tenant's keys: {err:?}"))?;
            println!(
                "destroyed {destroyed} key version(s) of tenant {}: its sealed data is gone",
                tenant.slug
            );
            Ok(())
        }
        Command::VerifyReport {
            file,
            manifest,
            keys,
        } => verify_report(&file, manifest, &keys),
        Command::Audit { command } => audit(&config, command).await,
        Command::Seed { scale: None } => {
            let db = portal::connect_and_migrate(&config.database.url, 2).await?;
            let seed = portal::seed::seed(&db).await.context("seeding demo data")?;
            print_demo(&seed, false);
            Ok(())
        }
        Command::Seed { scale: Some(n) } => {
            let db = portal::connect_and_migrate(&config.database.url, 2).await?;
            portal::seed::seed_if_empty(&db)
                .await
                .context("seeding demo data")?;
            let seed = portal::seed::demo_identities(&db)
                .await
                .context("reading the demo identities")?
                .context("the database holds data that is not the demo's: scale seeds only the demo tenant")?;
            let report = portal::scale::seed_scale(&db, &seed, n)
                .await
                .context("loading scale data")?;
            println!(
                "scale {n}: {} accounts, {} ledger entries, {} usage events ({} rollups) in {:.1} s; busiest account {}",
                report.accounts,
                report.ledger_entries,
                report.usage_events,
                report.rollups,
                report.elapsed.as_secs_f64(),
                report.busiest_account,
            );
            Ok(())
        }
    }
}

/// Field-level authorization as configured (policies from `db`, seeded on first start,
/// reloaded within a second of a change), or `None` when it is off. `reaches_portal`:
/// whether this gateway can reach the portal's subgraphs (in process, or holding the
/// secret their HTTP endpoints require).
async fn authorizer(
    config: &Config,
    db: &sea_orm::DatabaseConnection,
    reaches_portal: bool,
    demo: bool,
) -> anyhow::Result<Option<Arc<portal_gateway::authz::Authorizer>>> {
    let configured = config.gateway.authorization;
    // The portal's subgraphs leave "who may call this operation" to the policies alone:
    // with them reachable, authorization that enforces nothing would open every
    // operation (user and role administration, the audit trail) to every caller.
    if reaches_portal
        && matches!(
            configured,
            AuthorizationMode::Off | AuthorizationMode::DryRun
        )
    {
        let name = if configured == AuthorizationMode::Off {
            "off"
        } else {
            "dry_run"
        };
        anyhow::bail!(
            "gateway.authorization = \"{name}\" enforces nothing, and the portal's own \
             subgraphs (reachable from this gateway: all-in-one, or internal.token_secret \
             is set) rely on the policies to decide who may call each operation; use \
             \"filter\" or \"reject\" (\"off\" and \"dry_run\" are for gateways in front \
             of other subgraphs, without the portal's secret)"
        );
    }
    let Some(mode) = configured.gateway_mode(reaches_portal) else {
        if configured == AuthorizationMode::Auto {
            tracing::warn!(
                "field-level authorization is OFF: without internal.token_secret this gateway \
                 cannot reach the portal's subgraphs, and no policy speaks of other \
                 subgraphs' fields; set gateway.authorization = \"filter\" to deny every \
                 field no policy allows"
            );
        } else {
            tracing::warn!("field-level authorization is OFF (gateway.authorization = \"off\")");
        }
        return Ok(None);
    };
    // A gateway may start before the subgraphs have migrated the database: wait a while.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (authorizer, _watcher) = loop {
        let introspection = config.gateway.authorize_introspection.unwrap_or(!demo);
        match portal::policies::start(db, mode, introspection).await {
            Ok(started) => break started,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(err.context("loading the authorization policies"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    tracing::info!(
        ?mode,
        revision = authorizer.policies().revision,
        "field-level authorization on"
    );
    Ok(Some(authorizer))
}

fn options(config: &Config, demo: bool, mut authentication: Authentication) -> GatewayOptions {
    if demo || config.gateway.dev_headers {
        tracing::warn!(
            "trusting development identity headers: anyone can act as anyone. Never do this in production."
        );
        authentication = authentication.with_dev_headers();
    }
    GatewayOptions {
        rate_limiter: None,
        authentication,
        limits: config.limits(),
        subgraphs: config.subgraph_settings(),
        ide: (demo || config.gateway.ide).then(Vec::new),
        authorizer: None,
        trusted_proxies: config.trusted_proxies().unwrap_or_default(),
        override_labels: config.gateway.override_labels.iter().cloned().collect(),
        cors_origins: config.cors_origins().unwrap_or_default(),
        events: None,
        files: None,
        gateway_client: Default::default(),
        keys: None,
        connectors: config.connector_endpoints(),
    }
}

async fn serve(
    config: &Config,
    role: Option<Role>,
    listen: Option<SocketAddr>,
    supergraph: Option<String>,
    demo: bool,
) -> anyhow::Result<()> {
    let port = role.map_or(4000, Role::default_port);
    let addr = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    // The gateway whose open streams a shutdown completes first.
    let mut streams: Option<Arc<portal_gateway::gateway::Gateway>> = None;
    // A subgraph process's open event streams, ended on shutdown.
    let subgraph_closing = tokio::sync::watch::Sender::new(false);
    // Metrics are kept only when someone scrapes them.
    let metrics = match config.telemetry.metrics_listen {
        Some(_) => Some(portal::telemetry::install_recorder()?),
        None => None,
    };
    // What `/ready` checks, what a scrape reads, and the job worker a shutdown stops.
    let mut readiness = portal::telemetry::Readiness::default();
    let collector;
    let mut runner: Option<Arc<portal_kit::jobs::runner::Runner>> = None;
    let max_connections = config.database.max_connections;
    let app = match role {
        None => {
            let db =
                portal::connect_and_migrate(&config.database.url, config.database.max_connections)
                    .await?;
            portal::prepare_keys(&db, &config.data_key()?).await?;
            let settings = config.identity_settings_for_mail(demo, addr)?;
            let files = config.file_store()?;
            // Report runs read through this process's gateway, set once it is built.
            let gateway_client = portal_kit::gateway_client::LateGateway::default();
            // One set of tenant keys (and one cache of them) for the subgraphs, downloads
            // and the worker of this process.
            let keys =
                portal_kit::envelope::TenantKeys::local(db.clone(), settings.data_key.clone());
            let worker = Worker {
                db: &db,
                data_key: &settings.data_key,
                files: &files,
                gateway: gateway_client.clone(),
                keys: keys.clone(),
                demo,
            };
            runner = Some(start_worker(config, worker).await?);
            readiness = readiness.database(db.clone());
            collector = portal::telemetry::Collector::new(db.clone(), max_connections, true);
            let identity = portal::start_identity(&db, settings).await?;
            let mut options = options(config, demo, identity.authentication());
            options.rate_limiter = rate_limiter(config).await?;
            options.gateway_client = gateway_client;
            options.authorizer = authorizer(config, &db, true, demo).await?;
            options.files = Some(portal::files::FileService {
                store: files,
                db: db.clone(),
                keys: keys.clone(),
            });
            options.keys = Some(keys);
            if demo {
                portal::seed::seed_if_empty(&db)
                    .await
                    .context("seeding demo data")?;
                // The demo's scheduled reports run on their schedules.
                portal_reports::store::adopt_schedules(&db)
                    .await
                    .map_err(|err| anyhow::anyhow!("adopting report schedules: {err:?}"))?;
                match portal::seed::demo_identities(&db)
                    .await
                    .context("reading demo data")?
                {
                    Some(seed) => {
                        print_demo(&seed, true);
                        // The IDE starts out acting as Carol, so queries work at once.
                        options.ide = Some(vec![
                            ("x-portal-tenant-id".into(), seed.tenant_id.to_string()),
                            ("x-portal-user-id".into(), seed.carol_id.to_string()),
                            ("x-portal-roles".into(), "customer_user".into()),
                        ]);
                    }
                    None => tracing::warn!("no demo tenant `acme` in this database"),
                }
            }
            let (app, gateway) = portal::all_in_one_app(&db, &identity.authenticator, &options)?;
            portal::policies::publish_coordinates(&db, &gateway).await?;
            streams = Some(gateway.clone());
            app.merge(portal::well_known_router(db.clone()))
        }
        Some(Role::Gateway) => {
            let secret = config.require_token_secret();
            let key = secret
                .as_ref()
                .ok()
                .map(|secret| InternalTokenKey::new(secret.as_bytes()));
            let verifier = Arc::new(AccessTokenVerifier::new(&config.identity.issuer));
            let db = watch_sessions_when_ready(config, verifier.clone()).await?;
            readiness = readiness.database(db.clone());
            collector = portal::telemetry::Collector::new(db.clone(), max_connections, false);
            let jwks = portal::well_known_router(db.clone());
            let db_for_policies = db.clone();
            let mut authentication = Authentication::tokens(verifier)
                .with_api_keys(Arc::new(portal_identity::api_keys::DbApiKeys::new(db)));
            // Workers act for users who are not present (scheduled reports) with credentials
            // signed by the internal secret.
            if let Some(key) = &key {
                authentication = authentication.with_delegation(key.clone());
            }
            let mut options = options(config, demo, authentication);
            options.rate_limiter = rate_limiter(config).await?;
            // Event-driven subscriptions follow the committed events in the database.
            options.events = Some(portal_kit::events::feed::EventFeed::lazy(
                db_for_policies.clone(),
                portal_kit::events::feed::DEFAULT_POLL,
            ));
            // Downloads of stored files need the data key (their links are signed with it).
            options.files = match config.file_store() {
                Ok(store) => Some(portal::files::FileService {
                    store,
                    db: db_for_policies.clone(),
                    keys: portal_kit::envelope::TenantKeys::local(
                        db_for_policies.clone(),
                        config.data_key()?,
                    ),
                }),
                Err(err) => {
                    tracing::warn!(%err, "not serving file downloads");
                    None
                }
            };
            match supergraph.map(|raw| SupergraphSource::parse(&raw)) {
                Some(source) => {
                    let http = reqwest::Client::new();
                    let sdl = source.read(&http).await.map_err(anyhow::Error::msg)?;
                    let limits = config.limits();
                    let loaded = Supergraph::load(&sdl, &limits)?;
                    options.authorizer =
                        authorizer(config, &db_for_policies, key.is_some(), demo).await?;
                    let overrides = config.gateway.subgraphs.clone();
                    let clients =
                        portal::clients_for_supergraph(&loaded, &overrides, key.as_ref())?;
                    let (app, gateway) = portal::gateway_app_for(loaded, clients, &options);
                    portal::policies::publish_coordinates(&db_for_policies, &gateway).await?;
                    streams = Some(gateway.clone());
                    portal::policies::republish_on_reload(db_for_policies.clone(), gateway.clone());
                    let clients_for: reload::ClientsFor = Arc::new(move |supergraph| {
                        portal::clients_for_supergraph(supergraph, &overrides, key.as_ref())
                            .map_err(|e| e.to_string())
                    });
                    reload::watch(gateway, source, http, Duration::from_secs(1), clients_for);
                    app.merge(jwks)
                }
                None => {
                    let urls = config.subgraph_urls();
                    readiness = readiness.subgraphs(urls.clone());
                    options.authorizer = authorizer(config, &db_for_policies, true, demo).await?;
                    // The portal's own subgraphs: they only answer signed requests.
                    let key = InternalTokenKey::new(secret?.as_bytes());
                    let clients = portal::http_clients(&urls, &key)?;
                    let sdl =
                        portal::compose_remote(&clients, &urls, Duration::from_secs(30)).await?;
                    let (app, gateway) = portal::gateway_app(&sdl, clients, &options)?;
                    portal::policies::publish_coordinates(&db_for_policies, &gateway).await?;
                    streams = Some(gateway.clone());
                    app.merge(jwks)
                }
            }
        }
        Some(Role::Worker) => {
            let db =
                portal::connect_and_migrate(&config.database.url, config.database.max_connections)
                    .await?;
            portal::prepare_keys(&db, &config.data_key()?).await?;
            // Report runs read through the gateway over HTTP, as their owners: that needs
            // the internal secret (without it they fail, saying they could not be produced).
            let gateway = match config.require_token_secret() {
                Ok(secret) => {
                    let key = InternalTokenKey::new(secret.as_bytes());
                    let client = portal::gateway_client::OverHttp::new(&config.gateway_url(), key)?;
                    portal_kit::gateway_client::LateGateway::ready(client)
                }
                Err(err) => {
                    tracing::warn!(%err, "report runs cannot read through the gateway");
                    portal_kit::gateway_client::LateGateway::default()
                }
            };
            let data_key = config.data_key()?;
            let worker = Worker {
                db: &db,
                keys: portal_kit::envelope::TenantKeys::local(db.clone(), data_key.clone()),
                data_key: &data_key,
                files: &config.file_store()?,
                gateway,
                demo,
            };
            runner = Some(start_worker(config, worker).await?);
            readiness = readiness.database(db.clone());
            collector = portal::telemetry::Collector::new(db.clone(), max_connections, true);
            // Only a health endpoint: the work comes from the database.
            axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }))
        }
        Some(role) => {
            let key = InternalTokenKey::new(config.require_token_secret()?.as_bytes());
            let db =
                portal::connect_and_migrate(&config.database.url, config.database.max_connections)
                    .await?;
            portal::prepare_keys(&db, &config.data_key()?).await?;
            readiness = readiness.database(db.clone());
            collector = portal::telemetry::Collector::new(db.clone(), max_connections, false);
            let authenticator = match role {
                Role::Identity => {
                    // Identity writes mail (with links to the public URL); workers send it.
                    // Links in mail go to the gateway, not to this subgraph: in a --demo
                    // process-per-role set-up without a public URL, the gateway's default.
                    let gateway = SocketAddr::from(([127, 0, 0, 1], Role::Gateway.default_port()));
                    let settings = config.identity_settings_for_mail(demo, gateway)?;
                    let authenticator =
                        Arc::new(portal_identity::Authenticator::new(db.clone(), settings));
                    authenticator
                        .keys()
                        .signing_key(&db)
                        .await
                        .map_err(|err| anyhow::anyhow!("preparing the signing key: {err:?}"))?;
                    Some(authenticator)
                }
                _ => None,
            };
            // References to other subgraphs' entities are checked over HTTP, signed.
            let references = portal_kit::references::References::default();
            let peers = portal::http_clients(&config.subgraph_urls(), &key)?;
            subgraphs::register_owners(&references, |name| peers.get(name).cloned());
            let feed = portal_kit::events::feed::EventFeed::lazy(
                db.clone(),
                portal_kit::events::feed::DEFAULT_POLL,
            );
            let files = config.file_store()?;
            // Report definitions are checked against the gateway's supergraph, over HTTP.
            let gateway = portal_kit::gateway_client::LateGateway::ready(
                portal::gateway_client::OverHttp::new(&config.gateway_url(), key.clone())?,
            );
            let shared = subgraphs::Shared {
                references,
                feed,
                files,
                gateway,
                keys: portal_kit::envelope::TenantKeys::local(db.clone(), config.data_key()?),
                connectors: config.connector_endpoints(),
            };
            let subgraph = subgraphs::build(role.name(), &db, authenticator, &shared)
                .context("unknown subgraph")?;
            subgraph.router_until(key, subgraph_closing.subscribe())
        }
    };
    let tls = match (&config.gateway.tls_cert, &config.gateway.tls_key) {
        (Some(cert), Some(key)) => Some(portal::tls::server_config(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("gateway.tls_cert and gateway.tls_key go together"),
    };
    let app = if tls.is_some() || config.gateway.hsts {
        portal::tls::with_hsts(app)
    } else {
        app
    };
    // Every request of every role gets a request id and a trace context, runs in its
    // span, and is counted.
    let app = app
        .merge(readiness.clone().routes())
        .layer(axum::middleware::from_fn(portal_kit::telemetry::observe));
    if let (Some(listen), Some(handle)) = (config.telemetry.metrics_listen, metrics) {
        portal::telemetry::serve_metrics(listen, handle, collector).await?;
    }
    // The job worker stops claiming on shutdown, and finishes (or gives back) what it runs.
    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let jobs = runner.map(|runner| (runner.clone(), runner.spawn_until(jobs_stopped)));
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = match tls {
        Some(tls) => portal::tls::Listener::tls(tcp, tls)?,
        None => portal::tls::Listener::plain(tcp)?,
    };
    let name = role.map_or("portal (all-in-one)", Role::name);
    tracing::info!("{name} listening; GraphQL endpoint: {scheme}://{addr}/graphql");
    let ide_on = role.is_none_or(|r| matches!(r, Role::Gateway)) && (demo || config.gateway.ide);
    if ide_on {
        println!("GraphQL endpoint (and IDE in a browser): {scheme}://{addr}/graphql");
    } else {
        println!("GraphQL endpoint: {scheme}://{addr}/graphql");
    }
    // On Ctrl-C or SIGTERM: answer `/ready` with 503 (for `shutdown_delay_secs`, while
    // balancers notice), then stop accepting, complete every open stream, stop claiming
    // jobs, let requests and jobs in flight finish — and give up on stragglers after the
    // grace period (giving the jobs' leases back for another worker).
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signalled = stopping.clone();
    let websockets = streams.clone();
    let grace = Duration::from_secs(config.telemetry.shutdown_grace_secs);
    let delay = Duration::from_secs(config.telemetry.shutdown_delay_secs);
    // When everything must be done: the signal, plus the delay, plus the grace period.
    let deadline = Arc::new(std::sync::OnceLock::new());
    let deadline_set = deadline.clone();
    let server = axum::serve(
        axum::serve::ListenerExt::tap_io(listener, |_| ()),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = deadline_set.set(tokio::time::Instant::now() + delay + grace);
        tracing::info!(
            delay_secs = delay.as_secs(),
            grace_secs = grace.as_secs(),
            "shutting down"
        );
        readiness.stop();
        stop_jobs.send_replace(true);
        tokio::time::sleep(delay).await;
        if let Some(gateway) = streams {
            gateway.close_streams();
        }
        subgraph_closing.send_replace(true);
        signalled.notify_one();
    });
    let drained = async move {
        server.await.context("serving")?;
        // WebSocket connections outlive the HTTP server's drain (they were upgraded):
        // wait for them to say goodbye (each completes its streams, then closes 1001).
        if let Some(gateway) = websockets {
            while gateway.websockets().count() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        anyhow::Ok(())
    };
    let ends_at = || {
        deadline
            .get()
            .copied()
            .unwrap_or_else(|| tokio::time::Instant::now() + grace)
    };
    let served = tokio::select! {
        served = drained => served,
        () = async {
            stopping.notified().await;
            tokio::time::sleep_until(ends_at()).await;
        } => {
            tracing::warn!("connections still open after the grace period; exiting");
            Ok(())
        }
    };
    if let Some((runner, task)) = jobs {
        // The server is done; the jobs in flight get what is left of the grace period.
        match tokio::time::timeout_at(ends_at(), task).await {
            Ok(_) => tracing::info!("jobs in flight finished"),
            Err(_) => match runner.release_leases().await {
                Ok(released) => {
                    tracing::warn!(
                        released,
                        "jobs still running after the grace period; their leases were given back"
                    )
                }
                Err(err) => {
                    tracing::error!(error = ?err, "giving back job leases failed; they expire on their own")
                }
            },
        }
    }
    tracing::info!("stopped");
    served
}

/// The gateway's rate limiter: shared through Redis when configured (a Redis that does
/// not answer at start is an error: limits that silently stop being shared would let N
/// replicas admit N times the limit), else this process's own.
async fn rate_limiter(
    config: &Config,
) -> anyhow::Result<Option<portal_gateway::rate_limit::Limiter>> {
    use portal_gateway::rate_limit::{Limiter, Redis};
    let Some(limits) = config.gateway.rate_limits.limits() else {
        tracing::warn!("rate limits are off");
        return Ok(None);
    };
    match &config.gateway.rate_limits.redis_url {
        Some(url) => {
            let redis = Redis::connect(url, "portal:ratelimit:")
                .await
                .map_err(anyhow::Error::msg)?;
            tracing::info!(?limits, "rate limits shared through Redis");
            Ok(Some(Limiter::new(limits, Arc::new(redis))))
        }
        None => {
            tracing::info!(?limits, "rate limits per process");
            Ok(Some(Limiter::local(limits)))
        }
    }
}

/// Ctrl-C, or SIGTERM (what process managers send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn compose(config: &Config, out: &std::path::Path) -> anyhow::Result<()> {
    let db = portal::connect_and_migrate("sqlite::memory:", 1).await?;
    // Only the SDLs are needed: a throw-away key seals nothing that is kept.
    let data_key = portal_kit::secret::DataKey::from_secret(
        &portal_kit::secret::random_bytes::<32>()
            .map_err(|err| anyhow::anyhow!("randomness: {err:?}"))?,
    );
    let authenticator = Arc::new(portal_identity::Authenticator::new(
        db.clone(),
        portal_identity::IdentitySettings::new(data_key),
    ));
    let subgraphs = subgraphs::build_all(&db, &authenticator);
    std::fs::create_dir_all(out)?;
    for subgraph in &subgraphs {
        std::fs::write(
            out.join(format!("{}.graphql", subgraph.name)),
            &subgraph.sdl,
        )?;
    }
    let urls: BTreeMap<String, String> = config.subgraph_urls();
    let supergraph = portal::compose_subgraphs(&subgraphs, &urls)?;
    std::fs::write(out.join("supergraph.graphql"), &supergraph)?;
    println!(
        "wrote {} subgraph schemas and supergraph.graphql to {}",
        subgraphs.len(),
        out.display()
    );
    Ok(())
}

async fn policy(
    config: &Config,
    command: PolicyCommand,
    dir: &std::path::Path,
    database: bool,
    supergraph: &std::path::Path,
) -> anyhow::Result<()> {
    let policies = if database {
        let db = portal::connect_and_migrate(&config.database.url, 2).await?;
        portal::policies::load(&db).await?
    } else {
        portal::policies::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
    };
    match command {
        PolicyCommand::Lint => {
            let sdl = std::fs::read_to_string(supergraph)
                .with_context(|| format!("reading {}", supergraph.display()))?;
            let loaded = Supergraph::load(&sdl, &config.limits())?;
            let findings = portal::policies::lint(&policies, loaded.index());
            for finding in &findings {
                println!("{}: {}", finding.severity, finding.message);
            }
            let errors = findings.iter().filter(|f| f.severity == "error").count();
            println!(
                "{} rules, {} role links: {errors} errors, {} warnings",
                policies.rules.len(),
                policies.inheritance.len(),
                findings.len() - errors
            );
            anyhow::ensure!(errors == 0, "the policies have errors");
            Ok(())
        }
        PolicyCommand::Test { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let failures =
                portal::policies::check_assertions(&policies, &text).map_err(anyhow::Error::msg)?;
            for failure in &failures {
                println!("FAILED {failure}");
            }
            anyhow::ensure!(failures.is_empty(), "{} assertions failed", failures.len());
            println!("all assertions hold");
            Ok(())
        }
        PolicyCommand::Explain {
            coordinate,
            roles,
            tenant,
        } => {
            let roles = portal_gateway::authz::with_implicit_roles(&roles, true);
            let action = if coordinate.starts_with("Mutation.") {
                portal_gateway::authz::Action::Write
            } else {
                portal_gateway::authz::Action::Read
            };
            let why = policies.explain(&roles, &tenant, &coordinate, action);
            println!(
                "{} {coordinate} ({}): {}",
                if why.allowed { "ALLOWED" } else { "DENIED" },
                action.as_str(),
                why.reason
            );
            println!("roles held: {}", why.roles.join(", "));
            for (role, from) in &why.inherited {
                println!("  {role} inherited from {from}");
            }
            for rule in &why.matched {
                println!(
                    "  matched: p, {}, {}, {}, {}, {}",
                    rule.role,
                    rule.domain,
                    rule.object,
                    rule.action.as_str(),
                    rule.effect.as_str()
                );
            }
            Ok(())
        }
    }
}

async fn audit(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            tenant,
            pack,
            keys,
            unchained_secs,
            json,
        } => {
            let reports = match pack {
                Some(dir) => {
                    if keys.is_none() {
                        eprintln!(
                            "note: checking signatures with the pack's own keys.json; pass \
                             --keys with the portal's published evidence keys to know who \
                             signed it"
                        );
                    }
                    vec![portal::audit::verify_pack(&dir, keys.as_deref())?]
                }
                None => {
                    let db = portal::connect_and_migrate(&config.database.url, 2).await?;
                    let tenant = match tenant {
                        Some(tenant) => Some(portal::find_tenant(&db, &tenant).await?.id),
                        None => None,
                    };
                    let bound = chrono::Duration::seconds(
                        i64::try_from(unchained_secs).unwrap_or(i64::MAX),
                    );
                    portal::audit::verify_database(&db, tenant, bound).await?
                }
            };
            for report in &reports {
                if json {
                    println!("{}", serde_json::to_string(report)?);
                } else {
                    print!("{}", portal_kit::audit::pack::describe(report));
                }
            }
            if reports.iter().any(|r| !r.ok()) {
                std::process::exit(1);
            }
            Ok(())
        }
        AuditCommand::Export { tenant, out } => {
            let db = portal::connect_and_migrate(&config.database.url, 2).await?;
            let data_key = config.data_key()?;
            portal::prepare_keys(&db, &data_key).await?;
            let tenant = portal::find_tenant(&db, &tenant).await?;
            let signer = portal_kit::evidence::EvidenceSigner::new(db.clone(), data_key);
            let files = portal_kit::audit::pack::build(&db, &signer, Some(tenant.id))
                .await
                .map_err(|err| anyhow::anyhow!("building the evidence pack: {err:?}"))?;
            portal::audit::write_pack(&out, &files)?;
            println!(
                "wrote the evidence pack of {} to {}",
                tenant.slug,
                out.display()
            );
            Ok(())
        }
    }
}

fn verify_report(file: &Path, manifest: Option<PathBuf>, keys: &Path) -> anyhow::Result<()> {
    let manifest = manifest.unwrap_or_else(|| {
        let mut name = file.as_os_str().to_owned();
        name.push(".manifest.json");
        PathBuf::from(name)
    });
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    match portal::verify_report::verify(&read(file)?, &read(&manifest)?, &read(keys)?) {
        Ok(verified) => {
            println!(
                "OK {}: report \"{}\" (definition version {}), {} rows, generated {}, signed by evidence key {}",
                file.display(),
                verified.report.0,
                verified.report.1,
                verified.rows,
                verified.generated_at,
                verified.key_id
            );
            Ok(())
        }
        Err(err) => {
            eprintln!("NOT VERIFIED {}: {err}", file.display());
            std::process::exit(1);
        }
    }
}

/// What a job worker works with.
struct Worker<'a> {
    db: &'a sea_orm::DatabaseConnection,
    data_key: &'a portal_kit::secret::DataKey,
    files: &'a portal_kit::storage::FileStore,
    /// How report runs read through the gateway as their owners.
    gateway: portal_kit::gateway_client::LateGateway,
    /// The tenants' data keys (messages' re-seal and attachment scans, webhook secrets).
    keys: portal_kit::envelope::TenantKeys,
    /// Whether this is a demo (`--demo`: webhooks may call `http` URLs).
    demo: bool,
}

/// Runs a job worker in this process (all-in-one and the worker role): mail delivery
/// (every outbox row that still lacks its delivery job gets one), large exports, report
/// runs, the removal of expired files, and webhook dispatch and delivery.
/// Prepares this process's job worker (its handlers, schedules, the webhook dispatcher and
/// the audit sequencer, which start now); the caller starts the worker itself, to stop it.
async fn start_worker(
    config: &Config,
    worker: Worker<'_>,
) -> anyhow::Result<Arc<portal_kit::jobs::runner::Runner>> {
    let Worker {
        db,
        data_key,
        files,
        gateway,
        keys,
        demo,
    } = worker;
    let reach = portal_integrations::outbound::Reach::with(
        config.webhooks.allow_networks.clone(),
        config.webhooks.allow_http.unwrap_or(demo),
    );
    let outbound = portal_integrations::outbound::Outbound::new(
        reach,
        Duration::from_secs(config.webhooks.timeout_secs.max(1)),
    )
    .map_err(|err| anyhow::anyhow!("the webhook client: {err}"))?;
    let webhook_keys = keys.clone();
    let sync_keys = keys.clone();
    let sync_gateway: Arc<dyn portal_kit::gateway_client::GatewayClient> =
        Arc::new(gateway.clone());
    let mailer = config.mailer().map_err(anyhow::Error::msg)?;
    tracing::info!(?mailer, "running jobs; delivering email");
    let messages = portal_messages::store::Store {
        db: db.clone(),
        keys: keys.clone(),
        files: files.clone(),
    };
    let scanner = config.messages.scanner();
    // Notification emails find their recipients' addresses and time zones through the
    // gateway, as the recipients.
    let directory = portal_messages::jobs::notifications::GatewayDirectory::new(
        portal_identity::principals::FromIdentity::new(db.clone()),
        Arc::new(gateway.clone()),
    );
    if config.messages.clamd.is_none() {
        tracing::warn!("attachments are not scanned for malware: set messages.clamd");
    }
    portal_kit::mail::adopt_pending(db)
        .await
        .map_err(|err| anyhow::anyhow!("adopting queued mail: {err:?}"))?;
    let runner = portal_kit::jobs::runner::Runner::new(db.clone(), portal_kit::clock::system())
        .lease(chrono::Duration::seconds(config.jobs.lease_secs as i64))
        .poll(Duration::from_millis(config.jobs.poll_ms))
        .batch(config.jobs.batch)
        .handle(
            portal_kit::mail::DELIVER_KIND,
            Arc::new(
                portal_kit::mail::Delivery::new(db.clone(), data_key.clone(), mailer)
                    .with_files(files.clone()),
            ),
        )
        .handle(
            portal_accounts::jobs::ExportJob::KIND,
            portal_accounts::jobs::ExportJob::new(db.clone(), files.clone()),
        )
        .handle(
            portal_reports::jobs::ScheduledReport::KIND,
            portal_reports::jobs::ScheduledReport::new(db.clone()),
        )
        .handle(
            portal_reports::jobs::RunReport::KIND,
            portal_reports::jobs::RunReport::new(
                db.clone(),
                Arc::new(gateway),
                portal_identity::principals::FromIdentity::new(db.clone()),
                (
                    files.clone(),
                    portal_kit::evidence::EvidenceSigner::new(db.clone(), data_key.clone()),
                    data_key.clone(),
                ),
            ),
        )
        .handle(
            portal_kit::storage::PURGE_KIND,
            portal_kit::storage::PurgeExpired::new(db.clone(), files.clone()),
        )
        .handle(
            portal::privacy::AccessRequestJob::KIND,
            portal::privacy::AccessRequestJob::new(
                db.clone(),
                (files.clone(), keys.clone()),
                data_key.clone(),
                portal::privacy_domains(db, &keys, files),
            ),
        )
        .handle(
            portal::privacy::ErasureJob::KIND,
            portal::privacy::ErasureJob::new(
                db.clone(),
                data_key.clone(),
                portal::privacy_domains(db, &keys, files),
            ),
        )
        .handle(
            portal_kit::retention::SWEEP_KIND,
            portal_kit::retention::SweepJob::new(portal::retention_engine(db, &keys, files)),
        )
        .handle(
            portal::offboarding::OffboardingJob::KIND,
            portal::offboarding::OffboardingJob::new(
                db.clone(),
                (files.clone(), keys.clone()),
                portal_kit::evidence::EvidenceSigner::new(db.clone(), data_key.clone()),
                portal::privacy_domains(db, &keys, files),
            ),
        )
        .handle(
            portal_identity::compliance_reports::ComplianceReportJob::KIND,
            portal_identity::compliance_reports::ComplianceReportJob::new(
                db.clone(),
                portal_kit::evidence::EvidenceSigner::new(db.clone(), data_key.clone()),
                files.clone(),
            ),
        )
        .handle(
            portal_identity::evidence_export::EvidenceExportJob::KIND,
            portal_identity::evidence_export::EvidenceExportJob::new(
                db.clone(),
                portal_kit::evidence::EvidenceSigner::new(db.clone(), data_key.clone()),
                files.clone(),
            ),
        )
        .handle(
            portal_messages::jobs::Reseal::KIND,
            portal_messages::jobs::Reseal::new(messages.clone()),
        )
        .handle(
            portal_messages::jobs::ScanAttachment::KIND,
            portal_messages::jobs::ScanAttachment::new(messages.clone(), scanner),
        )
        .handle(
            portal_messages::jobs::notifications::FanOut::KIND,
            portal_messages::jobs::notifications::FanOut::new(
                messages.clone(),
                directory.clone(),
                portal_kit::clock::system(),
            ),
        )
        .handle(
            portal_messages::jobs::notifications::NotificationEmail::KIND,
            portal_messages::jobs::notifications::NotificationEmail::new(
                messages.clone(),
                directory,
                data_key.clone(),
                portal_kit::clock::system(),
            ),
        )
        .handle(
            portal_messages::jobs::retention::RetentionSweep::KIND,
            portal_messages::jobs::retention::RetentionSweep::new(
                messages,
                portal_kit::clock::system(),
            ),
        )
        .handle(
            portal_integrations::jobs::Deliver::KIND,
            portal_integrations::jobs::Deliver::new(
                db.clone(),
                webhook_keys,
                outbound,
                portal_kit::clock::system(),
                chrono::Duration::days(config.webhooks.disable_after_days.max(1) as i64),
            ),
        )
        .handle(
            portal::webhooks::DisabledNotice::KIND,
            portal::webhooks::DisabledNotice::new(db.clone(), data_key.clone()),
        )
        // Sync runs write through the gateway as each connector's service account.
        .handle(
            portal_integrations::sync::SyncPages::KIND,
            portal_integrations::sync::SyncPages::new(
                db.clone(),
                sync_keys,
                sync_gateway,
                Arc::new(portal_identity::api_keys::DbApiKeys::new(db.clone())),
                config.connector_endpoints(),
                portal_integrations::sync::remote_for_jobs()
                    .map_err(|err| anyhow::anyhow!("the connectors' client: {err}"))?,
            ),
        )
        .handle(
            portal_integrations::sync::SyncDue::KIND,
            portal_integrations::sync::SyncDue::new(db.clone()),
        )
        .handle(
            portal::webhooks::IntegrationFailingNotice::KIND,
            portal::webhooks::IntegrationFailingNotice::new(db.clone(), data_key.clone()),
        );
    portal_reports::store::adopt_schedules(db)
        .await
        .map_err(|err| anyhow::anyhow!("adopting report schedules: {err:?}"))?;
    portal_kit::storage::schedule_purge(db)
        .await
        .map_err(|err| anyhow::anyhow!("scheduling the purge of expired files: {err:?}"))?;
    portal_messages::jobs::schedule_sweep(db)
        .await
        .map_err(|err| anyhow::anyhow!("scheduling the re-seal of messages: {err:?}"))?;
    portal_messages::jobs::retention::unschedule(db)
        .await
        .map_err(|err| anyhow::anyhow!("unscheduling the message retention sweep: {err:?}"))?;
    portal_kit::retention::schedule_daily(db)
        .await
        .map_err(|err| anyhow::anyhow!("scheduling the retention sweep: {err:?}"))?;
    portal_integrations::sync::SyncDue::schedule(db)
        .await
        .map_err(|err| anyhow::anyhow!("scheduling integration syncs: {err:?}"))?;
    portal_integrations::jobs::Dispatcher::spawn(
        db.clone(),
        portal::webhooks::PolicyOwners::new(db.clone()),
        Duration::from_millis(config.jobs.poll_ms),
    );
    // The audit log's sequencer: chains committed events, signs checkpoints.
    portal_kit::audit::chain::spawn(
        db.clone(),
        portal_kit::evidence::EvidenceSigner::new(db.clone(), data_key.clone()),
        Duration::from_millis(config.jobs.poll_ms),
        config.audit.checkpoints(),
    );
    Ok(Arc::new(runner))
}

/// The gateway's database connection, with the session feed (keys and revocations that
/// verify access tokens) running. An embedded
/// (SQLite) database is the gateway's own to migrate; a server database is migrated by
/// the subgraphs, which may still be starting: wait a while for them.
async fn watch_sessions_when_ready(
    config: &Config,
    verifier: Arc<AccessTokenVerifier>,
) -> anyhow::Result<sea_orm::DatabaseConnection> {
    // Sessions, API keys, policies and the event feed share it; on PostgreSQL each
    // `LISTEN` (revocations, events) holds a connection of its own.
    let connections = config.database.max_connections.clamp(4, 8);
    let db = if portal::config::sqlite_path(&config.database.url).is_some() {
        portal::connect_and_migrate(&config.database.url, connections).await?
    } else {
        portal_kit::db::connect(&config.database.url, connections)
            .await
            .context("connecting to the database")?
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match portal::watch_sessions(&db, verifier.clone()).await {
            // The task runs for the life of the process.
            Ok(_task) => return Ok(db),
            Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Prints who the demo data lets you act as. `headers`: whether this process trusts the
/// development identity headers (`serve --demo`); otherwise only signing in works.
fn print_demo(seed: &portal::seed::DemoSeed, headers: bool) {
    let users = [
        (
            "acme",
            seed.tenant_id,
            "alice@acme.example",
            seed.alice_id,
            "tenant_admin",
        ),
        (
            "acme",
            seed.tenant_id,
            "bob@acme.example",
            seed.bob_id,
            "billing_admin",
        ),
        (
            "acme",
            seed.tenant_id,
            "carol@acme.example",
            seed.carol_id,
            "customer_user",
        ),
        (
            "globex",
            seed.other_tenant_id,
            "gina@globex.example",
            seed.other_user_id,
            "tenant_admin",
        ),
    ];
    println!(
        "Demo data: two tenants, acme ({}) and globex ({}).",
        seed.tenant_id, seed.other_tenant_id
    );
    println!(
        "Sign in (mutation signIn, see README) with the password \"{}\" as:",
        portal::seed::DEMO_PASSWORD
    );
    for (tenant, _, email, _, role) in users {
        println!("  tenant {tenant:<7} {email:<22} ({role})");
    }
    if headers {
        println!("or, in this --demo process, act as a user by sending these three headers:");
    } else {
        println!(
            "or act as a user by sending these three headers to a server started with --demo \
             (one without --demo ignores them):"
        );
    }
    for (_, tenant_id, email, user_id, role) in users {
        println!(
            "  {email:<22} x-portal-tenant-id: {tenant_id}  x-portal-user-id: {user_id}  x-portal-roles: {role}"
        );
    }
}
