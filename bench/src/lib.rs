//! What the benchmark binaries share: finding the `portal` binary, free ports, waiting
//! for health, reading a process's memory, and scratch databases.

pub mod processes;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection};

/// The `portal` binary built next to the running benchmark binary.
pub fn portal_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let candidate = exe.with_file_name("portal");
    anyhow::ensure!(
        candidate.exists(),
        "no `portal` binary next to {} — build both: cargo build --release -p portal -p portal-bench",
        exe.display()
    );
    Ok(candidate)
}

/// A local port nobody listens on (right now).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `url` answers with a success status, for at most `within`.
pub async fn wait_healthy(url: &str, within: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} did not become healthy");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A memory figure of process `pid` from `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …), in
/// KiB (Linux only).
pub fn memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A fresh database for a run: a new PostgreSQL database next to `admin`
/// (`postgres://…/postgres`), `admin` itself when it is another URL, or a temporary SQLite
/// file named after `label`.
pub async fn scratch_database(admin: Option<&str>, label: &str) -> anyhow::Result<String> {
    match admin {
        Some(url) if url.starts_with("postgres") => {
            let name = format!("portal_bench_{}", uuid::Uuid::now_v7().simple());
            let db: DatabaseConnection = sea_orm::Database::connect(url).await?;
            db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await?;
            db.close().await?;
            let (base, _) = url.rsplit_once('/').unwrap_or((url, ""));
            Ok(format!("{base}/{name}"))
        }
        Some(url) => Ok(url.to_owned()),
        None => {
            let dir =
                std::env::temp_dir().join(format!("portal-bench-{label}-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&dir)?;
            Ok(format!(
                "sqlite://{}?mode=rwc",
                dir.join(format!("{label}.db")).display()
            ))
        }
    }
}

/// Drops the scratch database `url` made next to `admin` by [`scratch_database`] (nothing
/// for SQLite files, which live in the temporary directory).
pub async fn drop_scratch_database(admin: Option<&str>, url: &str) -> anyhow::Result<()> {
    if let Some(admin) = admin.filter(|u| u.starts_with("postgres"))
        && url != admin
        && let Some((_, name)) = url.rsplit_once('/')
    {
        let db = sea_orm::Database::connect(admin).await?;
        db.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
        db.close().await?;
    }
    Ok(())
}

/// Kibibytes as mebibytes.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Inserts `rows` charges into `account`, one a second ending now, 1 000 per statement,
/// each with `description`; the first one's posting time.
pub async fn load_ledger(
    db: &DatabaseConnection,
    account: &portal_entities::accounts::account::Model,
    rows: i64,
    description: &str,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    use portal_entities::accounts::ledger_entry;
    use sea_orm::{EntityTrait, Set};
    let now = chrono::Utc::now();
    let first = now - chrono::Duration::seconds(rows + 10);
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..rows {
        batch.push(ledger_entry::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            tenant_id: Set(account.tenant_id),
            account_id: Set(account.id),
            kind: Set("CHARGE".into()),
            source: Set("BILLING_SYNC".into()),
            amount_e4: Set(-12_500),
            balance_after_e4: Set(-12_500 * (i + 1)),
            currency: Set(account.currency.clone()),
            posted_at: Set(first + chrono::Duration::seconds(i)),
            reference: Set(Some(format!("INV-{i:08}"))),
            description: Set(Some(description.to_owned())),
            invoice_id: Set(None),
            payment_id: Set(None),
            idempotency_key: Set(None),
            request_hash: Set(None),
            created_by: Set(None),
            created_at: Set(now),
        });
        if batch.len() == 1_000 {
            ledger_entry::Entity::insert_many(std::mem::take(&mut batch))
                .exec(db)
                .await?;
        }
    }
    if !batch.is_empty() {
        ledger_entry::Entity::insert_many(batch).exec(db).await?;
    }
    Ok(first)
}
