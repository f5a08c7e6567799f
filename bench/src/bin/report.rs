//! `report`: time, throughput and memory of large report runs, through the gateway.
//!
//! Loads `--rows` ledger entries into one account of the demo data, starts the subgraphs,
//! a job worker and the gateway as separate processes, and runs a custom report over the
//! account's ledger with a cross-subgraph column (`account.owner.displayName`, resolved by
//! identity) as its owner: CSV on a tenth of the rows, then CSV and XLSX on all of them —
//! `requestReportRun`, followed until `SUCCEEDED` (a job reads the rows page by page
//! through the gateway as the owner and writes the file). Baseline in the same run: the
//! accounts subgraph's own CSV export of the same ledger (read straight from its tables).
//! Reports rows/s per run, the ratio to the baseline, and the worker's peak resident
//! memory growth over its size before the first run.
//!
//! `cargo run --release -p portal-bench --bin report -- --database-url postgres://…/postgres`

use std::time::{Duration, Instant};

use clap::Parser;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use portal_bench::processes::{Cluster, Extras};
use portal_entities::accounts::account;

/// Report benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A database to create a scratch database in (`postgres://…/postgres`), or an SQLite
    /// URL; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Ledger entries in the reported account.
    #[arg(long, default_value_t = 100_000)]
    rows: i64,
}

const DEFINE: &str = "mutation($input: CreateReportDefinitionInput!) {
    createReportDefinition(input: $input) { id } }";
const RUN: &str = "mutation($d: ID!) { requestReportRun(definitionId: $d) { id } }";
const FOLLOW: &str = "query($id: ID!) { reportRun(id: $id) { status error rowCount bytes } }";
const EXPORT: &str = "mutation($input: ExportAccountDataInput!) {
    exportAccountData(input: $input) { id } }";
const FOLLOW_EXPORT: &str =
    "query($id: ID!) { accountExport(id: $id) { status rowCount error file { sizeBytes } } }";

struct Measured {
    what: String,
    rows: i64,
    took: Duration,
    bytes: i64,
    worker_growth_mib: f64,
}

impl Measured {
    fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    portal::install_crypto_provider();
    let url = portal_bench::scratch_database(args.database_url.as_deref(), "report").await?;
    let db = portal::connect_and_migrate(&url, 8).await?;
    let backend = db.get_database_backend().as_str().to_owned();
    println!("# report runs ({backend})");
    let seed = portal::seed::seed(&db).await?;
    let payroll = account::Entity::find()
        .filter(account::Column::Number.eq("ACME-0003"))
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no demo account ACME-0003"))?;
    let started = Instant::now();
    let first = portal_bench::load_ledger(&db, &payroll, args.rows, "Usage charge").await?;
    if url.starts_with("postgres") {
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("VACUUM ANALYZE").await?;
    }
    println!(
        "{} ledger entries loaded in {:.1} s\n",
        args.rows,
        started.elapsed().as_secs_f64()
    );
    db.close().await?;

