//! Process-per-role deployment, for real: the `portal` binary is started six times (five
//! subgraphs and a gateway, each its own OS process on its own port), and one operation
//! through the gateway reaches data owned by all five.
//!
//! Lives in the `portal` package because only here Cargo hands the test the path of the
//! binary it built (`CARGO_BIN_EXE_portal`). Uses a SQLite file shared by the processes, or
//! a fresh PostgreSQL database when `PORTAL_TEST_DATABASE_URL` is set.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{database_url, free_port, value_after, wait_healthy};
use serde_json::{Value, json};

const SECRET: &str = "process-test-secret-process-test-secret";
const ROLES: [&str; 5] = [
    "identity",
    "accounts",
    "reports",
    "messages",
    "integrations",
];

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn portal() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portal"));
    command
        .env("PORTAL_INTERNAL_TOKEN_SECRET", SECRET)
        .env("PORTAL_DATA_KEY", SECRET)
        .env("PORTAL_PUBLIC_URL", "http://127.0.0.1:4000")
        .env("RUST_LOG", "warn")
        // The fault test's clients ask as fast as they can, from one address.
        .env("PORTAL_RATE_LIMITS", "off")
        .stdin(Stdio::null());
    command
}

#[test]
fn authorization_that_enforces_nothing_is_refused_for_the_portals_own_subgraphs()
-> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("portal-no-authz-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("portal.db").display());
    for mode in ["dry_run", "off"] {
        let output = portal()
            .env("DATABASE_URL", &url)
            .env("PORTAL_AUTHORIZATION", mode)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{mode} started");
        assert!(stderr.contains("enforces nothing"), "{mode}: {stderr}");
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn processes_that_send_mail_refuse_to_start_without_a_public_url() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("portal-no-url-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("portal.db").display());
    for role in [None, Some("identity")] {
        let port = free_port().to_string();
        let mut command = portal();
        command
            .env_remove("PORTAL_PUBLIC_URL")
            .env("DATABASE_URL", &url)
            .arg("serve");
        if let Some(role) = role {
            command.arg(role);
        }
        let output = command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{role:?} started");
        assert!(stderr.contains("PORTAL_PUBLIC_URL"), "{role:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_subgraphs_as_separate_processes_answer_one_operation() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("portal-processes-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = database_url(&dir).await?;

    let seeded = portal().env("DATABASE_URL", &url).arg("seed").output()?;
    assert!(
        seeded.status.success(),
        "seed failed: {}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let stdout = String::from_utf8_lossy(&seeded.stdout);
    let carol = stdout
        .lines()
        .find(|l| l.contains("carol") && l.contains("x-portal-user-id:"))
        .expect("seed prints carol");
    let tenant = value_after(carol, "x-portal-tenant-id:")
        .expect("tenant id")
        .to_owned();
    let user = value_after(carol, "x-portal-user-id:")
        .expect("user id")
        .to_owned();
    let alice = stdout
        .lines()
        .find(|l| l.contains("alice") && l.contains("x-portal-user-id:"))
        .and_then(|l| value_after(l, "x-portal-user-id:"))
        .expect("seed prints alice")
        .to_owned();

    let mut processes = Processes(Vec::new());
    let mut gateway = portal();
    gateway.env("DATABASE_URL", &url);
    let mut composer = portal();
    // Every process knows every subgraph's URL: the gateway to route, the subgraphs to
    // check references to each other's entities.
    let ports: Vec<(&str, u16)> = ROLES.iter().map(|role| (*role, free_port())).collect();
    let peers: Vec<(String, String)> = ports
        .iter()
        .map(|(role, port)| {
            (
                format!("PORTAL_SUBGRAPH_{}_URL", role.to_uppercase()),
                format!("http://127.0.0.1:{port}/graphql"),
            )
        })
        .collect();
    for (role, port) in &ports {
        processes.0.push(
            portal()
                .env("DATABASE_URL", &url)
                .envs(peers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .args(["serve", role, "--listen", &format!("127.0.0.1:{port}")])
                .spawn()?,
        );
    }
    for (variable, url) in &peers {
        gateway.env(variable, url);
        composer.env(variable, url);
    }
    let gateway_port = free_port();
    let metrics_port = free_port();
    processes.0.push(
        gateway
            .args([
                "serve",
                "gateway",
                "--demo",
                "--listen",
                &format!("127.0.0.1:{gateway_port}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            // Its warnings while a subgraph is killed are many: kept in the test's dir.
            .stderr(std::fs::File::create(dir.join("gateway.log"))?)
            .spawn()?,
    );

    let http = reqwest::Client::new();
    wait_healthy(&http, gateway_port, None).await;
    carol_sees_all_five_subgraphs(&http, gateway_port, &tenant, &user).await?;
    carol_signs_in_and_uses_her_token(&http, gateway_port).await?;

    // A gateway given a supergraph file reaches the subgraphs at the URLs it names (no
    // subgraph URLs configured for it).
    let schema_dir = dir.join("schema");
    let composed = composer
        .args(["compose", "--out", &schema_dir.display().to_string()])
        .output()?;
    assert!(
        composed.status.success(),
        "{}",
        String::from_utf8_lossy(&composed.stderr)
    );
    let file_gateway_port = free_port();
    processes.0.push(
        portal()
            .env("DATABASE_URL", &url)
            .args(["serve", "gateway", "--demo", "--listen"])
            .arg(format!("127.0.0.1:{file_gateway_port}"))
            .arg("--supergraph")
            .arg(schema_dir.join("supergraph.graphql"))
            .spawn()?,
    );
    wait_healthy(&http, file_gateway_port, None).await;
    carol_sees_all_five_subgraphs(&http, file_gateway_port, &tenant, &user).await?;
    // A change made through one gateway replica reaches a subscriber of the other, through
    // the accounts process's stream (server-sent events) and identity's entity call.
    let ids = Ids {
        tenant: &tenant,
        carol: &user,
        alice: &alice,
    };
    a_change_through_one_gateway_reaches_a_subscriber_of_another(
        &http,
        (gateway_port, file_gateway_port),
        &ids,
    )
    .await?;

    // Messages' process is killed (SIGKILL) under load, and started again.
    let messages = ROLES.iter().position(|r| *r == "messages").unwrap_or(3);
    let messages_port = ports[messages].1;
    let restart = || {
        portal()
            .env("DATABASE_URL", &url)
            .envs(peers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["serve", "messages", "--listen"])
            .arg(format!("127.0.0.1:{messages_port}"))
            .spawn()
    };
    a_killed_subgraph_degrades_answers_and_recovers(
        &http,
        (gateway_port, metrics_port),
        &ids,
        &mut processes.0[messages],
        restart,
    )
    .await?;

    drop(processes);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `kill -9` of the messages subgraph while four clients keep asking for data of two
/// subgraphs: the gateway keeps answering (identity's part, with an error naming
/// messages for the rest), says it is not ready, and answers in full again once the
/// subgraph is back — no request fails outright at any point.
async fn a_killed_subgraph_degrades_answers_and_recovers(
    http: &reqwest::Client,
    (gateway_port, metrics_port): (u16, u16),
    ids: &Ids<'_>,
    messages: &mut Child,
    restart: impl Fn() -> std::io::Result<Child>,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let endpoint = format!("http://127.0.0.1:{gateway_port}/graphql");
    let ready = format!("http://127.0.0.1:{gateway_port}/ready");
    let query = "{ me { email } inbox: me { threads(first: 1) { edges { node { subject } } } } }";
    #[derive(Default)]
    struct Tally {
        full: AtomicUsize,
        partial: AtomicUsize,
        full_after_restart: AtomicUsize,
        /// Unexpected answers, kept for the assertion message.
        failed: std::sync::Mutex<Vec<String>>,
    }
    impl Tally {
        fn fail(&self, what: String) {
            if let Ok(mut failed) = self.failed.lock() {
                failed.push(what);
            }
        }
    }
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (http, endpoint, tally, stop, restarted) = (
                http.clone(),
                endpoint.clone(),
                tally.clone(),
                stop.clone(),
                restarted.clone(),
            );
            let (tenant, carol) = (ids.tenant.to_owned(), ids.carol.to_owned());
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    let answer = http
                        .post(&endpoint)
                        .header("x-portal-tenant-id", &tenant)
                        .header("x-portal-user-id", &carol)
                        .header("x-portal-roles", "customer_user")
                        .json(&json!({ "query": query }))
                        .send()
                        .await;
                    let body: Value = match answer {
                        Ok(answer) if answer.status() == 200 => {
                            answer.json().await.unwrap_or_default()
                        }
                        Ok(answer) => {
                            tally.fail(format!("HTTP {}", answer.status()));
                            continue;
                        }
                        Err(err) => {
                            tally.fail(format!("no answer: {err}"));
                            continue;
                        }
                    };
                    let email_ok = body["data"]["me"]["email"] == "carol@acme.example";
                    if email_ok && body["errors"].is_null() && body["data"]["inbox"].is_object() {
                        tally.full.fetch_add(1, Ordering::Relaxed);
                        if restarted.load(Ordering::Acquire) {
                            tally.full_after_restart.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if email_ok
                        && body["data"]["inbox"].is_null()
                        && body["errors"].as_array().is_some_and(|errors| {
                            errors
                                .iter()
                                .all(|e| e["extensions"]["serviceName"] == "messages")
                        })
                    {
                        tally.partial.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.fail(body.to_string());
                    }
                }
            })
        })
        .collect();
    let wait_for = |what: &'static str, done: Box<dyn Fn() -> bool>| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            anyhow::ensure!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    };
    let seen = tally.clone();
    wait_for(
        "full answers",
        Box::new(move || seen.full.load(Ordering::Relaxed) > 4),
    )
    .await?;
    assert_eq!(http.get(&ready).send().await?.status(), 200);

    messages.kill()?;
    messages.wait()?;
    let seen = tally.clone();
    wait_for(
        "partial answers",
        Box::new(move || seen.partial.load(Ordering::Relaxed) > 4),
    )
    .await?;
    // Readiness answers from a check at most a second old.
    let said = ready_status(http, &ready, 503).await?;
    assert_eq!(said["failed"]["subgraph messages"], "unavailable", "{said}");

    *messages = restart()?;
    restarted.store(true, Ordering::Release);
    let seen = tally.clone();
    wait_for(
        "full answers after the restart",
        Box::new(move || seen.full_after_restart.load(Ordering::Relaxed) > 4),
    )
    .await?;
    stop.store(true, Ordering::Release);
    for client in clients {
        client.await?;
    }
    ready_status(http, &ready, 200).await?;
    let failed = tally.failed.lock().map(|f| f.clone()).unwrap_or_default();
    assert!(
        failed.is_empty(),
        "{} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );

    // The gateway's metrics saw it: fetch errors for messages, operations by outcome.
    let metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for series in [
        "portal_subgraph_fetch_errors_total{subgraph=\"messages\",code=\"SUBGRAPH_UNAVAILABLE\"}",
        "portal_graphql_operations_total{operation=\"anonymous\",type=\"query\",outcome=\"partial\"}",
        "portal_graphql_operations_total{operation=\"anonymous\",type=\"query\",outcome=\"ok\"}",
        "portal_subgraph_fetch_duration_seconds_count{subgraph=\"identity\",outcome=\"ok\"}",
        "portal_http_requests_total{route=\"/graphql\",status=\"200\"}",
        "portal_db_connections{state=\"max\"}",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    Ok(())
}

/// Polls `ready` until it answers `status` (within 10 s); its body.
async fn ready_status(http: &reqwest::Client, ready: &str, status: u16) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http.get(ready).send().await?;
        if answer.status() == status {
            return Ok(answer.json().await.unwrap_or_default());
        }
        anyhow::ensure!(Instant::now() < deadline, "/ready never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Ids<'a> {
    tenant: &'a str,
    carol: &'a str,
    alice: &'a str,
}

async fn a_change_through_one_gateway_reaches_a_subscriber_of_another(
    http: &reqwest::Client,
    (subscribed_at, changed_at): (u16, u16),
    ids: &Ids<'_>,
) -> anyhow::Result<()> {
    let as_user = |request: reqwest::RequestBuilder, user: &str, role: &str| {
        request
            .header("x-portal-tenant-id", ids.tenant)
            .header("x-portal-user-id", user)
            .header("x-portal-roles", role)
    };
    let listed: Value = as_user(
        http.post(format!("http://127.0.0.1:{subscribed_at}/graphql")),
        ids.carol,
        "customer_user",
    )
    .json(&json!({ "query": "{ me { accounts { edges { node { id number } } } } }" }))
    .send()
    .await?
    .json()
    .await?;
    let account = listed["data"]["me"]["accounts"]["edges"]
        .as_array()
        .and_then(|edges| edges.iter().find(|e| e["node"]["number"] == "ACME-0002"))
        .and_then(|e| e["node"]["id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no ACME-0002: {listed}"))?
        .to_owned();
    let mut stream = as_user(
        http.post(format!("http://127.0.0.1:{subscribed_at}/graphql")),
        ids.carol,
        "customer_user",
    )
    .header("accept", "text/event-stream")
    .json(&json!({
        "query": "subscription($id: ID!) { accountUpdated(id: $id) { name owner { displayName } } }",
        "variables": { "id": account },
    }))
    .send()
    .await?;
    assert_eq!(stream.status(), 200);
    let renamed: Value = as_user(
        http.post(format!("http://127.0.0.1:{changed_at}/graphql")),
        ids.alice,
        "tenant_admin",
    )
    .json(&json!({
        "query": "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"Across processes\" }) { id } }",
        "variables": { "id": account },
    }))
    .send()
    .await?
    .json()
    .await?;
    assert!(renamed["errors"].is_null(), "{renamed}");
    let mut received = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let complete = |r: &str| {
        r.find("event: next")
            .is_some_and(|i| r[i..].contains("\n\n"))
    };
    while !complete(&received) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .map_err(|_| anyhow::anyhow!("no event in time; got {received:?}"))??
            .ok_or_else(|| anyhow::anyhow!("the stream ended; got {received:?}"))?;
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("Across processes"), "{received}");
    assert!(received.contains("Carol Customer"), "{received}");
    Ok(())
}

/// Sign-in through the gateway process reaches the identity process; the gateway
/// verifies the token it returns with the keys identity published in the database.
async fn carol_signs_in_and_uses_her_token(
    http: &reqwest::Client,
    port: u16,
) -> anyhow::Result<()> {
    let endpoint = format!("http://127.0.0.1:{port}/graphql");
    let sign_in = json!({
        "query": "mutation($p: String!) { signIn(input: { tenant: \"acme\", email: \"carol@acme.example\", password: $p }) { auth { accessToken } } }",
        "variables": { "p": portal::seed::DEMO_PASSWORD },
    });
    let response: Value = http
        .post(&endpoint)
        .json(&sign_in)
        .send()
        .await?
        .json()
        .await?;
    let token = response["data"]["signIn"]["auth"]["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("sign-in failed: {response}"))?;
    let me: Value = http
        .post(&endpoint)
        .bearer_auth(token)
        .json(&json!({ "query": "{ me { email } }" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(me["data"]["me"]["email"], "carol@acme.example", "{me}");
    Ok(())
}

async fn carol_sees_all_five_subgraphs(
    http: &reqwest::Client,
    gateway_port: u16,
    tenant: &str,
    user: &str,
) -> anyhow::Result<()> {
    let query = "{ me { email accounts { edges { node { number reports { edges { node { format } } } externalRefs { externalId } } } } threads { edges { node { subject } } } } }";
    let response: Value = http
        .post(format!("http://127.0.0.1:{gateway_port}/graphql"))
        .header("x-portal-tenant-id", tenant)
        .header("x-portal-user-id", user)
        .header("x-portal-roles", "customer_user")
        .json(&json!({ "query": query }))
        .send()
        .await?
        .json()
        .await?;
    let me = &response["data"]["me"];
    assert_eq!(me["email"], "carol@acme.example", "{response}");
    let numbers: Vec<&str> = me["accounts"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["number"].as_str())
        .collect();
    assert_eq!(numbers, ["ACME-0002", "ACME-0003"]);
    assert_eq!(
        me["accounts"]["edges"][0]["node"]["reports"]["edges"][0]["node"]["format"],
        "PDF"
    );
    assert_eq!(
        me["accounts"]["edges"][1]["node"]["externalRefs"][0]["externalId"],
        "SF-0003"
    );
    let subjects: Vec<&str> = me["threads"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["subject"].as_str())
        .collect();
    assert_eq!(
        subjects,
        ["Welcome to the portal", "Question about an invoice"]
    );
    Ok(())
}

/// A field-level policy change made through one gateway process reaches another gateway
/// process over the same database within about a second (LISTEN/NOTIFY on PostgreSQL,
/// polling on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_a_second_gateway_process() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("portal-policy-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = database_url(&dir).await?;
    let seeded = portal().env("DATABASE_URL", &url).arg("seed").output()?;
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let stdout = String::from_utf8_lossy(&seeded.stdout);
    let line = |who: &str| {
        stdout
            .lines()
            .find(|l| l.contains(who) && l.contains("x-portal-user-id:"))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let (alice, carol) = (line("alice"), line("carol"));
    let tenant = value_after(&carol, "x-portal-tenant-id:")
        .unwrap_or_default()
        .to_owned();
    let alice_id = value_after(&alice, "x-portal-user-id:")
        .unwrap_or_default()
        .to_owned();
    let carol_id = value_after(&carol, "x-portal-user-id:")
        .unwrap_or_default()
        .to_owned();

    // Two all-in-one processes (each with its own gateway) over one database.
    let mut processes = Processes(Vec::new());
    let mut ports = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        processes.0.push(
            portal()
                .env("DATABASE_URL", &url)
                .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
                .spawn()?,
        );
        let http = reqwest::Client::new();
        wait_healthy(&http, port, None).await;
        ports.push(port);
    }
    let http = reqwest::Client::new();
    let ask = |port: u16, user: String, roles: &'static str, query: String| {
        let http = http.clone();
        let tenant = tenant.clone();
        async move {
            let response: Value = http
                .post(format!("http://127.0.0.1:{port}/graphql"))
                .header("x-portal-tenant-id", tenant)
                .header("x-portal-user-id", user)
                .header("x-portal-roles", roles)
                .json(&json!({ "query": query }))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(response)
        }
    };
    let users = "{ users { edges { node { displayName } } } }".to_owned();
    let before = ask(ports[1], carol_id.clone(), "customer_user", users.clone()).await?;
    assert_eq!(
        before["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{before}"
    );

    let mut changed_at = Instant::now();
    for object in ["UserConnection.*", "UserEdge.*", "Query.users"] {
        let add = format!(
            "mutation {{ addPolicyRule(input: {{ role: \"customer_user\", object: \"{object}\", action: READ, effect: ALLOW }}) {{ id }} }}"
        );
        let added = ask(ports[0], alice_id.clone(), "tenant_admin", add).await?;
        assert!(added["errors"].is_null(), "{added}");
        changed_at = Instant::now();
    }
    loop {
        let after = ask(ports[1], carol_id.clone(), "customer_user", users.clone()).await?;
        if after["errors"].is_null() {
            break;
        }
        anyhow::ensure!(
            changed_at.elapsed() < Duration::from_secs(5),
            "the second gateway never applied the change: {after}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = changed_at.elapsed();
    println!("policy change reached the second gateway process after {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    drop(processes);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
