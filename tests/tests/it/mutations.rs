//! Mutations through the gateway: invalid input is refused with `BAD_USER_INPUT` and
//! changes nothing; valid input changes the row and records an audit event.

use portal_entities::accounts::account;
use portal_entities::platform::audit_event;
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

async fn counts(portal: &TestPortal) -> anyhow::Result<(u64, u64)> {
    Ok((
        account::Entity::find().count(&portal.db).await?,
        audit_event::Entity::find().count(&portal.db).await?,
    ))
}

const CREATE_ACCOUNT: &str = r#"
mutation Open($input: CreateAccountInput!) {
  createAccount(input: $input) { id number currency balance status owner { displayName } }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_mutation_input_is_bad_user_input_and_writes_nothing() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let before = counts(&portal).await?;
    let carol = portal.seed.carol_id.to_string();
    let invalid = [
        (
            "input.currency",
            json!({ "ownerId": carol, "number": "ACME-0100", "name": "New", "currency": "EURO" }),
        ),
        (
            "input.number",
            json!({ "ownerId": carol, "number": "no spaces", "name": "New", "currency": "EUR" }),
        ),
        (
            "input.name",
            json!({ "ownerId": carol, "number": "ACME-0100", "name": "   ", "currency": "EUR" }),
        ),
        (
            "input.openingBalance",
            json!({ "ownerId": carol, "number": "ACME-0100", "name": "New", "currency": "EUR", "openingBalance": "1.000001" }),
        ),
        (
            "input.openingBalance",
            json!({ "ownerId": carol, "number": "ACME-0100", "name": "New", "currency": "EUR", "openingBalance": "99999999999999999999999999999" }),
        ),
        (
            "input.openingBalance",
            json!({ "ownerId": carol, "number": "ACME-0100", "name": "New", "currency": "EUR", "openingBalance": "twelve" }),
        ),
        (
            "input.ownerId",
            json!({ "ownerId": "not-an-id", "number": "ACME-0100", "name": "New", "currency": "EUR" }),
        ),
    ];
    for (field, input) in invalid {
        let response = portal
            .query_as_carol(CREATE_ACCOUNT, json!({ "input": input }))
            .await?;
        let error = &response["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{field}: {response}"
        );
        assert_eq!(error["extensions"]["field"], field, "{response}");
        assert_eq!(error["path"], json!(["createAccount"]));
        assert_eq!(response["data"], json!(null));
    }
    assert_eq!(
        counts(&portal).await?,
        before,
        "a refused mutation changed the database"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_account_number_is_a_conflict_and_writes_nothing() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let before = counts(&portal).await?;
    let input = json!({ "ownerId": portal.seed.carol_id.to_string(), "number": "ACME-0001", "name": "Dup", "currency": "EUR" });
    let response = portal
        .query_as_carol(CREATE_ACCOUNT, json!({ "input": input }))
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "CONFLICT",
        "{response}"
    );
    assert_eq!(counts(&portal).await?, before);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_account_with_an_idempotency_key_creates_once() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (accounts_before, audits_before) = counts(&portal).await?;
    let carol = portal.seed.carol_id.to_string();
    let input = json!({
        "ownerId": carol, "number": "ACME-0200", "name": "Retried", "currency": "EUR",
        "idempotencyKey": "crm:company:4711",
    });
    // Concurrent retries of one request: one account, the same answer for each.
    let (first, second) = tokio::join!(
        portal.query_as_carol(CREATE_ACCOUNT, json!({ "input": input })),
        portal.query_as_carol(CREATE_ACCOUNT, json!({ "input": input })),
    );
    let (first, second) = (first?, second?);
    assert_eq!(first.get("errors"), None, "{first}");
    assert_eq!(first, second);
    let again = portal
        .query_as_carol(CREATE_ACCOUNT, json!({ "input": input }))
        .await?;
    assert_eq!(again, first);
    assert_eq!(
        counts(&portal).await?,
        (accounts_before + 1, audits_before + 1),
        "a retry writes nothing"
    );

    // The same key with other input is refused; so is a malformed key.
    let mut other = input.clone();
    other["name"] = json!("Someone else");
    other["number"] = json!("ACME-0201");
    let refused = portal
        .query_as_carol(CREATE_ACCOUNT, json!({ "input": other }))
        .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "CONFLICT",
        "{refused}"
    );
    let mut bad = input.clone();
    bad["idempotencyKey"] = json!("short");
    let refused = portal
        .query_as_carol(CREATE_ACCOUNT, json!({ "input": bad }))
        .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["field"], "input.idempotencyKey",
        "{refused}"
    );

    // The key is kept with the account it made.
    let key = account::Entity::find()
        .filter(account::Column::Number.eq("ACME-0200"))
        .one(&portal.db)
        .await?
        .and_then(|row| row.idempotency_key);
    assert_eq!(key.as_deref(), Some("crm:company:4711"));
    assert_eq!(
        counts(&portal).await?,
        (accounts_before + 1, audits_before + 1)
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_mutation_writes_the_row_and_an_audit_event() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::Distributed).await?;
    let (accounts_before, audits_before) = counts(&portal).await?;
    let input = json!({
        "ownerId": portal.seed.carol_id.to_string(), "number": "acme-0100", "name": "Holiday fund",
        "currency": "chf", "openingBalance": "1234.5600",
    });
    let response = portal
        .query_as_carol(CREATE_ACCOUNT, json!({ "input": input }))
        .await?;
    let created = &response["data"]["createAccount"];
    assert_eq!(response.get("errors"), None, "{response}");
    assert_eq!(created["number"], "ACME-0100");
    assert_eq!(created["currency"], "CHF");
    assert_eq!(created["balance"], "1234.5600");
    assert_eq!(created["status"], "OPEN");
    assert_eq!(created["owner"]["displayName"], "Carol Customer");
    assert_eq!(
        counts(&portal).await?,
        (accounts_before + 1, audits_before + 1)
    );

    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let event = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("account.create"))
        .one(&portal.db)
        .await?
        .expect("an audit event for the new account");
    assert_eq!(event.target_id.map(|t| t.to_string()), Some(id.clone()));
    assert_eq!(event.actor_id, Some(portal.seed.carol_id));
    assert_eq!(event.tenant_id, Some(portal.seed.tenant_id));
    assert!(
        event.request_id.is_some(),
        "the gateway's request id reaches the audit trail"
    );

    let update = "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"Travel fund\", status: SUSPENDED }) { name status } }";
    let response = portal.query_as_carol(update, json!({ "id": id })).await?;
    assert_eq!(
        response,
        json!({ "data": { "updateAccount": { "name": "Travel fund", "status": "SUSPENDED" } } })
    );
    let event = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("account.update"))
        .one(&portal.db)
        .await?
        .expect("an audit event for the update");
    let details = event.details.unwrap_or_default();
    assert_eq!(details["before"]["name"], "Holiday fund");
    assert_eq!(details["after"]["status"], "SUSPENDED");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_of_every_subgraph_validate_their_input() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let audits_before = audit_event::Entity::find().count(&portal.db).await?;
    let cases = [
        (
            "mutation { createUser(input: { email: \"nope\", displayName: \"X\" }) { id } }",
            "createUser",
        ),
        (
            "mutation { createRole(input: { name: \"Bad Name\", description: \"x\" }) { id } }",
            "createRole",
        ),
        (
            "mutation { createReportDefinition(input: { name: \"R\", kind: CUSTOM, format: CSV, schedule: \"every day\" }) { id } }",
            "createReportDefinition",
        ),
        (
            "mutation { createThread(input: { subject: \"\", body: \"hello\" }) { id } }",
            "createThread",
        ),
        (
            "mutation { createWebhookEndpoint(input: { url: \"ftp://example.com\", eventTypes: [\"account.updated\"] }) { id } }",
            "createWebhookEndpoint",
        ),
        (
            "mutation { createIntegration(input: { kind: CRM, provider: \"Sales Force!\", name: \"SF\" }) { id } }",
            "createIntegration",
        ),
    ];
    for (mutation, field) in cases {
        let response = portal.query_as_carol(mutation, json!({})).await?;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{field}: {response}"
        );
        assert_eq!(response["errors"][0]["path"], json!([field]));
    }
    assert_eq!(
        audit_event::Entity::find().count(&portal.db).await?,
        audits_before
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_of_the_wrong_type_are_refused_before_anything_runs() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let before = counts(&portal).await?;
    let carol = portal.seed.carol_id.to_string();
    let cases = [
        json!({ "ownerId": carol, "number": "ACME-0100", "name": "New", "currency": 978 }),
        json!({ "ownerId": carol, "number": "ACME-0100", "name": "New", "currency": "EUR", "admin": true }),
        json!({ "ownerId": carol, "number": "ACME-0100", "currency": "EUR" }),
        json!("not an object"),
    ];
    for input in cases {
        let response = portal
            .query_as_carol(CREATE_ACCOUNT, json!({ "input": input }))
            .await?;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{response}"
        );
        assert_eq!(
            response.get("data"),
            None,
            "a request error has no data: {response}"
        );
    }
    let response = portal
        .query_as_carol(
            "query($n: Int) { accounts(first: $n) { edges { cursor } } }",
            json!({ "n": "ten" }),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{response}"
    );
    assert_eq!(counts(&portal).await?, before);
    portal.stop().await;
    Ok(())
}

