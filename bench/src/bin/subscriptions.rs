//! `subscriptions`: what subscriptions cost a gateway and how fast events reach clients.
//!
//! Starts `portal serve --demo` (all-in-one: the subgraph side of every subscription lives
//! in the same process, so its memory is counted too) over a scratch database, then:
//!
//! 1. **Idle clients**: opens `--idle` WebSocket connections (graphql-transport-ws,
//!    acknowledged), measures the process's resident set, subscribes each to
//!    `accountUpdated`, and measures again: memory per connection and per subscribed
//!    client, against the idle process measured in the same run.
//! 2. **Fan-out**: `--fanout` subscribers of one account; `--fanout-events` renames; the
//!    latency from the change's commit (`updatedAt`, written in the committing
//!    transaction) to each client's receipt.
//! 3. **Many subjects**: `--subjects` accounts with `--per-subject` subscribers each, and
//!    renames at `--rate` events per second over them for `--seconds`: each delivery is
//!    completed and authorized for its own subscriber. The same run's baseline is the
//!    rename mutation's own round trip (send → committed answer) at that rate.
//!
//! `cargo build --release -p portal -p portal-bench && target/release/subscriptions
//! [--database-url postgres://…/postgres]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

/// Subscription benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A PostgreSQL server to create a scratch database on (`postgres://…/postgres`);
    /// default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Idle WebSocket clients, one subscription each.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Subscribers of one account in the fan-out scenario.
    #[arg(long, default_value_t = 1_000)]
    fanout: usize,
    /// Changes of that account.
    #[arg(long, default_value_t = 20)]
    fanout_events: usize,
    /// Accounts in the many-subjects scenario.
    #[arg(long, default_value_t = 100)]
    subjects: usize,
    /// Subscribers of each.
    #[arg(long, default_value_t = 10)]
    per_subject: usize,
    /// Changes per second over all subjects.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of changes.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

const SUBSCRIPTION: &str = "subscription($id: ID!) { accountUpdated(id: $id) { id updatedAt } }";

/// Who the clients are: the demo tenant, staff with the `Account.all` grant.
#[derive(Clone)]
struct Demo {
    url: String,
    tenant: Uuid,
    bob: Uuid,
}

impl Demo {
    /// A `connection_init` payload for a fresh support agent (distinct principals, so the
    /// per-principal limit is not what is measured).
    fn init(&self) -> Value {
        json!({
            "x-portal-tenant-id": self.tenant.to_string(),
            "x-portal-user-id": Uuid::now_v7().to_string(),
            "x-portal-roles": "support_agent",
        })
    }

