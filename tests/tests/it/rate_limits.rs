//! Rate limits at the gateway, in process: a user's burst is spent by HTTP requests and
//! WebSocket operations alike, the next one is refused with `RATE_LIMITED` on either
//! transport, and another user of the same tenant is let in. (Sharing one limit between
//! replicas through Redis is tested across processes in `portal/tests/operations.rs`.)

use serde_json::{Value, json};
use uuid::Uuid;

use portal_gateway::rate_limit::{Limiter, Quota, RateLimits};
use portal_tests::TestDb;
use portal_tests::streams::WsClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_and_websocket_operations_share_a_users_limit() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let options = portal::GatewayOptions {
        rate_limiter: Some(Limiter::local(RateLimits {
            per_ip: Some(Quota {
                per_second: 1_000.0,
                burst: 1_000,
            }),
            per_user: Some(Quota {
                per_second: 0.1,
                burst: 3,
            }),
            ..Default::default()
        })),
        authentication: portal_gateway::auth::Authentication::anonymous_only().with_dev_headers(),
        limits: Default::default(),
        subgraphs: Default::default(),
        ide: None,
        authorizer: None,
        trusted_proxies: Vec::new(),
        override_labels: Default::default(),
        cors_origins: Vec::new(),
        events: None,
        files: None,
        gateway_client: Default::default(),
        keys: None,
        connectors: Default::default(),
    };
    let (router, _) = portal::all_in_one_app(&db, &portal_tests::authenticator(&db), &options)?;
    let (addr, server) = portal_tests::serve(router).await?;
    portal::install_crypto_provider();
    let endpoint = format!("http://{addr}/graphql");
    let (tenant, ann, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let http = reqwest::Client::new();
    let ask = |user: Uuid| {
        http.post(&endpoint)
            .header("x-portal-tenant-id", tenant.to_string())
            .header("x-portal-user-id", user.to_string())
            .header("x-portal-roles", "customer_user")
            .json(&json!({ "query": "{ __typename }" }))
            .send()
    };

    // One request over HTTP…
    let first = ask(ann).await?;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first
            .headers()
            .get("ratelimit")
            .and_then(|v| v.to_str().ok()),
        Some("\"user\";r=2;t=10")
    );
    // …two operations on a WebSocket, and the third is refused there.
    let mut ws = WsClient::open(&endpoint, Some("graphql-transport-ws")).await?;
    ws.send(json!({
        "type": "connection_init",
        "payload": {
            "x-portal-tenant-id": tenant.to_string(),
            "x-portal-user-id": ann.to_string(),
            "x-portal-roles": "customer_user",
        }
    }))
    .await?;
    assert_eq!(ws.next().await?["type"], "connection_ack");
    for id in ["1", "2"] {
        ws.subscribe(id, "{ __typename }", json!({})).await?;
        let next: Value = ws.next().await?;
        assert_eq!(next["type"], "next", "{next}");
        assert_eq!(ws.next().await?["type"], "complete");
    }
    ws.subscribe("3", "{ __typename }", json!({})).await?;
    let refused: Value = ws.next().await?;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "3");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "RATE_LIMITED",
        "{refused}"
    );
    assert_eq!(
        refused["payload"][0]["extensions"]["scope"], "user",
        "{refused}"
    );

    // Over HTTP too, with Retry-After; another user is let in.
    let limited = ask(ann).await?;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .parse()?;
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    let body: Value = limited.json().await?;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert_eq!(ask(bob).await?.status(), 200);

    server.abort();
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
