//! Tenant off-boarding through the gateway: a platform administrator of another tenant
//! off-boards `acme`. It is frozen at once; its archive (every user's data and the
//! tenant's own, signed) is handed over; then its data is deleted from every table of
//! every subgraph, its keys shredded, and its audit log — still verifying — closed with a
//! final signed checkpoint and handed over as an evidence pack. Until deletion begins it
//! can be cancelled; a legal hold in the tenant blocks it.

use std::collections::BTreeMap;

use portal_kit::audit::pack;
use portal_tests::{Mode, TestPortal};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth_helpers::{code, sign_in};

const OFFBOARD: &str = "mutation($i: OffboardTenantInput!) { offboardTenant(input: $i) { id status tenantSlug deleteAfter } }";
const FOLLOW: &str = "query($id: ID!) { tenantOffboarding(id: $id) { id status tenantId tenantSlug exportedAt finishedAt result failure archive { name sha256 download { url } } evidencePack { name rowCount download { url } } finalCheckpoint { sequence headHash keyId document } } }";
const CANCEL: &str = "mutation($id: ID!) { cancelTenantOffboarding(id: $id) { id status } }";

/// Makes Gina, globex's admin, a platform administrator (in the database, as an operator
/// would): downloads re-read the roles held.
async fn make_operator(portal: &TestPortal) -> anyhow::Result<()> {
    use portal_entities::identity::{role, user_role};
    use sea_orm::{ActiveModelTrait, Set};
    let seed = &portal.seed;
    let now = chrono::Utc::now();
    let role = role::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(seed.other_tenant_id),
        name: Set("platform_admin".into()),
        description: Set("Operates the platform".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&portal.db)
    .await?;
    user_role::ActiveModel {
        user_id: Set(seed.other_user_id),
        role_id: Set(role.id),
        tenant_id: Set(seed.other_tenant_id),
        created_at: Set(now),
    }
    .insert(&portal.db)
    .await?;
    Ok(())
}

/// A query as Gina, platform administrator of globex.
async fn operator(portal: &TestPortal, query: &str, variables: Value) -> anyhow::Result<Value> {
    let seed = &portal.seed;
    portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["platform_admin"],
            query,
            variables,
        )
        .await
}