    /// Renames `account` as a billing admin; returns the round trip.
    async fn rename(&self, http: &reqwest::Client, account: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let response: Value = http
            .post(&self.url)
            .header("x-portal-tenant-id", self.tenant.to_string())
            .header("x-portal-user-id", self.bob.to_string())
            .header("x-portal-roles", "billing_admin")
            .json(&json!({
                "query": "mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: { name: $n }) { id } }",
                "variables": { "id": account, "n": format!("n{}", Uuid::now_v7().simple()) },
            }))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(response["errors"].is_null(), "rename failed: {response}");
        Ok(started.elapsed())
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An acknowledged graphql-transport-ws connection.
async fn connect(demo: &Demo) -> anyhow::Result<Socket> {
    let mut request = demo
        .url
        .replacen("http://", "ws://", 1)
        .into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": demo.init() });
    socket.send(Message::Text(init.to_string().into())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => return Ok(socket),
            Some(Ok(Message::Text(text))) => anyhow::bail!("not acknowledged: {text}"),
            Some(Ok(_)) => continue,
            other => anyhow::bail!("connection ended: {other:?}"),
        }
    }
}

async fn subscribe(socket: &mut Socket, id: &str, account: &str) -> anyhow::Result<()> {
    let message = json!({
        "id": id,
        "type": "subscribe",
        "payload": { "query": SUBSCRIPTION, "variables": { "id": account } },
    });
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    Ok(())
}

/// Latencies (commit → receipt) of every `next` a socket receives, until `until`.
fn record(mut socket: Socket, sink: Arc<Mutex<Vec<Duration>>>, errors: Arc<Mutex<u64>>) {
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let received = chrono::Utc::now();
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if value["type"] != "next" {
                continue;
            }
            let committed = value["payload"]["data"]["accountUpdated"]["updatedAt"]
                .as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
            match committed {
                Some(at) => {
                    let latency = (received - at.with_timezone(&chrono::Utc))
                        .to_std()
                        .unwrap_or_default();
                    sink.lock().push(latency);
                }
                None => *errors.lock() += 1,
            }
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    portal::install_crypto_provider();
    let url = portal_bench::scratch_database(args.database_url.as_deref(), "subscriptions").await?;
    // Seeded and migrated by the portal itself (`--demo`).
    let workdir = std::env::temp_dir().join(format!("portal-bench-subs-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&workdir)?;
    let config = workdir.join("portal.toml");
    let ceiling = (args.idle + args.fanout + args.subjects * args.per_subject) * 2;
    std::fs::write(
        &config,
        format!(
            "[gateway.subscriptions]\nmax_total = {ceiling}\nmax_websocket_connections = {ceiling}\n\n[gateway]\nmax_concurrent_operations = 256\n"
        ),
    )?;
    let port = portal_bench::free_port()?;
    let log = std::fs::File::create(workdir.join("portal.log"))?;
    let mut child = std::process::Command::new(portal_bench::portal_binary()?)
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .env("PORTAL_CONFIG", &config)
        // A throw-away key for the scratch database (PostgreSQL requires one).
        .env("PORTAL_DATA_KEY", Uuid::now_v7().to_string())
        .env("RUST_LOG", "warn")
        .env("PORTAL_RATE_LIMITS", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let outcome = run(&args, &url, port, pid).await;
    let _ = child.kill();
    let _ = child.wait();
    portal_bench::drop_scratch_database(args.database_url.as_deref(), &url).await?;
    outcome
}

async fn run(args: &Args, url: &str, port: u16, pid: u32) -> anyhow::Result<()> {
    portal_bench::wait_healthy(
        &format!("http://127.0.0.1:{port}/health"),
        Duration::from_secs(120),
    )
    .await?;
    let db = portal_kit::db::connect(url, 2).await?;
    let tenant = portal_entities::identity::tenant::Entity::find()
        .filter(portal_entities::identity::tenant::Column::Slug.eq("acme"))
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no demo tenant"))?;
    let bob = portal_entities::identity::user::Entity::find()
        .filter(portal_entities::identity::user::Column::Email.eq("bob@acme.example"))
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no demo user bob"))?;
    let savings = portal_entities::accounts::account::Entity::find()
        .filter(portal_entities::accounts::account::Column::Number.eq("ACME-0002"))
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no demo account"))?
        .id
        .to_string();
    let demo = Demo {
        url: format!("http://127.0.0.1:{port}/graphql"),
        tenant: tenant.id,
        bob: bob.id,
    };
    let http = reqwest::Client::new();
    println!(
        "# subscription benchmark ({}, all-in-one)\n",
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );

    // 1. Idle clients.
    demo.rename(&http, &savings).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = portal_bench::memory_kib(pid, "VmRSS:").unwrap_or(0);
    let mut sockets = Vec::with_capacity(args.idle);
    let mut opening =
        futures::stream::iter((0..args.idle).map(|_| connect(&demo))).buffer_unordered(64);
    while let Some(socket) = opening.next().await {
        sockets.push(socket?);
    }
    drop(opening);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected_kib = portal_bench::memory_kib(pid, "VmRSS:").unwrap_or(0);
    // Paced (200 at a time), as clients arrive over time: what is measured is what idle
    // subscriptions hold, not what a burst of 10 000 simultaneous openings leaves behind
    // in the allocator.
    for batch in sockets.chunks_mut(200) {
        for socket in batch {
            subscribe(socket, "1", &savings).await?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let every subscription open (each checks the account's visibility once).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let subscribed_kib = portal_bench::memory_kib(pid, "VmRSS:").unwrap_or(0);
    let n = args.idle.max(1) as f64;
    println!(
        "## {} idle WebSocket clients, one subscription each\n",
        args.idle
    );
    println!("| state | gateway RSS | per client |");
    println!("|---|---:|---:|");
    println!(
        "| idle process (baseline) | {:.1} MiB | |",
        idle_kib as f64 / 1024.0
    );
    println!(
        "| connected (acknowledged) | {:.1} MiB | {:.1} KiB |",
        connected_kib as f64 / 1024.0,
        connected_kib.saturating_sub(idle_kib) as f64 / n
    );
    println!(
        "| subscribed (`accountUpdated`) | {:.1} MiB | **{:.1} KiB** |\n",
        subscribed_kib as f64 / 1024.0,
        subscribed_kib.saturating_sub(idle_kib) as f64 / n
    );
    // The gateway ends 10 000 subscriptions as their connections close: let it finish
    // before measuring latency.
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(10)).await;

    // 2. Fan-out: one account, many subscribers.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0_u64));
    let mut opening =
        futures::stream::iter((0..args.fanout).map(|_| connect(&demo))).buffer_unordered(64);
    while let Some(socket) = opening.next().await {
        let mut socket = socket?;
        subscribe(&mut socket, "1", &savings).await?;
        record(socket, latencies.clone(), errors.clone());
    }
    drop(opening);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..args.fanout_events {
        demo.rename(&http, &savings).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let expected = args.fanout * args.fanout_events;
    let received = wait_for(&latencies, expected, Duration::from_secs(30)).await;
    let mut sorted = latencies.lock().clone();
    sorted.sort();
    println!(
        "## Fan-out: one event to {} subscribers ({} events)\n",
        args.fanout, args.fanout_events
    );
    println!("| deliveries | p50 | p99 | max |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {received} / {expected} | {} | **{}** | {} |\n",
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default())
    );

    // 3. Many subjects at a steady rate.
    let mut accounts = Vec::with_capacity(args.subjects);
    for i in 0..args.subjects {
        let created: Value = http
            .post(&demo.url)
            .header("x-portal-tenant-id", demo.tenant.to_string())
            .header("x-portal-user-id", demo.bob.to_string())
            .header("x-portal-roles", "billing_admin")
            .json(&json!({
                "query": "mutation($o: ID!, $n: String!) { createAccount(input: { ownerId: $o, number: $n, name: \"Bench\", currency: \"USD\" }) { id } }",
                "variables": { "o": demo.bob.to_string(), "n": format!("SUB-{i:05}") },
            }))
            .send()
            .await?
            .json()
            .await?;
        let id = created["data"]["createAccount"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("createAccount failed: {created}"))?;
        accounts.push(id.to_owned());
    }
    let latencies = Arc::new(Mutex::new(Vec::new()));
    for account in &accounts {
        for _ in 0..args.per_subject {
            let mut socket = connect(&demo).await?;
            subscribe(&mut socket, "1", account).await?;
            record(socket, latencies.clone(), errors.clone());
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let round_trips = Arc::new(Mutex::new(Vec::new()));
    let total = args.rate * args.seconds;
    let every = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let started = tokio::time::Instant::now();
    let mut senders = Vec::new();
    for n in 0..total {
        tokio::time::sleep_until(started + every * n as u32).await;
        let (demo, http, account, trips) = (
            demo.clone(),
            http.clone(),
            accounts[n as usize % accounts.len()].clone(),
            round_trips.clone(),
        );
        senders.push(tokio::spawn(async move {
            let trip = demo.rename(&http, &account).await?;
            trips.lock().push(trip);
            anyhow::Ok(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    let expected = total as usize * args.per_subject;
    let received = wait_for(&latencies, expected, Duration::from_secs(30)).await;
    let mut sorted = latencies.lock().clone();
    sorted.sort();
    let mut trips = round_trips.lock().clone();
    trips.sort();
    let offered = expected as f64 / args.seconds.max(1) as f64;
    println!(
        "## {} events/s over {} subjects, {} subscribers each ({offered:.0} deliveries/s, {} s)\n",
        args.rate, args.subjects, args.per_subject, args.seconds
    );
    println!("| | count | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| commit → client (each delivery) | {received} / {expected} | {} | **{}** | {} |",
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default())
    );
    println!(
        "| baseline: the change's own round trip | {} | {} | {} | {} |",
        trips.len(),
        ms(percentile(&trips, 0.5)),
        ms(percentile(&trips, 0.99)),
        ms(trips.last().copied().unwrap_or_default())
    );
    let p99 = percentile(&sorted, 0.99).as_secs_f64();
    let baseline = percentile(&trips, 0.99).as_secs_f64().max(f64::EPSILON);
    println!(
        "\ndelivery p99 is {:.2}× the change's own p99 round trip; {} deliveries without data",
        p99 / baseline,
        *errors.lock()
    );
    println!(
        "peak RSS of the portal: {:.1} MiB",
        portal_bench::memory_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}

/// Waits until `latencies` holds `expected` entries or `patience` passes; returns how many.
async fn wait_for(latencies: &Mutex<Vec<Duration>>, expected: usize, patience: Duration) -> usize {
    let deadline = Instant::now() + patience;
    loop {
        let received = latencies.lock().len();
        if received >= expected || Instant::now() > deadline {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
