//! `jobs`: throughput of the job runner on a real database. Enqueues N trivial jobs, lets
//! W workers (each with its own connection pool, as separate processes would have) drain
//! them, and sets the rate beside a baseline measured in the same run: the least SQL a job
//! needs (an insert and two single-row updates) issued one statement at a time on one
//! connection. The runner batches claims and runs a batch concurrently, so the ratio shows
//! what batching and parallel workers buy over the naive loop on this database — not the
//! runner's overhead. The run is timed from the first claim (pools already open) until
//! every job has been recorded as succeeded.
//!
//! `cargo run --release -p portal-bench --bin jobs -- --database-url postgres://… --jobs 20000`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler, Runner};
use portal_kit::jobs::{NewJob, enqueue};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;

/// Job runner benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// A database to create a scratch database in (`postgres://…/postgres`), or an SQLite
    /// URL; default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Jobs to run.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Worker count.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Jobs each worker claims at once.
    #[arg(long, default_value_t = 32)]
    batch: u64,
}

struct Count(AtomicU64);

#[async_trait::async_trait]
impl JobHandler for Count {
    async fn run(&self, _job: &JobContext) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = portal_bench::scratch_database(args.database_url.as_deref(), "jobs").await?;
    let db = portal::connect_and_migrate(&url, 8).await?;
    println!(
        "# job runner benchmark ({})",
        db.get_database_backend().as_str()
    );
    println!(
        "{} jobs, {} workers, batches of {}\n",
        args.jobs, args.workers, args.batch
    );

    // Baseline: the least SQL a job needs, in a plain loop on one connection.
    let baseline_jobs = (args.jobs / 4).max(1_000);
    let started = Instant::now();
    for _ in 0..baseline_jobs {
        let id = uuid::Uuid::now_v7();
        let backend = db.get_database_backend();
        let now = chrono::Utc::now();
        let statements = [
            sea_orm::Statement::from_sql_and_values(
                backend,
                placeholders(
                    backend,
                    "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, created_at, updated_at) VALUES (?, 'bench.base', '{}', 'queued', 0, 8, ?, ?, ?)",
                ),
                [id.into(), now.into(), now.into(), now.into()],
            ),
            sea_orm::Statement::from_sql_and_values(
                backend,
                placeholders(
                    backend,
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1 WHERE id = ?",
                ),
                [id.into()],
            ),
            sea_orm::Statement::from_sql_and_values(
                backend,
                placeholders(backend, "UPDATE jobs SET state = 'succeeded' WHERE id = ?"),
                [id.into()],
            ),
        ];
        for statement in statements {
            db.execute_raw(statement).await?;
        }
    }
    let baseline = baseline_jobs as f64 / started.elapsed().as_secs_f64();
    println!("baseline (insert + 2 updates per job, one loop): {baseline:.0} jobs/s");

    let started = Instant::now();
    for n in 0..args.jobs {
        enqueue(
            &db,
            chrono::Utc::now(),
            NewJob::new("bench.noop", json!({ "n": n })),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let enqueued = args.jobs as f64 / started.elapsed().as_secs_f64();
    println!("enqueue (one loop):                             {enqueued:.0} jobs/s");

    let count = Arc::new(Count(AtomicU64::new(0)));
    let mut runners = Vec::new();
    for _ in 0..args.workers {
        let pool = portal_kit::db::connect(&url, 8).await?;
        runners.push(Arc::new(
            Runner::new(pool, portal_kit::clock::system())
                .handle("bench.noop", count.clone())
                .batch(args.batch)
                .poll(Duration::from_millis(5)),
        ));
    }
    let started = Instant::now();
    let tasks: Vec<_> = runners.into_iter().map(|runner| runner.spawn()).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while succeeded(&db).await? < args.jobs {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the jobs did not drain in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ran = args.jobs as f64 / started.elapsed().as_secs_f64();
    for task in tasks {
        task.abort();
    }
    println!(
        "run ({} workers, claim + run + record):        {ran:.0} jobs/s",
        args.workers
    );
    println!(
        "\nthe runner drains at {:.0}% of the baseline's rate",
        ran / baseline * 100.0
    );
    db.close().await?;
    portal_bench::drop_scratch_database(args.database_url.as_deref(), &url).await?;
    Ok(())
}

/// Jobs recorded as succeeded.
async fn succeeded(db: &DatabaseConnection) -> anyhow::Result<u64> {
    use portal_entities::platform::job;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    Ok(job::Entity::find()
        .filter(job::Column::Kind.eq("bench.noop"))
        .filter(job::Column::State.eq("succeeded"))
        .count(db)
        .await?)
}

/// `?` placeholders as the backend writes them.
fn placeholders(backend: sea_orm::DatabaseBackend, sql: &str) -> String {
    if backend != sea_orm::DatabaseBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}
