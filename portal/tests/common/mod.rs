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