/// Follows off-boarding `id` until its status is one of `wanted`.
async fn until(portal: &TestPortal, id: &str, wanted: &[&str]) -> anyhow::Result<Value> {
    let mut followed = Value::Null;
    for _ in 0..600 {
        let response = operator(portal, FOLLOW, json!({ "id": id })).await?;
        followed = response["data"]["tenantOffboarding"].clone();
        anyhow::ensure!(response["errors"].is_null(), "{response}");
        if wanted.iter().any(|s| followed["status"] == *s) {
            return Ok(followed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("off-boarding {id} did not reach {wanted:?}: {followed}")
}

/// Makes off-boarding `id`'s deletion due now, and its queued run with it.
async fn due_now(portal: &TestPortal, id: &str) -> anyhow::Result<()> {
    use portal_entities::identity::tenant_offboarding;
    use portal_entities::platform::job;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, QueryFilter};
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    tenant_offboarding::Entity::update_many()
        .col_expr(tenant_offboarding::Column::DeleteAfter, Expr::value(past))
        .filter(tenant_offboarding::Column::Id.eq(Uuid::parse_str(id)?))
        .exec(&portal.db)
        .await?;
    let moved = job::Entity::update_many()
        .col_expr(job::Column::RunAt, Expr::value(past))
        .filter(job::Column::Kind.eq("tenant.offboard"))
        .filter(job::Column::State.eq("queued"))
        .exec(&portal.db)
        .await?;
    anyhow::ensure!(
        moved.rows_affected == 1,
        "one deletion run waits: {}",
        moved.rows_affected
    );
    Ok(())
}

/// Downloads a handed-over file as Gina and unzips it.
async fn download(portal: &TestPortal, file: &Value) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let url = file["download"]["url"].as_str().unwrap_or_default();
    let base = portal.endpoint.trim_end_matches("/graphql");
    let response = portal.http().get(format!("{base}{url}")).send().await?;
    anyhow::ensure!(
        response.status().as_u16() == 200,
        "{file}: {}",
        response.status()
    );
    portal_kit::archive::unzip(&response.bytes().await?, 1 << 30, |_| true)
        .map_err(anyhow::Error::msg)
}

/// Rows of `tenant` left in every table with a `tenant_id` column, by table.
async fn rows_left(
    db: &sea_orm::DatabaseConnection,
    tenant: Uuid,
) -> anyhow::Result<Vec<(String, i64)>> {
    let backend = db.get_database_backend();
    let tables_sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_name = 'tenant_id' ORDER BY 1"
        }
        _ => {
            "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name = 'tenant_id' ORDER BY 1"
        }
    };
    let tables = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await?;
    let mut left = Vec::new();
    for row in tables {
        let table: String = row.try_get_by_index(0)?;
        let sql = match backend {
            DbBackend::Postgres => format!("SELECT COUNT(*) FROM \"{table}\" WHERE tenant_id = $1"),
            _ => format!("SELECT COUNT(*) FROM \"{table}\" WHERE tenant_id = ?"),
        };
        let count: i64 = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [tenant.into()],
            ))
            .await?
            .map(|r| r.try_get_by_index(0))
            .transpose()?
            .unwrap_or(0);
        if count > 0 {
            left.push((table, count));
        }
    }
    Ok(left)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarded_tenant_is_handed_over_and_deleted_everywhere_while_its_log_verifies()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    make_operator(&portal).await?;
    let acme = seed.tenant_id;

    // Acme has data everywhere: a session, a thread with a sealed message, a dashboard.
    sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    let carol = |query: &'static str| {
        let portal = &portal;
        async move {
            portal
                .query_with_roles(acme, seed.carol_id, &["customer_user"], query, json!({}))
                .await
        }
    };
    let thread = carol(
            "mutation { createThread(input: { subject: \"Walrus renewal\", body: \"Walrus terms attached\" }) { id } }",
    )
    .await?;
    assert!(thread["errors"].is_null(), "{thread}");
    let layout = carol(
        "mutation { createDashboardLayout(input: { name: \"Walrus home\", widgets: [] }) { id } }",
    )
    .await?;
    assert!(layout["errors"].is_null(), "{layout}");
    let period = portal
        .query_with_roles(
            acme,
            seed.alice_id,
            &["tenant_admin"],
            "mutation { setRetentionPeriod(input: { class: SESSIONS, days: 60 }) { days } }",
            json!({}),
        )
        .await?;
    assert!(period["errors"].is_null(), "{period}");
    let before = rows_left(&portal.db, acme).await?;
    for table in [
        "users",
        "accounts",
        "report_definitions",
        "messages",
        "integrations",
        "retention_settings",
    ] {
        assert!(
            before.iter().any(|(t, _)| t == table),
            "{table}: {before:?}"
        );
    }

    // Only platform administrators off-board, never their own tenant, and only with the
    // slug typed again.
    let input = |slug: &str, tenant: Uuid| json!({ "i": { "tenantId": tenant.to_string(), "confirmSlug": slug, "deleteAfterDays": 0 } });
    let admin = portal
        .query_with_roles(
            acme,
            seed.alice_id,
            &["tenant_admin"],
            OFFBOARD,
            input("globex", seed.other_tenant_id),
        )
        .await?;
    assert_eq!(code(&admin), "FORBIDDEN", "{admin}");
    let own = operator(&portal, OFFBOARD, input("globex", seed.other_tenant_id)).await?;
    assert_eq!(code(&own), "BAD_USER_INPUT", "{own}");
    let typo = operator(&portal, OFFBOARD, input("acme-inc", acme)).await?;
    assert_eq!(code(&typo), "BAD_USER_INPUT", "{typo}");
    let grace = json!({ "i": { "tenantId": acme.to_string(), "confirmSlug": "acme", "deleteAfterDays": 91 } });
    let long = operator(&portal, OFFBOARD, grace).await?;
    assert_eq!(code(&long), "BAD_USER_INPUT", "{long}");
    let untouched = portal_entities::identity::tenant::Entity::find_by_id(acme)
        .one(&portal.db)
        .await?
        .map(|t| t.status);
    assert_eq!(
        untouched.as_deref(),
        Some("ACTIVE"),
        "refusals change nothing"
    );

    let started = operator(&portal, OFFBOARD, input("acme", acme)).await?;
    let id = started["data"]["offboardTenant"]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{started}"))?
        .to_owned();
    assert_eq!(started["data"]["offboardTenant"]["tenantSlug"], "acme");
    let twice = operator(&portal, OFFBOARD, input("acme", acme)).await?;
    assert!(["CONFLICT", "NOT_FOUND"].contains(&code(&twice)), "{twice}");

    // Deletion waits at least for the revocation window (two hours): the test moves the
    // clock on by hand, as the grace period's end would.
    let waiting = until(&portal, &id, &["AWAITING_DELETION", "FAILED", "BLOCKED"]).await?;
    assert_eq!(waiting["status"], "AWAITING_DELETION", "{waiting}");
    let refused = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(!refused["errors"].is_null(), "frozen: {refused}");
    due_now(&portal, &id).await?;
    let done = until(&portal, &id, &["COMPLETED", "FAILED", "BLOCKED"]).await?;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    // Nobody of acme signs in any more.
    let refused = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(!refused["errors"].is_null(), "{refused}");

    // The archive: every part's tenant data, every user's, the files, a signed manifest.
    let archive = download(&portal, &done["archive"]).await?;
    for part in [
        "identity",
        "accounts",
        "reports",
        "messages",
        "integrations",
    ] {
        assert!(
            archive.contains_key(&format!("tenant/{part}.json")),
            "{part}: {:?}",
            archive.keys()
        );
        assert!(
            archive.contains_key(&format!("users/{}/{part}.json", seed.carol_id)),
            "{part}"
        );
    }
    let text = |path: &str| String::from_utf8_lossy(&archive[path]).into_owned();
    assert!(
        text("tenant/messages.json").contains("Walrus terms attached"),
        "bodies opened"
    );
    assert!(
        text("tenant/messages.json").contains("Walrus renewal"),
        "subjects opened"
    );
    assert!(text("tenant/accounts.json").contains("Walrus home"));
    assert!(text("tenant/identity.json").contains("carol@acme.example"));
    assert!(
        !text("tenant/identity.json").contains("password_hash"),
        "secrets stay out"
    );
    assert!(!text("tenant/integrations.json").contains("credentials_sealed"));
    let manifest: Value = serde_json::from_slice(&archive["manifest.json"])?;
    let keys: portal_kit::evidence::KeySet = serde_json::from_slice(&archive["keys.json"])?;
    portal_kit::evidence::verify(&manifest, &keys).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let entries = manifest["entries"].as_object().cloned().unwrap_or_default();
    assert_eq!(
        entries.len() + 2,
        archive.len(),
        "every entry but the manifest and keys is listed"
    );
    for (path, digest) in &entries {
        use sha2::Digest;
        let actual = hex::encode(sha2::Sha256::digest(&archive[path]));
        assert_eq!(Some(actual.as_str()), digest.as_str(), "{path}");
    }

    // Nothing of acme is left in any table but its audit log, its keys' shredded stubs and
    // the off-boarding record; no policy rule names it; globex is untouched.
    let left = rows_left(&portal.db, acme).await?;
    let allowed = [
        "audit_events",
        "audit_checkpoints",
        "audit_subject_keys",
        "tenant_keys",
    ];
    assert!(
        left.iter()
            .all(|(t, _)| allowed.contains(&t.as_str()) || t == "tenant_offboardings"),
        "rows left: {left:?}"
    );
    let readable_keys = portal_entities::platform::audit_subject_key::Entity::find()
        .all(&portal.db)
        .await?
        .into_iter()
        .filter(|k| k.tenant_id == Some(acme) && k.shredded_at.is_none())
        .count();
    assert_eq!(
        readable_keys, 0,
        "every audit subject key of acme is shredded"
    );
    let rules = portal_entities::platform::casbin_rule::Entity::find()
        .all(&portal.db)
        .await?
        .into_iter()
        .filter(|r| r.v1 == acme.to_string() || r.v2 == acme.to_string())
        .count();
    assert_eq!(rules, 0);
    let tombstone = portal_entities::identity::tenant::Entity::find_by_id(acme)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the tenant row stays as a tombstone"))?;
    assert_eq!(tombstone.status, "DELETED");
    assert_ne!(tombstone.slug, "acme", "the slug is free again");
    let globex = rows_left(&portal.db, seed.other_tenant_id).await?;
    assert!(globex.iter().any(|(t, _)| t == "users"), "{globex:?}");
    let gina = sign_in(
        &portal,
        "globex",
        "gina@globex.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(gina["errors"].is_null(), "{gina}");

    // The audit log still verifies, and ends at the final checkpoint handed over.
    let report = pack::verify_database(
        &portal.db,
        Some(acme),
        chrono::Duration::minutes(5),
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(report.ok(), "{}", pack::describe(&report));
    let evidence = download(&portal, &done["evidencePack"]).await?;
    let verified = pack::verify_files(&evidence, None).map_err(anyhow::Error::msg)?;
    assert!(verified.ok(), "{}", pack::describe(&verified));
    let checkpoints = String::from_utf8_lossy(&evidence["checkpoints.jsonl"]).into_owned();
    let last: Value = serde_json::from_str(checkpoints.lines().last().unwrap_or("null"))?;
    assert_eq!(last["kind"], "final", "{last}");
    let final_checkpoint = &done["finalCheckpoint"];
    assert_eq!(last["sequence"], final_checkpoint["sequence"], "{done}");
    assert_eq!(last["headHash"], final_checkpoint["headHash"], "{done}");
    let events = String::from_utf8_lossy(&evidence["events.jsonl"]).into_owned();
    for action in [
        "tenant.offboard_start",
        "messages.tenant_erase",
        "identity.tenant_erase",
        "platform.tenant_erase",
    ] {
        assert!(events.contains(action), "{action} in the tenant's log");
    }

    // Deleting again finds nothing.
    let by = portal_kit::privacy::TenantErasure {
        actor: portal_kit::Actor::user(seed.other_user_id, seed.other_tenant_id, Vec::new()),
        meta: portal_kit::RequestMeta::default(),
        offboarding_id: Uuid::parse_str(&id)?,
    };
    for domain in portal::privacy_domains(&portal.db, &portal.keys, &portal.files) {
        let again = domain
            .erase_tenant(acme, &by)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert!(
            again.items.is_empty(),
            "{}: {:?}",
            domain.name(),
            again.items
        );
    }
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarding_is_cancelled_before_deletion_and_a_legal_hold_blocks_one()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    make_operator(&portal).await?;
    let acme = seed.tenant_id;
    let start = json!({ "i": { "tenantId": acme.to_string(), "confirmSlug": "acme" } });

    // With the default grace period it waits, frozen, archive ready.
    let started = operator(&portal, OFFBOARD, start.clone()).await?;
    let id = started["data"]["offboardTenant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let waiting = until(&portal, &id, &["AWAITING_DELETION", "FAILED", "BLOCKED"]).await?;
    assert_eq!(waiting["status"], "AWAITING_DELETION", "{waiting}");
    assert!(waiting["archive"]["name"].is_string(), "{waiting}");
    let frozen = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(!frozen["errors"].is_null(), "{frozen}");

    // Cancelled: the tenant is back, its users sign in again, the archive is gone.
    let cancelled = operator(&portal, CANCEL, json!({ "id": id })).await?;
    assert_eq!(
        cancelled["data"]["cancelTenantOffboarding"]["status"], "CANCELLED",
        "{cancelled}"
    );
    let again = operator(&portal, CANCEL, json!({ "id": id })).await?;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    let back = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(back["errors"].is_null(), "{back}");
    let followed = operator(&portal, FOLLOW, json!({ "id": id })).await?;
    assert!(
        followed["data"]["tenantOffboarding"]["archive"].is_null(),
        "{followed}"
    );

    // A legal hold in acme blocks the next one, named; the tenant stays active.
    let held = portal
        .query_with_roles(
            acme,
            seed.alice_id,
            &["tenant_admin"],
            "mutation($i: PlaceLegalHoldInput!) { placeLegalHold(input: $i) { id } }",
            json!({ "i": { "userId": seed.bob_id.to_string(), "reason": "Matter 9" } }),
        )
        .await?;
    let hold = held["data"]["placeLegalHold"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!hold.is_empty(), "{held}");
    let started = operator(&portal, OFFBOARD, start).await?;
    let id = started["data"]["offboardTenant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let blocked = until(&portal, &id, &["BLOCKED", "AWAITING_DELETION", "FAILED"]).await?;
    assert_eq!(blocked["status"], "BLOCKED", "{blocked}");
    assert_eq!(blocked["result"]["holds"][0]["id"], hold, "{blocked}");
    let active = sign_in(
        &portal,
        "acme",
        "carol@acme.example",
        portal::seed::DEMO_PASSWORD,
    )
    .await?;
    assert!(active["errors"].is_null(), "{active}");
    assert!(
        rows_left(&portal.db, acme)
            .await?
            .iter()
            .any(|(t, _)| t == "messages")
    );
    portal.stop().await;
    Ok(())
}