/// Variables used inside an input-object literal (a whole list of input objects, one
/// element of a list, a nested object) reach the subgraph with their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_inside_input_literals_reach_the_subgraph() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let (tenant, alice) = (portal.seed.tenant_id, portal.seed.alice_id);
    let preference = json!({ "event": "NEW_MESSAGE", "channel": "EMAIL", "frequency": "DAILY" });
    let cases = [
        (
            "mutation($p: [NotificationPreferenceInput!]) { updateNotificationPreferences(input: { preferences: $p }) { preferences { event channel frequency source } } }",
            json!({ "p": [preference] }),
        ),
        (
            "mutation($p: [NotificationPreferenceInput!]!) { updateNotificationPreferences(input: { preferences: $p }) { preferences { event channel frequency source } } }",
            json!({ "p": [preference] }),
        ),
        (
            "mutation($p: [NotificationPreferenceInput!]!) { updateTenantNotificationDefaults(input: { preferences: $p }) { event channel frequency source } }",
            json!({ "p": [preference] }),
        ),
        (
            "mutation($one: NotificationPreferenceInput!) { updateNotificationPreferences(input: { preferences: [$one] }) { preferences { event channel frequency source } } }",
            json!({ "one": preference }),
        ),
        (
            "mutation($q: QuietHoursInput, $f: NotificationFrequency!) { updateNotificationPreferences(input: { quietHours: $q, preferences: [{ event: NEW_MESSAGE, channel: EMAIL, frequency: $f }] }) { preferences { event channel frequency source } quietHours { starts ends } } }",
            json!({ "q": { "starts": "22:00", "ends": "07:00" }, "f": "DAILY" }),
        ),
    ];
    for (query, variables) in cases {
        let response = portal
            .query_with_roles(tenant, alice, &["tenant_admin"], query, variables)
            .await?;
        assert!(response.get("errors").is_none(), "{query}: {response}");
        let data = response["data"]
            .as_object()
            .and_then(|data| data.values().next())
            .cloned()
            .unwrap_or_default();
        let chosen = data
            .get("preferences")
            .unwrap_or(&data)
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|p| p["event"] == "NEW_MESSAGE" && p["channel"] == "EMAIL")
                    .cloned()
            })
            .unwrap_or_default();
        assert_eq!(chosen["frequency"], "DAILY", "{query}: {response}");
        assert_ne!(chosen["source"], "PLATFORM", "{query}: {response}");
    }
    // A variable left out inside a literal leaves the field out (quiet hours stay); an
    // explicit null clears it.
    let hours = "mutation($q: QuietHoursInput) { updateNotificationPreferences(input: { quietHours: $q }) { quietHours { starts ends } } }";
    for (variables, expected) in [
        (json!({}), json!({ "starts": "22:00", "ends": "07:00" })),
        (json!({ "q": null }), serde_json::Value::Null),
    ] {
        let response = portal
            .query_with_roles(tenant, alice, &["tenant_admin"], hours, variables)
            .await?;
        assert_eq!(
            response["data"]["updateNotificationPreferences"]["quietHours"], expected,
            "{response}"
        );
    }
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_users_have_iana_time_zones() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let as_alice = |query: &'static str, variables: serde_json::Value| {
        let portal = &portal;
        async move {
            portal
                .query_with_roles(
                    seed.tenant_id,
                    seed.alice_id,
                    &["tenant_admin"],
                    query,
                    variables,
                )
                .await
        }
    };
    let read = as_alice("{ tenant { timeZone } me { timeZone } }", json!({})).await?;
    assert_eq!(
        read["data"]["tenant"]["timeZone"], "Europe/Berlin",
        "{read}"
    );
    assert!(read["data"]["me"]["timeZone"].is_null(), "{read}");
    let tenant = "mutation($z: String) { updateTenant(input: { timeZone: $z }) { timeZone } }";
    let bad = as_alice(tenant, json!({ "z": "Mars/Olympus" })).await?;
    assert_eq!(
        bad["errors"][0]["extensions"]["field"], "input.timeZone",
        "{bad}"
    );
    let good = as_alice(tenant, json!({ "z": "America/Sao_Paulo" })).await?;
    assert_eq!(
        good["data"]["updateTenant"]["timeZone"], "America/Sao_Paulo",
        "{good}"
    );
    let user = "mutation($id: ID!, $z: String) { updateUser(id: $id, input: { timeZone: $z }) { timeZone } }";
    let carol = seed.carol_id.to_string();
    let set = as_alice(user, json!({ "id": carol, "z": "Asia/Tokyo" })).await?;
    assert_eq!(set["data"]["updateUser"]["timeZone"], "Asia/Tokyo", "{set}");
    let cleared = as_alice(user, json!({ "id": carol, "z": null })).await?;
    assert!(
        cleared["data"]["updateUser"]["timeZone"].is_null(),
        "{cleared}"
    );
    portal.stop().await;
    Ok(())
}
