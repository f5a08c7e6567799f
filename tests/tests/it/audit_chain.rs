//! The tamper-evident audit log: parallel writers are chained with no fork and no gap;
//! every kind of tampering is detected and named, in the database and in an evidence pack;
//! personal data is sealed per data subject and shredding a subject leaves events that
//! still verify; personal data recorded before sealing is sealed before it is chained.

use std::collections::BTreeMap;

use portal_entities::platform::{audit_event, audit_guard_lift};
use portal_kit::audit::verify::{Finding, Report, verify};
use portal_kit::audit::{AuditEvent, chain, pack, personal};
use portal_kit::db::BeginWrite;
use portal_kit::evidence::EvidenceSigner;
use portal_kit::{Actor, RequestMeta};
use portal_tests::{Mode, TestDb, TestPortal};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Statement, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

fn signer(db: &DatabaseConnection) -> EvidenceSigner {
    EvidenceSigner::new(db.clone(), portal_tests::identity_settings().data_key)
}

fn meta() -> RequestMeta {
    RequestMeta {
        request_id: Some("req-1".into()),
        source_ip: Some("203.0.113.7".into()),
        user_agent: Some("audit-tests/1".into()),
        traceparent: None,
    }
}

async fn write(db: &DatabaseConnection, actor: &Actor, n: usize) -> anyhow::Result<()> {
    for _ in 0..n {
        let txn = db.begin_write().await?;
        AuditEvent::success("account.update", "account", Uuid::now_v7())
            .with_details(json!({ "field": "name" }))
            .record(&txn, actor, &meta())
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        txn.commit().await?;
    }
    Ok(())
}

