//! Outbound webhooks end to end: registered through the gateway, events dispatched from
//! the event sequence, delivered by the job worker to a real HTTP receiver that verifies
//! signatures with the maintained `standardwebhooks` crate; payloads trimmed to the
//! owner's policies; retries, 410, replay, ping, rotation, SSRF refusals and tenant
//! isolation.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};

use portal_integrations::jobs::Deliver;
use portal_integrations::outbound::{Outbound, Reach};
use portal_integrations::store::webhooks as store;
use portal_kit::jobs::runner::Runner;
use portal_tests::{Mode, TestPortal};

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// A queued answer: status and `Retry-After`.
type Answer = (u16, Option<&'static str>);

/// A webhook receiver on a real socket: records every request and answers with the
/// queued `(status, Retry-After)` answers, then 204.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl Receiver {
    async fn start(&self) -> anyhow::Result<std::net::SocketAddr> {
        let state = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().push(Received {
                        headers,
                        body: body.to_vec(),
                    });
                    let answer = {
                        let mut answers = state.answers.lock();
                        (!answers.is_empty()).then(|| answers.remove(0))
                    };
                    let (status, retry_after) = answer.unwrap_or((204, None));
                    let mut response = axum::response::Response::new(axum::body::Body::from(
                        format!("answered {status}"),
                    ));
                    *response.status_mut() =
                        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                    if let Some(value) = retry_after {
                        response.headers_mut().insert(
                            http::header::RETRY_AFTER,
                            http::HeaderValue::from_static(value),
                        );
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(addr)
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.got.lock())
    }

    fn answer_next(&self, status: u16, retry_after: Option<&'static str>) {
        self.answers.lock().push((status, retry_after));
    }
}

/// Whether `secret` verifies `received` (the receiving side of Standard Webhooks).
fn verifies(secret: &str, received: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .is_ok_and(|hook| hook.verify(&received.body, &received.headers).is_ok())
}

fn body(received: &Received) -> Value {
    serde_json::from_slice(&received.body).unwrap_or(Value::Null)
}

/// A worker that delivers webhooks only, reaching loopback (the receiver) when `loopback`.
fn deliverer(portal: &TestPortal, loopback: bool) -> anyhow::Result<Arc<Runner>> {
    let allowed = if loopback {
        vec!["127.0.0.0/8".parse()?]
    } else {
        Vec::new()
    };
    let outbound = Outbound::new(Reach::with(allowed, true), Duration::from_secs(5))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let handler = Deliver::new(
        portal.db.clone(),
        portal_tests::tenant_keys(&portal.db),
        outbound,
        portal_kit::clock::system(),
        chrono::Duration::days(5),
    );
    let notice = portal::webhooks::DisabledNotice::new(
        portal.db.clone(),
        portal_tests::identity_settings().data_key,
    );
    Ok(Arc::new(
        Runner::new(portal.db.clone(), portal_kit::clock::system())
            .handle(Deliver::KIND, handler)
            .handle(portal::webhooks::DisabledNotice::KIND, notice),
    ))
}

/// Dispatches every committed event, then runs the deliveries that are due.
async fn deliver(portal: &TestPortal, runner: &Arc<Runner>) -> anyhow::Result<()> {
    let owners = portal::webhooks::PolicyOwners::new(portal.db.clone());
    while store::dispatch(&portal.db, owners.as_ref(), 500)
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?
        > 0
    {}
    while runner
        .run_once()
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?
        > 0
    {}
    Ok(())
}

const REGISTER: &str = "mutation($url: String!, $types: [String!]!, $mode: WebhookPayloadMode) {
  registerWebhookEndpoint(input: { url: $url, eventTypes: $types, payloadMode: $mode }) {
    secret endpoint { id enabled payloadMode hasSecret }
  }
}";

const MESSAGES: &str = "query {
  webhookEndpoints { edges { node { id enabled disabledReason failingSince
    messages { edges { node { id eventType status attemptCount body
      attempts { attempt outcome statusCode error responseExcerpt nextAttemptAt } } } } } } }
}";

