//! Test harness for Portal's end-to-end and subgraph tests.
//!
//! Every test gets its own fresh database: a SQLite file by default, or — when
//! `PORTAL_TEST_DATABASE_URL` points at a PostgreSQL server — a database cloned from a
//! template that is migrated once per schema version. Apps are served on real sockets
//! (`127.0.0.1:0`), and gateway ↔ subgraph traffic in the distributed setup is real HTTP.

pub mod fake_hubspot;
pub mod fake_stripe;
pub mod oidc_provider;
pub mod streams;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

use portal::seed::DemoSeed;
use portal::{GatewayOptions, subgraphs};
use portal_gateway::auth::{DEV_TENANT_HEADER, DEV_USER_HEADER};
use portal_gateway::authz::Mode as RbacMode;
use portal_gateway::gateway::Limits;
use portal_gateway::subgraph::SubgraphSettings;
use portal_identity::{Authenticator, IdentitySettings};
use portal_integrations::connectors::Endpoints;
use portal_kit::internal_token::InternalTokenKey;
use portal_kit::mail::{Mailer, Transport};
use portal_kit::secret::DataKey;

/// Environment variable naming a PostgreSQL server for the tests (admin database URL).
pub const POSTGRES_ENV: &str = "PORTAL_TEST_DATABASE_URL";

/// A fresh, migrated database for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// Creates a fresh database (PostgreSQL if configured, else a SQLite file) with every
    /// migration applied.
    pub async fn new() -> anyhow::Result<Self> {
        match std::env::var(POSTGRES_ENV) {
            Ok(admin_url) if !admin_url.is_empty() => Self::postgres(admin_url).await,
            _ => Self::sqlite().await,
        }
    }

    async fn sqlite() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join("portal-tests");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.db", Uuid::now_v7()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = portal::connect_and_migrate(&url, 1).await?;
        portal::prepare_keys(&db, &identity_settings().data_key).await?;
        db.close().await?;
        Ok(Self {
            url,
            cleanup: Cleanup::SqliteFile(path),
        })
    }

    async fn postgres(admin_url: String) -> anyhow::Result<Self> {
        let template = template_name();
        let admin = Database::connect(&admin_url)
            .await
            .context("connecting to PostgreSQL")?;
        // Serialize template creation across concurrently running tests and processes.
        admin
            .execute_unprepared("SELECT pg_advisory_lock(727274)")
            .await?;
        let exists = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT 1 FROM pg_database WHERE datname = '{template}'"),
            ))
            .await?
            .is_some();
        let created = if exists {
            Ok(())
        } else {
            create_template(&admin, &admin_url, &template).await
        };
        admin
            .execute_unprepared("SELECT pg_advisory_unlock(727274)")
            .await?;
        created?;
        let name = format!("portal_test_{}", Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .context("cloning the template database")?;
        admin.close().await?;
        Ok(Self {
            url: with_database(&admin_url, &name),
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// Opens a connection pool to this database.
    pub async fn connect(&self) -> anyhow::Result<DatabaseConnection> {
        Ok(portal_kit::db::connect(&self.url, 8).await?)
    }

    /// Drops the database (best effort; CI also sweeps leftovers).
    pub async fn cleanup(self) {
        match self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            }
        }
    }
}

/// The template is named after the migration list, so a new migration gets a new template.
fn template_name() -> String {
    use sea_orm_migration::MigratorTrait as _;
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for migration in portal_migrations::Migrator::migrations() {
        migration.name().hash(&mut hasher);
    }
    format!("portal_template_{:x}", hasher.finish())
}

