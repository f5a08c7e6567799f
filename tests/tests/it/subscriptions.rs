//! Federated subscriptions end to end: each transport (graphql-transport-ws, SSE,
//! multipart), both deployment modes, per-event completion across subgraphs, RBAC and row
//! rules per event, tenant isolation, revocation, and graceful shutdown.

use std::time::Duration;

use anyhow::Context as _;

use serde_json::{Value, json};
use uuid::Uuid;

use portal_tests::streams::{HttpStream, MULTIPART_ACCEPT, WsClient};
use portal_tests::{Mode, TestPortal};

use crate::auth_helpers::{post, session_of};

const ACCOUNT_UPDATED: &str =
    "subscription($id: ID!) { accountUpdated(id: $id) { id name owner { displayName } } }";
const RENAME: &str =
    "mutation($id: ID!, $name: String!) { updateAccount(id: $id, input: { name: $name }) { id } }";

/// The development identity of `user` in `tenant` holding `roles`, as headers.
fn identity(tenant: Uuid, user: Uuid, roles: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-portal-tenant-id", tenant.to_string()),
        ("x-portal-user-id", user.to_string()),
        ("x-portal-roles", roles.to_owned()),
    ]
}

/// The same identity as a `connection_init` payload.
fn init_payload(tenant: Uuid, user: Uuid, roles: &str) -> Value {
    let mut payload = serde_json::Map::new();
    for (name, value) in identity(tenant, user, roles) {
        payload.insert(name.to_owned(), Value::String(value));
    }
    Value::Object(payload)
}

async fn rename_as(
    portal: &TestPortal,
    tenant: Uuid,
    user: Uuid,
    roles: &[&str],
    account: &str,
    name: &str,
) -> anyhow::Result<()> {
    let out = portal
        .query_with_roles(
            tenant,
            user,
            roles,
            RENAME,
            json!({ "id": account, "name": name }),
        )
        .await?;
    anyhow::ensure!(out["errors"].is_null(), "rename failed: {out}");
    Ok(())
}