fn kinds(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .map(|f| json!(f)["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writers_are_chained_without_forks_or_gaps() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let tenants = [Uuid::now_v7(), Uuid::now_v7()];
    let mut tasks = Vec::new();
    for w in 0..6 {
        let db = db.clone();
        let actor = Actor::user(Uuid::now_v7(), tenants[w % 2], vec![]);
        tasks.push(tokio::spawn(async move { write(&db, &actor, 15).await }));
    }
    // Two sequencers chain while the writers write: one chains at a time.
    let mut sequencers = Vec::new();
    for _ in 0..2 {
        let db = db.clone();
        sequencers.push(tokio::spawn(async move {
            let signer = signer(&db);
            let mut chained = 0;
            for _ in 0..40 {
                chained += chain::chain(&db, &signer, 7)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            anyhow::Ok(chained)
        }));
    }
    for task in tasks {
        task.await??;
    }
    for sequencer in sequencers {
        sequencer.await??;
    }
    chain::chain_all(&db, &signer(&db), 50)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for tenant in tenants {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::TenantId.eq(tenant))
            .order_by_asc(audit_event::Column::ChainSeq)
            .all(&db)
            .await?;
        let sequences: Vec<i64> = rows.iter().filter_map(|r| r.chain_seq).collect();
        assert_eq!(sequences, (1..=45).collect::<Vec<i64>>(), "no gap, no fork");
        let report = pack::verify_database(
            &db,
            Some(tenant),
            chrono::Duration::minutes(5),
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.events, 45);
        // The genesis checkpoint verified.
        assert_eq!(report.checkpoints_verified, 1);
    }
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

/// Ten chained events of one tenant with a checkpoint at the head: the records, the
/// checkpoints and the key set, as a pack holds them.
async fn chained_tenant() -> anyhow::Result<(TestDb, DatabaseConnection, Uuid)> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let tenant = Uuid::now_v7();
    write(&db, &Actor::user(Uuid::now_v7(), tenant, vec![]), 10).await?;
    chain::checkpoint_now(&db, &signer(&db), Some(tenant), chain::kind::PERIODIC)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((test_db, db, tenant))
}

#[tokio::test]
async fn every_kind_of_tampering_is_detected_and_named() -> anyhow::Result<()> {
    let (test_db, db, tenant) = chained_tenant().await?;
    let records = pack::records(&db, Some(tenant))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let checkpoints = pack::checkpoint_documents(&db, Some(tenant))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let keys = portal_kit::evidence::published(&db)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let tenant_text = tenant.to_string();
    let check = |records: &[Value]| verify(Some(&tenant_text), records, &checkpoints, &keys);
    let intact = check(&records);
    assert!(intact.ok(), "{intact:?}");
    assert_eq!((intact.events, intact.checkpoints_verified), (10, 2));
    let rehash = |record: &mut Value| {
        let hash = chain::hash(record);
        record["hash"] = Value::String(hash);
    };

    // Edited: one event's content changed.
    let mut edited = records.clone();
    edited[2]["action"] = json!("account.delete");
    let report = check(&edited);
    assert_eq!(
        report.findings,
        vec![Finding::Edited {
            sequence: 3,
            id: records[2]["id"].as_str().unwrap_or_default().into()
        }]
    );

    // Deleted: one event removed, and the same hidden by renumbering the rest.
    let mut deleted = records.clone();
    deleted.remove(4);
    assert_eq!(
        check(&deleted).findings,
        vec![Finding::Deleted { from: 5, to: 5 }]
    );
    let mut renumbered = records.clone();
    renumbered.remove(4);
    for record in renumbered.iter_mut().skip(4) {
        let seq = record["sequence"].as_i64().unwrap_or_default();
        record["sequence"] = json!(seq - 1);
    }
    let report = check(&renumbered);
    assert!(
        report
            .findings
            .contains(&Finding::Deleted { from: 5, to: 5 }),
        "{report:?}"
    );
    assert!(
        kinds(&report).contains(&"truncated".to_owned()),
        "the signed head is gone too: {report:?}"
    );

    // Reordered: two events swapped places.
    let mut reordered = records.clone();
    reordered[3]["sequence"] = json!(5);
    reordered[4]["sequence"] = json!(4);
    let report = check(&reordered);
    assert_eq!(kinds(&report), vec!["reordered", "reordered"], "{report:?}");
    assert!(report.findings.contains(&Finding::Reordered {
        sequence: 4,
        chained_at: 5,
        id: records[4]["id"].as_str().unwrap_or_default().into()
    }));

    // Inserted: a forged event (self-consistent) given an existing number, and one
    // slipped in with the rest renumbered after it.
    let mut forged = records[5].clone();
    forged["id"] = json!(Uuid::now_v7().to_string());
    rehash(&mut forged);
    let mut inserted = records.clone();
    inserted.push(forged.clone());
    let report = check(&inserted);
    assert_eq!(
        report.findings,
        vec![Finding::Inserted {
            sequence: 6,
            id: forged["id"].as_str().unwrap_or_default().into()
        }],
        "{report:?}"
    );
    let mut shifted = records.clone();
    for record in shifted.iter_mut().skip(5) {
        let seq = record["sequence"].as_i64().unwrap_or_default();
        record["sequence"] = json!(seq + 1);
    }
    shifted.insert(5, forged.clone());
    let report = check(&shifted);
    assert!(
        report.findings.contains(&Finding::Inserted {
            sequence: 6,
            id: forged["id"].as_str().unwrap_or_default().into()
        }),
        "{report:?}"
    );

    // Truncated: the tail before the last checkpoint removed.
    let truncated = records[..7].to_vec();
    assert_eq!(
        check(&truncated).findings,
        vec![Finding::Truncated {
            last: 7,
            checkpoint: 10
        }]
    );

    // Rewritten: an event changed and every hash after it recomputed — consistent in
    // itself, but not what the checkpoint signed.
    let mut rewritten = records.clone();
    rewritten[2]["action"] = json!("account.delete");
    let mut prev = rewritten[1]["hash"].as_str().unwrap_or_default().to_owned();
    for record in rewritten.iter_mut().skip(2) {
        record["prev"] = json!(prev);
        rehash(record);
        prev = record["hash"].as_str().unwrap_or_default().to_owned();
    }
    assert_eq!(
        check(&rewritten).findings,
        vec![Finding::Rewritten { checkpoint: 10 }]
    );

    // A checkpoint altered after signing does not verify.
    let mut altered = checkpoints.clone();
    altered[1]["headHash"] = json!(chain::GENESIS_HASH);
    let report = verify(Some(&tenant_text), &records, &altered, &keys);
    assert_eq!(kinds(&report), vec!["badCheckpoint"], "{report:?}");
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn the_database_refuses_edits_and_names_one_made_past_its_guard() -> anyhow::Result<()> {
    let (test_db, db, tenant) = chained_tenant().await?;
    let backend = db.get_database_backend();
    let first = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .filter(audit_event::Column::ChainSeq.eq(3))
        .one(&db)
        .await?
        .expect("event 3");
    let id = first.id.to_string();
    let placeholder = if backend == sea_orm::DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let by_id = |sql: &str| {
        Statement::from_sql_and_values(
            backend,
            sql.replace("$ID", placeholder),
            [sea_orm::Value::from(first.id)],
        )
    };
    // Neither an edit nor a re-chaining nor a delete gets past the guard.
    for sql in [
        "UPDATE audit_events SET action = 'account.delete' WHERE id = $ID",
        "UPDATE audit_events SET chain_seq = 99 WHERE id = $ID",
        "DELETE FROM audit_events WHERE id = $ID",
    ] {
        assert!(
            db.execute_raw(by_id(sql)).await.is_err(),
            "{sql} was allowed"
        );
    }
    // An unchained event cannot be given any place but the next one of its chain (which
    // would hide it from both the chain and the unchained count).
    write(&db, &Actor::user(Uuid::now_v7(), tenant, vec![]), 1).await?;
    let waiting = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .filter(audit_event::Column::ChainSeq.is_null())
        .one(&db)
        .await?
        .expect("an unchained event");
    for (seq, prev) in [
        (-1i64, "x".to_owned()),
        (99, "x".to_owned()),
        (11, "x".to_owned()),
    ] {
        let sql = if backend == sea_orm::DbBackend::Postgres {
            "UPDATE audit_events SET chain_seq = $1, chain_prev = $2, chain_hash = 'h' WHERE id = $3"
        } else {
            "UPDATE audit_events SET chain_seq = ?, chain_prev = ?, chain_hash = 'h' WHERE id = ?"
        };
        let refused = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [seq.into(), prev.into(), waiting.id.into()],
            ))
            .await;
        assert!(refused.is_err(), "chaining at {seq} was allowed");
    }
    chain::chain_all(&db, &signer(&db), 10)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // The guard lifted, as only a recorded rewrite does (or someone with the database's
    // owner rights): the edit is made — and named by verify.
    let lift = Uuid::now_v7();
    let lift_sql = if backend == sea_orm::DbBackend::Postgres {
        "INSERT INTO audit_guard_lifts (id, reason, rows_changed, started_at) VALUES ($1, 'test', 1, $2)"
    } else {
        "INSERT INTO audit_guard_lifts (id, reason, rows_changed, started_at) VALUES (?, 'test', 1, ?)"
    };
    let close_sql = if backend == sea_orm::DbBackend::Postgres {
        "UPDATE audit_guard_lifts SET finished_at = $1 WHERE id = $2"
    } else {
        "UPDATE audit_guard_lifts SET finished_at = ? WHERE id = ?"
    };
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        lift_sql,
        [lift.into(), chrono::Utc::now().into()],
    ))
    .await?;
    txn.execute_raw(by_id(
        "UPDATE audit_events SET action = 'account.delete' WHERE id = $ID",
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        close_sql,
        [chrono::Utc::now().into(), lift.into()],
    ))
    .await?;
    txn.commit().await?;
    let report = pack::verify_database(
        &db,
        Some(tenant),
        chrono::Duration::minutes(5),
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(report.findings, vec![Finding::Edited { sequence: 3, id }]);

    // A lift left open: PostgreSQL refuses the commit; on SQLite verify names it.
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        lift_sql,
        [Uuid::now_v7().into(), chrono::Utc::now().into()],
    ))
    .await?;
    let committed = txn.commit().await;
    if backend == sea_orm::DbBackend::Postgres {
        assert!(committed.is_err(), "an open lift was committed");
    } else {
        committed?;
        let report = pack::verify_database(
            &db,
            Some(tenant),
            chrono::Duration::minutes(5),
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert!(
            report.findings.contains(&Finding::GuardLifted { count: 1 }),
            "{report:?}"
        );
        db.close().await?;
        test_db.cleanup().await;
        return Ok(());
    }

    // Events left unchained past the bound are reported.
    write(&db, &Actor::user(Uuid::now_v7(), tenant, vec![]), 1).await?;
    let later = chrono::Utc::now() + chrono::Duration::minutes(10);
    let report = pack::verify_database(&db, Some(tenant), chrono::Duration::minutes(5), later)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(
        kinds(&report).contains(&"unchained".to_owned()),
        "{report:?}"
    );
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn an_evidence_pack_verifies_offline_and_a_changed_file_is_named() -> anyhow::Result<()> {
    let (test_db, db, tenant) = chained_tenant().await?;
    let files = pack::build(&db, &signer(&db), Some(tenant))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>().len(),
        pack::FILES.len()
    );
    // Written out and read back the way `portal audit verify --pack` does.
    let dir = std::env::temp_dir().join(format!("portal-pack-{}", Uuid::now_v7()));
    portal::audit::write_pack(&dir, &files)?;
    let report = portal::audit::verify_pack(&dir, None)?;
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, 10);
    // No personal data in the clear: the address is only ciphertext.
    let events = String::from_utf8(files["events.jsonl"].clone())?;
    assert!(!events.contains("203.0.113.7") && !events.contains("audit-tests/1"));

    let mut changed: BTreeMap<String, Vec<u8>> = files.clone();
    let edited = events.replacen("account.update", "account.delete", 1);
    changed.insert("events.jsonl".into(), edited.into_bytes());
    let report = pack::verify_files(&changed, None).map_err(anyhow::Error::msg)?;
    assert!(kinds(&report).contains(&"edited".to_owned()), "{report:?}");
    assert!(
        report.findings.iter().any(|f| matches!(f, Finding::BadCheckpoint { reason, .. } if reason.contains("events.jsonl"))),
        "{report:?}"
    );
    std::fs::remove_dir_all(&dir)?;
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

