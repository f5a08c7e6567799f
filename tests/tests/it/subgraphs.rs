//! Subgraphs tested on their own, through `build_schema` (no sockets, no gateway).

use async_graphql::{Executor, Request, Variables};
use portal_kit::{Actor, RequestMeta};
use portal_tests::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

async fn run(schema: &impl Executor, actor: &Actor, query: &str, variables: Value) -> Value {
    let request = Request::new(query)
        .variables(Variables::from_json(variables))
        .data(actor.clone())
        .data(RequestMeta::default());
    let response = schema.execute(request).await;
    serde_json::to_value(&response).unwrap_or_default()
}

struct Fixture {
    test_db: TestDb,
    db: sea_orm::DatabaseConnection,
    seed: portal::seed::DemoSeed,
}

impl Fixture {
    async fn new() -> anyhow::Result<Self> {
        let test_db = TestDb::new().await?;
        let db = test_db.connect().await?;
        let seed = portal::seed::seed(&db).await?;
        Ok(Self { test_db, db, seed })
    }

    /// References checked through the other subgraphs, in process.
    fn references(&self) -> portal_kit::references::References {
        let references = portal_kit::references::References::default();
        let all = portal::subgraphs::build_all(&self.db, &portal_tests::authenticator(&self.db));
        portal::subgraphs::register_owners(&references, |name| {
            all.iter()
                .find(|s| s.name == name)
                .map(|s| s.client.clone())
        });
        references
    }

    fn carol(&self) -> Actor {
        Actor::user(
            self.seed.carol_id,
            self.seed.tenant_id,
            vec!["customer_user".into()],
        )
    }

    fn alice(&self) -> Actor {
        Actor::user(
            self.seed.alice_id,
            self.seed.tenant_id,
            vec!["tenant_admin".into()],
        )
    }

    fn gina(&self) -> Actor {
        Actor::user(
            self.seed.other_user_id,
            self.seed.other_tenant_id,
            vec!["tenant_admin".into()],
        )
    }

    async fn done(self) {
        let _ = self.db.close().await;
        self.test_db.cleanup().await;
    }
}

const USER_ENTITIES: &str =
    "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id email } } }";

#[tokio::test]
async fn identity_resolves_user_entities_only_inside_the_callers_tenant() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let schema = portal_tests::identity_schema(&fx.db);
    let unknown = Uuid::now_v7().to_string();
    let representations = json!({ "r": [
        { "__typename": "User", "id": fx.seed.carol_id.to_string() },
        { "__typename": "User", "id": fx.seed.other_user_id.to_string() },
        { "__typename": "User", "id": unknown },
    ]});
    let response = run(&schema, &fx.carol(), USER_ENTITIES, representations).await;
    // Another tenant's user and an unknown id read alike: a tombstone that tells nothing.
    assert_eq!(
        response["data"]["_entities"],
        json!([
            { "id": fx.seed.carol_id.to_string(), "email": "carol@acme.example" },
            { "id": fx.seed.other_user_id.to_string(), "email": null },
            { "id": unknown, "email": null },
        ])
    );
    fx.done().await;
    Ok(())
}

#[tokio::test]
async fn identity_refuses_invalid_emails_and_duplicate_users() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let schema = portal_tests::identity_schema(&fx.db);
    let create = "mutation($e: String!) { createUser(input: { email: $e, displayName: \"Dan\" }) { email status } }";
    let response = run(&schema, &fx.alice(), create, json!({ "e": "dan@" })).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    // Who may invite is the gateway's policy decision (tested in rbac.rs), not the
    // subgraph's: it validates and writes for whoever the gateway lets through.
    let response = run(
        &schema,
        &fx.alice(),
        create,
        json!({ "e": " Dan@Acme.Example " }),
    )
    .await;
    assert_eq!(
        response["data"]["createUser"],
        json!({ "email": "dan@acme.example", "status": "INVITED" })
    );
    let response = run(
        &schema,
        &fx.alice(),
        create,
        json!({ "e": "dan@acme.example" }),
    )
    .await;
    assert_eq!(response["errors"][0]["extensions"]["code"], "CONFLICT");
    // The same email is free in another tenant.
    let response = run(
        &schema,
        &fx.gina(),
        create,
        json!({ "e": "dan@acme.example" }),
    )
    .await;
    assert_eq!(response["data"]["createUser"]["email"], "dan@acme.example");
    fx.done().await;
    Ok(())
}