/// Waits until the subgraph's feed has surely started (the subscription is open before
/// the change is made).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn websocket_subscriptions_complete_each_event_across_subgraphs_in_both_modes()
-> anyhow::Result<()> {
    for mode in [Mode::AllInOne, Mode::Distributed] {
        let portal = TestPortal::start_enforcing(mode).await?;
        let seed = portal.seed.clone();
        let savings = portal.account_id("ACME-0002").await?;
        let mut ws = WsClient::connect(
            &portal.endpoint,
            init_payload(seed.tenant_id, seed.carol_id, "customer_user"),
        )
        .await?;
        ws.subscribe("1", ACCOUNT_UPDATED, json!({ "id": savings }))
            .await?;
        settle().await;
        for name in ["Rainy day", "Sunny day"] {
            rename_as(
                &portal,
                seed.tenant_id,
                seed.alice_id,
                &["tenant_admin"],
                &savings,
                name,
            )
            .await?;
            let next = ws.next().await?;
            assert_eq!(next["type"], "next", "{mode:?}: {next}");
            assert_eq!(next["id"], "1");
            let account = &next["payload"]["data"]["accountUpdated"];
            assert_eq!(account["name"], name, "{mode:?}: {next}");
            // `owner` is identity's: fetched for this event through an entity call.
            assert_eq!(account["owner"]["displayName"], "Carol Customer", "{next}");
            assert!(next["payload"]["errors"].is_null(), "{next}");
        }
        // The client stops it; a ping still gets its pong, the connection stays usable.
        ws.send(json!({ "id": "1", "type": "complete" })).await?;
        ws.send(json!({ "type": "ping" })).await?;
        assert_eq!(ws.next().await?["type"], "pong");
        // Queries run over the socket too: one `next`, then `complete`.
        ws.subscribe(
            "2",
            "{ account(id: \"00000000-0000-0000-0000-000000000000\") { id } }",
            json!({}),
        )
        .await?;
        let next = ws.next().await?;
        assert_eq!(next["payload"]["data"]["account"], Value::Null, "{next}");
        assert_eq!(ws.next().await?, json!({ "id": "2", "type": "complete" }));
        portal.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn server_sent_events_and_multipart_stream_the_same_events() -> anyhow::Result<()> {
    for mode in [Mode::AllInOne, Mode::Distributed] {
        let portal = TestPortal::start_enforcing(mode).await?;
        let seed = portal.seed.clone();
        let savings = portal.account_id("ACME-0002").await?;
        let headers = identity(seed.tenant_id, seed.carol_id, "customer_user");
        let vars = json!({ "id": savings });
        let mut sse = HttpStream::post(
            portal.http(),
            &portal.endpoint,
            "text/event-stream",
            &headers,
            ACCOUNT_UPDATED,
            vars.clone(),
        )
        .await?;
        assert_eq!(sse.status, 200);
        assert!(
            sse.content_type.starts_with("text/event-stream"),
            "{}",
            sse.content_type
        );
        let mut multipart = HttpStream::post(
            portal.http(),
            &portal.endpoint,
            MULTIPART_ACCEPT,
            &headers,
            ACCOUNT_UPDATED,
            vars,
        )
        .await?;
        assert_eq!(multipart.status, 200);
        assert!(
            multipart.content_type.contains("subscriptionSpec=1.0"),
            "{}",
            multipart.content_type
        );
        // No pause: once a stream's answer has started, no later commit is missed.
        rename_as(
            &portal,
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            &savings,
            "Piggy bank",
        )
        .await?;
        let (kind, response) = sse.next().await?;
        assert_eq!(kind, "next", "{mode:?}");
        assert_eq!(
            response["data"]["accountUpdated"]["name"], "Piggy bank",
            "{response}"
        );
        assert_eq!(
            response["data"]["accountUpdated"]["owner"]["displayName"],
            "Carol Customer"
        );
        let (kind, part) = multipart.next_data().await?;
        assert_eq!(kind, "part");
        assert_eq!(
            part["payload"]["data"]["accountUpdated"]["name"], "Piggy bank",
            "{mode:?}: {part}"
        );
        // Closing the gateway's streams completes both.
        if let Some(gateway) = &portal.gateway {
            gateway.close_streams();
        }
        assert_eq!(sse.next().await?.0, "complete");
        assert_eq!(sse.next().await?.0, "end");
        assert_eq!(multipart.next_data().await?.0, "end");
        portal.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn subscriptions_need_a_streaming_transport_and_a_valid_operation() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let savings = portal.account_id("ACME-0002").await?;
    // Plain JSON cannot carry a stream: 406 with a code that says what to do.
    let response = portal
        .http()
        .post(&portal.endpoint)
        .header("accept", "application/json")
        .header("x-portal-tenant-id", seed.tenant_id.to_string())
        .header("x-portal-user-id", seed.carol_id.to_string())
        .header("x-portal-roles", "customer_user")
        .json(&json!({ "query": ACCOUNT_UPDATED, "variables": { "id": savings } }))
        .send()
        .await?;
    assert_eq!(response.status(), 406);
    let body: Value = response.json().await?;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "OPERATION_NOT_SUPPORTED"
    );
    // An invalid subscription is refused before anything streams.
    let refused = HttpStream::post(
        portal.http(),
        &portal.endpoint,
        "text/event-stream",
        &identity(seed.tenant_id, seed.carol_id, "customer_user"),
        "subscription { accountUpdated(id: \"x\") { nope } }",
        json!({}),
    )
    .await?;
    assert_eq!(refused.status, 400);
    let body = refused.body().await?;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // GET over SSE streams too, but never runs a mutation.
    let get = portal
        .http()
        .get(&portal.endpoint)
        .query(&[("query", "mutation { signOut }")])
        .header("accept", "text/event-stream")
        .send()
        .await?;
    assert_eq!(get.status(), 405);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_websocket_protocol_closes_with_its_codes() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let payload = init_payload(seed.tenant_id, seed.carol_id, "customer_user");

    // No subprotocol (or another one): 4406.
    let mut ws = WsClient::open(&portal.endpoint, None).await?;
    assert_eq!(ws.closed().await?.code, 4406);
    // Subscribing before the acknowledgement: 4401.
    let mut ws = WsClient::open(&portal.endpoint, Some("graphql-transport-ws")).await?;
    ws.subscribe("1", "{ __typename }", json!({})).await?;
    assert_eq!(ws.closed().await?.code, 4401);
    // No connection_init in time: 4408.
    let mut ws = WsClient::open(&portal.endpoint, Some("graphql-transport-ws")).await?;
    assert_eq!(ws.closed().await?.code, 4408);
    // A second connection_init: 4429.
    let mut ws = WsClient::connect(&portal.endpoint, payload.clone()).await?;
    ws.send(json!({ "type": "connection_init" })).await?;
    assert_eq!(ws.closed().await?.code, 4429);
    // Not a protocol message: 4400.
    let mut ws = WsClient::connect(&portal.endpoint, payload.clone()).await?;
    ws.send_text("{ not json").await?;
    assert_eq!(ws.closed().await?.code, 4400);
    // An id already in use: 4409.
    let savings = portal.account_id("ACME-0002").await?;
    let mut ws = WsClient::connect(&portal.endpoint, payload.clone()).await?;
    ws.subscribe("same", ACCOUNT_UPDATED, json!({ "id": savings }))
        .await?;
    ws.subscribe("same", ACCOUNT_UPDATED, json!({ "id": savings }))
        .await?;
    let closed = ws.closed().await?;
    assert_eq!(closed.code, 4409, "{closed:?}");
    // A credential the gateway refuses: 4403.
    let mut ws = WsClient::open(&portal.endpoint, Some("graphql-transport-ws")).await?;
    ws.send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer nope" } }))
        .await?;
    assert_eq!(ws.closed().await?.code, 4403);
    // A refused operation is an `error` message for that id; the connection lives on.
    let mut ws = WsClient::connect(&portal.endpoint, payload).await?;
    ws.subscribe("bad", "subscription { nope }", json!({}))
        .await?;
    let error = ws.next().await?;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "bad");
    assert_eq!(
        error["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    ws.send(json!({ "type": "ping" })).await?;
    assert_eq!(ws.next().await?["type"], "pong");
    // The gateway shutting down: every stream completes, then 1001.
    ws.subscribe("live", ACCOUNT_UPDATED, json!({ "id": savings }))
        .await?;
    settle().await;
    if let Some(gateway) = &portal.gateway {
        gateway.close_streams();
    }
    assert_eq!(
        ws.next().await?,
        json!({ "id": "live", "type": "complete" })
    );
    assert_eq!(ws.closed().await?.code, 1001);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn events_never_cross_tenants_and_row_rules_hold_per_event() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let operating = portal.account_id("ACME-0001").await?;
    let globex = portal.account_id("GLX-0001").await?;
    let query = "subscription($id: ID!) { accountUpdated(id: $id) { id name } }";

    // Another tenant's account cannot be followed: it does not exist for Gina.
    let mut gina = WsClient::connect(
        &portal.endpoint,
        init_payload(seed.other_tenant_id, seed.other_user_id, "tenant_admin"),
    )
    .await?;
    gina.subscribe("acme", query, json!({ "id": operating }))
        .await?;
    let refused = gina.next().await.context("gina refused")?;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );
    assert_eq!(
        gina.next().await.context("gina complete")?["type"],
        "complete"
    );
    // Her own account's stream hears only her tenant's changes.
    gina.subscribe("own", query, json!({ "id": globex }))
        .await?;
    // Carol (a member of Alice's operating account) follows it.
    let mut carol = WsClient::connect(
        &portal.endpoint,
        init_payload(seed.tenant_id, seed.carol_id, "customer_user"),
    )
    .await?;
    carol
        .subscribe("op", query, json!({ "id": operating }))
        .await?;
    settle().await;
    // `accountUpdated` is event-driven (`@events`): the gateway's router follows both
    // open streams; no subgraph holds one.
    let routed = portal
        .gateway
        .as_ref()
        .and_then(|gateway| gateway.events().map(|router| router.subscriptions()));
    assert_eq!(routed, Some(2));
    rename_as(
        &portal,
        seed.tenant_id,
        seed.alice_id,
        &["tenant_admin"],
        &operating,
        "Ops",
    )
    .await?;
    rename_as(
        &portal,
        seed.other_tenant_id,
        seed.other_user_id,
        &["tenant_admin"],
        &globex,
        "Main 2",
    )
    .await?;
    let heard = carol.next().await.context("carol hears")?;
    assert_eq!(
        heard["payload"]["data"]["accountUpdated"]["name"], "Ops",
        "{heard}"
    );
    let heard = gina.next().await.context("gina hears")?;
    assert_eq!(heard["id"], "own");
    assert_eq!(
        heard["payload"]["data"]["accountUpdated"]["name"], "Main 2",
        "{heard}"
    );

    // Alice removes Carol from the account: Carol's next event is NOT_FOUND, and the end.
    let removed = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation($a: ID!, $u: ID!) { removeAccountMember(accountId: $a, userId: $u) { id } }",
            json!({ "a": operating, "u": seed.carol_id }),
        )
        .await?;
    assert!(removed["errors"].is_null(), "{removed}");
    let ended = carol.next().await.context("carol ended")?;
    assert_eq!(ended["type"], "next", "{ended}");
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{ended}"
    );
    assert_eq!(
        carol.next().await?,
        json!({ "id": "op", "type": "complete" })
    );
    // Gina heard nothing of Acme meanwhile.
    gina.send(json!({ "type": "ping" })).await?;
    assert_eq!(gina.next().await.context("gina pong")?["type"], "pong");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn policies_apply_to_every_event_and_changes_reach_open_streams() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let savings = portal.account_id("ACME-0002").await?;
    // A role that may not subscribe is refused before anything streams.
    let mut auditor = WsClient::connect(
        &portal.endpoint,
        init_payload(seed.tenant_id, seed.alice_id, "auditor"),
    )
    .await?;
    auditor
        .subscribe("1", ACCOUNT_UPDATED, json!({ "id": savings }))
        .await?;
    let refused = auditor.next().await?;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "FORBIDDEN");

    let mut carol = WsClient::connect(
        &portal.endpoint,
        init_payload(seed.tenant_id, seed.carol_id, "customer_user"),
    )
    .await?;
    carol
        .subscribe(
            "1",
            "subscription($id: ID!) { accountUpdated(id: $id) { id name balance } }",
            json!({ "id": savings }),
        )
        .await?;
    settle().await;
    // An admin denies customers `Account.balance`: the next event has it null + FORBIDDEN.
    let add = "mutation($o: String!) { addPolicyRule(input: { role: \"customer_user\", object: $o, action: READ, effect: DENY }) { id } }";
    let admin = |query: &'static str, vars: Value| {
        portal.query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            query,
            vars,
        )
    };
    let rule = admin(add, json!({ "o": "Account.balance" })).await?;
    assert!(rule["errors"].is_null(), "{rule}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rename_as(
        &portal,
        seed.tenant_id,
        seed.alice_id,
        &["tenant_admin"],
        &savings,
        "Still mine",
    )
    .await?;
    let next = carol.next().await?;
    let account = &next["payload"]["data"]["accountUpdated"];
    assert_eq!(account["name"], "Still mine", "{next}");
    assert_eq!(account["balance"], Value::Null, "{next}");
    assert_eq!(
        next["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{next}"
    );
    // Bob (billing: the `Account.all` grant) follows an account he does not own; taking
    // the grant from his role ends his stream: it was opened with it.
    let mut bob = WsClient::connect(
        &portal.endpoint,
        init_payload(seed.tenant_id, seed.bob_id, "billing_admin"),
    )
    .await?;
    bob.subscribe("1", ACCOUNT_UPDATED, json!({ "id": savings }))
        .await?;
    settle().await;
    let rule = admin(add, json!({ "o": "grant:Account.all" })).await?;
    assert!(rule["errors"].is_null(), "{rule}");
    let ended = bob.next().await?;
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{ended}"
    );
    assert_eq!(bob.next().await?["type"], "complete");
    // Denying the subscription itself ends the open stream within seconds, no event needed.
    let rule = admin(add, json!({ "o": "Subscription.accountUpdated" })).await?;
    assert!(rule["errors"].is_null(), "{rule}");
    let ended = carol.next().await?;
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{ended}"
    );
    assert_eq!(carol.next().await?["type"], "complete");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_revoked_session_ends_its_open_streams() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let savings = portal.account_id("ACME-0002").await?;
    let (token, _, _) = session_of(&portal, "carol@acme.example").await?;
    let mut ws = WsClient::connect(
        &portal.endpoint,
        json!({ "Authorization": format!("Bearer {token}") }),
    )
    .await?;
    ws.subscribe("1", ACCOUNT_UPDATED, json!({ "id": savings }))
        .await?;
    let mut sse = HttpStream::post(
        portal.http(),
        &portal.endpoint,
        "text/event-stream",
        &[("authorization", format!("Bearer {token}"))],
        ACCOUNT_UPDATED,
        json!({ "id": savings }),
    )
    .await?;
    assert_eq!(sse.status, 200);
    settle().await;
    let (_, out) = post(&portal, Some(&token), "mutation { signOut }", json!({})).await?;
    assert_eq!(out["data"]["signOut"], true, "{out}");
    let ended = ws.next().await?;
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    assert_eq!(ws.next().await?["type"], "complete");
    let (kind, ended) = sse.next().await?;
    assert_eq!(kind, "next");
    assert_eq!(
        ended["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    assert_eq!(sse.next().await?.0, "complete");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn threads_messages_and_jobs_have_live_updates() -> anyhow::Result<()> {
    for mode in [Mode::AllInOne, Mode::Distributed] {
        let portal = TestPortal::start_enforcing(mode).await?;
        let seed = portal.seed.clone();
        let carol = ["customer_user"];
        let threads = portal
            .query_with_roles(
                seed.tenant_id,
                seed.carol_id,
                &carol,
                "{ threads { edges { node { id subject } } } }",
                json!({}),
            )
            .await?;
        let thread = threads["data"]["threads"]["edges"]
            .as_array()
            .and_then(|edges| {
                edges
                    .iter()
                    .find(|e| e["node"]["subject"] == "Welcome to the portal")
            })
            .and_then(|e| e["node"]["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no welcome thread: {threads}"))?;
        let mut ws = WsClient::connect(
            &portal.endpoint,
            init_payload(seed.tenant_id, seed.carol_id, "customer_user"),
        )
        .await?;
        ws.subscribe(
            "posted",
            "subscription($t: ID!) { messagePosted(threadId: $t) { body author { displayName } thread { subject } } }",
            json!({ "t": thread }),
        )
        .await?;
        ws.subscribe(
            "thread",
            "subscription($t: ID!) { threadUpdated(id: $t) { subject status } }",
            json!({ "t": thread }),
        )
        .await?;
        settle().await;
        let posted = portal
            .query_with_roles(
                seed.tenant_id,
                seed.alice_id,
                &["tenant_admin"],
                "mutation($t: ID!) { postMessage(input: { threadId: $t, body: \"Live now\" }) { id } }",
                json!({ "t": thread }),
            )
            .await?;
        assert!(posted["errors"].is_null(), "{posted}");
        // Staff answered: the message, and the thread now waiting on the customer (in
        // either order).
        let (first, second) = (ws.next().await?, ws.next().await?);
        let (next, status) = if first["id"] == "posted" {
            (first, second)
        } else {
            (second, first)
        };
        assert_eq!(next["id"], "posted", "{next}");
        assert_eq!(
            status["payload"]["data"]["threadUpdated"]["status"], "WAITING_ON_CUSTOMER",
            "{status}"
        );
        let message = &next["payload"]["data"]["messagePosted"];
        assert_eq!(message["body"], "Live now", "{mode:?}: {next}");
        assert_eq!(message["author"]["displayName"], "Alice Admin");
        assert_eq!(message["thread"]["subject"], "Welcome to the portal");
        let updated = portal
            .query_with_roles(
                seed.tenant_id,
                seed.carol_id,
                &carol,
                "mutation($t: ID!) { updateThread(id: $t, input: { subject: \"Welcome!\" }) { id } }",
                json!({ "t": thread }),
            )
            .await?;
        assert!(updated["errors"].is_null(), "{updated}");
        let next = ws.next().await?;
        assert_eq!(next["id"], "thread", "{next}");
        assert_eq!(
            next["payload"]["data"]["threadUpdated"]["subject"],
            "Welcome!"
        );
        portal.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn tenant_admins_follow_their_tenants_jobs() -> anyhow::Result<()> {
    use portal_kit::jobs::{NewJob, enqueue};
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let mut job = NewJob::new("test.never_handled", json!({}))
        .at(chrono::Utc::now() + chrono::Duration::hours(1));
    job.tenant_id = Some(seed.tenant_id);
    let id = enqueue(&portal.db, chrono::Utc::now(), job)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    let query = "subscription($id: ID!) { jobUpdated(id: $id) { id state kind } }";
    // Another tenant's admin cannot follow it.
    let mut gina = WsClient::connect(
        &portal.endpoint,
        init_payload(seed.other_tenant_id, seed.other_user_id, "tenant_admin"),
    )
    .await?;
    gina.subscribe("1", query, json!({ "id": id })).await?;
    let refused = gina.next().await?;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );
    let mut alice = WsClient::connect(
        &portal.endpoint,
        init_payload(seed.tenant_id, seed.alice_id, "tenant_admin"),
    )
    .await?;
    alice.subscribe("1", query, json!({ "id": id })).await?;
    settle().await;
    let cancelled = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation($id: ID!) { cancelJob(id: $id) { state } }",
            json!({ "id": id }),
        )
        .await?;
    assert!(cancelled["errors"].is_null(), "{cancelled}");
    let next = alice.next().await?;
    assert_eq!(
        next["payload"]["data"]["jobUpdated"]["state"], "CANCELLED",
        "{next}"
    );
    assert_eq!(
        next["payload"]["data"]["jobUpdated"]["kind"],
        "test.never_handled"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_subgraph_shutting_down_ends_its_streams_without_completing_them() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let account = portal.account_id("ACME-0001").await?;
    let key =
        portal_kit::internal_token::InternalTokenKey::new(portal_tests::TEST_SECRET.as_bytes());
    let accounts =
        portal::subgraphs::build_all(&portal.db, &portal_tests::authenticator(&portal.db))
            .into_iter()
            .find(|subgraph| subgraph.name == "accounts")
            .context("accounts subgraph")?;
    let (closing, closed) = tokio::sync::watch::channel(false);
    let (addr, _task) = portal_tests::serve(accounts.router_until(key.clone(), closed)).await?;
    let actor = portal_kit::Actor::user(seed.alice_id, seed.tenant_id, vec!["tenant_admin".into()]);
    let token = key.sign("accounts", &actor, &portal_kit::RequestMeta::default());
    let mut stream = HttpStream::post(
        &reqwest::Client::new(),
        &format!("http://{addr}/graphql"),
        "text/event-stream",
        &[(portal_kit::internal_token::HEADER, token)],
        "subscription($id: ID!) { accountUpdated(id: $id) { id } }",
        json!({ "id": account }),
    )
    .await?;
    assert_eq!(stream.status, 200);
    closing.send_replace(true);
    // The body ends at once, with no `complete`: the gateway reports the stream as broken
    // (`SUBGRAPH_STREAM_ENDED`) and its client subscribes again elsewhere.
    let (kind, _) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await??;
    assert_eq!(kind, "end");
    portal.stop().await;
    Ok(())
}