/// Marks an invited user active (as accepting the invitation would): only active
/// owners' endpoints receive events.
async fn activate(portal: &TestPortal, user: uuid::Uuid) -> anyhow::Result<()> {
    use portal_entities::identity::user;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    user::Entity::update_many()
        .col_expr(user::Column::Status, Expr::value("ACTIVE"))
        .filter(user::Column::Id.eq(user))
        .exec(&portal.db)
        .await?;
    Ok(())
}

/// The messages of the endpoint `id` in a `MESSAGES` response.
fn messages_of_endpoint(response: &Value, id: &Value) -> Vec<Value> {
    let endpoints = response["data"]["webhookEndpoints"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    endpoints
        .iter()
        .find(|e| e["node"]["id"] == *id)
        .and_then(|e| e["node"]["messages"]["edges"].as_array().cloned())
        .map(|edges| edges.iter().map(|e| e["node"].clone()).collect())
        .unwrap_or_default()
}

/// The endpoint `id` in a `MESSAGES` response.
fn endpoint_of(response: &Value, id: &Value) -> Value {
    response["data"]["webhookEndpoints"]["edges"]
        .as_array()
        .and_then(|edges| edges.iter().find(|e| e["node"]["id"] == *id))
        .map(|e| e["node"].clone())
        .unwrap_or(Value::Null)
}

/// Sends `query` as the demo tenant's admin (alice, `tenant_admin`).
async fn admin(portal: &TestPortal, query: &str, vars: Value) -> anyhow::Result<Value> {
    let seed = &portal.seed;
    portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            query,
            vars,
        )
        .await
}

fn ok(response: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(response["errors"].is_null(), "{response}");
    Ok(())
}