#[tokio::test]
async fn a_dashboard_entity_resolves_only_for_its_own_user() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let schema = portal_accounts::build_schema(
        fx.db.clone(),
        Default::default(),
        portal_tests::feed(&fx.db),
        portal_kit::storage::FileStore::in_memory(&portal_tests::identity_settings().data_key),
    );
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Dashboard { id timeZone balances { currency } } } }";
    let representation = |id: Uuid, zone: &str| json!({ "__typename": "Dashboard", "id": id.to_string(), "timeZone": zone });
    let response = run(
        &schema,
        &fx.carol(),
        query,
        json!({ "r": [
            representation(fx.seed.carol_id, "Europe/Berlin"),
            // Alice's home page, asked for by Carol: nothing (not Alice's KPIs as Carol's,
            // not Carol's under Alice's id).
            representation(fx.seed.alice_id, "Europe/Berlin"),
            representation(fx.seed.other_user_id, "UTC"),
        ]}),
    )
    .await;
    let entities = &response["data"]["_entities"];
    assert_eq!(
        entities[0]["id"],
        fx.seed.carol_id.to_string(),
        "{response}"
    );
    assert_eq!(entities[0]["timeZone"], "Europe/Berlin");
    assert_eq!(entities[0]["balances"][0]["currency"], "EUR");
    assert_eq!(entities[1], Value::Null, "{response}");
    assert_eq!(entities[2], Value::Null, "{response}");
    fx.done().await;
    Ok(())
}

#[tokio::test]
async fn accounts_contributes_user_accounts_for_entity_representations() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let schema = portal_accounts::build_schema(
        fx.db.clone(),
        Default::default(),
        portal_tests::feed(&fx.db),
        portal_kit::storage::FileStore::in_memory(&portal_tests::identity_settings().data_key),
    );
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { accounts { edges { node { number balance } } } } } }";
    let response = run(
        &schema,
        &fx.carol(),
        query,
        json!({ "r": [
            { "__typename": "User", "id": fx.seed.carol_id.to_string() },
            { "__typename": "User", "id": fx.seed.other_user_id.to_string() },
        ]}),
    )
    .await;
    assert_eq!(
        response["data"]["_entities"],
        json!([
            { "accounts": { "edges": [
                { "node": { "number": "ACME-0002", "balance": "3000.0000" } },
                { "node": { "number": "ACME-0003", "balance": "98765.4321" } },
            ]}},
            // Gina's accounts live in another tenant: Carol sees none of them.
            { "accounts": { "edges": [] } },
        ])
    );
    fx.done().await;
    Ok(())
}

#[tokio::test]
async fn reports_queues_runs_of_readable_definitions_only() -> anyhow::Result<()> {
    use portal_entities::reports::report_definition;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let fx = Fixture::new().await?;
    // Saving a definition checks it against the gateway's supergraph (tested through the
    // gateway in `reports`); here, runs of a seeded one.
    let schema = portal_reports::build_schema(
        fx.db.clone(),
        Default::default(),
        Default::default(),
        portal_kit::storage::FileStore::in_memory(&portal_kit::secret::DataKey::from_secret(
            portal_tests::TEST_SECRET.as_bytes(),
        )),
        portal_tests::feed(&fx.db),
        portal_tests::tenant_keys(&fx.db).provider(),
    );
    let owned = report_definition::Entity::find()
        .filter(report_definition::Column::OwnerId.eq(fx.seed.carol_id))
        .one(&fx.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Carol owns no seeded report"))?;
    let run_query = "mutation($d: ID!) { requestReportRun(definitionId: $d) { status cause definition { name } } }";
    let response = run(
        &schema,
        &fx.carol(),
        run_query,
        json!({ "d": owned.id.to_string() }),
    )
    .await;
    assert_eq!(
        response["data"]["requestReportRun"],
        json!({ "status": "QUEUED", "cause": "MANUAL", "definition": { "name": owned.name } }),
        "{response}"
    );
    // Another tenant cannot run it.
    let response = run(
        &schema,
        &fx.gina(),
        run_query,
        json!({ "d": owned.id.to_string() }),
    )
    .await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{response}"
    );
    fx.done().await;
    Ok(())
}