    let workdir = std::env::temp_dir().join(format!("portal-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    let extras = Extras {
        worker: true,
        envs: vec![(
            "PORTAL_FILES_DIR".into(),
            workdir.join("files").display().to_string(),
        )],
        ..Extras::default()
    };
    let cluster = Cluster::start_full(&workdir, &url, &extras).await?;
    let worker = cluster
        .worker_pid
        .ok_or_else(|| anyhow::anyhow!("no worker"))?;
    let rss = |pid: u32, field: &str| portal_bench::memory_kib(pid, field).unwrap_or(0);
    let worker_before = rss(worker, "VmRSS:");
    let http = reqwest::Client::new();
    // Bob (billing admin) defines the reports and reads every account of the tenant.
    let send = |query: &'static str, variables: Value| {
        let http = http.clone();
        let url = cluster.gateway_url.clone();
        async move {
            let response: Value = http
                .post(url)
                .header("x-portal-tenant-id", seed.tenant_id.to_string())
                .header("x-portal-user-id", seed.bob_id.to_string())
                .header("x-portal-roles", "billing_admin")
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(response.get("errors").is_none(), "{response}");
            Ok::<Value, anyhow::Error>(response)
        }
    };
    let wait = async |query: &'static str, field: &str, id: &Value| -> anyhow::Result<Value> {
        loop {
            let followed = send(query, json!({ "id": id })).await?;
            let found = followed["data"][field].clone();
            match found["status"].as_str() {
                Some("SUCCEEDED" | "READY") => return Ok(found),
                Some("QUEUED" | "RUNNING") => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => anyhow::bail!("{field} failed: {found}"),
            }
        }
    };

    let mut measured = Vec::new();
    // Baseline: the accounts subgraph's own export of the whole ledger.
    let started = Instant::now();
    let requested = send(
        EXPORT,
        json!({ "input": { "accountId": payroll.id, "dataset": "LEDGER_ENTRIES", "format": "CSV" } }),
    )
    .await?;
    let export = wait(
        FOLLOW_EXPORT,
        "accountExport",
        &requested["data"]["exportAccountData"]["id"],
    )
    .await?;
    measured.push(Measured {
        what: "baseline: accounts' own CSV export".into(),
        rows: export["rowCount"].as_i64().unwrap_or_default(),
        took: started.elapsed(),
        bytes: export["file"]["sizeBytes"].as_i64().unwrap_or_default(),
        worker_growth_mib: portal_bench::mib(rss(worker, "VmHWM:").saturating_sub(worker_before)),
    });

    let tenth = first + chrono::Duration::seconds(args.rows - args.rows / 10);
    for (what, format, from) in [
        ("report, a tenth, CSV", "CSV", Some(tenth)),
        ("report, all, CSV", "CSV", None),
        ("report, all, XLSX", "XLSX", None),
    ] {
        let mut filter = json!({});
        if let Some(from) = from {
            filter = json!({ "postedFrom": from.to_rfc3339() });
        }
        let defined = send(
            DEFINE,
            json!({ "input": {
                "name": what, "kind": "CUSTOM", "format": format,
                "query": {
                    "dataset": [
                        { "field": "account", "arguments": { "id": payroll.id } },
                        { "field": "ledgerEntries", "arguments": { "orderBy": "POSTED_AT_ASC", "filter": filter } }
                    ],
                    "columns": [{ "path": "postedAt" }, { "path": "reference" }, { "path": "amount" },
                                { "path": "account.owner.displayName", "label": "owner" }],
                    "limit": args.rows
                }
            } }),
        )
        .await?;
        let definition = defined["data"]["createReportDefinition"]["id"].clone();
        let started = Instant::now();
        let requested = send(RUN, json!({ "d": definition })).await?;
        let run = wait(
            FOLLOW,
            "reportRun",
            &requested["data"]["requestReportRun"]["id"],
        )
        .await?;
        measured.push(Measured {
            what: what.into(),
            rows: run["rowCount"].as_i64().unwrap_or_default(),
            took: started.elapsed(),
            bytes: run["bytes"].as_i64().unwrap_or_default(),
            worker_growth_mib: portal_bench::mib(
                rss(worker, "VmHWM:").saturating_sub(worker_before),
            ),
        });
    }
    println!(
        "Worker resident before: {:.1} MiB.\n",
        portal_bench::mib(worker_before)
    );
    println!("| run | rows | MiB | s | rows/s | ÷ baseline rows/s | worker peak growth MiB |");
    println!("|---|---|---|---|---|---|---|");
    let baseline = measured[0].rows_per_second();
    for run in &measured {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.1} |",
            run.what,
            run.rows,
            run.bytes as f64 / 1_048_576.0,
            run.took.as_secs_f64(),
            run.rows_per_second(),
            run.rows_per_second() / baseline.max(1e-9),
            run.worker_growth_mib
        );
    }
    drop(cluster);
    portal_bench::drop_scratch_database(args.database_url.as_deref(), &url).await?;
    Ok(())
}
