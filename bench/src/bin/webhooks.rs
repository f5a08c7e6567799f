//! `webhooks`: outbound webhook deliveries per second, end to end, and no loss when a
//! worker is killed. Writes N committed `account.updated` events for one endpoint, starts
//! W `portal serve worker` processes (each runs the dispatcher and the delivery jobs) and
//! times until a local receiver has every message; beside it, a baseline measured in the
//! same run: the same number of signed POSTs sent straight from this process to the same
//! receiver at the workers' combined concurrency — what any deliverer could do on this
//! machine. With `--kill`, one worker is killed with SIGKILL a third of the way through
//! and started again; the run then checks that every message arrived (at least once) and
//! says how many arrived twice.
//!
//! `cargo build --release -p portal -p portal-bench && target/release/webhooks --database-url postgres://…/postgres --kill`

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use parking_lot::Mutex;
use sea_orm::DatabaseConnection;
use serde_json::json;

use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::{Actor, RequestMeta};

/// The secret the bench's processes share (internal tokens and the data key).
const SECRET: &str = "benchmark-secret-benchmark-secret-benchmark";

/// Webhook delivery benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A database to create a scratch database in (`postgres://…/postgres`), or an SQLite
    /// URL; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Events (one message each) to deliver.
    #[arg(long, default_value_t = 5_000)]
    events: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Jobs each worker claims at once.
    #[arg(long, default_value_t = 32)]
    batch: u64,
    /// Kill one worker with SIGKILL a third of the way through, and start it again.
    #[arg(long)]
    kill: bool,
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    requests: u64,
}

async fn receiver(seen: Arc<Mutex<Seen>>) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut seen = seen.lock();
                seen.requests += 1;
                seen.ids.insert(id);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn worker(binary: &Path, database_url: &str, batch: u64, log: &Path) -> anyhow::Result<Child> {
    Ok(Command::new(binary)
        .args(["serve", "worker"])
        .env("DATABASE_URL", database_url)
        .env("PORTAL_INTERNAL_TOKEN_SECRET", SECRET)
        .env("PORTAL_DATA_KEY", SECRET)
        .env("PORTAL_PUBLIC_URL", "http://127.0.0.1:4000")
        .env("PORTAL_WEBHOOKS_ALLOW_NETWORKS", "127.0.0.1/32")
        .env("PORTAL_WEBHOOKS_ALLOW_HTTP", "true")
        .env("PORTAL_JOB_LEASE_SECS", "5")
        .env("PORTAL_JOB_BATCH", batch.to_string())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?)
}