const AUDIT: &str = "query($f: AuditEventFilter) { auditEvents(filter: $f, first: 50) { edges { node { action targetId sourceIp userAgent details subjectId personalDataErased sequence chainHash } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shredding_a_subject_leaves_events_that_verify_with_their_personal_data_unreadable()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    // Bob renames himself (as an admin would): his display name is personal data.
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation($id: ID!) { updateUser(id: $id, input: { displayName: \"Robert\" }) { displayName } }",
            json!({ "id": seed.bob_id.to_string() }),
        )
        .await?;
    assert_eq!(
        response["data"]["updateUser"]["displayName"], "Robert",
        "{response}"
    );
    let row = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("user.update"))
        .filter(audit_event::Column::TargetId.eq(seed.bob_id))
        .one(&portal.db)
        .await?
        .expect("audited");
    // Stored: no plaintext name or address; the name sealed to Bob, the address to Alice.
    let stored = format!("{:?}", row.details);
    assert!(!stored.contains("Robert"), "{stored}");
    assert_eq!(row.source_ip, None);
    assert_eq!(row.subject_id, Some(seed.bob_id));
    assert!(row.subject_personal.is_some() && row.actor_personal.is_some());
    chain::chain_all(&portal.db, &signer(&portal.db), 100)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    let read = || async {
        let response = portal
            .query_with_roles(
                seed.tenant_id,
                seed.alice_id,
                &["tenant_admin"],
                AUDIT,
                json!({ "f": { "action": "user.update", "targetId": seed.bob_id.to_string() } }),
            )
            .await?;
        anyhow::Ok(response["data"]["auditEvents"]["edges"][0]["node"].clone())
    };
    let event = read().await?;
    assert_eq!(
        event["details"]["after"]["displayName"], "Robert",
        "{event}"
    );
    assert_eq!(event["details"]["after"]["status"], "ACTIVE", "{event}");
    assert_eq!(event["sourceIp"], "127.0.0.1", "{event}");
    assert_eq!(event["subjectId"], seed.bob_id.to_string());
    assert_eq!(event["personalDataErased"], false);
    assert!(
        event["sequence"].as_i64().is_some() && event["chainHash"].is_string(),
        "{event}"
    );

    // Bob is erased: his key is shredded. The event stays and still verifies; his name
    // no longer reads, Alice's address (her own subject) still does.
    assert!(
        personal::shred(&portal.db, Some(seed.tenant_id), seed.bob_id)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
    );
    let event = read().await?;
    assert_eq!(
        event["details"]["after"].get("displayName"),
        None,
        "{event}"
    );
    assert_eq!(event["details"]["after"]["status"], "ACTIVE", "{event}");
    assert_eq!(event["sourceIp"], "127.0.0.1", "{event}");
    assert_eq!(event["personalDataErased"], true);
    let report = pack::verify_database(
        &portal.db,
        Some(seed.tenant_id),
        chrono::Duration::minutes(5),
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(report.ok(), "{report:?}");
    // Nothing personal is recorded about an erased subject afterwards.
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation($id: ID!) { updateUser(id: $id, input: { displayName: \"Bobby\" }) { displayName } }",
            json!({ "id": seed.bob_id.to_string() }),
        )
        .await?;
    assert!(response["errors"].is_null(), "{response}");
    let later = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("user.update"))
        .filter(audit_event::Column::TargetId.eq(seed.bob_id))
        .order_by_desc(audit_event::Column::Id)
        .one(&portal.db)
        .await?
        .expect("audited");
    assert_eq!(later.subject_personal, None);
    assert!(!format!("{:?}", later.details).contains("Bobby"));
    Ok(())
}

#[tokio::test]
async fn personal_data_recorded_in_the_clear_is_sealed_before_it_is_chained() -> anyhow::Result<()>
{
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let tenant = Uuid::now_v7();
    let user = Uuid::now_v7();
    // As the portal recorded events before sealing existed.
    let legacy = audit_event::Model {
        id: Uuid::now_v7(),
        tenant_id: Some(tenant),
        actor_kind: "anonymous".into(),
        actor_id: None,
        action: "auth.sign_in".into(),
        target_type: "user".into(),
        target_id: Some(user),
        outcome: "failure".into(),
        request_id: Some("req-old".into()),
        source_ip: Some("198.51.100.4".into()),
        user_agent: Some("old-browser/1".into()),
        details: Some(json!({ "email": "bob@acme.test", "reason": "bad_password" })),
        created_at: chrono::Utc::now(),
        chain_seq: None,
        chain_prev: None,
        chain_hash: None,
        subject_id: None,
        actor_personal: None,
        subject_personal: None,
    };
    audit_event::Entity::insert(sea_orm::IntoActiveModel::into_active_model(legacy.clone()))
        .exec_without_returning(&db)
        .await?;
    chain::chain_all(&db, &signer(&db), 100)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let sealed = audit_event::Entity::find_by_id(legacy.id)
        .one(&db)
        .await?
        .expect("kept");
    assert_eq!(
        (sealed.source_ip.as_deref(), sealed.user_agent.as_deref()),
        (None, None)
    );
    assert_eq!(sealed.details, Some(json!({ "reason": "bad_password" })));
    assert_eq!(sealed.subject_id, Some(user));
    assert_eq!(sealed.chain_seq, Some(1));
    // Readable with the key, as before.
    let mut reader = personal::Reader::new(portal_tests::tenant_keys(&db).provider());
    let opened = reader
        .open(&db, &sealed)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(opened.source_ip.as_deref(), Some("198.51.100.4"));
    assert_eq!(
        opened.details,
        Some(json!({ "email": "bob@acme.test", "reason": "bad_password" }))
    );
    // The rewrite is recorded: a closed lift of the guard, and an audit event.
    let lifts = audit_guard_lift::Entity::find().all(&db).await?;
    assert_eq!(lifts.len(), 1);
    assert_eq!(lifts[0].rows_changed, 1);
    assert!(lifts[0].finished_at.is_some());
    let recorded = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("audit.personal_data_seal"))
        .count(&db)
        .await?;
    assert_eq!(recorded, 1);
    let report = pack::verify_database(
        &db,
        Some(tenant),
        chrono::Duration::minutes(5),
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(report.ok(), "{report:?}");
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

const EXPORT: &str = "mutation { exportAuditEvidence { id status } }";
const EXPORT_STATUS: &str = "query($id: ID!) { auditEvidenceExport(id: $id) { id status sequence headHash events failure file { name sha256 download { url } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_download_an_evidence_pack_that_verifies_offline() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    // Something to prove: a change in the tenant.
    let renamed = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation($id: ID!) { updateUser(id: $id, input: { displayName: \"Carla\" }) { id } }",
            json!({ "id": seed.carol_id.to_string() }),
        )
        .await?;
    assert!(renamed["errors"].is_null(), "{renamed}");
    // Carol is made an auditor for real: a download re-reads the roles she holds.
    let auditor = portal_entities::identity::role::Entity::find()
        .filter(portal_entities::identity::role::Column::TenantId.eq(seed.tenant_id))
        .filter(portal_entities::identity::role::Column::Name.eq("auditor"))
        .one(&portal.db)
        .await?
        .expect("seeded auditor role");
    let assigned = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation($u: ID!, $r: ID!) { assignRole(userId: $u, roleId: $r) { id } }",
            json!({ "u": seed.carol_id.to_string(), "r": auditor.id.to_string() }),
        )
        .await?;
    assert!(assigned["errors"].is_null(), "{assigned}");
    // A customer user may not ask for one; an auditor may.
    let refused = portal
        .query_with_roles(
            seed.tenant_id,
            seed.bob_id,
            &["customer_user"],
            EXPORT,
            json!({}),
        )
        .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let requested = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["auditor"],
            EXPORT,
            json!({}),
        )
        .await?;
    let id = requested["data"]["exportAuditEvidence"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{requested}"))
        .to_owned();
    let mut export = Value::Null;
    for _ in 0..200 {
        let response = portal
            .query_with_roles(
                seed.tenant_id,
                seed.carol_id,
                &["auditor"],
                EXPORT_STATUS,
                json!({ "id": id }),
            )
            .await?;
        export = response["data"]["auditEvidenceExport"].clone();
        if export["status"] == "READY" || export["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(export["status"], "READY", "{export}");
    assert!(
        export["events"].as_i64().unwrap_or_default() >= 1,
        "{export}"
    );
    // Another tenant's auditor does not find it.
    let other = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["auditor"],
            EXPORT_STATUS,
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(
        other["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{other}"
    );

    // Downloaded and checked offline, as the auditor's own tool would.
    let url = export["file"]["download"]["url"]
        .as_str()
        .unwrap_or_default();
    let base = portal.endpoint.trim_end_matches("/graphql");
    let response = portal.http().get(format!("{base}{url}")).send().await?;
    assert_eq!(response.status().as_u16(), 200, "{export}");
    let bytes = response.bytes().await?.to_vec();
    let path = std::env::temp_dir().join(format!("portal-pack-{}.zip", Uuid::now_v7()));
    std::fs::write(&path, &bytes)?;
    // With the keys the portal publishes, not the pack's own.
    let keys = portal
        .http()
        .get(format!("{base}{}", portal_kit::evidence::KEYS_PATH))
        .send()
        .await?
        .bytes()
        .await?;
    let keys_path = path.with_extension("keys.json");
    std::fs::write(&keys_path, &keys)?;
    let report = portal::audit::verify_pack(&path, Some(&keys_path))?;
    std::fs::remove_file(&path)?;
    std::fs::remove_file(&keys_path)?;
    assert!(report.ok(), "{report:?}");
    assert_eq!(Some(report.head_sequence), export["sequence"].as_i64());
    assert_eq!(
        report.head_hash,
        export["headHash"].as_str().unwrap_or_default()
    );
    // The pack holds the rename, its personal data only as ciphertext.
    let files = pack::unzip(&bytes).map_err(anyhow::Error::msg)?;
    let events = String::from_utf8(files["events.jsonl"].clone())?;
    assert!(events.contains("\"user.update\"") && !events.contains("Carla"));
    // The request and the completion are audited.
    for action in [
        "audit_evidence.export_request",
        "audit_evidence.export_complete",
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