async fn create_template(
    admin: &DatabaseConnection,
    admin_url: &str,
    template: &str,
) -> anyhow::Result<()> {
    let building = format!("{template}_building");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {building}"))
        .await?;
    let db = portal::connect_and_migrate(&with_database(admin_url, &building), 1).await?;
    portal::prepare_keys(&db, &identity_settings().data_key).await?;
    db.close().await?;
    admin
        .execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {template}"))
        .await?;
    Ok(())
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |j| j + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Counts SQL statements executed through a connection.
#[derive(Clone, Default)]
pub struct StatementCounter(Arc<AtomicUsize>);

impl StatementCounter {
    /// Statements so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Tables only the portal's background pollers read on their own schedule (job runner,
/// schedules, event feed, session revocations, policy revisions): their statements land
/// in whatever a test is timing, so the counter leaves them out.
const POLLED_TABLES: &[&str] = &[
    "jobs",
    "job_schedules",
    "domain_events",
    "sessions",
    "policy_revisions",
];

/// Opens `db` with a statement counter attached (statements of background pollers, see
/// [`POLLED_TABLES`], are not counted).
pub async fn connect_counting(
    db: &TestDb,
) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    let mut conn = db.connect().await?;
    let counter = StatementCounter::default();
    let inner = counter.0.clone();
    conn.set_metric_callback(move |info| {
        let sql = &info.statement.sql;
        if !POLLED_TABLES.iter().any(|table| sql.contains(table)) {
            inner.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok((conn, counter))
}

/// A running gateway (and, in distributed mode, subgraph servers) for one test.
pub struct TestPortal {
    /// The gateway's GraphQL endpoint.
    pub endpoint: String,
    /// The demo data.
    pub seed: DemoSeed,
    /// Subgraph endpoints (distributed mode only).
    pub subgraph_endpoints: BTreeMap<String, String>,
    /// The database.
    pub db: DatabaseConnection,
    /// The gateway serving `endpoint`.
    pub gateway: Option<Arc<portal_gateway::gateway::Gateway>>,
    /// Where the portal's outgoing email is written (one `.eml` file per message).
    pub mail_dir: std::path::PathBuf,
    /// Where stored files (exports) are kept.
    pub files: portal_kit::storage::FileStore,
    /// The directory behind `files`.
    pub files_dir: std::path::PathBuf,
    /// The tenants' data keys the subgraphs seal with.
    pub keys: portal_kit::envelope::TenantKeys,
    /// How platform components (report runs, notifications) query through this portal's
    /// gateway as a principal.
    pub gateway_client: portal_kit::gateway_client::LateGateway,
    http: reqwest::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    test_db: Option<TestDb>,
}

/// Which deployment mode to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Gateway + subgraphs in one process, in-process transport.
    AllInOne,
    /// One server per role on its own socket; the gateway reaches subgraphs over HTTP.
    Distributed,
}

/// A test-only internal token secret.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret!";

/// Identity settings for tests: defaults with a fixed test data key.
/// The text of a PDF as `pdftotext -layout` reads it, or `None` where poppler-utils is not
/// installed and not required (CI sets `PORTAL_TEST_PDF_REQUIRED`, and installs it).
pub fn pdf_text(pdf: &[u8]) -> anyhow::Result<Option<String>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("read.pdf");
    std::fs::write(&path, pdf)?;
    match std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
    {
        Ok(out) => {
            anyhow::ensure!(
                out.status.success(),
                "pdftotext: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(Some(String::from_utf8(out.stdout)?))
        }
        Err(err) if std::env::var_os("PORTAL_TEST_PDF_REQUIRED").is_none() => {
            eprintln!("skipping a PDF read-back: pdftotext is not installed ({err})");
            Ok(None)
        }
        Err(err) => Err(anyhow::anyhow!(
            "pdftotext (poppler-utils) is required: {err}"
        )),
    }
}

pub fn identity_settings() -> IdentitySettings {
    IdentitySettings::new(DataKey::from_secret(TEST_SECRET.as_bytes()))
}

/// An event feed over `db` for subgraph schemas built by hand (polls every 50 ms once
/// something subscribes).
pub fn feed(db: &DatabaseConnection) -> Arc<portal_kit::events::feed::EventFeed> {
    portal_kit::events::feed::EventFeed::lazy(db.clone(), std::time::Duration::from_millis(50))
}

/// The tenants' data keys over `db`, wrapped with the test data key (as the portal under
/// test wraps them).
pub fn tenant_keys(db: &DatabaseConnection) -> portal_kit::envelope::TenantKeys {
    portal_kit::envelope::TenantKeys::local(db.clone(), identity_settings().data_key)
}

/// A job of `kind` with `payload` for `tenant`, as a worker would hand it to its handler
/// (first attempt, no principal).
pub fn job(
    kind: &str,
    payload: Value,
    tenant: Option<Uuid>,
) -> portal_kit::jobs::runner::JobContext {
    portal_kit::jobs::runner::JobContext {
        id: Uuid::now_v7(),
        kind: kind.to_owned(),
        payload,
        tenant_id: tenant,
        principal: None,
        attempt: 1,
    }
}

/// Identity's schema over `db` (files in memory; the full retention engine), for tests
/// that execute against it directly.
pub fn identity_schema(db: &DatabaseConnection) -> portal_identity::IdentitySchema {
    let files = portal_kit::storage::FileStore::in_memory(&identity_settings().data_key);
    let keys = tenant_keys(db);
    portal_identity::build_schema(
        db.clone(),
        authenticator(db),
        feed(db),
        (files.clone(), portal::retention_engine(db, &keys, &files)),
    )
}

/// A sign-in service over `db` with [`identity_settings`].
pub fn authenticator(db: &DatabaseConnection) -> Arc<Authenticator> {
    Arc::new(Authenticator::new(db.clone(), identity_settings()))
}

impl TestPortal {
    /// Starts the portal in `mode` over a fresh, seeded database.
    pub async fn start(mode: Mode) -> anyhow::Result<Self> {
        let test_db = TestDb::new().await?;
        let db = test_db.connect().await?;
        let seed = portal::seed::seed(&db).await?;
        let mut portal = Self::start_on(mode, db, seed).await?;
        portal.test_db = Some(test_db);
        Ok(portal)
    }

    /// Starts the portal in `mode` with identity `settings` over a fresh, seeded database.
    pub async fn start_with(mode: Mode, settings: IdentitySettings) -> anyhow::Result<Self> {
        let test_db = TestDb::new().await?;
        let db = test_db.connect().await?;
        let seed = portal::seed::seed(&db).await?;
        let mut portal = Self::start_on_with(mode, db, seed, settings).await?;
        portal.test_db = Some(test_db);
        Ok(portal)
    }

    /// Starts the portal in `mode` over `db`, already seeded with `seed`.
    pub async fn start_on(
        mode: Mode,
        db: DatabaseConnection,
        seed: DemoSeed,
    ) -> anyhow::Result<Self> {
        Self::start_on_with(mode, db, seed, identity_settings()).await
    }

    /// Starts the portal in `mode` over a fresh, seeded database with field-level
    /// authorization on (seed policies) in `rbac` mode.
    pub async fn start_rbac(mode: Mode, rbac: RbacMode) -> anyhow::Result<Self> {
        Self::start_rbac_with(mode, rbac, false).await
    }

    /// Starts the portal as production runs it: the seed policies enforced (`filter`) —
    /// the gateway alone decides who may call an operation.
    pub async fn start_enforcing(mode: Mode) -> anyhow::Result<Self> {
        Self::start_enforcing_with(mode, identity_settings()).await
    }

    /// Like [`TestPortal::start_enforcing`], with identity `settings`.
    pub async fn start_enforcing_with(
        mode: Mode,
        settings: IdentitySettings,
    ) -> anyhow::Result<Self> {
        Self::start_enforcing_on(mode, settings, Endpoints::default()).await
    }

    /// Like [`TestPortal::start_enforcing`], with integrations' connectors calling
    /// `connectors` (fake remotes).
    pub async fn start_enforcing_with_connectors(
        mode: Mode,
        connectors: Endpoints,
    ) -> anyhow::Result<Self> {
        Self::start_enforcing_on(mode, identity_settings(), connectors).await
    }

    async fn start_enforcing_on(
        mode: Mode,
        settings: IdentitySettings,
        connectors: Endpoints,
    ) -> anyhow::Result<Self> {
        let test_db = TestDb::new().await?;
        let db = test_db.connect().await?;
        let seed = portal::seed::seed(&db).await?;
        let (authorizer, watcher) = portal::policies::start(&db, RbacMode::Filter, false).await?;
        let mut portal = Self::start_inner_with(
            mode,
            db.clone(),
            seed,
            settings,
            Some(authorizer),
            connectors,
        )
        .await?;
        let gateway = portal.gateway.clone().context("no gateway")?;
        portal::policies::publish_coordinates(&db, &gateway).await?;
        portal.tasks.push(watcher);
        portal.test_db = Some(test_db);
        Ok(portal)
    }

    /// Like [`TestPortal::start_rbac`], also authorizing introspection when
    /// `check_introspection`.
    pub async fn start_rbac_with(
        mode: Mode,
        rbac: RbacMode,
        check_introspection: bool,
    ) -> anyhow::Result<Self> {
        let test_db = TestDb::new().await?;
        let db = test_db.connect().await?;
        let seed = portal::seed::seed(&db).await?;
        let (authorizer, watcher) = portal::policies::start(&db, rbac, check_introspection).await?;
        let mut portal = Self::start_inner(
            mode,
            db.clone(),
            seed,
            identity_settings(),
            Some(authorizer),
        )
        .await?;
        let gateway = portal.gateway.clone().context("no gateway")?;
        portal::policies::publish_coordinates(&db, &gateway).await?;
        portal.tasks.push(watcher);
        portal.test_db = Some(test_db);
        Ok(portal)
    }

    /// Starts the portal in `mode` with identity `settings` over `db`, seeded with `seed`.
    /// The gateway accepts access tokens and, for the older tests, development headers;
    /// field-level authorization is off (see [`TestPortal::start_rbac`]).
    pub async fn start_on_with(
        mode: Mode,
        db: DatabaseConnection,
        seed: DemoSeed,
        settings: IdentitySettings,
    ) -> anyhow::Result<Self> {
        Self::start_inner(mode, db, seed, settings, None).await
    }

    async fn start_inner(
        mode: Mode,
        db: DatabaseConnection,
        seed: DemoSeed,
        settings: IdentitySettings,
        authorizer: Option<Arc<portal_gateway::authz::Authorizer>>,
    ) -> anyhow::Result<Self> {
        Self::start_inner_with(mode, db, seed, settings, authorizer, Endpoints::default()).await
    }

    async fn start_inner_with(
        mode: Mode,
        db: DatabaseConnection,
        seed: DemoSeed,
        settings: IdentitySettings,
        authorizer: Option<Arc<portal_gateway::authz::Authorizer>>,
        connectors: Endpoints,
    ) -> anyhow::Result<Self> {
        let mail_dir = std::env::temp_dir().join(format!("portal-mail-{}", Uuid::now_v7()));
        let mailer = Mailer::new(
            "Portal <no-reply@portal.test>",
            Transport::Directory(mail_dir.clone()),
        )
        .map_err(anyhow::Error::msg)?;
        let files_dir = std::env::temp_dir().join(format!("portal-files-{}", Uuid::now_v7()));
        let files = portal_kit::storage::FileStore::local(&files_dir, &settings.data_key)
            .map_err(|err| anyhow::anyhow!("file store: {err:?}"))?;
        // The tenants' data keys the subgraphs seal messages with (the tests destroy and
        // rotate them through this instance, whose cache then forgets at once).
        let keys = portal_kit::envelope::TenantKeys::local(db.clone(), settings.data_key.clone());
        // Report runs and checks read through this portal's gateway, set once it is up (in
        // process for all-in-one, over HTTP with delegated credentials when distributed).
        let gateway_client = portal_kit::gateway_client::LateGateway::default();
        // A job worker as all-in-one runs one: mail delivery, large exports, report runs,
        // file expiry.
        let delivery = Arc::new(
            portal_kit::jobs::runner::Runner::new(db.clone(), portal_kit::clock::system())
                .handle(
                    portal_kit::mail::DELIVER_KIND,
                    Arc::new(
                        portal_kit::mail::Delivery::new(
                            db.clone(),
                            settings.data_key.clone(),
                            mailer,
                        )
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
                        Arc::new(gateway_client.clone()),
                        portal_identity::principals::FromIdentity::new(db.clone()),
                        (
                            files.clone(),
                            portal_kit::evidence::EvidenceSigner::new(
                                db.clone(),
                                settings.data_key.clone(),
                            ),
                            settings.data_key.clone(),
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
                        settings.data_key.clone(),
                        portal::privacy_domains(&db, &keys, &files),
                    ),
                )
                .handle(
                    portal::privacy::ErasureJob::KIND,
                    portal::privacy::ErasureJob::new(
                        db.clone(),
                        settings.data_key.clone(),
                        portal::privacy_domains(&db, &keys, &files),
                    ),
                )
                .handle(
                    portal_kit::retention::SWEEP_KIND,
                    portal_kit::retention::SweepJob::new(portal::retention_engine(
                        &db, &keys, &files,
                    )),
                )
                .handle(
                    portal::offboarding::OffboardingJob::KIND,
                    portal::offboarding::OffboardingJob::new(
                        db.clone(),
                        (files.clone(), keys.clone()),
                        portal_kit::evidence::EvidenceSigner::new(
                            db.clone(),
                            settings.data_key.clone(),
                        ),
                        portal::privacy_domains(&db, &keys, &files),
                    ),
                )
                .handle(
                    portal_identity::compliance_reports::ComplianceReportJob::KIND,
                    portal_identity::compliance_reports::ComplianceReportJob::new(
                        db.clone(),
                        portal_kit::evidence::EvidenceSigner::new(
                            db.clone(),
                            settings.data_key.clone(),
                        ),
                        files.clone(),
                    ),
                )
                .handle(
                    portal_identity::evidence_export::EvidenceExportJob::KIND,
                    portal_identity::evidence_export::EvidenceExportJob::new(
                        db.clone(),
                        portal_kit::evidence::EvidenceSigner::new(
                            db.clone(),
                            settings.data_key.clone(),
                        ),
                        files.clone(),
                    ),
                )
                .handle(
                    portal_messages::jobs::Reseal::KIND,
                    portal_messages::jobs::Reseal::new(portal_messages::store::Store {
                        db: db.clone(),
                        keys: keys.clone(),
                        files: files.clone(),
                    }),
                )
                // Notification emails are left queued: tests run them by hand, on a clock
                // they move (quiet hours, digests).
                .handle(
                    portal_messages::jobs::notifications::FanOut::KIND,
                    portal_messages::jobs::notifications::FanOut::new(
                        portal_messages::store::Store {
                            db: db.clone(),
                            keys: keys.clone(),
                            files: files.clone(),
                        },
                        portal_messages::jobs::notifications::GatewayDirectory::new(
                            portal_identity::principals::FromIdentity::new(db.clone()),
                            Arc::new(gateway_client.clone()),
                        ),
                        portal_kit::clock::system(),
                    ),
                )
                .poll(Duration::from_millis(100)),
        )
        .spawn();
        let identity = portal::start_identity(&db, settings).await?;
        let options = GatewayOptions {
            rate_limiter: None,
            authentication: identity
                .authentication()
                .with_dev_headers()
                .with_delegation(InternalTokenKey::new(TEST_SECRET.as_bytes())),
            // Open subscriptions re-check credentials and policies every second here.
            limits: Limits {
                subscription_recheck: Duration::from_secs(1),
                ..Limits::default()
            },
            subgraphs: SubgraphSettings::default(),
            ide: None,
            authorizer: authorizer.clone(),
            trusted_proxies: Vec::new(),
            override_labels: Default::default(),
            cors_origins: Vec::new(),
            // The gateway follows event-driven subscriptions on the database's events (in
            // both modes; all-in-one shares it with the subgraphs).
            events: Some(feed(&db)),
            files: Some(portal::files::FileService {
                store: files.clone(),
                db: db.clone(),
                keys: keys.clone(),
            }),
            gateway_client: gateway_client.clone(),
            keys: Some(keys.clone()),
            connectors: connectors.clone(),
        };
        let mut tasks = vec![identity.feed, delivery];
        let mut subgraph_endpoints = BTreeMap::new();
        let (router, gateway) = match mode {
            Mode::AllInOne => portal::all_in_one_app(&db, &identity.authenticator, &options)?,
            Mode::Distributed => {
                let key = InternalTokenKey::new(TEST_SECRET.as_bytes());
                let subgraph_feed = feed(&db);
                let subgraphs = subgraphs::build_all_with(
                    &db,
                    &identity.authenticator,
                    &subgraph_feed,
                    &files,
                    &gateway_client,
                    &keys,
                    &connectors,
                );
                for subgraph in subgraphs {
                    let (addr, task) = serve(subgraph.router(key.clone())).await?;
                    tasks.push(task);
                    subgraph_endpoints
                        .insert(subgraph.name.to_owned(), format!("http://{addr}/graphql"));
                }
                let clients = portal::http_clients(&subgraph_endpoints, &key)?;
                let sdl =
                    portal::compose_remote(&clients, &subgraph_endpoints, Duration::from_secs(10))
                        .await?;
                portal::gateway_app(&sdl, clients, &options)?
            }
        };
        let (addr, task) = serve(router.merge(portal::well_known_router(db.clone()))).await?;
        tasks.push(task);
        if mode == Mode::Distributed {
            let key = InternalTokenKey::new(TEST_SECRET.as_bytes());
            let endpoint = format!("http://{addr}/graphql");
            gateway_client.set(portal::gateway_client::OverHttp::new(&endpoint, key)?);
        }
        Ok(Self {
            endpoint: format!("http://{addr}/graphql"),
            seed,
            subgraph_endpoints,
            db,
            gateway: Some(gateway),
            mail_dir,
            files,
            files_dir,
            keys,
            gateway_client,
            http: {
                portal::install_crypto_provider();
                reqwest::Client::new()
            },
            tasks,
            test_db: None,
        })
    }

    /// The URL of the database this portal runs on (`None` when started on a connection
    /// made elsewhere).
    pub fn database_url(&self) -> Option<&str> {
        self.test_db.as_ref().map(|db| db.url.as_str())
    }

    /// A new user of the demo tenant, created through the API by Alice (tenant admin).
    pub async fn create_user(&self, email: &str, name: &str) -> anyhow::Result<Uuid> {
        let created = self
            .query_with_roles(
                self.seed.tenant_id,
                self.seed.alice_id,
                &["tenant_admin"],
                "mutation($e: String!, $n: String!) { createUser(input: { email: $e, displayName: $n }) { id } }",
                json!({ "e": email, "n": name }),
            )
            .await?;
        let id = created["data"]["createUser"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no user: {created}"))?;
        Ok(id.parse()?)
    }

    /// Messages' store as this portal's subgraphs use it (for running its jobs by hand).
    pub fn messages_store(&self) -> portal_messages::store::Store {
        portal_messages::store::Store {
            db: self.db.clone(),
            keys: self.keys.clone(),
            files: self.files.clone(),
        }
    }

    /// Sends `query` with `variables` as `user` of `tenant` and returns the JSON response.
    pub async fn query_as(
        &self,
        tenant: Uuid,
        user: Uuid,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.endpoint)
            .header(DEV_TENANT_HEADER, tenant.to_string())
            .header(DEV_USER_HEADER, user.to_string())
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        Ok(response.json().await?)
    }

    /// Sends `query` as `user` of `tenant` holding `roles`.
    pub async fn query_with_roles(
        &self,
        tenant: Uuid,
        user: Uuid,
        roles: &[&str],
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.endpoint)
            .header(DEV_TENANT_HEADER, tenant.to_string())
            .header(DEV_USER_HEADER, user.to_string())
            .header(portal_gateway::auth::DEV_ROLES_HEADER, roles.join(","))
            .header("user-agent", "portal-tests/1")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        Ok(response.json().await?)
    }

    /// Gives `user` of the demo tenant the role named `role` as well (in the database, as
    /// an admin would): what a later download or report run reads as their roles.
    pub async fn grant_role(&self, user: Uuid, role: &str) -> anyhow::Result<()> {
        use portal_entities::identity::{role, user_role};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
        let found = role::Entity::find()
            .filter(role::Column::TenantId.eq(self.seed.tenant_id))
            .filter(role::Column::Name.eq(role))
            .one(&self.db)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no role {role}"))?;
        user_role::Entity::insert(user_role::ActiveModel {
            user_id: Set(user),
            role_id: Set(found.id),
            tenant_id: Set(self.seed.tenant_id),
            created_at: Set(chrono::Utc::now()),
        })
        .exec(&self.db)
        .await?;
        Ok(())
    }

    /// The id of the account numbered `number` (read from the database directly).
    pub async fn account_id(&self, number: &str) -> anyhow::Result<String> {
        use portal_entities::accounts::account;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let found = account::Entity::find()
            .filter(account::Column::Number.eq(number))
            .one(&self.db)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no account {number}"))?;
        Ok(found.id.to_string())
    }

    /// Sends `query` as Carol (a customer user of the demo tenant).
    pub async fn query_as_carol(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        self.query_as(self.seed.tenant_id, self.seed.carol_id, query, variables)
            .await
    }

    /// Waits (up to 5 s) for an email to `to` and returns its decoded body, oldest first
    /// among those not yet returned (each call consumes one message).
    pub async fn next_mail_to(&self, to: &str) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut files: Vec<_> = std::fs::read_dir(&self.mail_dir)
                .map(|dir| dir.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file)?;
                if text.contains(&format!("To: {to}")) {
                    std::fs::rename(&file, file.with_extension("read"))?;
                    return Ok(decode_quoted_printable(&text));
                }
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "no email to {to} within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A plain HTTP client for transport-level tests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Stops the servers and drops the database.
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let _ = self.db.clone().close().await;
        if let Some(db) = self.test_db.take() {
            db.cleanup().await;
        }
    }
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes (enough for our ASCII mail).
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'=')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves `router` on an ephemeral local port.
pub async fn serve(
    router: axum::Router,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // As `portal serve` does: request ids, trace contexts, request spans.
    let router = router.layer(axum::middleware::from_fn(portal_kit::telemetry::observe));
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok((addr, task))
}