/// Writes `count` committed `account.updated` events of the demo tenant, as its admin.
async fn write_events(
    db: &DatabaseConnection,
    actor: &Actor,
    account: uuid::Uuid,
    count: usize,
) -> anyhow::Result<()> {
    let meta = RequestMeta::default();
    for chunk in 0..count.div_ceil(500) {
        let txn = db.begin_write().await?;
        for n in chunk * 500..((chunk + 1) * 500).min(count) {
            AuditEvent::success("account.update", "account", account)
                .with_details(json!({
                    "before": { "name": format!("Name {n}"), "status": "OPEN" },
                    "after": { "name": format!("Name {}", n + 1), "status": "OPEN" },
                }))
                .record(&txn, actor, &meta)
                .await
                .map_err(|err| anyhow::anyhow!("{err:?}"))?;
        }
        txn.commit().await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let args = Args::parse();
    let url = portal_bench::scratch_database(args.database_url.as_deref(), "webhooks").await?;
    let db = portal::connect_and_migrate(&url, 8).await?;
    let demo = portal::seed::seed_if_empty(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the scratch database was not empty"))?;
    // The seed policies (a gateway seeds them on its first start; none runs here): the
    // endpoint's owner reads what they allow.
    portal::policies::seed_if_empty(&db).await?;
    println!(
        "# webhook delivery benchmark ({})",
        db.get_database_backend().as_str()
    );
    println!(
        "{} events to one endpoint, {} worker processes, batches of {}{}\n",
        args.events,
        args.workers,
        args.batch,
        if args.kill {
            ", one worker killed (SIGKILL) and restarted"
        } else {
            ""
        }
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = receiver(seen.clone()).await?;
    let hook = format!("http://127.0.0.1:{}/hook", addr.port());

    // Baseline: signed POSTs straight to the receiver at the workers' concurrency.
    let http = reqwest::Client::new();
    let key = [7_u8; 32];
    let concurrency = args.workers * args.batch as usize;
    let baseline_count = args.events;
    let started = Instant::now();
    let sends = futures::stream::iter(0..baseline_count).map(|n| {
        let (http, hook) = (http.clone(), hook.clone());
        async move {
            let body = json!({ "type": "account.updated", "n": n }).to_string();
            let id = format!("base_{n}");
            let timestamp = chrono::Utc::now().timestamp();
            let signature =
                portal_integrations::domain::webhooks::sign(&key, &id, timestamp, body.as_bytes());
            http.post(&hook)
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await
        }
    });
    use futures::StreamExt;
    let results: Vec<_> = sends.buffer_unordered(concurrency).collect().await;
    anyhow::ensure!(
        results.iter().all(|r| r.is_ok()),
        "the baseline's POSTs failed"
    );
    let baseline = baseline_count as f64 / started.elapsed().as_secs_f64();
    println!("baseline (signed POSTs from one process, {concurrency} at once): {baseline:.0} /s");
    *seen.lock() = Seen::default();

    // The endpoint, owned by the demo tenant's admin, and the events.
    let admin = Actor::user(demo.alice_id, demo.tenant_id, vec!["tenant_admin".into()]);
    let keys = portal_kit::envelope::TenantKeys::local(
        db.clone(),
        portal_kit::secret::DataKey::from_secret(SECRET.as_bytes()),
    );
    let new = portal_integrations::store::NewWebhookEndpoint {
        url: hook.clone(),
        description: "bench".into(),
        event_types: vec!["account.updated".into()],
        payload_mode: portal_integrations::domain::catalogue::PayloadMode::Full,
    };
    portal_integrations::store::create_webhook_endpoint(
        &db,
        &keys,
        &admin,
        &RequestMeta::default(),
        new,
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    let account = first_account(&db, demo.tenant_id).await?;
    let started = Instant::now();
    write_events(&db, &admin, account, args.events).await?;
    println!(
        "events written: {:.0} /s (not part of the delivery rate)",
        args.events as f64 / started.elapsed().as_secs_f64()
    );

    let binary = portal_bench::portal_binary()?;
    let workdir = std::env::temp_dir().join(format!("portal-webhooks-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&workdir)?;
    let log = |n: usize| workdir.join(format!("worker-{n}.log"));
    let started = Instant::now();
    let mut workers = (0..args.workers)
        .map(|n| worker(&binary, &url, args.batch, &log(n)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut killed = !args.kill;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let delivered = seen.lock().ids.len();
        if delivered >= args.events {
            break;
        }
        if !killed && delivered >= args.events / 3 {
            workers[0].kill()?;
            workers[0].wait()?;
            workers[0] = worker(&binary, &url, args.batch, &log(args.workers))?;
            killed = true;
            println!("worker killed at {delivered} delivered, and started again");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {delivered} of {} delivered in 15 minutes (logs in {})",
            args.events,
            workdir.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let rate = args.events as f64 / elapsed.as_secs_f64();
    for mut child in workers {
        let _ = child.kill();
        let _ = child.wait();
    }
    let seen = seen.lock();
    println!(
        "delivered: {} of {} messages in {:.1} s: {rate:.0} /s ({:.0} % of the baseline); \
         {} arrived more than once",
        seen.ids.len(),
        args.events,
        elapsed.as_secs_f64(),
        100.0 * rate / baseline,
        seen.requests.saturating_sub(seen.ids.len() as u64),
    );
    anyhow::ensure!(seen.ids.len() == args.events, "messages were lost");
    std::fs::remove_dir_all(&workdir).ok();
    Ok(())
}

async fn first_account(db: &DatabaseConnection, tenant: uuid::Uuid) -> anyhow::Result<uuid::Uuid> {
    use portal_entities::accounts::account;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    account::Entity::find()
        .filter(account::Column::TenantId.eq(tenant))
        .order_by_asc(account::Column::Id)
        .one(db)
        .await?
        .map(|a| a.id)
        .ok_or_else(|| anyhow::anyhow!("no account in the demo tenant"))
}
