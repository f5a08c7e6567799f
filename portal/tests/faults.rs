//! Faults the portal must survive without losing what it acknowledged: PostgreSQL restarting
//! under write load. The test runs a private PostgreSQL cluster of its own (`initdb`,
//! `pg_ctl`) — never the shared server other tests use — and an all-in-one `portal`
//! process on it; while clients keep creating threads, the cluster is restarted as if it
//! crashed (an immediate shutdown). The pool
//! recovers (writes succeed again after the restart), and every thread whose creation was
//! acknowledged is in the database afterwards, checked by id.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, value_after, wait_healthy};
use serde_json::{Value, json};

/// The newest PostgreSQL server binaries installed (Debian's layout), if any.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort_by_key(|path| {
        path.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

/// A command of the cluster's: as the `postgres` user when this process is root (the
/// server refuses to run as root).
fn as_owner(bin: &Path, tool: &str) -> Command {
    let path = bin.join(tool);
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

/// A private cluster on `port`, stopped when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(bin: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let port = free_port();
        let root_owned = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        if root_owned {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(owned.success(), "chown of the cluster's directory failed");
        }
        let made = as_owner(bin, "initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        anyhow::ensure!(
            made.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let cluster = Self {
            bin: bin.to_owned(),
            data,
            port,
            _dir: dir,
        };
        cluster.ctl(&["start"])?;
        Ok(cluster)
    }

    fn ctl(&self, action: &[&str]) -> anyhow::Result<()> {
        let log = self
            .data
            .parent()
            .map(|d| d.join("server.log"))
            .unwrap_or_default();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.data
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
        let done = as_owner(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "-t", "60"])
            .args(action)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        anyhow::ensure!(
            done.status.success(),
            "pg_ctl {action:?}: {}\n{}",
            String::from_utf8_lossy(&done.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Ok(())
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop", "-m", "fast"]);
    }
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var_os("PORTAL_TEST_PRIVATE_POSTGRES_REQUIRED").is_none(),
            "PostgreSQL's server binaries (initdb, pg_ctl) are required"
        );
        eprintln!("skipping: no PostgreSQL server binaries");
        return Ok(());
    };
    portal::install_crypto_provider();
    let cluster = Cluster::start(&bin)?;
    {
        use sea_orm::ConnectionTrait as _;
        let admin = sea_orm::Database::connect(cluster.url("postgres")).await?;
        admin.execute_unprepared("CREATE DATABASE portal").await?;
        admin.close().await?;
    }
    let url = cluster.url("portal");
    let port = free_port();
    let dir = tempfile::tempdir()?;
    let printed = dir.path().join("stdout.log");
    let logged = dir.path().join("stderr.log");
    let portal = Killed(
        Command::new(env!("CARGO_BIN_EXE_portal"))
            .env("DATABASE_URL", &url)
            .env(
                "PORTAL_DATA_KEY",
                "fault-test-secret-fault-test-secret-fault",
            )
            .env("PORTAL_RATE_LIMITS", "off")
            .env("RUST_LOG", "warn")
            .args(["serve", "--demo", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&printed)?)
            .stderr(std::fs::File::create(&logged)?)
            .spawn()?,
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_healthy(&http, port, Some(&logged)).await;
    let stdout = std::fs::read_to_string(&printed)?;
    let carol = stdout
        .lines()
        .find(|l| l.contains("carol@acme.example") && l.contains("x-portal-user-id:"))
        .ok_or_else(|| anyhow::anyhow!("no demo identities: {stdout}"))?;
    let value_after = |label: &str| value_after(carol, label).unwrap_or_default().to_owned();
    let (tenant, user) = (
        value_after("x-portal-tenant-id:"),
        value_after("x-portal-user-id:"),
    );

    // Four clients create threads until told to stop; each acknowledged id is kept.
    #[derive(Default)]
    struct Outcomes {
        acknowledged: Vec<(Instant, String)>,
        refused: usize,
    }
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (http, outcomes, stop) = (http.clone(), outcomes.clone(), stop.clone());
            let (tenant, user) = (tenant.clone(), user.clone());
            let endpoint = format!("http://127.0.0.1:{port}/graphql");
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    n += 1;
                    let answer = http
                        .post(&endpoint)
                        .header("x-portal-tenant-id", &tenant)
                        .header("x-portal-user-id", &user)
                        .header("x-portal-roles", "customer_user")
                        .json(&json!({
                            "query": "mutation($s: String!) { createThread(input: { subject: $s, body: \"under load\" }) { id } }",
                            "variables": { "s": format!("fault {client}-{n}") },
                        }))
                        .send()
                        .await;
                    let body: Value = match answer {
                        Ok(answer) => answer.json().await.unwrap_or_default(),
                        Err(_) => Value::Null,
                    };
                    let mut outcomes = outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match body["data"]["createThread"]["id"].as_str() {
                        Some(id) if body["errors"].is_null() => {
                            outcomes.acknowledged.push((Instant::now(), id.to_owned()));
                        }
                        _ => outcomes.refused += 1,
                    }
                }
            })
        })
        .collect();
    let acknowledged = |outcomes: &Arc<Mutex<Outcomes>>| {
        outcomes
            .lock()
            .map(|o| o.acknowledged.len())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged(&outcomes) < 20 {
        anyhow::ensure!(Instant::now() < deadline, "no writes before the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Restart the cluster under load as if it crashed (an immediate shutdown: no
    // checkpoint, connections cut; it recovers from its WAL at start).
    let restarted_at = Instant::now();
    cluster.ctl(&["restart", "-m", "immediate"])?;
    let back = Instant::now();

    // The pool recovers: writes are acknowledged again after the restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after = outcomes
            .lock()
            .map(|o| o.acknowledged.iter().filter(|(at, _)| *at > back).count())
            .unwrap_or_default();
        if after >= 20 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "writes did not recover after the restart:\n{}",
            std::fs::read_to_string(&logged).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    for client in clients {
        client.await?;
    }
    let outcomes = std::mem::take(
        &mut *outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let ids: Vec<uuid::Uuid> = outcomes
        .acknowledged
        .iter()
        .filter_map(|(_, id)| uuid::Uuid::parse_str(id).ok())
        .collect();
    assert_eq!(ids.len(), outcomes.acknowledged.len(), "ids are UUIDs");
    assert!(
        outcomes
            .acknowledged
            .iter()
            .any(|(at, _)| *at < restarted_at),
        "writes before the restart"
    );
    assert!(outcomes.refused > 0, "the restart interrupted nothing");

    // Every acknowledged thread is in the database.
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
    let db = sea_orm::Database::connect(&url).await?;
    let stored = portal_entities::messages::thread::Entity::find()
        .filter(portal_entities::messages::thread::Column::Id.is_in(ids.clone()))
        .all(&db)
        .await?;
    let stored: std::collections::HashSet<uuid::Uuid> = stored.into_iter().map(|t| t.id).collect();
    let lost: Vec<&uuid::Uuid> = ids.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    eprintln!(
        "{} writes acknowledged (all stored), {} refused during the restart",
        ids.len(),
        outcomes.refused
    );
    db.close().await?;
    drop(portal);
    drop(cluster);
    Ok(())
}
