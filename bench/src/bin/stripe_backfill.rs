//! `stripe_backfill`: how long a Stripe backfill of N invoices takes end to end, and the
//! portal's peak memory while it runs. A fake Stripe (the test suite's, built from
//! Stripe's API description) holds one customer linked to a demo account and N open
//! invoices; an all-in-one `portal serve` process (gateway, subgraphs and job worker)
//! runs the backfill — listing the invoices 100 a page and issuing each through the
//! gateway as the connector's service account. Beside it, a baseline measured in the same
//! run: the same `issueInvoice` mutation sent straight to that gateway with the service
//! account's API key, one after another as the sync does — what the write path alone
//! costs. Peak memory is the portal process's `VmHWM`.
//!
//! `cargo build --release -p portal -p portal-bench && target/release/stripe_backfill --invoices 100000 --database-url postgres://…/postgres`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, Set};
use serde_json::{Value, json};

use portal_integrations::domain::sync::RunMode;
use portal_integrations::store::connectors::{self as state, CredentialChanges};
use portal_kit::{Actor, RequestMeta};
use portal_tests::fake_stripe::{self, FakeStripe};

/// The secret the bench's processes share (internal tokens and the data key).
const SECRET: &str = "benchmark-secret-benchmark-secret-benchmark";

/// Stripe backfill benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A database to create a scratch database in (`postgres://…/postgres`), or an SQLite
    /// URL; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Invoices at Stripe.
    #[arg(long, default_value_t = 100_000)]
    invoices: usize,
    /// Invoices issued directly for the baseline (at most `invoices`).
    #[arg(long, default_value_t = 2_000)]
    baseline: usize,
}

