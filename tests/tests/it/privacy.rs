//! Data-subject access requests: a person asks for their data (or a tenant admin files for
//! them), confirms through the link mailed to them, and downloads one archive holding
//! every subgraph's export and their files; nobody else sees or files their request.

use portal_entities::platform::audit_event;
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::auth_helpers::{post, token_after};

const REQUEST: &str =
    "mutation($u: ID) { requestDataExport(userId: $u) { id status subjectId dueAt requestedAt } }";
const VERIFY: &str =
    "mutation($t: String!) { verifyDataSubjectRequest(token: $t) { id status dueAt } }";
const FOLLOW: &str = "query($id: ID!) { dataSubjectRequest(id: $id) { id status subjectId requestedBy verifiedAt completedAt result failure file { name sha256 download { url } } } }";

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_confirms_and_downloads_every_subgraphs_data_and_nobody_else_sees_it()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let carol = |query: &'static str, variables: Value| {
        let portal = &portal;
        async move {
            portal
                .query_with_roles(
                    seed.tenant_id,
                    seed.carol_id,
                    &["customer_user"],
                    query,
                    variables,
                )
                .await
        }
    };
    // Carol writes something of her own: a thread with a message.
    let thread = carol(
        "mutation { createThread(input: { subject: \"Invoice question\", body: \"Why was I charged twice?\" }) { id } }",
        json!({}),
    )
    .await?;
    assert!(thread["errors"].is_null(), "{thread}");

    // Carol may not file for Bob; she asks for her own data.
    let refused = carol(REQUEST, json!({ "u": seed.bob_id.to_string() })).await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let requested = carol(REQUEST, json!({})).await?;
    let request = &requested["data"]["requestDataExport"];
    assert_eq!(request["status"], "AWAITING_VERIFICATION", "{requested}");
    assert_eq!(request["subjectId"], seed.carol_id.to_string());
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    // A second one while it is open is a conflict.
    let again = carol(REQUEST, json!({})).await?;
    assert_eq!(code(&again), "CONFLICT", "{again}");

    // Nothing is prepared until she confirms through the link mailed to her.
    let mail = portal.next_mail_to("carol@acme.example").await?;
    let token = token_after(&mail, "confirm-data-request?token=")?;
    let (_, wrong) = post(&portal, None, VERIFY, json!({ "t": "dsr_not-a-token" })).await?;
    assert_eq!(code(&wrong), "NOT_FOUND", "{wrong}");
    let (_, verified) = post(&portal, None, VERIFY, json!({ "t": token })).await?;
    assert_eq!(
        verified["data"]["verifyDataSubjectRequest"]["status"], "QUEUED",
        "{verified}"
    );
    // The link works once.
    let (_, reused) = post(&portal, None, VERIFY, json!({ "t": token })).await?;
    assert_eq!(code(&reused), "NOT_FOUND", "{reused}");

    let mut followed = Value::Null;
    for _ in 0..200 {
        let response = carol(FOLLOW, json!({ "id": id })).await?;
        followed = response["data"]["dataSubjectRequest"].clone();
        if followed["status"] == "COMPLETED" || followed["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(followed["status"], "COMPLETED", "{followed}");
    // She is told it is ready.
    let ready = portal.next_mail_to("carol@acme.example").await?;
    assert!(ready.contains("is ready"), "{ready}");
    for part in [
        "identity",
        "accounts",
        "reports",
        "messages",
        "integrations",
    ] {
        assert!(
            followed["result"]["parts"][part].is_object(),
            "{part}: {followed}"
        );
    }

    // Bob (another customer user) does not see it; a tenant admin does.
    let bob = portal
        .query_with_roles(
            seed.tenant_id,
            seed.bob_id,
            &["customer_user"],
            FOLLOW,
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(code(&bob), "NOT_FOUND", "{bob}");
    let admin = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            FOLLOW,
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(
        admin["data"]["dataSubjectRequest"]["status"], "COMPLETED",
        "{admin}"
    );
    // … that it exists and how it went, not what is in it: the archive is hers alone.
    assert!(
        admin["data"]["dataSubjectRequest"]["file"].is_null(),
        "{admin}"
    );
    assert_eq!(code(&admin), "FORBIDDEN", "{admin}");
    // Nor does another tenant's admin.
    let other = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            FOLLOW,
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(code(&other), "NOT_FOUND", "{other}");

    // The archive: one document per subgraph, with her data in it.
    let url = followed["file"]["download"]["url"]
        .as_str()
        .unwrap_or_default();
    let base = portal.endpoint.trim_end_matches("/graphql");
    let response = portal.http().get(format!("{base}{url}")).send().await?;
    assert_eq!(response.status().as_u16(), 200, "{followed}");
    let files = portal_kit::archive::unzip(&response.bytes().await?, 1 << 30, |_| true)
        .map_err(anyhow::Error::msg)?;
    let part = |name: &str| -> anyhow::Result<Value> {
        let bytes = files
            .get(&format!("{name}.json"))
            .ok_or_else(|| anyhow::anyhow!("no {name}.json in {:?}", files.keys()))?;
        Ok(serde_json::from_slice::<Value>(bytes)?["data"].clone())
    };
    assert!(files.contains_key("README.md"));
    let identity = part("identity")?;
    assert_eq!(identity["profile"]["email"], "carol@acme.example");
    assert!(
        identity["roles"].as_array().is_some_and(|r| !r.is_empty()),
        "{identity}"
    );
    let messages = part("messages")?;
    let bodies: Vec<&str> = messages["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(bodies.contains(&"Why was I charged twice?"), "{messages}");
    assert!(
        messages["threads"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["subject"] == "Invoice question")),
        "{messages}"
    );
    let reports = part("reports")?;
    assert!(reports["reportDefinitions"].is_array(), "{reports}");
    assert!(part("accounts")?.is_object());
    assert!(part("integrations")?.is_object());
    // Nothing of Bob's.
    let everything = files
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect::<String>();
    assert!(!everything.contains("bob@acme.example"));

    // Every step is audited.
    for action in [
        "data_subject_request.create",
        "data_subject_request.confirm",
        "data_subject_request.complete",
    ] {
        let found = audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq(action))
            .filter(audit_event::Column::TenantId.eq(seed.tenant_id))
            .count(&portal.db)
            .await?;
        assert_eq!(found, 1, "{action}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_files_for_a_user_who_still_confirms_it() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let filed = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            REQUEST,
            json!({ "u": seed.bob_id.to_string() }),
        )
        .await?;
    let request = &filed["data"]["requestDataExport"];
    assert_eq!(request["subjectId"], seed.bob_id.to_string(), "{filed}");
    assert_eq!(request["status"], "AWAITING_VERIFICATION");
    // The confirmation goes to Bob, saying an administrator asked.
    let mail = portal.next_mail_to("bob@acme.example").await?;
    assert!(mail.contains("on your behalf"), "{mail}");
    // Bob sees the request made about him; another tenant's admin cannot file for him.
    let id = request["id"].as_str().unwrap_or_default();
    let seen = portal
        .query_with_roles(
            seed.tenant_id,
            seed.bob_id,
            &["customer_user"],
            FOLLOW,
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(
        seen["data"]["dataSubjectRequest"]["requestedBy"],
        seed.alice_id.to_string(),
        "{seen}"
    );
    let foreign = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            REQUEST,
            json!({ "u": seed.bob_id.to_string() }),
        )
        .await?;
    assert_eq!(code(&foreign), "NOT_FOUND", "{foreign}");
    Ok(())
}
