//! Connectors end to end, against a fake Stripe built from Stripe's published API
//! description (`portal_tests::fake_stripe`): configuring sealed credentials, testing the
//! connection, a backfill and incremental runs that write through the gateway as the
//! connector's service account (so accounts' validation, audit events and idempotency
//! keys apply), per-field source of truth (the portal's name pushed back with an
//! idempotency key), remote deletes, records that fail and are skipped, rate limits,
//! refused credentials, the circuit breaker, verified inbound webhooks, and tenant and
//! role isolation.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use portal_entities::platform::audit_event;
use portal_integrations::connectors::Endpoints;
use portal_integrations::sync::{SyncPages, remote_for_jobs};
use portal_kit::jobs::runner::Runner;
use portal_tests::fake_stripe::{self, FakeStripe, Fault};
use portal_tests::{Mode, TestPortal};

use crate::auth_helpers::{enroll_mfa, post, session_of};

const WEBHOOK_SECRET: &str = "whsec_portal_test_secret";

const CREATE_INTEGRATION: &str = "mutation { createIntegration(input: { kind: BILLING, provider: \"stripe\", name: \"Stripe EU\" }) { id } }";
const CONFIGURE: &str = "mutation($id: ID!, $input: ConfigureIntegrationInput!) { configureIntegration(id: $id, input: $input) { id configured health fieldRules { field sourceOfTruth } } }";
const TEST_CONNECTION: &str = "mutation($id: ID!) { testIntegrationConnection(id: $id) { ok message integration { health lastError circuitOpenUntil } } }";
pub(crate) const START: &str = "mutation($id: ID!, $mode: IntegrationSyncMode!, $from: String) { startIntegrationSync(id: $id, mode: $mode, fromCursor: $from) { id status } }";
pub(crate) const RUNS: &str = "query($id: ID!) { integration(id: $id) { health lastSyncAt syncRuns(first: 5) { edges { node { id mode status createdCount updatedCount unchangedCount deletedCount failedCount pages error cursor durationMs failures { externalType externalId error } } } } } }";
const ACCOUNT: &str = "query($id: ID!) { account(id: $id) { name balance externalRefs { externalType externalId entityType } invoices(first: 10) { edges { node { number amount status currency } } } ledgerEntries(first: 20) { edges { node { kind amount } } } } }";

