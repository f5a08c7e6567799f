//! A serving `portal` process as its operators see it: `/health` and `/ready`, Prometheus
//! metrics on a listener of their own, JSON logs, and a graceful shutdown on SIGTERM —
//! not ready at once, still serving during the configured delay, then drained and gone
//! within the grace period.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{database_url, free_port, value_after, wait_healthy};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_reports_readiness_and_metrics_and_stops_gracefully() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("portal-operations-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = database_url(&dir).await?;
    let (port, metrics_port) = (free_port(), free_port());
    let stdout_path = dir.join("stdout.log");
    let stderr_path = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portal"))
        .env("DATABASE_URL", &url)
        .env("PORTAL_DATA_KEY", "operations-test-secret-operations-test")
        .env("PORTAL_SHUTDOWN_DELAY_SECS", "2")
        .env("PORTAL_SHUTDOWN_GRACE_SECS", "10")
        .env("RUST_LOG", "info")
        .args(["--log-format", "json", "serve", "--demo", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path)?)
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()?;
    let http = reqwest::Client::new();
    wait_healthy(&http, port, Some(&stderr_path)).await;
    let base = format!("http://127.0.0.1:{port}");

    let ready = http.get(format!("{base}/ready")).send().await?;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await?, json!({ "status": "ready" }));

    // Carol's demo identity, as the process printed it.
    let printed = std::fs::read_to_string(&stdout_path)?;
    let carol = printed
        .lines()
        .find(|l| l.contains("carol@acme.example") && l.contains("x-portal-user-id:"))
        .ok_or_else(|| anyhow::anyhow!("no demo identities printed: {printed}"))?;
    let tenant = value_after(carol, "x-portal-tenant-id:").unwrap_or_default();
    let user = value_after(carol, "x-portal-user-id:").unwrap_or_default();
    let query =
        json!({ "query": "query Accounts { accounts(first: 2) { edges { node { number } } } }" });
    for _ in 0..2 {
        let answer: Value = http
            .post(format!("{base}/graphql"))
            .header("x-portal-tenant-id", tenant)
            .header("x-portal-user-id", user)
            .header("x-portal-roles", "customer_user")
            .header("x-request-id", "operations-test-1")
            .json(&query)
            .send()
            .await?
            .json()
            .await?;
        assert!(answer["errors"].is_null(), "{answer}");
    }
    let refused = http
        .post(format!("{base}/graphql"))
        .bearer_auth("not-a-token")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await?;
    assert_eq!(refused.status(), 401);

    // Metrics are on their own listener, not on the public one.
    assert_eq!(
        http.get(format!("{base}/metrics")).send().await?.status(),
        404
    );
    let metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for series in [
        "portal_graphql_operations_total{operation=\"Accounts\",type=\"query\",outcome=\"ok\"} 2",
        "portal_graphql_operation_duration_seconds_count{operation=\"Accounts\",type=\"query\",outcome=\"ok\"} 2",
        "portal_plan_cache_lookups_total{result=\"hit\"}",
        "portal_plan_cache_lookups_total{result=\"miss\"}",
        "portal_auth_failures_total{reason=\"token_invalid\"} 1",
        "portal_subgraph_fetch_duration_seconds_count{subgraph=\"accounts\",outcome=\"ok\"}",
        "portal_http_requests_total{route=\"/graphql\",status=\"401\"} 1",
        "portal_db_connections{state=\"max\"}",
        "portal_admission_running 0",
        "# HELP portal_graphql_operations_total",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }

    // SIGTERM: not ready at once, while still serving during the delay…
    let pid = child.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status()?;
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut saw_unready = false;
    while Instant::now() < deadline {
        if let Ok(answer) = http.get(format!("{base}/ready")).send().await
            && answer.status() == 503
        {
            let said: Value = answer.json().await?;
            assert_eq!(said["failed"]["process"], "shutting down", "{said}");
            saw_unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_unready, "/ready never said 503 after SIGTERM");
    assert_eq!(
        http.get(format!("{base}/health")).send().await?.status(),
        200
    );
    // …then it exits cleanly within the delay and the grace period.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("still running 20 s after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");

    // Every log line is JSON, and the shutdown is logged from start to end.
    let logs = std::fs::read_to_string(&stderr_path)?;
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| {
            serde_json::from_str(line).map_err(|err| anyhow::anyhow!("not JSON: {line}: {err}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(messages.contains(&"shutting down"), "{logs}");
    assert!(messages.contains(&"stopped"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Whether a Redis server answers at 127.0.0.1:6379; without one the Redis test is
/// skipped, unless `PORTAL_TEST_REDIS_REQUIRED` is set (CI sets it, and starts Redis).
fn redis_is_up() -> bool {
    let up = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], 6379)),
        Duration::from_secs(1),
    )
    .is_ok();
    assert!(
        up || std::env::var_os("PORTAL_TEST_REDIS_REQUIRED").is_none(),
        "Redis is required at 127.0.0.1:6379"
    );
    up
}

struct Killed(Vec<std::process::Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two gateway replicas (all-in-one processes over one database) share one rate limit
/// per user through Redis: a user's burst is spent across both, the next request is
/// refused with `429`, `Retry-After` and the `RateLimit` headers, and another user of the
/// same tenant is still let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_rate_limits_through_redis() -> anyhow::Result<()> {
    if !redis_is_up() {
        eprintln!("skipping: no Redis at 127.0.0.1:6379");
        return Ok(());
    }
    portal::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("portal-limits-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = database_url(&dir).await?;
    let config = dir.join("portal.toml");
    std::fs::write(
        &config,
        "[gateway.rate_limits]\n\
         redis_url = \"redis://127.0.0.1:6379\"\n\
         per_user = { per_second = 0.5, burst = 3 }\n\
         per_ip = { per_second = 1000, burst = 1000 }\n",
    )?;
    let start = |port: u16, out: &std::path::Path| -> anyhow::Result<std::process::Child> {
        Ok(Command::new(env!("CARGO_BIN_EXE_portal"))
            .env("DATABASE_URL", &url)
            .env("PORTAL_CONFIG", &config)
            .env("PORTAL_DATA_KEY", "limits-test-secret-limits-test-secret")
            .env("RUST_LOG", "warn")
            .args(["serve", "--demo", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(out)?)
            .stderr(Stdio::inherit())
            .spawn()?)
    };
    let http = reqwest::Client::new();
    let (first, second) = (free_port(), free_port());
    let printed = dir.join("first.out");
    let mut processes = Killed(vec![start(first, &printed)?]);
    wait_healthy(&http, first, None).await;
    // The second replica starts on the seeded database.
    processes.0.push(start(second, &dir.join("second.out"))?);
    wait_healthy(&http, second, None).await;

    let stdout = std::fs::read_to_string(&printed)?;
    let identity = |email: &str| -> anyhow::Result<(String, String)> {
        let line = stdout
            .lines()
            .find(|l| l.contains(email) && l.contains("x-portal-user-id:"))
            .ok_or_else(|| anyhow::anyhow!("{email} not printed: {stdout}"))?;
        Ok((
            value_after(line, "x-portal-tenant-id:")
                .unwrap_or_default()
                .to_owned(),
            value_after(line, "x-portal-user-id:")
                .unwrap_or_default()
                .to_owned(),
        ))
    };
    let (tenant, carol) = identity("carol@acme.example")?;
    let (_, bob) = identity("bob@acme.example")?;
    let ask = |port: u16, user: &str, role: &str| {
        http.post(format!("http://127.0.0.1:{port}/graphql"))
            .header("x-portal-tenant-id", &tenant)
            .header("x-portal-user-id", user)
            .header("x-portal-roles", role)
            .json(&json!({ "query": "{ me { email } }" }))
            .send()
    };
    // Carol's burst of three, spent across both replicas.
    // (Each request moves the limit's reset two seconds further: 0.5 per second.)
    for (port, remaining, reset) in [(first, 2, 2), (second, 1, 4), (first, 0, 6)] {
        let answer = ask(port, &carol, "customer_user").await?;
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer
                .headers()
                .get("ratelimit")
                .and_then(|v| v.to_str().ok()),
            Some(format!("\"user\";r={remaining};t={reset}").as_str())
        );
    }
    let refused = ask(second, &carol, "customer_user").await?;
    assert_eq!(refused.status(), 429);
    let header = |name: &str| {
        refused
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry: u64 = header("retry-after").unwrap_or_default().parse()?;
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        header("ratelimit-policy").as_deref(),
        Some("\"user\";q=3;w=6")
    );
    assert!(header("ratelimit").is_some_and(|v| v.starts_with("\"user\";r=0;")));
    let body: Value = refused.json().await?;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["scope"], "user", "{body}");
    // Bob, of the same tenant, is let in on either replica.
    assert_eq!(ask(first, &bob, "billing_admin").await?.status(), 200);
    assert_eq!(ask(second, &bob, "billing_admin").await?.status(), 200);
    // Two seconds later Carol has one request again (0.5 per second).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(ask(second, &carol, "customer_user").await?.status(), 200);
    assert_eq!(ask(first, &carol, "customer_user").await?.status(), 429);
    drop(processes);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