/// A service account with a `billing_admin` key, made as the demo tenant's admin. The
/// bench stands in for the admin's sign-in and second factor with a session row whose
/// second factor was just confirmed (minting a key needs one).
async fn connector_key(db: &DatabaseConnection, admin: &Actor) -> anyhow::Result<String> {
    use portal_entities::identity::session;
    let now = chrono::Utc::now();
    let session_id = uuid::Uuid::now_v7();
    session::ActiveModel {
        id: Set(session_id),
        tenant_id: Set(admin.tenant_id.unwrap_or_default()),
        user_id: Set(admin.id.unwrap_or_default()),
        auth_method: Set("password".into()),
        user_agent: Set(None),
        source_ip: Set(None),
        created_at: Set(now),
        last_seen_at: Set(now),
        mfa_verified_at: Set(Some(now)),
        revoked_at: Set(None),
        revoked_reason: Set(None),
    }
    .insert(db)
    .await?;
    let admin = Actor {
        session_id: Some(session_id),
        ..admin.clone()
    };
    let meta = RequestMeta::default();
    let account = portal_identity::api_keys::create_service_account(
        db,
        &admin,
        &meta,
        "stripe-sync".into(),
        "Stripe connector (bench)".into(),
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    let (key, _) = portal_identity::api_keys::create_api_key(
        db,
        &admin,
        &meta,
        portal_identity::api_keys::NewApiKey {
            service_account_id: account.id,
            name: "sync".into(),
            roles: vec!["billing_admin".into()],
            expires_at: None,
        },
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    Ok(key)
}

/// The demo tenant's first account and its currency.
async fn first_account(
    db: &DatabaseConnection,
    tenant: uuid::Uuid,
) -> anyhow::Result<(uuid::Uuid, String)> {
    use portal_entities::accounts::account;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    account::Entity::find()
        .filter(account::Column::TenantId.eq(tenant))
        .filter(account::Column::Status.eq("OPEN"))
        .order_by_asc(account::Column::Id)
        .one(db)
        .await?
        .map(|a| (a.id, a.currency))
        .ok_or_else(|| anyhow::anyhow!("no open account in the demo tenant"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let args = Args::parse();
    let url = portal_bench::scratch_database(args.database_url.as_deref(), "stripe").await?;
    let db = portal::connect_and_migrate(&url, 8).await?;
    let demo = portal::seed::seed_if_empty(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the scratch database was not empty"))?;
    portal::policies::seed_if_empty(&db).await?;
    println!(
        "# Stripe backfill benchmark ({})",
        db.get_database_backend().as_str()
    );
    let admin = Actor::user(demo.alice_id, demo.tenant_id, vec!["tenant_admin".into()]);
    let meta = RequestMeta::default();
    let (account, currency) = first_account(&db, demo.tenant_id).await?;

    // Stripe: one customer naming the account, and the invoices.
    let fake = FakeStripe::start().await?;
    let account_text = account.to_string();
    let customer = fake.add_customer(
        "Bench Customer",
        "billing@bench.example",
        &[("portal_account_id", &account_text)],
    );
    let started = Instant::now();
    fake.add_invoices_bulk(&customer, args.invoices, &currency.to_lowercase(), 1_000);
    println!(
        "{} invoices at the fake Stripe (made in {:.1} s)",
        args.invoices,
        started.elapsed().as_secs_f64()
    );

    // The integration, configured as a tenant admin would.
    let key = connector_key(&db, &admin).await?;
    let keys = portal_kit::envelope::TenantKeys::local(
        db.clone(),
        portal_kit::secret::DataKey::from_secret(SECRET.as_bytes()),
    );
    let integration = portal_integrations::store::create_integration(
        &db,
        &admin,
        &meta,
        portal_integrations::store::NewIntegration {
            kind: portal_integrations::domain::IntegrationKind::Billing,
            provider: "stripe".into(),
            name: "Stripe (bench)".into(),
        },
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    state::configure(
        &db,
        &keys,
        &admin,
        &meta,
        integration.id,
        CredentialChanges {
            api_key: Some(Some(fake_stripe::API_KEY.into())),
            portal_api_key: Some(Some(key.clone())),
            ..CredentialChanges::default()
        },
        None,
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;

    // The portal: gateway, subgraphs and job worker in one process.
    let binary = portal_bench::portal_binary()?;
    let port = portal_bench::free_port()?;
    let workdir = std::env::temp_dir().join(format!("portal-stripe-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&workdir)?;
    let log = workdir.join("portal.log");
    let mut portal = Command::new(&binary)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .env("PORTAL_INTERNAL_TOKEN_SECRET", SECRET)
        .env("PORTAL_DATA_KEY", SECRET)
        .env("PORTAL_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("PORTAL_STRIPE_API_URL", fake.base_url())
        .env("RUST_LOG", "error")
        .env("PORTAL_RATE_LIMITS", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let pid = portal.id();
    let base = format!("http://127.0.0.1:{port}");
    portal_bench::wait_healthy(&format!("{base}/health"), Duration::from_secs(60)).await?;
    let idle_kib = portal_bench::memory_kib(pid, "VmRSS").unwrap_or_default();

    // Baseline: issueInvoice straight to the gateway as the service account, one by one.
    let http = reqwest::Client::new();
    let baseline = args.baseline.min(args.invoices).max(1);
    let started = Instant::now();
    for n in 0..baseline {
        let response: Value = http
            .post(format!("{base}/graphql"))
            .bearer_auth(&key)
            .json(&json!({
                "query": "mutation($input: IssueInvoiceInput!) { issueInvoice(input: $input) { id } }",
                "variables": { "input": {
                    "number": format!("BASE-{n:06}"),
                    "currency": currency,
                    "accountId": account,
                    "amount": "10.00",
                    "periodStart": "2026-11-01",
                    "periodEnd": "2026-11-30",
                    "dueDate": "2026-12-31",
                    "idempotencyKey": format!("bench:base:{n:06}"),
                }},
            }))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(response["errors"].is_null(), "baseline: {response}");
    }
    let baseline_rate = baseline as f64 / started.elapsed().as_secs_f64();
    println!("baseline (issueInvoice through the gateway, one at a time): {baseline_rate:.0} /s");

    // The backfill.
    let started = Instant::now();
    let run = state::start_run(
        &db,
        &admin,
        &meta,
        demo.tenant_id,
        integration.id,
        RunMode::Backfill,
        None,
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    // This machine's PostgreSQL may run with autovacuum off (a CI setting); production
    // runs it on. Without it, the dead tuples every event's sequence number leaves behind
    // pile up and the run slows with its size — so stand in for it, and say so.
    let vacuum = db.get_database_backend() == sea_orm::DbBackend::Postgres
        && db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT setting FROM pg_settings WHERE name = 'autovacuum'",
            ))
            .await?
            .and_then(|row| row.try_get::<String>("", "setting").ok())
            .is_some_and(|setting| setting == "off");
    if vacuum {
        println!("autovacuum is off here: the bench runs VACUUM ANALYZE every 30 s instead");
    }
    let mut vacuumed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(4 * 3600);
    let done = loop {
        if vacuum && vacuumed.elapsed() >= Duration::from_secs(30) {
            db.execute_unprepared("VACUUM ANALYZE").await?;
            vacuumed = Instant::now();
        }
        let now = state::sync_run(&db, demo.tenant_id, run.id)
            .await
            .map_err(|err| anyhow::anyhow!("{err:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the run vanished"))?;
        if now.status != "RUNNING" {
            break now;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the backfill did not finish (log in {})",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = started.elapsed();
    let peak_kib = portal_bench::memory_kib(pid, "VmHWM").unwrap_or_default();
    let _ = portal.kill();
    let _ = portal.wait();
    anyhow::ensure!(
        done.status == "SUCCEEDED" && done.created as usize == args.invoices + 1,
        "the run ended {} with {} created, {} failed ({:?}); log in {}",
        done.status,
        done.created,
        done.failed,
        done.error,
        log.display()
    );
    let rate = args.invoices as f64 / elapsed.as_secs_f64();
    println!(
        "backfill: {} invoices issued in {:.1} s: {rate:.0} /s ({:.0} % of the baseline), {} pages",
        args.invoices,
        elapsed.as_secs_f64(),
        100.0 * rate / baseline_rate,
        done.pages,
    );
    println!(
        "portal process memory: {:.0} MiB idle, {:.0} MiB peak (VmHWM)",
        portal_bench::mib(idle_kib),
        portal_bench::mib(peak_kib)
    );
    portal_bench::drop_scratch_database(args.database_url.as_deref(), &url).await?;
    let _ = std::fs::remove_dir_all(&workdir);
    Ok(())
}
