//! The audit trail: readable by tenant admins and auditors with filters, confined to the
//! tenant, and append-only in the database itself.

use portal_entities::identity::role;
use portal_kit::db::BeginWrite;
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

/// Every audit action the code records as a success, as written in the source.
fn recorded_actions() -> anyhow::Result<std::collections::BTreeSet<String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../subgraphs");
    let mut actions = std::collections::BTreeSet::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                for rest in text.split("AuditEvent::success(\"").skip(1) {
                    actions.extend(rest.split('"').next().map(str::to_owned));
                }
            }
        }
    }
    // Chosen at run time in the session code (`AuditEvent::success(action, …)`).
    actions.extend(
        [
            "auth.refresh_reuse",
            "session.expire",
            "auth.sign_out",
            "session.revoke",
        ]
        .map(str::to_owned),
    );
    Ok(actions)
}

#[test]
fn the_event_catalogue_lists_every_event_type_the_code_records() -> anyhow::Result<()> {
    let catalogue = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/events.md"),
    )?;
    let actions = recorded_actions()?;
    assert!(actions.len() > 40, "{actions:?}");
    let missing: Vec<String> = actions
        .iter()
        .map(|action| portal_kit::events::event_type(action))
        .filter(|event| !catalogue.contains(&format!("| `{event}` |")))
        .collect();
    assert!(missing.is_empty(), "docs/events.md lacks {missing:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_change_has_its_event_and_a_refused_one_has_none() -> anyhow::Result<()> {
    use portal_entities::platform::domain_event;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let before = domain_event::Entity::find().count(&portal.db).await?;
    let create = "mutation($n: String!) { createAccount(input: { ownerId: \"OWNER\", number: $n, name: \"Events\", currency: \"EUR\" }) { id } }"
        .replace("OWNER", &portal.seed.carol_id.to_string());
    let refused = portal
        .query_as_carol(&create, serde_json::json!({ "n": "no spaces allowed" }))
        .await?;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(
        domain_event::Entity::find().count(&portal.db).await?,
        before
    );
    let created = portal
        .query_as_carol(&create, serde_json::json!({ "n": "ACME-0777" }))
        .await?;
    let id: uuid::Uuid = created["data"]["createAccount"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let events = domain_event::Entity::find()
        .filter(domain_event::Column::SubjectId.eq(id))
        .all(&portal.db)
        .await?;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event_type, "account.created");
    assert_eq!(events[0].tenant_id, Some(portal.seed.tenant_id));
    assert_eq!(events[0].actor_id, Some(portal.seed.carol_id));
    assert_eq!(events[0].schema_version, portal_kit::events::SCHEMA_VERSION);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_rolled_back_change_leaves_neither_audit_row_nor_event() -> anyhow::Result<()> {
    use portal_entities::platform::{audit_event, domain_event};
    use sea_orm::{EntityTrait, PaginatorTrait};
    let test_db = portal_tests::TestDb::new().await?;
    let db = test_db.connect().await?;
    let actor = portal_kit::Actor::user(uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), vec![]);
    let meta = portal_kit::RequestMeta::default();
    let counts = || async {
        anyhow::Ok((
            audit_event::Entity::find().count(&db).await?,
            domain_event::Entity::find().count(&db).await?,
        ))
    };
    let txn = db.begin_write().await?;
    portal_kit::audit::AuditEvent::success("account.update", "account", uuid::Uuid::now_v7())
        .record(&txn, &actor, &meta)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    txn.rollback().await?;
    assert_eq!(counts().await?, (0, 0));
    let txn = db.begin_write().await?;
    portal_kit::audit::AuditEvent::success("account.update", "account", uuid::Uuid::now_v7())
        .record(&txn, &actor, &meta)
        .await
        .map_err(|e| anyhow::anyhow!(e.message()))?;
    txn.commit().await?;
    assert_eq!(counts().await?, (1, 1));
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