pub(crate) async fn admin(portal: &TestPortal, query: &str, vars: Value) -> anyhow::Result<Value> {
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

pub(crate) fn ok(response: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(response["errors"].is_null(), "{response}");
    Ok(())
}

pub(crate) fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

pub(crate) fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A service account with a `billing_admin` API key, made by the tenant admin through
/// the API (a second factor first): the identity sync writes with.
async fn connector_key(portal: &TestPortal) -> anyhow::Result<String> {
    service_key(portal, "billing_admin").await
}

/// A service account with an API key of `role`, made by the tenant admin through the API
/// (a second factor first).
pub(crate) async fn service_key(portal: &TestPortal, role: &str) -> anyhow::Result<String> {
    let (alice, _, _) = session_of(portal, "alice@acme.example").await?;
    enroll_mfa(portal, &alice).await?;
    let (_, account) = post(
        portal,
        Some(&alice),
        "mutation { createServiceAccount(input: { name: \"stripe-sync\", description: \"Stripe connector\" }) { id } }",
        json!({}),
    )
    .await?;
    ok(&account)?;
    let (_, key) = post(
        portal,
        Some(&alice),
        "mutation($a: ID!, $role: String!) { createApiKey(input: { serviceAccountId: $a, name: \"sync\", roles: [$role] }) { key } }",
        json!({ "a": account["data"]["createServiceAccount"]["id"], "role": role }),
    )
    .await?;
    ok(&key)?;
    Ok(text(&key["data"]["createApiKey"]["key"]))
}

/// A worker that runs sync jobs, the sync schedule and integrations' failure notices.
fn worker(portal: &TestPortal, fake: &FakeStripe) -> anyhow::Result<Arc<Runner>> {
    sync_worker(portal, endpoints(fake))
}

/// A worker that runs sync jobs calling `endpoints`, the sync schedule and integrations'
/// failure notices.
pub(crate) fn sync_worker(
    portal: &TestPortal,
    endpoints: Endpoints,
) -> anyhow::Result<Arc<Runner>> {
    let handler = SyncPages::new(
        portal.db.clone(),
        portal_tests::tenant_keys(&portal.db),
        Arc::new(portal.gateway_client.clone()),
        Arc::new(portal_identity::api_keys::DbApiKeys::new(portal.db.clone())),
        endpoints,
        remote_for_jobs().map_err(|err| anyhow::anyhow!("{err}"))?,
    );
    let notice = portal::webhooks::IntegrationFailingNotice::new(
        portal.db.clone(),
        portal_tests::identity_settings().data_key,
    );
    Ok(Arc::new(
        Runner::new(portal.db.clone(), portal_kit::clock::system())
            .handle(SyncPages::KIND, handler)
            .handle(portal::webhooks::IntegrationFailingNotice::KIND, notice)
            .handle(
                portal_integrations::sync::SyncDue::KIND,
                portal_integrations::sync::SyncDue::new(portal.db.clone()),
            ),
    ))
}

fn endpoints(fake: &FakeStripe) -> Endpoints {
    Endpoints {
        stripe: fake.base_url(),
        ..Endpoints::default()
    }
}

/// Runs every sync job that is due.
pub(crate) async fn drain(runner: &Arc<Runner>) -> anyhow::Result<()> {
    while runner
        .run_once()
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?
        > 0
    {}
    Ok(())
}

/// The newest run of the integration.
pub(crate) async fn last_run(portal: &TestPortal, id: &str) -> anyhow::Result<Value> {
    let runs = admin(portal, RUNS, json!({ "id": id })).await?;
    ok(&runs)?;
    Ok(runs["data"]["integration"]["syncRuns"]["edges"][0]["node"].clone())
}

/// A configured Stripe integration of acme, a portal account the customer names, and a
/// worker.
struct Setup {
    portal: TestPortal,
    fake: FakeStripe,
    integration: String,
    account: String,
    runner: Arc<Runner>,
}

async fn setup() -> anyhow::Result<Setup> {
    setup_in(Mode::AllInOne).await
}

async fn setup_in(mode: Mode) -> anyhow::Result<Setup> {
    let fake = FakeStripe::start().await?;
    let portal = TestPortal::start_enforcing_with_connectors(mode, endpoints(&fake)).await?;
    let key = connector_key(&portal).await?;
    let created = admin(&portal, CREATE_INTEGRATION, json!({})).await?;
    ok(&created)?;
    let integration = text(&created["data"]["createIntegration"]["id"]);
    let configured = admin(
        &portal,
        CONFIGURE,
        json!({ "id": integration, "input": {
            "apiKey": fake_stripe::API_KEY,
            "webhookSecret": WEBHOOK_SECRET,
            "portalApiKey": key,
        }}),
    )
    .await?;
    ok(&configured)?;
    assert_eq!(
        configured["data"]["configureIntegration"]["configured"],
        true
    );
    let account = admin(
        &portal,
        "mutation($owner: ID!) { createAccount(input: { name: \"Initech\", number: \"INIT-0001\", currency: \"USD\", ownerId: $owner }) { id } }",
        json!({ "owner": portal.seed.alice_id }),
    )
    .await?;
    ok(&account)?;
    let account = text(&account["data"]["createAccount"]["id"]);
    let runner = worker(&portal, &fake)?;
    Ok(Setup {
        portal,
        fake,
        integration,
        account,
        runner,
    })
}

#[tokio::test]
async fn stripe_syncs_into_the_ledger_through_the_gateway() -> anyhow::Result<()> {
    let Setup {
        portal,
        fake,
        integration,
        account,
        runner,
    } = setup().await?;

    // The connection test reaches the fake with the sealed key.
    let tested = admin(&portal, TEST_CONNECTION, json!({ "id": integration })).await?;
    ok(&tested)?;
    let check = &tested["data"]["testIntegrationConnection"];
    assert_eq!(
        (check["ok"].clone(), check["integration"]["health"].clone()),
        (json!(true), json!("HEALTHY")),
        "{tested}"
    );
    // The credentials are nowhere in the database in the clear.
    let row = portal_entities::integrations::integration::Entity::find()
        .filter(portal_entities::integrations::integration::Column::Provider.eq("stripe"))
        .all(&portal.db)
        .await?;
    for row in row {
        let sealed = row.credentials_sealed.unwrap_or_default();
        assert!(!sealed.contains(fake_stripe::API_KEY) && !sealed.contains(WEBHOOK_SECRET));
    }

    // Stripe: a customer naming the account, one naming nothing; invoices open, paid
    // (with its payment and a partial refund), a draft, and one of the unlinked customer.
    let start = fake.now();
    // An older customer naming the same account: skipped (Stripe lists newest first, so
    // the newer one is linked), and the run goes on.
    let twin = fake.add_customer(
        "Initech Twin",
        "twin@initech.example",
        &[("portal_account_id", &account)],
    );
    let customer = fake.add_customer(
        "Initech GmbH",
        "billing@initech.example",
        &[("portal_account_id", &account)],
    );
    let stranger = fake.add_customer("Unlinked Ltd", "ap@unlinked.example", &[]);
    let open = fake.add_invoice(
        &customer,
        "INV-0001",
        "usd",
        12_000,
        "open",
        start,
        start + 86_400,
        Some(start + 30 * 86_400),
    );
    let paid = fake.add_invoice(
        &customer,
        "INV-0002",
        "usd",
        5_000,
        "paid",
        start,
        start + 86_400,
        None,
    );
    let payment = fake.add_invoice_payment(&paid, 5_000);
    let charge = fake.charge_of_payment(&payment).unwrap_or_default();
    let refund = fake.add_refund(&charge, 1_500);
    fake.add_invoice(
        &customer, "INV-0003", "usd", 900, "draft", start, start, None,
    );
    let orphan = fake.add_invoice(
        &stranger, "INV-0004", "usd", 700, "open", start, start, None,
    );

    // The first call is rate limited with Retry-After: the client waits and goes on.
    fake.clear_requests();
    fake.fail_next(
        1,
        Fault::RateLimited {
            retry_after: Some(1),
        },
    );
    let started = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "BACKFILL" }),
    )
    .await?;
    ok(&started)?;
    let again = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?;
    assert_eq!(code(&again), "CONFLICT", "one run at a time: {again}");
    drain(&runner).await?;

    let run = last_run(&portal, &integration).await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    // Linked customer, two invoices, the payment and the refund.
    assert_eq!(run["createdCount"], 5, "{run}");
    assert_eq!(run["failedCount"], 3, "{run}");
    let failures: Vec<(String, String)> = run["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (text(&f["externalId"]), text(&f["error"])))
        .collect();
    assert!(
        failures
            .iter()
            .any(|(id, why)| *id == stranger && why.contains("metadata.portal_account_id")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|(id, why)| *id == orphan && why.contains("not linked")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|(id, why)| *id == twin && why.contains("already linked to customer")),
        "{failures:?}"
    );
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.stripe_version.as_deref() == Some(fake_stripe::API_VERSION))
    );
    assert_eq!(
        requests[0].path, requests[1].path,
        "the rate-limited call was retried"
    );

    // The portal's books, read through the gateway: invoices issued, paid, refunded.
    let books = admin(&portal, ACCOUNT, json!({ "id": account })).await?;
    ok(&books)?;
    let invoices: Vec<(String, String)> = books["data"]["account"]["invoices"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (text(&e["node"]["number"]), text(&e["node"]["status"])))
        .collect();
    // The fake's clock is in 2023: the open invoice's due date has passed.
    assert!(
        invoices.contains(&("INV-0001".into(), "OVERDUE".into())),
        "{books}"
    );
    assert!(
        invoices.contains(&("INV-0002".into(), "PAID".into())),
        "{books}"
    );
    assert_eq!(
        invoices.len(),
        2,
        "no draft, no stranger's invoice: {books}"
    );
    // -120 - 50 + 50 (payment) - 15 (refund)
    assert_eq!(books["data"]["account"]["balance"], "-135.0000", "{books}");
    let refs = books["data"]["account"]["externalRefs"].to_string();
    assert!(
        refs.contains(&customer) && refs.contains("customer"),
        "{refs}"
    );

    // Written as the connector's service account, through accounts' own mutations.
    let issued = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("account.invoice.issue"))
        .filter(audit_event::Column::ActorKind.eq("service"))
        .all(&portal.db)
        .await?;
    assert_eq!(issued.len(), 2);
    assert!(issued.iter().all(|e| {
        e.details
            .as_ref()
            .is_some_and(|d| d["delegation"]["by"] == "integrations")
    }));

    // Nothing changed: a second run creates nothing (everything is linked and unchanged).
    let rerun = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?;
    ok(&rerun)?;
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(
        (run["status"].clone(), run["createdCount"].clone()),
        (json!("SUCCEEDED"), json!(0)),
        "{run}"
    );

    // Changes at Stripe: the open invoice is voided, the customer renamed. The portal owns
    // `Account.name` (the default rule), so its name is pushed back with an idempotency key.
    fake.set_invoice_status(&open, "void");
    fake.update_customer(&customer, Some("Initech Renamed"), &[]);
    fake.clear_requests();
    let incremental = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?;
    ok(&incremental)?;
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["failedCount"], 0, "{run}");
    let books = admin(&portal, ACCOUNT, json!({ "id": account })).await?;
    let voided = books["data"]["account"]["invoices"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["node"]["number"] == "INV-0001" && e["node"]["status"] == "VOID");
    assert!(voided, "{books}");
    assert_eq!(
        books["data"]["account"]["name"], "Initech",
        "the portal's name stands"
    );
    let pushes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("/v1/customers/{customer}"))
        .collect();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert!(pushes[0].idempotency_key.is_some());

    // With the remote as the source of truth for the name, a rename arrives in the portal.
    let rules = admin(
        &portal,
        CONFIGURE,
        json!({ "id": integration, "input": { "fieldRules": [{ "field": "Account.name", "sourceOfTruth": "REMOTE" }] } }),
    )
    .await?;
    ok(&rules)?;
    let unknown_rule = admin(
        &portal,
        CONFIGURE,
        json!({ "id": integration, "input": { "fieldRules": [{ "field": "Account.balance", "sourceOfTruth": "REMOTE" }] } }),
    )
    .await?;
    assert_eq!(code(&unknown_rule), "BAD_USER_INPUT", "{unknown_rule}");
    fake.update_customer(&customer, Some("Initech International"), &[]);
    ok(&admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?)?;
    drain(&runner).await?;
    let books = admin(&portal, ACCOUNT, json!({ "id": account })).await?;
    assert_eq!(
        books["data"]["account"]["name"], "Initech International",
        "{books}"
    );

    // Replay from where the backfill ended: the same events again, nothing written twice
    // (events are applied in order, so the newest state wins).
    let backfill_end = {
        let runs = admin(&portal, RUNS, json!({ "id": integration })).await?;
        let edges = runs["data"]["integration"]["syncRuns"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let oldest = edges.last().cloned().unwrap_or_default();
        assert_eq!(oldest["node"]["mode"], "BACKFILL");
        text(&oldest["node"]["cursor"])
    };
    let bad = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL", "from": "not json" }),
    )
    .await?;
    assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
    let replay = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL", "from": backfill_end }),
    )
    .await?;
    ok(&replay)?;
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(
        (run["status"].clone(), run["createdCount"].clone()),
        (json!("SUCCEEDED"), json!(0)),
        "{run}"
    );
    let books = admin(&portal, ACCOUNT, json!({ "id": account })).await?;
    assert_eq!(
        books["data"]["account"]["name"], "Initech International",
        "{books}"
    );
    assert_eq!(books["data"]["account"]["balance"], "-15.0000", "{books}");

    // A deleted customer loses its link; its account and ledger stay.
    fake.delete_customer(&customer);
    ok(&admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?)?;
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(run["deletedCount"], 1, "{run}");
    let books = admin(&portal, ACCOUNT, json!({ "id": account })).await?;
    assert!(
        !books["data"]["account"]["externalRefs"]
            .to_string()
            .contains(&customer),
        "{books}"
    );
    // -120 + 120 (the void's credit) - 50 + 50 - 15
    assert_eq!(books["data"]["account"]["balance"], "-15.0000", "{books}");
    assert!(!refund.is_empty());

    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn inbound_stripe_webhooks_are_verified_and_start_a_run() -> anyhow::Result<()> {
    let Setup {
        portal,
        fake: _fake,
        integration,
        runner,
        ..
    } = setup().await?;
    let url = portal
        .endpoint
        .replace("/graphql", &format!("/integrations/{integration}/webhook"));
    let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#;
    let now = chrono::Utc::now().timestamp();
    let send = |signature: String| {
        portal
            .http()
            .post(&url)
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
    };

    let forged = send(fake_stripe::sign("whsec_someone_else", now, body)).await?;
    assert_eq!(forged.status(), 400);
    let stale = send(fake_stripe::sign(WEBHOOK_SECRET, now - 600, body)).await?;
    assert_eq!(stale.status(), 400);
    let refused = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("integration.webhook_receive"))
        .filter(audit_event::Column::Outcome.eq("failure"))
        .all(&portal.db)
        .await?;
    assert_eq!(refused.len(), 2);
    let runs = admin(&portal, RUNS, json!({ "id": integration })).await?;
    assert_eq!(
        runs["data"]["integration"]["syncRuns"]["edges"],
        json!([]),
        "{runs}"
    );

    // Never synced: accepted, but nothing starts until a person backfills.
    let early = send(fake_stripe::sign(WEBHOOK_SECRET, now, body)).await?;
    assert_eq!(early.status(), 200);
    assert_eq!(run_count(&portal, &integration).await?, 0);
    ok(&admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "BACKFILL" }),
    )
    .await?)?;
    drain(&runner).await?;

    let genuine = send(fake_stripe::sign(WEBHOOK_SECRET, now, body)).await?;
    assert_eq!(genuine.status(), 200);
    let run = last_run(&portal, &integration).await?;
    assert_eq!(
        (run["mode"].clone(), run["status"].clone()),
        (json!("INCREMENTAL"), json!("RUNNING")),
        "{run}"
    );
    // A second webhook while the run is in progress is taken too (the run reads it).
    let second = send(fake_stripe::sign(WEBHOOK_SECRET, now, body)).await?;
    assert_eq!(second.status(), 200);

    let missing = portal
        .http()
        .post(portal.endpoint.replace(
            "/graphql",
            &format!("/integrations/{}/webhook", uuid::Uuid::now_v7()),
        ))
        .header(
            "stripe-signature",
            fake_stripe::sign(WEBHOOK_SECRET, now, body),
        )
        .body(body.to_vec())
        .send()
        .await?;
    assert_eq!(missing.status(), 404);

    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn refused_credentials_and_outages_show_in_health_and_runs() -> anyhow::Result<()> {
    let Setup {
        portal,
        fake,
        integration,
        runner,
        ..
    } = setup().await?;

    // Admins watch the integration's state.
    let seed = &portal.seed;
    let mut payload = serde_json::Map::new();
    payload.insert(
        "x-portal-tenant-id".into(),
        json!(seed.tenant_id.to_string()),
    );
    payload.insert("x-portal-user-id".into(), json!(seed.alice_id.to_string()));
    payload.insert("x-portal-roles".into(), json!("tenant_admin"));
    let mut ws =
        portal_tests::streams::WsClient::connect(&portal.endpoint, Value::Object(payload)).await?;
    ws.subscribe(
        "1",
        "subscription($id: ID!) { integrationStatusChanged(id: $id) { health circuitOpenUntil } }",
        json!({ "id": integration }),
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // A remote that keeps failing opens the circuit after five failures in a row.
    fake.fail_next(5, Fault::ServerError);
    let mut healths = Vec::new();
    for _ in 0..5 {
        let tested = admin(&portal, TEST_CONNECTION, json!({ "id": integration })).await?;
        ok(&tested)?;
        healths.push(text(
            &tested["data"]["testIntegrationConnection"]["integration"]["health"],
        ));
    }
    assert_eq!(
        healths,
        ["DEGRADED", "DEGRADED", "DEGRADED", "DEGRADED", "FAILING"]
    );
    let integration_state = admin(
        &portal,
        "query($id: ID!) { integration(id: $id) { circuitOpenUntil lastError } }",
        json!({ "id": integration }),
    )
    .await?;
    assert!(
        !integration_state["data"]["integration"]["circuitOpenUntil"].is_null(),
        "{integration_state}"
    );
    // The subscription saw it happen…
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("FAILING") {
        let next = ws.next().await?;
        let state = &next["payload"]["data"]["integrationStatusChanged"];
        anyhow::ensure!(state.is_object(), "{next}");
        seen.push(text(&state["health"]));
    }
    // (Each event yields the integration as it is when the event is handled: changes
    // in quick succession may show only the latest, so DEGRADED may be skipped.)
    let rank = |h: &String| {
        ["UNKNOWN", "DEGRADED", "FAILING"]
            .iter()
            .position(|r| r == h)
    };
    let ranks: Vec<_> = seen.iter().map(rank).collect();
    assert!(
        ranks.iter().all(Option::is_some) && ranks.windows(2).all(|w| w[0] <= w[1]),
        "health went {seen:?}"
    );
    // …and the people who may configure it are told by email.
    drain(&runner).await?;
    let mut told = false;
    for _ in 0..5 {
        let Ok(mail) = portal.next_mail_to("alice@acme.example").await else {
            break;
        };
        if mail.contains("integration is failing") {
            told = mail.contains("Stripe EU");
            break;
        }
    }
    assert!(told, "the tenant admin was told");
    // While it is open, a run calls nothing and waits.
    ok(&admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "BACKFILL" }),
    )
    .await?)?;
    fake.clear_requests();
    drain(&runner).await?;
    assert!(
        fake.requests().is_empty(),
        "the circuit is open: {:?}",
        fake.requests()
    );
    assert_eq!(last_run(&portal, &integration).await?["status"], "RUNNING");

    // New credentials close it; a key Stripe refuses fails the run, saying why.
    fake.expire_key(fake_stripe::API_KEY);
    ok(&admin(
        &portal,
        CONFIGURE,
        json!({ "id": integration, "input": { "apiKey": fake_stripe::API_KEY } }),
    )
    .await?)?;
    // The waiting job is due when the circuit would have closed; run it now.
    sea_orm::ConnectionTrait::execute_unprepared(
        &portal.db,
        "UPDATE jobs SET run_at = CURRENT_TIMESTAMP WHERE kind = 'integration.sync'",
    )
    .await?;
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert!(
        text(&run["error"]).contains("refused the credentials"),
        "{run}"
    );
    let tested = admin(&portal, TEST_CONNECTION, json!({ "id": integration })).await?;
    let check = &tested["data"]["testIntegrationConnection"];
    assert_eq!(
        (check["ok"].clone(), check["integration"]["health"].clone()),
        (json!(false), json!("FAILING")),
        "{tested}"
    );
    assert!(
        text(&check["message"]).contains("Expired API Key"),
        "{tested}"
    );

    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn connectors_are_isolated_by_tenant_and_role() -> anyhow::Result<()> {
    let Setup {
        portal,
        integration,
        ..
    } = setup().await?;
    let seed = &portal.seed;
    let gina = |query: &'static str, vars: Value| {
        portal.query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            query,
            vars,
        )
    };
    for (query, vars) in [
        (
            CONFIGURE,
            json!({ "id": integration, "input": { "apiKey": "sk_test_x" } }),
        ),
        (TEST_CONNECTION, json!({ "id": integration })),
        (START, json!({ "id": integration, "mode": "BACKFILL" })),
    ] {
        let refused = gina(query, vars).await?;
        assert_eq!(code(&refused), "NOT_FOUND", "{refused}");
    }
    let hidden = gina(RUNS, json!({ "id": integration })).await?;
    assert!(hidden["data"]["integration"].is_null(), "{hidden}");

    // Integrators may test and sync, not hand over credentials.
    let integrator = |query: &'static str, vars: Value| {
        portal.query_with_roles(seed.tenant_id, seed.carol_id, &["integrator"], query, vars)
    };
    let refused = integrator(
        CONFIGURE,
        json!({ "id": integration, "input": { "apiKey": "sk_test_x" } }),
    )
    .await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let tested = integrator(TEST_CONNECTION, json!({ "id": integration })).await?;
    ok(&tested)?;

    // A provider without a connector cannot be configured.
    let other = admin(&portal, "mutation { createIntegration(input: { kind: CRM, provider: \"pipedrive\", name: \"Pipedrive\" }) { id } }", json!({})).await?;
    let refused = admin(
        &portal,
        CONFIGURE,
        json!({ "id": other["data"]["createIntegration"]["id"], "input": { "apiKey": "x" } }),
    )
    .await?;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");

    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_empty_account_backfills_then_takes_every_later_event_in_order() -> anyhow::Result<()> {
    // Distributed: the worker writes through the gateway over HTTP, with a delegated
    // credential that lets the service account's agent write.
    let Setup {
        portal,
        fake,
        integration,
        account,
        runner,
    } = setup_in(Mode::Distributed).await?;
    // Nothing at Stripe yet: the backfill finds nothing and no event to go on from.
    ok(&admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "BACKFILL" }),
    )
    .await?)?;
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(
        (run["status"].clone(), run["createdCount"].clone()),
        (json!("SUCCEEDED"), json!(0)),
        "{run}"
    );

    // Then a customer and 120 invoices: several pages of events, walked oldest first.
    let customer = fake.add_customer(
        "Initech",
        "ap@initech.example",
        &[("portal_account_id", &account)],
    );
    let start = fake.now();
    for n in 1..=120 {
        let number = format!("BULK-{n:04}");
        fake.add_invoice(
            &customer,
            &number,
            "usd",
            1_000,
            "open",
            start,
            start,
            Some(start + 86_400),
        );
    }
    ok(&admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?)?;
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        (run["createdCount"].clone(), run["failedCount"].clone()),
        (json!(121), json!(0)),
        "{run}"
    );
    assert!(run["pages"].as_i64().unwrap_or_default() > 2, "{run}");
    let books = admin(
        &portal,
        "query($id: ID!) { account(id: $id) { balance } }",
        json!({ "id": account }),
    )
    .await?;
    assert_eq!(books["data"]["account"]["balance"], "-1200.0000", "{books}");

    portal.stop().await;
    Ok(())
}

