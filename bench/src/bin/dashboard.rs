//! `dashboard`: latency of the dashboard's chart queries at scale, through the gateway.
//! Loads `portal seed --scale N` volume (10×N accounts, 100 000×N ledger entries, 1 000 000×N
//! usage events) into a scratch database, starts the subgraphs and the gateway as separate
//! processes, and sends each query one at a time (low load) as the accounts' owner, on the
//! busiest account (half of all entries and events). Reports p50/p95/max per query and
//! each p95 as a ratio to the baseline measured in the same run: the cheapest read of the
//! same account through the same gateway (`account(id) { number }`).
//!
//! `cargo run --release -p portal-bench --bin dashboard -- --database-url postgres://…/postgres --scale 10`

use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use serde_json::{Value, json};

use portal_bench::processes::Cluster;

/// Dashboard query benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A database to create a scratch database in (`postgres://…/postgres`), or an SQLite
    /// URL; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Scale factor of the data (see `portal seed --scale`).
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Requests per query.
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// `--database-url` already holds scale data (an earlier run's, or `portal seed
    /// --scale`): measure it as it is, load and drop nothing.
    #[arg(long)]
    loaded: bool,
}

/// What the measurement needs to know about the loaded data.
struct Loaded {
    tenant_id: uuid::Uuid,
    owner_id: uuid::Uuid,
    busiest_account: uuid::Uuid,
}

/// Finds the scale data already in `db` (the account `SCALE-00000`).
async fn find_loaded(db: &sea_orm::DatabaseConnection) -> anyhow::Result<Loaded> {
    use portal_entities::accounts::account;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let busiest = account::Entity::find()
        .filter(account::Column::Number.eq("SCALE-00000"))
        .one(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no scale data (account SCALE-00000) in the database"))?;
    Ok(Loaded {
        tenant_id: busiest.tenant_id,
        owner_id: busiest.owner_id,
        busiest_account: busiest.id,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    portal::install_crypto_provider();
    let url = match (&args.database_url, args.loaded) {
        (Some(url), true) => url.clone(),
        (None, true) => anyhow::bail!("--loaded needs --database-url"),
        (admin, false) => portal_bench::scratch_database(admin.as_deref(), "dashboard").await?,
    };
    let db = portal::connect_and_migrate(&url, 8).await?;
    let backend = db.get_database_backend().as_str().to_owned();
    println!("# dashboard queries at scale ({backend})");
    if !args.loaded {
        let seed = portal::seed::seed(&db).await?;
        let report = portal::scale::seed_scale(&db, &seed, args.scale).await?;
        println!(
            "scale {}: {} accounts, {} ledger entries, {} usage events, {} rollups, loaded in {:.1} s\n",
            args.scale,
            report.accounts,
            report.ledger_entries,
            report.usage_events,
            report.rollups,
            report.elapsed.as_secs_f64()
        );
        if url.starts_with("postgres") {
            use sea_orm::ConnectionTrait;
            // As an operator would after a bulk load: fresh statistics and visibility map.
            db.execute_unprepared("VACUUM ANALYZE").await?;
        }
    }
    let report = find_loaded(&db).await?;
    db.close().await?;
    let workdir =
        std::env::temp_dir().join(format!("portal-bench-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    let cluster = Cluster::start_with(&workdir, &url, false).await?;
    let http = reqwest::Client::new();
    let account = report.busiest_account.to_string();
    let now = Utc::now();
    let year_ago = (now - chrono::Duration::days(365)).to_rfc3339();
    let month_ago = (now - chrono::Duration::days(30)).to_rfc3339();
    let now = now.to_rfc3339();
    let queries: Vec<(&str, &str, Value)> = vec![
        (
            "baseline: account(id) { number }",
            "query($id: ID!) { account(id: $id) { number } }",
            json!({ "id": account }),
        ),
        (
            "balanceHistory, 1 year by day",
            "query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) { balanceHistory(from: $from, to: $to, interval: DAY, timeZone: \"Europe/Berlin\") { points { start value } } } }",
            json!({ "id": account, "from": year_ago, "to": now }),
        ),
        (
            "usage, 30 days by hour",
            "query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) { usage(metric: \"api.calls\", from: $from, to: $to, interval: HOUR, timeZone: \"Europe/Berlin\") { points { start value } } } }",
            json!({ "id": account, "from": month_ago, "to": now }),
        ),
        (
            "activity, 1 year by week",
            "query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) { activity(from: $from, to: $to, interval: WEEK) { points { value } } } }",
            json!({ "id": account, "from": year_ago, "to": now }),
        ),
        (
            "dashboard (all KPIs, 10 accounts)",
            "{ dashboard(timeZone: \"Europe/Berlin\") { balances { amount } openInvoices { count } overdueInvoices { count } usage { metric current previous } accounts(first: 10) { edges { node { number balance } } } } }",
            json!({}),
        ),
    ];
    let mut baseline_p95 = None;
    println!("| query | p50 ms | p95 ms | max ms | p95 / baseline |");
    println!("|---|---|---|---|---|");
    for (name, query, variables) in queries {
        let body = json!({ "query": query, "variables": variables });
        let mut times = Vec::with_capacity(args.requests);
        for i in 0..args.requests + 5 {
            let started = Instant::now();
            let response: Value = http
                .post(&cluster.gateway_url)
                .header("x-portal-tenant-id", report.tenant_id.to_string())
                .header("x-portal-user-id", report.owner_id.to_string())
                .header("x-portal-roles", "customer_user")
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            let took = started.elapsed();
            anyhow::ensure!(response.get("errors").is_none(), "{name}: {response}");
            if i >= 5 {
                times.push(took);
            }
        }
        times.sort_unstable();
        let p95 = percentile(&times, 0.95);
        let ratio = match baseline_p95 {
            None => {
                baseline_p95 = Some(p95);
                1.0
            }
            Some(base) => p95.as_secs_f64() / Duration::as_secs_f64(&base),
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {ratio:.1}× |",
            ms(percentile(&times, 0.5)),
            ms(p95),
            ms(times.last().copied().unwrap_or_default())
        );
    }
    drop(cluster);
    if !args.loaded {
        portal_bench::drop_scratch_database(args.database_url.as_deref(), &url).await?;
    }
    Ok(())
}
