//! Worker processes for real: `portal serve worker` is killed with SIGKILL in the middle of
//! a job, and another worker process finishes it after the lease — nothing is lost.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, wait_healthy};
use portal_entities::platform::{email_outbox, job};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

const SECRET: &str = "worker-test-secret-worker-test-secret!";

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn worker(
    url: &str,
    dir: &std::path::Path,
    smtp: Option<String>,
    port: u16,
) -> anyhow::Result<Child> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portal"));
    command
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("PORTAL_DATA_KEY", SECRET)
        .env("PORTAL_JOB_LEASE_SECS", "2")
        .env("RUST_LOG", "warn")
        .env_remove("PORTAL_SMTP_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .args(["serve", "worker", "--listen", &format!("127.0.0.1:{port}")]);
    if let Some(smtp) = smtp {
        command.env("PORTAL_SMTP_URL", smtp);
    }
    Ok(command.spawn()?)
}

async fn wait_for(
    what: &str,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    // The dead worker's hold on the message (25 s, beyond the SMTP timeout) must run out.
    let deadline = Instant::now() + Duration::from_secs(75);
    while !check().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_nothing_another_worker_finishes_it() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("portal-workers-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = common::database_url(&dir).await?;
    let db = portal::connect_and_migrate(&url, 2).await?;
    let key = portal_kit::secret::DataKey::from_secret(SECRET.as_bytes());
    portal_kit::mail::enqueue(
        &db,
        &key,
        None,
        portal_kit::mail::Email {
            to: "carol@acme.example".into(),
            subject: "Survives a crash".into(),
            text: "Delivered in the end.".into(),
            unsubscribe: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // An SMTP server that accepts and then never answers: the first worker hangs on it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let http = reqwest::Client::new();
    let first_port = free_port();
    let mut first = Killed(vec![worker(
        &url,
        &dir,
        Some(format!("smtp://127.0.0.1:{silent_port}")),
        first_port,
    )?]);
    wait_healthy(&http, first_port, None).await;
    wait_for("the first worker to hold the job", async || {
        let jobs = job::Entity::find().all(&db).await?;
        Ok(jobs.iter().any(|j| j.state == "running"))
    })
    .await?;
    // SIGKILL: no chance to record anything.
    for child in &mut first.0 {
        child.kill()?;
        child.wait()?;
    }
    first.0.clear();

    let second_port = free_port();
    let _second = Killed(vec![worker(&url, &dir, None, second_port)?]);
    wait_healthy(&http, second_port, None).await;
    // Delivered, and its job finished (the worker records the two one after the other).
    wait_for("the second worker to deliver", async || {
        let row = email_outbox::Entity::find().one(&db).await?;
        let finished = job::Entity::find()
            .filter(job::Column::Kind.eq(portal_kit::mail::DELIVER_KIND))
            .filter(job::Column::State.is_in(["succeeded", "dead"]))
            .one(&db)
            .await?;
        Ok(row.is_some_and(|r| r.sent_at.is_some()) && finished.is_some())
    })
    .await?;
    // Only the delivery: a scheduled job (the quarter-hourly purge of expired files) may
    // have come due meanwhile.
    let jobs = job::Entity::find()
        .filter(job::Column::Kind.eq(portal_kit::mail::DELIVER_KIND))
        .all(&db)
        .await?;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].state, "succeeded", "{jobs:?}");
    // The dead worker's attempt, then the survivor's: once waiting for the dead worker's
    // hold on the message to run out, once sending.
    assert!(jobs[0].attempts >= 2, "{jobs:?}");
    // The mail directory next to the database (or ./data/mail) holds exactly one message.
    let mails: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(std::fs::read_to_string(&mails[0])?.contains("Survives a crash"));
    held.abort();
    db.close().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
