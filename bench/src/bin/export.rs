//! `export`: memory and time of large ledger exports, through the gateway.
//!
//! Loads `--rows` ledger entries into one account of the demo data (direct multi-row
//! inserts), starts the subgraphs, a job worker and the gateway as separate processes, and
//! exports the account's ledger as CSV twice — a tenth of the rows first (a `postedFrom`
//! filter), then all of them — each as its requester would: `exportAccountData`, follow it
//! with `accountExport` until `READY`, download the file through the gateway's signed link
//! (hashing the stream, never holding it). Reports for each size the time to ready and to
//! download, and the peak resident memory (`VmHWM`) the worker (which writes the file) and
//! the gateway (which streams it) grew by over their resident size before the first export:
//! flat memory means the full export grows them no more than the tenth did.
//!
//! `cargo run --release -p portal-bench --bin export -- --database-url postgres://…/postgres`

use std::time::{Duration, Instant};

use clap::Parser;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use portal_bench::processes::{Cluster, Extras};
use portal_entities::accounts::account;

/// Export benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A database to create a scratch database in (`postgres://…/postgres`), or an SQLite
    /// URL; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Ledger entries in the exported account.
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
}

const EXPORT: &str = "mutation($input: ExportAccountDataInput!) {
    exportAccountData(input: $input) { id status } }";
const FOLLOW: &str = "query($id: ID!) { accountExport(id: $id) {
    status rowCount error file { sha256 sizeBytes download { url } } } }";

struct Run {
    rows: i64,
    ready: Duration,
    download: Duration,
    bytes: u64,
    worker_growth_mib: f64,
    gateway_growth_mib: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    portal::install_crypto_provider();
    let url = portal_bench::scratch_database(args.database_url.as_deref(), "export").await?;
    let db = portal::connect_and_migrate(&url, 8).await?;
    let backend = db.get_database_backend().as_str().to_owned();
    println!("# ledger exports ({backend})");
    let seed = portal::seed::seed(&db).await?;
    let payroll = account::Entity::find()
        .filter(account::Column::Number.eq("ACME-0003"))
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no demo account ACME-0003"))?;
    let started = Instant::now();
    let first =
        portal_bench::load_ledger(&db, &payroll, args.rows, "Usage charge, \"standard\" plan")
            .await?;
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

    let workdir = std::env::temp_dir().join(format!("portal-bench-export-{}", std::process::id()));
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
    let gateway = cluster.gateway_pid();
    let rss = |pid: u32, field: &str| portal_bench::memory_kib(pid, field).unwrap_or(0);
    let (worker_before, gateway_before) = (rss(worker, "VmRSS:"), rss(gateway, "VmRSS:"));
    let http = reqwest::Client::new();
    let base = cluster.gateway_url.trim_end_matches("/graphql").to_owned();
    let send = |query: &'static str, variables: Value| {
        let http = http.clone();
        let url = cluster.gateway_url.clone();
        async move {
            let response: Value = http
                .post(url)
                .header("x-portal-tenant-id", seed.tenant_id.to_string())
                .header("x-portal-user-id", seed.carol_id.to_string())
                .header("x-portal-roles", "customer_user")
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(response.get("errors").is_none(), "{response}");
            Ok::<Value, anyhow::Error>(response)
        }
    };

    let tenth = first + chrono::Duration::seconds(args.rows - args.rows / 10);
    let mut runs = Vec::new();
    for posted_from in [Some(tenth), None] {
        let mut input =
            json!({ "accountId": payroll.id, "dataset": "LEDGER_ENTRIES", "format": "CSV" });
        if let Some(from) = posted_from {
            input["ledgerFilter"] = json!({ "postedFrom": from.to_rfc3339() });
        }
        let started = Instant::now();
        let requested = send(EXPORT, json!({ "input": input })).await?;
        let id = requested["data"]["exportAccountData"]["id"].clone();
        let export = loop {
            let followed = send(FOLLOW, json!({ "id": id })).await?;
            let export = followed["data"]["accountExport"].clone();
            match export["status"].as_str() {
                Some("READY") => break export,
                Some("QUEUED" | "RUNNING") => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => anyhow::bail!("export failed: {export}"),
            }
        };
        let ready = started.elapsed();
        // The link is absolute under the configured public URL; this run's gateway listens
        // elsewhere: keep its path.
        let link = export["file"]["download"]["url"]
            .as_str()
            .unwrap_or_default();
        let path = link.find("/files/").map_or(link, |at| &link[at..]);
        let started = Instant::now();
        let mut response = http.get(format!("{base}{path}")).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "download: {}",
            response.status()
        );
        let mut hasher = Sha256::new();
        let mut bytes = 0_u64;
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let download = started.elapsed();
        let digest = format!("{:x}", hasher.finalize());
        anyhow::ensure!(
            export["file"]["sha256"] == digest.as_str(),
            "the downloaded file's SHA-256 differs"
        );
        runs.push(Run {
            rows: export["rowCount"].as_i64().unwrap_or_default(),
            ready,
            download,
            bytes,
            worker_growth_mib: portal_bench::mib(
                rss(worker, "VmHWM:").saturating_sub(worker_before),
            ),
            gateway_growth_mib: portal_bench::mib(
                rss(gateway, "VmHWM:").saturating_sub(gateway_before),
            ),
        });
    }
    println!(
        "Worker resident before: {:.1} MiB; gateway: {:.1} MiB.\n",
        portal_bench::mib(worker_before),
        portal_bench::mib(gateway_before)
    );
    println!(
        "| rows | file MiB | ready s | download s | worker peak growth MiB | gateway peak growth MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for run in &runs {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            run.rows,
            run.bytes as f64 / 1_048_576.0,
            run.ready.as_secs_f64(),
            run.download.as_secs_f64(),
            run.worker_growth_mib,
            run.gateway_growth_mib
        );
    }
    if let [small, large] = runs.as_slice() {
        println!(
            "\n{}× the rows: worker peak growth {:.2}× the tenth's, gateway {:.2}×.",
            large.rows / small.rows.max(1),
            large.worker_growth_mib / small.worker_growth_mib.max(0.1),
            large.gateway_growth_mib / small.gateway_growth_mib.max(0.1),
        );
    }
    drop(cluster);
    portal_bench::drop_scratch_database(args.database_url.as_deref(), &url).await?;
    Ok(())
}