#[tokio::test]
async fn messages_only_participants_post_and_only_authors_edit() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let schema = portal_messages::build_schema(
        fx.db.clone(),
        Default::default(),
        portal_tests::feed(&fx.db),
        portal_tests::tenant_keys(&fx.db),
        portal_kit::storage::FileStore::in_memory(&portal_tests::identity_settings().data_key),
    );
    let alice = Actor::user(fx.seed.alice_id, fx.seed.tenant_id, vec![]);
    let bob = Actor::user(fx.seed.bob_id, fx.seed.tenant_id, vec![]);
    let create = "mutation { createThread(input: { subject: \"Private\", body: \"Just us\" }) { id messages { edges { node { id } } } } }";
    let response = run(&schema, &alice, create, json!({})).await;
    let thread = response["data"]["createThread"]["id"].clone();
    let first_message =
        response["data"]["createThread"]["messages"]["edges"][0]["node"]["id"].clone();
    assert!(thread.is_string(), "{response}");

    let post =
        "mutation($t: ID!) { postMessage(input: { threadId: $t, body: \"Let me in\" }) { id } }";
    // A thread one may not read reads as missing, to post to as to anything else.
    let response = run(&schema, &bob, post, json!({ "t": thread })).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{response}"
    );

    let edit =
        "mutation($m: ID!) { editMessage(id: $m, input: { body: \"Edited\" }) { body editedAt } }";
    let response = run(&schema, &bob, edit, json!({ "m": first_message })).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{response}"
    );
    let response = run(&schema, &alice, edit, json!({ "m": first_message })).await;
    assert_eq!(
        response["data"]["editMessage"]["body"], "Edited",
        "{response}"
    );
    assert!(response["data"]["editMessage"]["editedAt"].is_string());
    fx.done().await;
    Ok(())
}

#[tokio::test]
async fn integrations_links_external_refs_once_per_account() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let schema = portal_integrations::build_schema(
        fx.db.clone(),
        fx.references(),
        portal_tests::tenant_keys(&fx.db),
        portal_integrations::graphql::ConnectorContext {
            endpoints: Default::default(),
            remote: portal_integrations::sync::remote_for_requests()
                .map_err(|err| anyhow::anyhow!("{err}"))?,
        },
        portal_tests::feed(&fx.db),
    );
    let create = "mutation { createIntegration(input: { kind: BILLING, provider: \"chargebee\", name: \"Chargebee\" }) { id status } }";
    let response = run(&schema, &fx.carol(), create, json!({})).await;
    let integration = response["data"]["createIntegration"]["id"].clone();
    assert_eq!(
        response["data"]["createIntegration"]["status"], "ACTIVE",
        "{response}"
    );
    let accounts = portal_accounts::build_schema(
        fx.db.clone(),
        Default::default(),
        portal_tests::feed(&fx.db),
        portal_kit::storage::FileStore::in_memory(&portal_tests::identity_settings().data_key),
    );
    let list = run(
        &accounts,
        &fx.carol(),
        "{ accounts(first: 1) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    let account = list["data"]["accounts"]["edges"][0]["node"]["id"].clone();
    let link = "mutation($i: ID!, $a: ID!) { linkExternalRef(input: { integrationId: $i, accountId: $a, externalId: \"cb_1\" }) { externalId integration { name } } }";
    let response = run(
        &schema,
        &fx.carol(),
        link,
        json!({ "i": integration, "a": account }),
    )
    .await;
    assert_eq!(
        response["data"]["linkExternalRef"],
        json!({ "externalId": "cb_1", "integration": { "name": "Chargebee" } }),
        "{response}"
    );
    let response = run(
        &schema,
        &fx.carol(),
        link,
        json!({ "i": integration, "a": account }),
    )
    .await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "CONFLICT",
        "{response}"
    );
    // Another tenant's integration cannot be linked.
    let response = run(
        &schema,
        &fx.gina(),
        link,
        json!({ "i": integration, "a": account }),
    )
    .await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{response}"
    );
    fx.done().await;
    Ok(())
}

#[tokio::test]
async fn tenant_slugs_are_checked_and_unique() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let schema = portal_tests::identity_schema(&fx.db);
    let create = "mutation($s: String!) { createTenant(input: { slug: $s, name: \"Initech\" }) { slug name } }";
    // Who may create tenants is the gateway's policy decision (only platform_admin holds
    // `Mutation.createTenant`; see rbac.rs): the subgraph checks the input.
    let admin = Actor::user(
        fx.seed.alice_id,
        fx.seed.tenant_id,
        vec!["platform_admin".into()],
    );
    let response = run(&schema, &admin, create, json!({ "s": "Not A Slug" })).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{response}"
    );
    let response = run(&schema, &admin, create, json!({ "s": "initech" })).await;
    assert_eq!(
        response["data"]["createTenant"],
        json!({ "slug": "initech", "name": "Initech" })
    );
    let response = run(&schema, &admin, create, json!({ "s": "initech" })).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "CONFLICT",
        "{response}"
    );
    fx.done().await;
    Ok(())
}
