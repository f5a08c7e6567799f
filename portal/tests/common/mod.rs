//! Helpers shared by the tests that start `portal` processes.

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A local port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Waits up to a minute for `GET /health` on `port` to answer 200; `log` (when given)
/// is the process's log, shown if it never does.
pub async fn wait_healthy(http: &reqwest::Client, port: u16, log: Option<&std::path::Path>) {
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        let said = log
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "the gateway did not become healthy\n{said}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where a multi-process test keeps its data: a fresh PostgreSQL database (`portal_test_…`,
/// swept by CI) when `PORTAL_TEST_DATABASE_URL` names a server, else an SQLite file in `dir`.
#[allow(dead_code)]
pub async fn database_url(dir: &std::path::Path) -> anyhow::Result<String> {
    use sea_orm::{ConnectionTrait, Database};
    match std::env::var("PORTAL_TEST_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            let name = format!("portal_test_{}", uuid::Uuid::now_v7().simple());
            let db = Database::connect(&admin).await?;
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            db.close().await?;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            Ok(format!("{base}/{name}"))
        }
        _ => Ok(format!(
            "sqlite://{}?mode=rwc",
            dir.join("portal.db").display()
        )),
    }
}

/// The first word after `label` in `line` (the demo identities a process prints).
#[allow(dead_code)]
pub fn value_after<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let start = line.find(label)? + label.len();
    line[start..].split_whitespace().next()
}