#[tokio::test]
async fn webhooks_deliver_signed_events_trimmed_to_the_owners_policies() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let receiver = Receiver::default();
    let addr = receiver.start().await?;
    let ivy = portal
        .create_user("ivy@acme.example", "Ivy Integrator")
        .await?;
    portal.grant_role(ivy, "integrator").await?;
    activate(&portal, ivy).await?;
    let as_ivy = |query: &'static str, vars: Value| {
        portal.query_with_roles(seed.tenant_id, ivy, &["integrator"], query, vars)
    };
    let as_alice = |query: &'static str, vars: Value| admin(&portal, query, vars);

    let registered = as_ivy(
        REGISTER,
        json!({
            "url": format!("http://127.0.0.1:{}/hook", addr.port()),
            "types": ["account.updated", "user.updated"],
        }),
    )
    .await?;
    ok(&registered)?;
    let registration = &registered["data"]["registerWebhookEndpoint"];
    let secret = registration["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{registered}");
    assert_eq!(registration["endpoint"]["payloadMode"], "FULL");
    assert_eq!(registration["endpoint"]["hasSecret"], true);
    // The secret is not readable back: no field holds it.
    let listed = as_ivy(
        "query { webhookEndpoints { edges { node { id } } } }",
        json!({}),
    )
    .await?;
    assert!(!listed.to_string().contains(&secret));

    // An admin denies integrators account names (at run time, in this tenant).
    let deny = as_alice(
        "mutation { addPolicyRule(input: { role: \"integrator\", object: \"Account.name\", action: READ, effect: DENY }) { id } }",
        json!({}),
    )
    .await?;
    ok(&deny)?;
    let account = portal.account_id("ACME-0001").await?;
    let renamed = as_alice(
        "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"Acme Secret Project\" }) { name } }",
        json!({ "id": account }),
    )
    .await?;
    ok(&renamed)?;
    // A user's change: integrators may read users' names.
    let renamed_user = as_alice(
        "mutation($id: ID!) { updateUser(id: $id, input: { displayName: \"Carol Renamed\" }) { id } }",
        json!({ "id": seed.carol_id }),
    )
    .await?;
    ok(&renamed_user)?;

    let runner = deliverer(&portal, true)?;
    deliver(&portal, &runner).await?;
    let mut got = receiver.take();
    assert_eq!(got.len(), 2, "{got:?}");
    got.sort_by_key(|r| body(r)["type"].as_str().unwrap_or_default().to_owned());
    for delivery in &got {
        assert!(verifies(&secret, delivery), "signature does not verify");
        let wrong = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(!verifies(wrong, delivery));
        let text = String::from_utf8_lossy(&delivery.body);
        assert!(
            !text.contains("Acme Secret Project"),
            "a field the owner may not read left: {text}"
        );
    }
    let sent = body(&got[0]);
    assert_eq!(sent["type"], "account.updated", "{sent}");
    assert_eq!(sent["data"]["id"], account);
    assert_eq!(sent["data"]["subjectType"], "Account");
    // The status (readable) is there, the name (denied) is not.
    assert_eq!(sent["data"]["after"], json!({ "status": "OPEN" }), "{sent}");
    let user = body(&got[1]);
    assert_eq!(user["type"], "user.updated", "{user}");
    assert_eq!(user["data"]["id"], json!(seed.carol_id));
    // What the owner may read passes (names are public to the tenant's callers).
    assert_eq!(
        user["data"]["after"]["displayName"], "Carol Renamed",
        "{user}"
    );
    let webhook_id = got[0].headers["webhook-id"].to_str()?.to_owned();
    assert!(webhook_id.starts_with("msg_"));

    // The delivery log, through the gateway.
    let log = as_ivy(MESSAGES, json!({})).await?;
    ok(&log)?;
    let messages = messages_of_endpoint(&log, &registration["endpoint"]["id"]);
    assert_eq!(messages.len(), 2, "{log}");
    for message in &messages {
        assert_eq!(message["status"], "DELIVERED");
        assert_eq!(message["attemptCount"], 1);
        assert_eq!(message["attempts"][0]["outcome"], "DELIVERED");
        assert_eq!(message["attempts"][0]["statusCode"], 204);
        // 204 has no body: nothing to keep.
        assert!(message["attempts"][0]["responseExcerpt"].is_null());
    }
    let ids: Vec<String> = messages
        .iter()
        .map(|m| {
            format!(
                "msg_{}",
                m["id"].as_str().unwrap_or_default().replace('-', "")
            )
        })
        .collect();
    assert!(ids.contains(&webhook_id), "{ids:?}");

    // Nothing is dispatched twice: the cursor moved with the messages.
    deliver(&portal, &runner).await?;
    assert!(receiver.take().is_empty());

    // Another tenant sees none of it and cannot replay it.
    let gina = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            "mutation($id: ID!) { replayWebhookMessage(id: $id) { id } }",
            json!({ "id": messages[0]["id"] }),
        )
        .await?;
    assert_eq!(
        gina["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{gina}"
    );
    let theirs = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            "query { webhookEndpoints { edges { node { id } } } }",
            json!({}),
        )
        .await?;
    assert!(
        !theirs
            .to_string()
            .contains(registration["endpoint"]["id"].as_str().unwrap_or("-")),
        "{theirs}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn failed_deliveries_retry_410_disables_and_rotation_signs_with_both_secrets()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let receiver = Receiver::default();
    let addr = receiver.start().await?;
    let as_alice = |query: &'static str, vars: Value| admin(&portal, query, vars);
    let registered = as_alice(
        REGISTER,
        json!({
            "url": format!("http://127.0.0.1:{}/hook", addr.port()),
            "types": ["account.updated"],
            "mode": "THIN",
        }),
    )
    .await?;
    ok(&registered)?;
    let endpoint = registered["data"]["registerWebhookEndpoint"]["endpoint"]["id"].clone();
    let first_secret = registered["data"]["registerWebhookEndpoint"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let runner = deliverer(&portal, true)?;

    // A 503 with Retry-After: logged, retried no sooner than asked.
    receiver.answer_next(503, Some("120"));
    let account = portal.account_id("ACME-0001").await?;
    let update =
        "mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: { name: $n }) { id } }";
    ok(&as_alice(update, json!({ "id": account, "n": "Renamed once" })).await?)?;
    let before = chrono::Utc::now();
    deliver(&portal, &runner).await?;
    let got = receiver.take();
    assert_eq!(got.len(), 1);
    // Thin: the event and its subject, nothing of the change.
    let sent = body(&got[0]);
    assert!(sent["data"].get("after").is_none(), "{sent}");
    assert_eq!(sent["data"]["id"], account);
    let log = as_alice(MESSAGES, json!({})).await?;
    let message = messages_of_endpoint(&log, &endpoint).remove(0);
    assert_eq!(message["status"], "PENDING", "{log}");
    let attempt = &message["attempts"][0];
    assert_eq!(attempt["outcome"], "FAILED");
    assert_eq!(attempt["statusCode"], 503);
    assert_eq!(attempt["responseExcerpt"], "answered 503");
    let next: chrono::DateTime<chrono::Utc> = attempt["nextAttemptAt"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    assert!(next >= before + chrono::Duration::seconds(119), "{attempt}");
    let failing = &endpoint_of(&log, &endpoint)["failingSince"];
    assert!(failing.is_string(), "{log}");
    // Its health says what is wrong and how far behind deliveries are.
    const HEALTH: &str = "query { webhookEndpoints { edges { node { id lastDeliveredAt lastError lastErrorKind errorRate deliveryLagSeconds } } } }";
    let health = as_alice(HEALTH, json!({})).await?;
    let state = endpoint_of(&health, &endpoint);
    assert_eq!(state["lastErrorKind"], "RECEIVER_DOWN", "{health}");
    assert!(
        state["lastError"]
            .as_str()
            .is_some_and(|e| e.starts_with("503")),
        "{health}"
    );
    assert_eq!(state["errorRate"], json!(1.0), "{health}");
    assert_eq!(state["lastDeliveredAt"], Value::Null, "{health}");
    assert!(
        state["deliveryLagSeconds"]
            .as_i64()
            .is_some_and(|lag| lag >= 0),
        "{health}"
    );
    // Not due yet: nothing is sent.
    deliver(&portal, &runner).await?;
    assert!(receiver.take().is_empty());

    // A replay sends it now, with the same id; the receiver answers 410: disabled.
    receiver.answer_next(410, None);
    let replay = as_alice(
        "mutation($id: ID!) { replayWebhookMessage(id: $id) { status } }",
        json!({ "id": message["id"] }),
    )
    .await?;
    ok(&replay)?;
    deliver(&portal, &runner).await?;
    let got = receiver.take();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].headers["webhook-id"],
        format!(
            "msg_{}",
            message["id"].as_str().unwrap_or_default().replace('-', "")
        )
    );
    let log = as_alice(MESSAGES, json!({})).await?;
    let node = &endpoint_of(&log, &endpoint);
    assert_eq!(node["enabled"], false, "{log}");
    assert_eq!(node["disabledReason"], "the receiver answered 410 Gone");
    // Who may enable it again is told (the tenant admin, by the seed policies), without
    // the URL's path.
    let mail = portal.next_mail_to("alice@acme.example").await?;
    assert!(
        mail.contains("410 Gone") && mail.contains("127.0.0.1"),
        "{mail}"
    );
    assert!(!mail.contains("/hook"), "{mail}");
    let message = messages_of_endpoint(&log, &endpoint).remove(0);
    assert_eq!(message["status"], "FAILED");
    assert_eq!(message["attempts"][1]["outcome"], "GONE");
    let health = as_alice(HEALTH, json!({})).await?;
    let state = endpoint_of(&health, &endpoint);
    assert_eq!(state["lastErrorKind"], "GONE", "{health}");
    assert_eq!(state["deliveryLagSeconds"], 0, "nothing waits: {health}");
    // A disabled endpoint gets no new events.
    ok(&as_alice(update, json!({ "id": account, "n": "Renamed twice" })).await?)?;
    deliver(&portal, &runner).await?;
    assert!(receiver.take().is_empty());
    assert_eq!(
        messages_of_endpoint(&as_alice(MESSAGES, json!({})).await?, &endpoint).len(),
        1
    );

    // Enabled again by hand, with a rotated secret: both secrets sign during the overlap.
    let enable = as_alice(
        "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { enabled: true }) { enabled } }",
        json!({ "id": endpoint }),
    )
    .await?;
    ok(&enable)?;
    let rotated = as_alice(
        "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id, previousValidForSeconds: 3600) { secret endpoint { previousSecretValidUntil disabledReason } } }",
        json!({ "id": endpoint }),
    )
    .await?;
    ok(&rotated)?;
    let second_secret = rotated["data"]["rotateWebhookEndpointSecret"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(first_secret, second_secret);
    let ping = as_alice(
        "mutation($id: ID!) { pingWebhookEndpoint(id: $id) { eventType status } }",
        json!({ "id": endpoint }),
    )
    .await?;
    ok(&ping)?;
    deliver(&portal, &runner).await?;
    let got = receiver.take();
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0])["type"], "webhook.ping");
    assert!(
        verifies(&first_secret, &got[0]),
        "the previous secret still verifies"
    );
    assert!(verifies(&second_secret, &got[0]), "the new secret verifies");

    // Without overlap, the old secret stops at once.
    let rotated = as_alice(
        "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id, previousValidForSeconds: 0) { secret } }",
        json!({ "id": endpoint }),
    )
    .await?;
    let third_secret = rotated["data"]["rotateWebhookEndpointSecret"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ok(&as_alice(
        "mutation($id: ID!) { pingWebhookEndpoint(id: $id) { id } }",
        json!({ "id": endpoint }),
    )
    .await?)?;
    deliver(&portal, &runner).await?;
    let got = receiver.take();
    assert!(verifies(&third_secret, &got[0]));
    assert!(!verifies(&second_secret, &got[0]));

    // Bad input changes nothing.
    let bad = as_alice(
        "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id, previousValidForSeconds: -1) { secret } }",
        json!({ "id": endpoint }),
    )
    .await?;
    assert_eq!(
        bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad}"
    );
    let unknown = as_alice(
        REGISTER,
        json!({ "url": "https://hooks.example.com/x", "types": ["job.succeeded"] }),
    )
    .await?;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{unknown}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn deliveries_to_loopback_are_refused_without_the_allow_list() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let receiver = Receiver::default();
    let addr = receiver.start().await?;
    // `localhost` resolves to loopback: refused on the resolved address too.
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{}/hook", addr.port());
        let registered = admin(
            &portal,
            REGISTER,
            json!({ "url": url, "types": ["account.updated"] }),
        )
        .await?;
        ok(&registered)?;
    }
    let account = portal.account_id("ACME-0001").await?;
    ok(&admin(
        &portal,
        "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"Probe\" }) { id } }",
        json!({ "id": account }),
    )
    .await?)?;
    let runner = deliverer(&portal, false)?;
    deliver(&portal, &runner).await?;
    assert!(receiver.take().is_empty(), "a refused address was called");
    let log = admin(&portal, MESSAGES, json!({})).await?;
    let endpoints = log["data"]["webhookEndpoints"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut refused = 0;
    for endpoint in endpoints {
        for message in endpoint["node"]["messages"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let attempt = &message["node"]["attempts"][0];
            assert_eq!(attempt["outcome"], "REFUSED", "{log}");
            assert!(attempt["statusCode"].is_null());
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "{log}");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn one_dispatcher_at_a_time_dispatches_each_event_once() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let registered = admin(
        &portal,
        REGISTER,
        json!({ "url": "https://hooks.example.com/portal", "types": ["account.updated"] }),
    )
    .await?;
    ok(&registered)?;
    let account = portal.account_id("ACME-0001").await?;
    for i in 0..20 {
        ok(&admin(
            &portal,
            "mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: { name: $n }) { id } }",
            json!({ "id": account, "n": format!("Name {i}") }),
        )
        .await?)?;
    }
    let owners = portal::webhooks::PolicyOwners::new(portal.db.clone());
    let run = || async {
        let mut total = 0;
        loop {
            let taken = store::dispatch(&portal.db, owners.as_ref(), 3)
                .await
                .map_err(|err| anyhow::anyhow!("{err:?}"))?;
            if taken == 0 {
                return anyhow::Ok(total);
            }
            total += taken;
        }
    };
    let (a, b) = tokio::join!(run(), run());
    let (a, b) = (a?, b?);
    assert!(a + b > 0);
    use portal_entities::integrations::webhook_message;
    use sea_orm::{EntityTrait, PaginatorTrait};
    let messages = webhook_message::Entity::find().count(&portal.db).await?;
    assert_eq!(messages, 20);
    portal.stop().await;
    Ok(())
}

/// Every coordinate the webhook catalogue guards a payload field with (and every subject
/// type) is a real field of the supergraph: a typo would silently drop the field.
#[test]
fn the_webhook_catalogue_names_real_coordinates() -> anyhow::Result<()> {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema/supergraph.graphql");
    let supergraph = portal_gateway::gateway::Supergraph::load(
        &std::fs::read_to_string(path)?,
        &portal_gateway::gateway::Limits::default(),
    )?;
    let known: std::collections::BTreeSet<String> =
        portal_gateway::authz::coordinates(supergraph.index())
            .into_iter()
            .map(|(t, f, _)| format!("{t}.{f}"))
            .collect();
    let unknown: Vec<String> = portal_integrations::domain::catalogue::coordinates()
        .into_iter()
        .filter(|c| !known.contains(c))
        .collect();
    assert!(unknown.is_empty(), "not in the supergraph: {unknown:?}");
    Ok(())
}

#[tokio::test]
async fn an_endpoint_failing_for_longer_than_allowed_is_disabled() -> anyhow::Result<()> {
    use portal_entities::integrations::webhook_endpoint;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let receiver = Receiver::default();
    let addr = receiver.start().await?;
    let as_alice = |query: &'static str, vars: Value| admin(&portal, query, vars);
    let registered = as_alice(
        REGISTER,
        json!({ "url": format!("http://127.0.0.1:{}/hook", addr.port()), "types": ["account.updated"] }),
    )
    .await?;
    ok(&registered)?;
    let endpoint = registered["data"]["registerWebhookEndpoint"]["endpoint"]["id"].clone();
    let id: uuid::Uuid = endpoint.as_str().unwrap_or_default().parse()?;
    // It has been failing for six days (more than the five allowed).
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::FailingSince,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(6)),
        )
        .filter(webhook_endpoint::Column::Id.eq(id))
        .exec(&portal.db)
        .await?;
    receiver.answer_next(500, None);
    ok(&as_alice(
        "mutation($id: ID!) { pingWebhookEndpoint(id: $id) { id } }",
        json!({ "id": endpoint }),
    )
    .await?)?;
    let runner = deliverer(&portal, true)?;
    deliver(&portal, &runner).await?;
    assert_eq!(receiver.take().len(), 1);
    let log = as_alice(MESSAGES, json!({})).await?;
    let node = endpoint_of(&log, &endpoint);
    assert_eq!(node["enabled"], false, "{log}");
    let reason = node["disabledReason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("every delivery has failed since"),
        "{reason}"
    );
    let message = messages_of_endpoint(&log, &endpoint).remove(0);
    assert_eq!(message["status"], "FAILED");
    assert!(message["attempts"][0]["nextAttemptAt"].is_null());
    portal.stop().await;
    Ok(())
}
