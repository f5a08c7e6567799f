//! The audit trail: readable by tenant admins and auditors with filters, confined to the
//! tenant, and append-only in the database itself.

use portal_entities::identity::role;
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const AUDIT: &str = "query($f: AuditEventFilter) { auditEvents(filter: $f, first: 50) { edges { node { action targetType targetId actorId outcome requestId sourceIp userAgent details } } } }";

fn actions(response: &Value) -> Vec<String> {
    response["data"]["auditEvents"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["action"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_are_audited_and_admins_and_auditors_read_the_trail() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let auditor = role::Entity::find()
        .filter(role::Column::TenantId.eq(seed.tenant_id))
        .filter(role::Column::Name.eq("auditor"))
        .one(&portal.db)
        .await?
        .expect("seeded auditor role");
    let assign =
        "mutation($u: ID!, $r: ID!) { assignRole(userId: $u, roleId: $r) { roles { name } } }";
    let vars = json!({ "u": seed.carol_id.to_string(), "r": auditor.id.to_string() });

    // Only tenant admins assign roles.
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["customer_user"],
            assign,
            vars.clone(),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{response}"
    );
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            assign,
            vars.clone(),
        )
        .await?;
    assert_eq!(
        response["data"]["assignRole"]["roles"],
        json!([{ "name": "auditor" }, { "name": "customer_user" }]),
        "{response}"
    );
    // Assigning again changes nothing and records nothing.
    portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            assign,
            vars.clone(),
        )
        .await?;

    // Another tenant's admin cannot touch Acme's users or roles.
    let response = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            assign,
            vars.clone(),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{response}"
    );

    // The auditor reads the trail, filtered.
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["auditor"],
            AUDIT,
            json!({ "f": { "action": "role.assign" } }),
        )
        .await?;
    assert_eq!(actions(&response), ["role.assign"], "{response}");
    let event = &response["data"]["auditEvents"]["edges"][0]["node"];
    assert_eq!(event["targetId"], seed.carol_id.to_string());
    assert_eq!(event["actorId"], seed.alice_id.to_string());
    assert_eq!(event["details"]["role"], "auditor");
    assert!(event["requestId"].is_string());
    assert_eq!(event["sourceIp"], "127.0.0.1");
    assert_eq!(event["userAgent"], "portal-tests/1");

    // A customer user may not read it; another tenant sees none of it.
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.bob_id,
            &["billing_admin"],
            AUDIT,
            json!({}),
        )
        .await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{response}"
    );
    let response = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            AUDIT,
            json!({}),
        )
        .await?;
    assert_eq!(actions(&response), Vec::<String>::new(), "{response}");

    let unassign =
        "mutation($u: ID!, $r: ID!) { unassignRole(userId: $u, roleId: $r) { roles { name } } }";
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            unassign,
            vars,
        )
        .await?;
    assert_eq!(
        response["data"]["unassignRole"]["roles"],
        json!([{ "name": "customer_user" }])
    );
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            AUDIT,
            json!({ "f": { "targetId": seed.carol_id.to_string() } }),
        )
        .await?;
    assert_eq!(actions(&response), ["role.assign", "role.unassign"]);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_cannot_be_changed_or_deleted_even_with_sql() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let update = portal
        .db
        .execute_unprepared("UPDATE audit_events SET outcome = 'forged'")
        .await;
    assert!(update.is_err(), "an audit row was updated");
    let delete = portal
        .db
        .execute_unprepared("DELETE FROM audit_events")
        .await;
    assert!(delete.is_err(), "an audit row was deleted");
    portal.stop().await;
    Ok(())
}
