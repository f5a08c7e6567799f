//! GDPR erasure (Art. 17) through the gateway: a person with data in every subgraph asks
//! for their data to be erased, confirms through the link mailed to them, and afterwards
//! no table holds anything of theirs that can be read — while the audit log still
//! verifies and the records the law requires are kept. A legal hold on the person or on
//! an account they are tied to blocks the request, with the hold named, until released.

use portal_entities::platform::audit_event;
use portal_kit::audit::{chain, pack};
use portal_kit::privacy::{DataSubject, Disposition, Erasure};
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth_helpers::{code, post, sign_in, token_after};

const ERASE: &str =
    "mutation($u: ID) { requestDataErasure(userId: $u) { id kind status subjectId requestedBy } }";
const VERIFY: &str = "mutation($t: String!) { verifyDataSubjectRequest(token: $t) { id status } }";
const FOLLOW: &str =
    "query($id: ID!) { dataSubjectRequest(id: $id) { id kind status completedAt result failure } }";

/// Follows request `id` as Alice (a tenant admin sees every request) until it settles.
async fn settled(portal: &TestPortal, id: &str) -> anyhow::Result<Value> {
    let seed = &portal.seed;
    let mut followed = Value::Null;
    for _ in 0..300 {
        let response = portal
            .query_with_roles(
                seed.tenant_id,
                seed.alice_id,
                &["tenant_admin"],
                FOLLOW,
                json!({ "id": id }),
            )
            .await?;
        followed = response["data"]["dataSubjectRequest"].clone();
        if ["COMPLETED", "FAILED", "BLOCKED"]
            .iter()
            .any(|s| followed["status"] == *s)
        {
            return Ok(followed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("request {id} did not settle: {followed}")
}

/// Confirms the request whose link was mailed to `email`.
async fn confirm(portal: &TestPortal, email: &str) -> anyhow::Result<()> {
    let mail = portal.next_mail_to(email).await?;
    let token = token_after(&mail, "confirm-data-request?token=")?;
    let (_, verified) = post(portal, None, VERIFY, json!({ "t": token })).await?;
    anyhow::ensure!(
        verified["data"]["verifyDataSubjectRequest"]["status"] == "QUEUED",
        "{verified}"
    );
    Ok(())
}

/// Every `(table, column)` of the database whose text (blobs read as text) contains one
/// of `markers`, ignoring case.
async fn readable_anywhere(
    db: &sea_orm::DatabaseConnection,
    markers: &[&str],
) -> anyhow::Result<Vec<(String, String, String)>> {
    let backend = db.get_database_backend();
    let columns_sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             ORDER BY table_name, ordinal_position"
        }
        _ => {
            "SELECT m.name, p.name, p.type FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY m.name, p.cid"
        }
    };
    let columns = db
        .query_all_raw(Statement::from_string(backend, columns_sql))
        .await?;
    let mut found = Vec::new();
    for row in columns {
        let table: String = row.try_get_by_index(0)?;
        let column: String = row.try_get_by_index(1)?;
        let kind: String = row.try_get_by_index(2)?;
        if table.starts_with("sqlite_") || table == "seaql_migrations" {
            continue;
        }
        // Blobs as text: printable bytes kept (PostgreSQL escapes the others).
        let text = match (backend, kind.as_str()) {
            (DbBackend::Postgres, "bytea") => format!("encode(\"{column}\", 'escape')"),
            _ => format!("CAST(\"{column}\" AS TEXT)"),
        };
        let any = markers
            .iter()
            .map(|m| {
                format!(
                    "LOWER({text}) LIKE '%{}%'",
                    m.to_lowercase().replace('\'', "''")
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        // The first match, to name what is left.
        let sql = format!("SELECT {text} FROM \"{table}\" WHERE {any} LIMIT 1");
        let hit: Option<String> = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
            .map(|r| r.try_get_by_index(0))
            .transpose()?;
        if let Some(value) = hit {
            found.push((table, column, value));
        }
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_leaves_nothing_readable_and_the_audit_log_still_verifies()
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
    let alice = |query: &'static str, variables: Value| {
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

    // Carol has data everywhere. Identity: a session from her sign-in, and a new name
    // (the change's event holds her old and new name).
    sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    let renamed = alice(
        "mutation($id: ID!) { updateUser(id: $id, input: { displayName: \"Carol Quincy-Erasable\" }) { displayName } }",
        json!({ "id": seed.carol_id.to_string() }),
    )
    .await?;
    assert!(renamed["errors"].is_null(), "{renamed}");
    // Messages: a thread she opened, with a message.
    let thread = carol(
        "mutation { createThread(input: { subject: \"Zebra invoice question\", body: \"Why was Zebra charged twice?\" }) { id } }",
        json!({}),
    )
    .await?;
    assert!(thread["errors"].is_null(), "{thread}");
    // Accounts: she owns two accounts and belongs to a third (seed); a dashboard of hers.
    let layout = carol(
        "mutation { createDashboardLayout(input: { name: \"Zebra home\", widgets: [] }) { id } }",
        json!({}),
    )
    .await?;
    assert!(layout["errors"].is_null(), "{layout}");
    // Reports: she owns a report definition (seed). Integrations: a CRM contact linked to her.
    let integration = portal_entities::integrations::integration::Entity::find()
        .filter(portal_entities::integrations::integration::Column::TenantId.eq(seed.tenant_id))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the seed has integrations"))?;
    {
        use sea_orm::{ActiveModelTrait, Set};
        portal_entities::integrations::external_ref::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(seed.tenant_id),
            integration_id: Set(integration.id),
            external_type: Set("contact".into()),
            external_id: Set("zebra-contact-1".into()),
            entity_type: Set("User".into()),
            entity_id: Set(seed.carol_id),
            fingerprint: Set(None),
            created_at: Set(chrono::Utc::now()),
            updated_at: Set(chrono::Utc::now()),
        }
        .insert(&portal.db)
        .await?;
    }
    // What identifies her, and what she wrote. (The names of things she made — a
    // dashboard called "Zebra home" — are not about her: the audit trail may keep them.)
    let markers = [
        "carol@acme.example",
        "Carol Customer",
        "Carol Quincy-Erasable",
        "Zebra invoice question",
        "Why was Zebra charged twice",
    ];
    let before = readable_anywhere(&portal.db, &markers).await?;
    assert!(
        before.iter().any(|(t, _, _)| t == "users"),
        "the scan finds what is there: {before:?}"
    );

    // She asks for erasure and confirms it.
    let requested = carol(ERASE, json!({})).await?;
    let request = &requested["data"]["requestDataErasure"];
    assert_eq!(request["kind"], "ERASURE", "{requested}");
    assert_eq!(request["status"], "AWAITING_VERIFICATION", "{requested}");
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    let again = carol(ERASE, json!({})).await?;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    // Nor a copy of what is about to be erased, while the erasure is open.
    let copy = carol("mutation { requestDataExport { id } }", json!({})).await?;
    assert_eq!(code(&copy), "CONFLICT", "{copy}");
    confirm(&portal, "carol@acme.example").await?;
    let done = settled(&portal, &id).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    // The result says, per part, what was erased, anonymized and kept, and why.
    let parts = &done["result"]["parts"];
    let line = |part: &str, collection: &str| -> Value {
        parts[part]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["collection"] == collection))
            .cloned()
            .unwrap_or(Value::Null)
    };
    for (part, collection, disposition) in [
        ("identity", "recentSessions", "ANONYMIZED"),
        ("identity", "profile", "ANONYMIZED"),
        ("identity", "credentials", "ERASED"),
        ("identity", "roles", "ERASED"),
        ("accounts", "memberships", "ERASED"),
        ("accounts", "ownedAccounts", "ANONYMIZED"),
        ("accounts", "dashboardLayouts", "ERASED"),
        ("messages", "messages", "ANONYMIZED"),
        ("integrations", "externalReferences", "ERASED"),
        ("platform", "auditEvents", "KEPT"),
        ("platform", "auditSubjectKey", "ERASED"),
        ("platform", "domainEvents", "ANONYMIZED"),
    ] {
        let found = line(part, collection);
        assert_eq!(
            found["disposition"], disposition,
            "{part}.{collection}: {done}"
        );
        assert!(found["count"].as_u64().unwrap_or(0) > 0, "{found}");
        assert!(found["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    assert!(
        parts["reports"].is_array() && parts["integrations"].is_array(),
        "{done}"
    );

    // Nothing of hers reads anywhere in the database.
    let after = readable_anywhere(&portal.db, &markers).await?;
    assert!(after.is_empty(), "personal data left: {after:?}");
    // And she can no longer sign in (the attempt is throttled like any other: by the
    // address tried).
    let refused = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(!refused["errors"].is_null(), "{refused}");
    // Sealed data too: what every part would export about her now is empty of her words.
    let keys = portal_tests::tenant_keys(&portal.db);
    let files =
        portal_kit::storage::FileStore::in_memory(&portal_tests::identity_settings().data_key);
    let domains = portal::privacy_domains(&portal.db, &keys, &files);
    let subject = DataSubject {
        tenant_id: seed.tenant_id,
        user_id: seed.carol_id,
    };
    for domain in &domains {
        let export = domain
            .export(subject)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let text = export.data.to_string().to_lowercase();
        for marker in &markers {
            assert!(
                !text.contains(&marker.to_lowercase()),
                "{}: {marker} in {text}",
                domain.name()
            );
        }
    }
    // Another erasure finds nothing left to erase or anonymize.
    let erasure = Erasure {
        identifiers: Vec::new(),
        actor: portal_kit::Actor::user(seed.carol_id, seed.tenant_id, Vec::new()),
        meta: portal_kit::RequestMeta::default(),
    };
    for domain in &domains {
        let again = domain
            .erase(subject, &erasure)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert!(
            again
                .items
                .iter()
                .all(|i| i.disposition == Disposition::Kept),
            "{}: {:?}",
            domain.name(),
            again.items
        );
    }

    // The audit trail about her stays, verifies, and no longer says who she was.
    let about = alice(
        "query($f: AuditEventFilter) { auditEvents(filter: $f, first: 50) { edges { node { action details personalDataErased } } } }",
        json!({ "f": { "action": "user.update", "targetId": seed.carol_id.to_string() } }),
    )
    .await?;
    let event = &about["data"]["auditEvents"]["edges"][0]["node"];
    assert_eq!(event["personalDataErased"], true, "{about}");
    assert!(!about.to_string().contains("Quincy"), "{about}");
    chain::chain_all(
        &portal.db,
        &portal_kit::evidence::EvidenceSigner::new(
            portal.db.clone(),
            portal_tests::identity_settings().data_key,
        ),
        1000,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let report = pack::verify_database(
        &portal.db,
        Some(seed.tenant_id),
        chrono::Duration::minutes(5),
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    for action in [
        "data_subject_request.create",
        "data_subject_request.confirm",
        "data_subject_request.complete",
        "user_accounts.erase",
        "user_reports.erase",
        "user_messages.erase",
        "user_integrations.erase",
        "user_platform.erase",
        "user.erase",
    ] {
        let found = audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq(action))
            .filter(audit_event::Column::TenantId.eq(seed.tenant_id))
            .one(&portal.db)
            .await?;
        assert!(found.is_some(), "{action} is audited");
    }

    // Nobody else was touched: Bob signs in, another tenant's data is whole.
    let bob = sign_in(
        &portal,
        "acme",
        "bob@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(bob["errors"].is_null(), "{bob}");
    assert!(
        !readable_anywhere(&portal.db, &["gina@globex.example", "Bob Billing"])
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_hold_on_the_person_or_their_account_blocks_erasure_until_released()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let alice = |query: &'static str, variables: Value| {
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
    const PLACE: &str = "mutation($i: PlaceLegalHoldInput!) { placeLegalHold(input: $i) { id targetType user { id } } }";
    const RELEASE: &str = "mutation($id: ID!) { releaseLegalHold(id: $id) { id } }";
    // Bob is under a hold of his own; his account (Billing float) under another.
    let held = alice(
        PLACE,
        json!({ "i": { "userId": seed.bob_id.to_string(), "reason": "Matter 7" } }),
    )
    .await?;
    let person_hold = held["data"]["placeLegalHold"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        held["data"]["placeLegalHold"]["targetType"], "USER",
        "{held}"
    );
    assert_eq!(
        held["data"]["placeLegalHold"]["user"]["id"],
        seed.bob_id.to_string()
    );
    // Someone of another tenant cannot be held here.
    let foreign = alice(
        PLACE,
        json!({ "i": { "userId": seed.other_user_id.to_string(), "reason": "x" } }),
    )
    .await?;
    assert_eq!(code(&foreign), "BAD_USER_INPUT", "{foreign}");
    let billing = portal.account_id("ACME-0004").await?;
    let account_hold = alice(
        PLACE,
        json!({ "i": { "accountId": billing, "reason": "Audit 2026" } }),
    )
    .await?["data"]["placeLegalHold"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Alice files for Bob; he confirms; the request is blocked, naming both holds.
    for (released, still) in [(None, 2), (Some(person_hold.clone()), 1)] {
        if let Some(hold) = released {
            let response = alice(RELEASE, json!({ "id": hold })).await?;
            assert!(response["errors"].is_null(), "{response}");
        }
        let filed = alice(ERASE, json!({ "u": seed.bob_id.to_string() })).await?;
        let id = filed["data"]["requestDataErasure"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            filed["data"]["requestDataErasure"]["requestedBy"],
            seed.alice_id.to_string(),
            "{filed}"
        );
        confirm(&portal, "bob@acme.example").await?;
        let blocked = settled(&portal, &id).await?;
        assert_eq!(blocked["status"], "BLOCKED", "{blocked}");
        assert!(
            blocked["failure"]
                .as_str()
                .is_some_and(|f| f.contains("legal hold")),
            "{blocked}"
        );
        let holds = blocked["result"]["holds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(holds.len(), still, "{blocked}");
        assert!(
            !blocked.to_string().contains("Matter 7"),
            "hold reasons stay private"
        );
        // Nothing was erased: Bob still signs in.
        let bob = sign_in(
            &portal,
            "acme",
            "bob@acme.example",
            portal::seed::DEMO_PASSWORD,
        )
        .await?;
        assert!(bob["errors"].is_null(), "{bob}");
    }

    // Once every hold is released, a new request goes through.
    let response = alice(RELEASE, json!({ "id": account_hold })).await?;
    assert!(response["errors"].is_null(), "{response}");
    let filed = alice(ERASE, json!({ "u": seed.bob_id.to_string() })).await?;
    let id = filed["data"]["requestDataErasure"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    confirm(&portal, "bob@acme.example").await?;
    let done = settled(&portal, &id).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let blocks = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("data_subject_request.block"))
        .filter(audit_event::Column::TenantId.eq(seed.tenant_id))
        .all(&portal.db)
        .await?;
    assert_eq!(blocks.len(), 2);
    // An erased person cannot be asked about again.
    let again = alice(ERASE, json!({ "u": seed.bob_id.to_string() })).await?;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    Ok(())
}
