//! Every query and mutation across the tenant boundary: Globex's admin aims each one at
//! Acme's objects. Reads find nothing, writes are `NOT_FOUND`, and Acme's data and audit
//! trail are exactly as before.

use portal_entities::accounts::account;
use portal_entities::identity::{api_key, role, service_account, session, user};
use portal_entities::integrations::{integration, webhook_endpoint};
use portal_entities::messages::{message, thread};
use portal_entities::platform::audit_event;
use portal_entities::reports::{report_definition, report_run};
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

/// One Acme object of each kind.
struct AcmeIds {
    user: Uuid,
    role: Uuid,
    account: Uuid,
    definition: Uuid,
    run: Uuid,
    thread: Uuid,
    message: Uuid,
    integration: Uuid,
    webhook: Uuid,
    session: Uuid,
    service_account: Uuid,
    api_key: Uuid,
}

async fn acme_ids(db: &DatabaseConnection, tenant: Uuid) -> anyhow::Result<AcmeIds> {
    macro_rules! first {
        ($entity:path, $column:path) => {
            <$entity>::find()
                .filter($column.eq(tenant))
                .one(db)
                .await?
                .map(|row| row.id)
                .ok_or_else(|| anyhow::anyhow!("no seeded row"))?
        };
    }
    // A run of acme's first report (the demo data has definitions, not runs).
    let definition = first!(
        report_definition::Entity,
        report_definition::Column::TenantId
    );
    if report_run::Entity::find()
        .filter(report_run::Column::TenantId.eq(tenant))
        .one(db)
        .await?
        .is_none()
    {
        use sea_orm::{ActiveModelTrait, Set};
        report_run::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            definition_id: Set(definition),
            requested_by: Set(None),
            status: Set("FAILED".into()),
            row_count: Set(None),
            error: Set(Some("test run".into())),
            created_at: Set(chrono::Utc::now()),
            started_at: Set(None),
            finished_at: Set(Some(chrono::Utc::now())),
            cause: Set("MANUAL".into()),
            definition_version: Set(Some(1)),
            format: Set(Some("CSV".into())),
            run_as: Set(None),
            file_id: Set(None),
            bytes: Set(None),
            error_detail: Set(None),
            manifest: Set(None),
            recipient_id: Set(None),
        }
        .insert(db)
        .await?;
    }
    Ok(AcmeIds {
        user: first!(user::Entity, user::Column::TenantId),
        role: first!(role::Entity, role::Column::TenantId),
        account: first!(account::Entity, account::Column::TenantId),
        definition,
        run: first!(report_run::Entity, report_run::Column::TenantId),
        thread: first!(thread::Entity, thread::Column::TenantId),
        message: first!(message::Entity, message::Column::TenantId),
        integration: first!(integration::Entity, integration::Column::TenantId),
        webhook: first!(webhook_endpoint::Entity, webhook_endpoint::Column::TenantId),
        session: first!(session::Entity, session::Column::TenantId),
        service_account: first!(service_account::Entity, service_account::Column::TenantId),
        api_key: first!(api_key::Entity, api_key::Column::TenantId),
    })
}

