//! `durability`: what SQLite's `synchronous = FULL` (the portal's default: every
//! acknowledged commit is on disk) costs against `NORMAL` (commits reach the disk at WAL
//! checkpoints), measured in the same run on the same disk. Each mode gets a fresh,
//! migrated database file; `--writers` tasks then commit `--commits` write transactions in
//! all, each shaped like a small acknowledged mutation (a job row, an audit event and its domain
//! event in one `BEGIN IMMEDIATE` transaction). Reports commits per second and commit latency, and
//! FULL as a ratio of NORMAL.
//!
//! `cargo run --release -p portal-bench --bin durability -- --commits 4000 --writers 8`

use std::time::{Duration, Instant};

use clap::Parser;
use portal_kit::db::{BeginWrite, SqliteDurability, set_sqlite_durability};
use portal_kit::jobs::{NewJob, enqueue};
use serde_json::json;

/// SQLite durability benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// Write transactions per mode.
    #[arg(long, default_value_t = 4_000)]
    commits: usize,
    /// Concurrent writers (they queue for SQLite's single write lock).
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Directory for the database files (default: a temporary directory; put it on the
    /// disk the portal will use — a tmpfs makes both modes look free).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(
    args: &Args,
    dir: &std::path::Path,
    durability: SqliteDurability,
) -> anyhow::Result<Measured> {
    set_sqlite_durability(durability);
    let path = dir.join(format!("durability-{durability:?}.db"));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = portal::connect_and_migrate(&url, args.writers as u32).await?;
    let per_writer = args.commits / args.writers.max(1);
    let began = Instant::now();
    let writers = (0..args.writers).map(|writer| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for n in 0..per_writer {
                let started = Instant::now();
                let txn = db.begin_write().await?;
                let now = chrono::Utc::now();
                enqueue(
                    &txn,
                    now,
                    NewJob::new("bench.durability", json!({ "writer": writer, "n": n }))
                        .at(now + chrono::Duration::days(1)),
                )
                .await
                .map_err(|err| anyhow::anyhow!("{err:?}"))?;
                portal_kit::audit::AuditEvent::success(
                    "bench.write",
                    "bench",
                    uuid::Uuid::now_v7(),
                )
                .record(&txn, &portal_kit::Actor::anonymous(), &Default::default())
                .await
                .map_err(|err| anyhow::anyhow!("{err:?}"))?;
                txn.commit().await?;
                latencies.push(started.elapsed());
            }
            anyhow::Ok(latencies)
        })
    });
    let mut latencies = Vec::with_capacity(args.commits);
    for writer in writers.collect::<Vec<_>>() {
        latencies.extend(writer.await??);
    }
    let took = began.elapsed();
    db.close().await?;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Measured {
        per_second: latencies.len() as f64 / took.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.commits > 0 && args.writers > 0, "nothing to measure");
    let scratch = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    println!("# SQLite durability benchmark");
    println!(
        "{} write transactions per mode, {} writers, files in {}\n",
        args.commits,
        args.writers,
        if args.dir.is_some() {
            "the given directory"
        } else {
            "a temporary directory"
        }
    );
    // NORMAL first, as the baseline; each mode on a fresh file.
    let normal = measure(&args, &dir, SqliteDurability::Normal).await?;
    let full = measure(&args, &dir, SqliteDurability::Full).await?;
    println!("| synchronous | commits/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for (name, m) in [("NORMAL", &normal), ("FULL (default)", &full)] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            m.per_second,
            m.p50.as_secs_f64() * 1e3,
            m.p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "\nFULL commits at {:.2}× the rate of NORMAL (p99 {:.2}×)",
        full.per_second / normal.per_second,
        full.p99.as_secs_f64() / normal.p99.as_secs_f64().max(1e-9)
    );
    Ok(())
}
