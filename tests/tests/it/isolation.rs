//! Tenant isolation: nothing of one tenant is readable or writable from another.

use portal_entities::accounts::account;
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_objects_are_invisible_and_unchangeable() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let acme_account = account::Entity::find()
        .filter(account::Column::Number.eq("ACME-0002"))
        .one(&portal.db)
        .await?
        .expect("seeded account");
    let (globex, gina) = (portal.seed.other_tenant_id, portal.seed.other_user_id);

    let read = "query($a: ID!, $u: ID!) { account(id: $a) { number } user(id: $u) { email } accounts { edges { node { number } } } users { edges { node { email } } } threads { edges { node { subject } } } integrations { edges { node { name } } } }";
    let variables =
        json!({ "a": acme_account.id.to_string(), "u": portal.seed.carol_id.to_string() });
    let response = portal.query_as(globex, gina, read, variables).await?;
    assert_eq!(
        response,
        json!({ "data": {
            "account": null,
            "user": null,
            "accounts": { "edges": [{ "node": { "number": "GLX-0001" } }] },
            "users": { "edges": [{ "node": { "email": "gina@globex.example" } }] },
            "threads": { "edges": [{ "node": { "subject": "Globex internal" } }] },
            "integrations": { "edges": [{ "node": { "name": "HubSpot" } }] },
        }})
    );

    let write =
        "mutation($a: ID!) { updateAccount(id: $a, input: { name: \"Hijacked\" }) { name } }";
    let response = portal
        .query_as(
            globex,
            gina,
            write,
            json!({ "a": acme_account.id.to_string() }),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{response}"
    );
    let unchanged = account::Entity::find_by_id(acme_account.id)
        .one(&portal.db)
        .await?
        .expect("still there");
    assert_eq!(unchanged.name, acme_account.name);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_get_unauthenticated_for_tenant_data() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let response: serde_json::Value = portal
        .http()
        .post(&portal.endpoint)
        .json(&json!({ "query": "{ me { id } accounts { edges { node { number } } } }" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(response["data"], json!(null), "{response}");
    let codes: Vec<&str> = response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extensions"]["code"].as_str())
        .collect();
    assert_eq!(codes, ["UNAUTHENTICATED"]);
    portal.stop().await;
    Ok(())
}