/// A digest of everything Acme owns, to prove nothing changed.
async fn acme_snapshot(db: &DatabaseConnection, tenant: Uuid) -> anyhow::Result<String> {
    Ok(format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
        user::Entity::find()
            .filter(user::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        role::Entity::find()
            .filter(role::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        account::Entity::find()
            .filter(account::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        report_definition::Entity::find()
            .filter(report_definition::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        report_run::Entity::find()
            .filter(report_run::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        thread::Entity::find()
            .filter(thread::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        message::Entity::find()
            .filter(message::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        integration::Entity::find()
            .filter(integration::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        session::Entity::find()
            .filter(session::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        service_account::Entity::find()
            .filter(service_account::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        api_key::Entity::find()
            .filter(api_key::Column::TenantId.eq(tenant))
            .all(db)
            .await?,
        audit_event::Entity::find().count(db).await?,
    ))
}

/// Sends `query` as Globex's admin (who is also its auditor).
async fn as_gina(portal: &TestPortal, query: &str, variables: Value) -> anyhow::Result<Value> {
    let seed = &portal.seed;
    portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin", "auditor"],
            query,
            variables,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_and_mutation_stops_at_the_tenant_boundary() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    // Acme also has a session, a service account and an API key.
    let (alice, _, _) = crate::auth_helpers::session_of(&portal, "alice@acme.example").await?;
    crate::auth_helpers::enroll_mfa(&portal, &alice).await?;
    let create = "mutation { createServiceAccount(input: { name: \"crm\" }) { id } }";
    let (_, created) = crate::auth_helpers::post(&portal, Some(&alice), create, json!({})).await?;
    let account_id = created["data"]["createServiceAccount"]["id"].clone();
    assert!(account_id.is_string(), "{created}");
    let key = "mutation($a: ID!) { createApiKey(input: { serviceAccountId: $a, name: \"k\", roles: [\"integrator\"] }) { key } }";
    let (_, key) =
        crate::auth_helpers::post(&portal, Some(&alice), key, json!({ "a": account_id })).await?;
    assert!(key["data"]["createApiKey"]["key"].is_string(), "{key}");
    let acme = acme_ids(&portal.db, seed.tenant_id).await?;
    let before = acme_snapshot(&portal.db, seed.tenant_id).await?;
    let reads = [
        ("{ x: user(id: $id) { id } }", acme.user),
        ("{ x: account(id: $id) { id } }", acme.account),
        ("{ x: reportDefinition(id: $id) { id } }", acme.definition),
        ("{ x: reportRun(id: $id) { id } }", acme.run),
        ("{ x: thread(id: $id) { id } }", acme.thread),
        ("{ x: message(id: $id) { id } }", acme.message),
        ("{ x: integration(id: $id) { id } }", acme.integration),
    ];
    for (selection, id) in reads {
        let query = format!("query($id: ID!) {selection}");
        let response = as_gina(&portal, &query, json!({ "id": id.to_string() })).await?;
        assert_eq!(response, json!({ "data": { "x": null } }), "{selection}");
    }
    let lists = "{ serviceAccounts { name apiKeys { prefix } } mySessions { id } users { edges { node { email } } } roles { edges { node { name } } } accounts { edges { node { number } } } reportDefinitions { edges { node { name } } } threads { edges { node { subject } } } integrations { edges { node { name } } } webhookEndpoints { edges { node { url } } } auditEvents { edges { node { action } } } }";
    let response = as_gina(&portal, lists, json!({})).await?;
    let text = response.to_string();
    assert!(response.get("errors").is_none(), "{response}");
    assert!(
        !text.contains("acme") && !text.contains("ACME") && !text.contains("Salesforce"),
        "{text}"
    );
    assert!(
        text.contains("gina@globex.example") && text.contains("GLX-0001"),
        "{text}"
    );

    let writes: [(&str, Value); 18] = [
        (
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": acme.session }),
        ),
        (
            "mutation($id: ID!) { revokeUserSessions(userId: $id) }",
            json!({ "id": acme.user }),
        ),
        (
            "mutation($id: ID!) { disableServiceAccount(id: $id) { id } }",
            json!({ "id": acme.service_account }),
        ),
        (
            "mutation($id: ID!) { createApiKey(input: { serviceAccountId: $id, name: \"x\", roles: [\"integrator\"] }) { key } }",
            json!({ "id": acme.service_account }),
        ),
        (
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            json!({ "id": acme.api_key }),
        ),
        (
            "mutation($id: ID!) { updateUser(id: $id, input: { displayName: \"x\" }) { id } }",
            json!({ "id": acme.user }),
        ),
        (
            "mutation($id: ID!) { updateRole(id: $id, input: { description: \"x\" }) { id } }",
            json!({ "id": acme.role }),
        ),
        (
            "mutation($u: ID!, $r: ID!) { assignRole(userId: $u, roleId: $r) { id } }",
            json!({ "u": acme.user, "r": acme.role }),
        ),
        (
            "mutation($u: ID!, $r: ID!) { unassignRole(userId: $u, roleId: $r) { id } }",
            json!({ "u": acme.user, "r": acme.role }),
        ),
        (
            "mutation($id: ID!) { updateAccount(id: $id, input: { name: \"x\" }) { id } }",
            json!({ "id": acme.account }),
        ),
        (
            "mutation($id: ID!) { updateReportDefinition(id: $id, input: { name: \"x\" }) { id } }",
            json!({ "id": acme.definition }),
        ),
        (
            "mutation($id: ID!) { requestReportRun(definitionId: $id) { id } }",
            json!({ "id": acme.definition }),
        ),
        (
            "mutation($id: ID!) { updateThread(id: $id, input: { subject: \"x\" }) { id } }",
            json!({ "id": acme.thread }),
        ),
        (
            "mutation($id: ID!) { postMessage(input: { threadId: $id, body: \"x\" }) { id } }",
            json!({ "id": acme.thread }),
        ),
        (
            "mutation($id: ID!) { editMessage(id: $id, input: { body: \"x\" }) { id } }",
            json!({ "id": acme.message }),
        ),
        (
            "mutation($id: ID!) { updateIntegration(id: $id, input: { name: \"x\" }) { id } }",
            json!({ "id": acme.integration }),
        ),
        (
            "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { description: \"x\" }) { id } }",
            json!({ "id": acme.webhook }),
        ),
        (
            "mutation($i: ID!, $a: ID!) { linkExternalRef(input: { integrationId: $i, accountId: $a, externalId: \"x\" }) { id } }",
            json!({ "i": acme.integration, "a": acme.account }),
        ),
    ];
    for (mutation, variables) in writes {
        let response = as_gina(&portal, mutation, variables).await?;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{mutation}: {response}"
        );
        assert_eq!(response["data"], Value::Null, "{mutation}");
    }
    assert_eq!(
        acme_snapshot(&portal.db, seed.tenant_id).await?,
        before,
        "Acme's data changed"
    );
    portal.stop().await;
    Ok(())
}
