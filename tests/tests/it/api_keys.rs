//! Integrators: tenant admins create service accounts and API keys (shown once, stored
//! hashed); the gateway accepts a key as `Authorization: Bearer` or `X-API-Key`, acting
//! as the service account with the key's roles, until it is revoked, expires or its
//! account is disabled.

use reqwest::StatusCode;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use portal_entities::identity::api_key;
use portal_entities::platform::audit_event;
use portal_tests::{Mode, TestPortal};

use crate::auth_helpers::{code, post, refused_within, session_of};

const CREATE_ACCOUNT: &str = "mutation($n: String!) { createServiceAccount(input: { name: $n, description: \"CRM sync\" }) { id status } }";
const CREATE_KEY: &str = "mutation($a: ID!, $r: [String!]!, $x: DateTime) { createApiKey(input: { serviceAccountId: $a, name: \"prod\", roles: $r, expiresAt: $x }) { key apiKey { id prefix roles lastUsedAt } } }";
const AUDIT: &str = "{ auditEvents(first: 1) { edges { node { action } } } }";

async fn with_key(
    portal: &TestPortal,
    key: &str,
    header: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let value = if header == "authorization" {
        format!("Bearer {key}")
    } else {
        key.to_owned()
    };
    let response = portal
        .http()
        .post(&portal.endpoint)
        .header(header, value)
        .json(&json!({ "query": AUDIT }))
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_act_with_their_roles_until_revoked() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let (alice, _, _) = session_of(&portal, "alice@acme.example").await?;
    let (carol, _, _) = session_of(&portal, "carol@acme.example").await?;

    let (_, denied) = post(&portal, Some(&carol), CREATE_ACCOUNT, json!({ "n": "crm" })).await?;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let (_, account) = post(&portal, Some(&alice), CREATE_ACCOUNT, json!({ "n": "crm" })).await?;
    let account_id = account["data"]["createServiceAccount"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        account["data"]["createServiceAccount"]["status"], "ACTIVE",
        "{account}"
    );

    for (vars, expected) in [
        (
            json!({ "a": account_id, "r": ["no_such_role"] }),
            "BAD_USER_INPUT",
        ),
        (json!({ "a": account_id, "r": [] }), "BAD_USER_INPUT"),
        (
            json!({ "a": account_id, "r": ["platform_admin"] }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "a": account_id, "r": ["auditor"], "x": "2020-01-01T00:00:00Z" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "a": uuid::Uuid::now_v7().to_string(), "r": ["auditor"] }),
            "NOT_FOUND",
        ),
    ] {
        let (_, refused) = post(&portal, Some(&alice), CREATE_KEY, vars).await?;
        assert_eq!(code(&refused), expected, "{refused}");
    }
    assert_eq!(
        api_key::Entity::find().all(&portal.db).await?.len(),
        0,
        "refusals wrote nothing"
    );

    // Minting a key needs a second factor confirmed on the session just now.
    let (_, unconfirmed) = post(
        &portal,
        Some(&alice),
        CREATE_KEY,
        json!({ "a": account_id, "r": ["auditor"] }),
    )
    .await?;
    assert_eq!(code(&unconfirmed), "STEP_UP_REQUIRED", "{unconfirmed}");
    crate::auth_helpers::enroll_mfa(&portal, &alice).await?;
    let (_, auditor) = post(
        &portal,
        Some(&alice),
        CREATE_KEY,
        json!({ "a": account_id, "r": ["auditor"] }),
    )
    .await?;
    let created = &auditor["data"]["createApiKey"];
    let key = created["key"].as_str().unwrap_or_default().to_owned();
    let prefix = created["apiKey"]["prefix"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(key.starts_with("pk_") && key.len() > 50, "{auditor}");
    assert!(key.starts_with(&prefix) && prefix.len() == 11, "{auditor}");
    assert_eq!(created["apiKey"]["roles"], json!(["auditor"]));
    let (_, integrator) = post(
        &portal,
        Some(&alice),
        CREATE_KEY,
        json!({ "a": account_id, "r": ["integrator"] }),
    )
    .await?;
    let weak_key = integrator["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // The key itself is stored nowhere: neither in the key table nor in the audit trail.
    let rows = api_key::Entity::find().all(&portal.db).await?;
    assert!(
        rows.iter()
            .all(|r| r.secret_hash.len() == 64 && !r.secret_hash.contains(&key[12..]))
    );
    let trail = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("api_key.create"))
        .all(&portal.db)
        .await?;
    assert_eq!(trail.len(), 2);
    assert!(
        trail
            .iter()
            .all(|e| !format!("{:?}", e.details).contains(&key[12..]))
    );

    // The auditor key reads the audit trail, both ways of sending it; the integrator
    // key is refused by the policies.
    for header in ["authorization", "x-api-key"] {
        let (status, body) = with_key(&portal, &key, header).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["errors"].is_null(), "{header}: {body}");
    }
    let (_, weak) = with_key(&portal, &weak_key, "x-api-key").await?;
    assert_eq!(code(&weak), "FORBIDDEN", "{weak}");
    // A connector's key works with every account of its tenant (the Account.all grant).
    let response = portal
        .http()
        .post(&portal.endpoint)
        .header("x-api-key", &weak_key)
        .json(&json!({ "query": "{ accounts { edges { node { number } } } }" }))
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    assert_eq!(
        response["data"]["accounts"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(4),
        "{response}"
    );
    let listed = "{ serviceAccounts { name apiKeys { prefix lastUsedAt revokedAt } } }";
    let (_, list) = post(&portal, Some(&alice), listed, json!({})).await?;
    let keys = list["data"]["serviceAccounts"][0]["apiKeys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(keys.len(), 2, "{list}");
    assert!(
        keys.iter()
            .any(|k| k["prefix"] == prefix.as_str() && !k["lastUsedAt"].is_null()),
        "{list}"
    );
    assert!(
        !list.to_string().contains(&key[12..]),
        "listing never shows the key"
    );

    // Garbage keys are refused with 401.
    let (status, body) = with_key(&portal, "pk_notakey_atall", "x-api-key").await?;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );

    // Another tenant's admin cannot revoke it; Alice can, and it stops working.
    let revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }";
    let key_id = created["apiKey"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let gina = crate::auth_helpers::sign_in(
        &portal,
        "globex",
        "gina@globex.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    let gina = gina["data"]["signIn"]["auth"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, cross) = post(&portal, Some(&gina), revoke, json!({ "id": key_id })).await?;
    assert_eq!(code(&cross), "NOT_FOUND", "{cross}");
    let (_, revoked) = post(&portal, Some(&alice), revoke, json!({ "id": key_id })).await?;
    assert!(
        !revoked["data"]["revokeApiKey"]["revokedAt"].is_null(),
        "{revoked}"
    );
    refused_within(&portal, &key).await?;

    // An expired key stops working; disabling the account stops the rest.
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(api_key::Column::Prefix.eq(&weak_key[..11]))
        .exec(&portal.db)
        .await?;
    refused_within(&portal, &weak_key).await?;
    let (_, third) = post(
        &portal,
        Some(&alice),
        CREATE_KEY,
        json!({ "a": account_id, "r": ["auditor"] }),
    )
    .await?;
    let third = third["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = with_key(&portal, &third, "authorization").await?;
    assert_eq!(status, StatusCode::OK);
    let disable = "mutation($id: ID!) { disableServiceAccount(id: $id) { status } }";
    let (_, disabled) = post(&portal, Some(&alice), disable, json!({ "id": account_id })).await?;
    assert_eq!(
        disabled["data"]["disableServiceAccount"]["status"], "DISABLED",
        "{disabled}"
    );
    refused_within(&portal, &third).await?;
    let (_, after) = post(
        &portal,
        Some(&alice),
        CREATE_KEY,
        json!({ "a": account_id, "r": ["auditor"] }),
    )
    .await?;
    assert_eq!(code(&after), "CONFLICT", "{after}");
    portal.stop().await;
    Ok(())
}