/// Queues the five-minute sweep now.
async fn sweep(portal: &TestPortal) -> anyhow::Result<()> {
    let job = portal_kit::jobs::NewJob::new(portal_integrations::sync::SyncDue::KIND, json!({}));
    portal_kit::jobs::enqueue(&portal.db, chrono::Utc::now(), job)
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    Ok(())
}

async fn run_count(portal: &TestPortal, id: &str) -> anyhow::Result<usize> {
    let runs = admin(portal, RUNS, json!({ "id": id })).await?;
    Ok(runs["data"]["integration"]["syncRuns"]["edges"]
        .as_array()
        .map_or(0, Vec::len))
}

#[tokio::test]
async fn the_schedule_runs_active_integrations_that_synced_before() -> anyhow::Result<()> {
    let Setup {
        portal,
        fake: _fake,
        integration,
        runner,
        ..
    } = setup().await?;
    // Never synced: the first run is a person's choice (backfill or not).
    sweep(&portal).await?;
    drain(&runner).await?;
    assert_eq!(run_count(&portal, &integration).await?, 0);

    ok(&admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "BACKFILL" }),
    )
    .await?)?;
    drain(&runner).await?;
    sweep(&portal).await?;
    drain(&runner).await?;
    assert_eq!(run_count(&portal, &integration).await?, 2);
    let run = last_run(&portal, &integration).await?;
    assert_eq!(
        (run["mode"].clone(), run["status"].clone()),
        (json!("INCREMENTAL"), json!("SUCCEEDED")),
        "{run}"
    );
    let started_by = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("integration_sync.start"))
        .filter(audit_event::Column::ActorKind.eq("anonymous"))
        .all(&portal.db)
        .await?;
    assert_eq!(
        started_by.len(),
        0,
        "the scheduler's runs are audited only when they change something or fail"
    );

    // A person stops a run before its job ran: it ends, and its job changes nothing.
    let started = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?;
    ok(&started)?;
    let run_id = text(&started["data"]["startIntegrationSync"]["id"]);
    let cancel = "mutation($id: ID!) { cancelIntegrationSync(runId: $id) { status error } }";
    let cancelled = admin(&portal, cancel, json!({ "id": run_id })).await?;
    ok(&cancelled)?;
    assert_eq!(
        cancelled["data"]["cancelIntegrationSync"]["status"], "FAILED",
        "{cancelled}"
    );
    drain(&runner).await?;
    let run = last_run(&portal, &integration).await?;
    assert_eq!(
        (run["status"].clone(), run["pages"].clone()),
        (json!("FAILED"), json!(0)),
        "{run}"
    );
    let again = admin(&portal, cancel, json!({ "id": run_id })).await?;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    let elsewhere = portal
        .query_with_roles(
            portal.seed.other_tenant_id,
            portal.seed.other_user_id,
            &["tenant_admin"],
            cancel,
            json!({ "id": run_id }),
        )
        .await?;
    assert_eq!(code(&elsewhere), "NOT_FOUND", "{elsewhere}");

    // Paused: left alone.
    let paused = admin(
        &portal,
        "mutation($id: ID!) { updateIntegration(id: $id, input: { status: PAUSED }) { status } }",
        json!({ "id": integration }),
    )
    .await?;
    ok(&paused)?;
    sweep(&portal).await?;
    drain(&runner).await?;
    assert_eq!(run_count(&portal, &integration).await?, 3);
    let refused = admin(
        &portal,
        START,
        json!({ "id": integration, "mode": "INCREMENTAL" }),
    )
    .await?;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");

    portal.stop().await;
    Ok(())
}
