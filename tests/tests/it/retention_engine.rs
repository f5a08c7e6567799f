//! The retention engine through the gateway: auditors read each class's period and the
//! platform's bounds and a dry run of what a sweep would delete; tenant admins set periods
//! within the bounds and sweep now; the sweep deletes exactly what ended before each
//! class's cutoff in that tenant — nothing waiting, nothing under a legal hold, nothing of
//! another tenant — and is audited with its counts.

use chrono::{Duration, Utc};
use portal_entities::identity::session;
use portal_entities::integrations::{webhook_endpoint, webhook_message};
use portal_entities::platform::{audit_event, email_outbox, job};
use portal_tests::{Mode, TestPortal};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth_helpers::code;

const PERIODS: &str = "{ retentionPeriods { class days setByTenant defaultDays minimumDays maximumDays configuredBy description } }";
const PREVIEW: &str = "{ retentionPreview { class days cutoff due } }";
const SET: &str = "mutation($i: SetRetentionPeriodInput!) { setRetentionPeriod(input: $i) { class days setByTenant } }";
const SWEEP: &str = "mutation { runRetentionSweep { id kind state } }";

/// A revoked session of `user` in `tenant`, revoked `days` ago.
async fn ended_session(
    portal: &TestPortal,
    (tenant, user): (Uuid, Uuid),
    days: i64,
) -> anyhow::Result<Uuid> {
    let at = Utc::now() - Duration::days(days);
    let row = session::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant),
        user_id: Set(user),
        auth_method: Set("password".into()),
        user_agent: Set(Some("old browser".into())),
        source_ip: Set(Some("192.0.2.7".into())),
        created_at: Set(at - Duration::hours(1)),
        last_seen_at: Set(at),
        mfa_verified_at: Set(None),
        revoked_at: Set(Some(at)),
        revoked_reason: Set(Some("sign_out".into())),
    }
    .insert(&portal.db)
    .await?;
    Ok(row.id)
}

/// Outbox mail of `tenant`, created `days` ago, sent then or never, after `attempts`.
async fn mail(
    portal: &TestPortal,
    tenant: Uuid,
    days: i64,
    (sent, attempts): (bool, i32),
) -> anyhow::Result<Uuid> {
    let at = Utc::now() - Duration::days(days);
    let row = email_outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(Some(tenant)),
        recipient: Set("old@acme.example".into()),
        subject: Set("Old news".into()),
        body_sealed: Set("sealed".into()),
        attempts: Set(attempts),
        created_at: Set(at),
        next_attempt_at: Set(at),
        locked_until: Set(None),
        sent_at: Set(sent.then_some(at)),
        last_error: Set(None),
        attachment_file_id: Set(None),
        unsubscribe_sealed: Set(None),
    }
    .insert(&portal.db)
    .await?;
    Ok(row.id)
}

/// A job of `tenant` in `state`, finished `days` ago when it is finished.
async fn old_job(
    portal: &TestPortal,
    tenant: Uuid,
    days: i64,
    state: &str,
) -> anyhow::Result<Uuid> {
    let at = Utc::now() - Duration::days(days);
    let finished = matches!(state, "succeeded" | "dead");
    let row = job::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(Some(tenant)),
        kind: Set("test.never_registered".into()),
        payload: Set(json!({})),
        principal: Set(None),
        state: Set(state.into()),
        attempts: Set(1),
        max_attempts: Set(1),
        // A waiting job runs in a year: no worker takes it during the test.
        run_at: Set(if finished {
            at
        } else {
            Utc::now() + Duration::days(365)
        }),
        lease_until: Set(None),
        worker: Set(None),
        idempotency_key: Set(None),
        last_error: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        finished_at: Set(finished.then_some(at)),
        traceparent: Set(None),
    }
    .insert(&portal.db)
    .await?;
    Ok(row.id)
}

/// A webhook message of `tenant` in `status`, created `days` ago.
async fn delivery(
    portal: &TestPortal,
    tenant: Uuid,
    days: i64,
    status: &str,
) -> anyhow::Result<Uuid> {
    let endpoint = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(tenant))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the seed has a webhook endpoint"))?;
    let at = Utc::now() - Duration::days(days);
    let row = webhook_message::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant),
        endpoint_id: Set(endpoint.id),
        event_id: Set(None),
        event_type: Set("account.updated".into()),
        body: Set(json!({ "old": true })),
        status: Set(status.into()),
        attempts: Set(1),
        created_at: Set(at),
        delivered_at: Set((status == "DELIVERED").then_some(at)),
    }
    .insert(&portal.db)
    .await?;
    Ok(row.id)
}

/// A stored file of `tenant` made `days` ago: one the portal made (with an expiry), or an
/// attachment (none); its id and storage key.
async fn made_file(
    portal: &TestPortal,
    tenant: Uuid,
    days: i64,
    made: bool,
) -> anyhow::Result<(Uuid, String)> {
    use portal_entities::platform::file;
    let id = Uuid::now_v7();
    let key = portal_kit::storage::object_key("reports", tenant, id);
    portal
        .files
        .put_bytes(&key, b"old report".to_vec())
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let at = Utc::now() - Duration::days(days);
    file::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant),
        domain: Set(if made { "reports" } else { "messages" }.into()),
        owner_type: Set(if made {
            "ReportRun"
        } else {
            "MessageAttachment"
        }
        .into()),
        owner_id: Set(Uuid::now_v7()),
        name: Set("old.csv".into()),
        content_type: Set("text/csv".into()),
        size_bytes: Set(10),
        sha256: Set("00".into()),
        row_count: Set(None),
        storage_key: Set(key.clone()),
        access_selection: Set(None),
        created_by: Set(None),
        created_at: Set(at),
        expires_at: Set(made.then(|| Utc::now() + Duration::days(30))),
        key_version: Set(None),
        name_sealed: Set(None),
    }
    .insert(&portal.db)
    .await?;
    Ok((id, key))
}

fn by_class(list: &Value, class: &str) -> Value {
    list.as_array()
        .and_then(|items| items.iter().find(|i| i["class"] == class))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_deletes_exactly_what_outlived_its_period_and_is_audited() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let acme = seed.tenant_id;
    let as_role = |role: &'static str, query: &'static str, variables: Value| {
        let portal = &portal;
        async move {
            let user = match role {
                "customer_user" => seed.carol_id,
                "auditor" => seed.bob_id,
                _ => seed.alice_id,
            };
            portal
                .query_with_roles(acme, user, &[role], query, variables)
                .await
        }
    };

    // Records on either side of each cutoff, one held, one of another tenant.
    let carol_old = ended_session(&portal, (acme, seed.carol_id), 100).await?;
    let carol_recent = ended_session(&portal, (acme, seed.carol_id), 10).await?;
    let bob_old = ended_session(&portal, (acme, seed.bob_id), 100).await?;
    let globex_old =
        ended_session(&portal, (seed.other_tenant_id, seed.other_user_id), 100).await?;
    let sent_old = mail(&portal, acme, 40, (true, 1)).await?;
    let sent_recent = mail(&portal, acme, 5, (true, 1)).await?;
    let waiting_old = mail(&portal, acme, 400, (false, 3)).await?;
    // Mail given up after every attempt goes with its dead delivery job (else the next
    // start would queue it again); a dead delivery of mail still being tried stays.
    let given_up = mail(&portal, acme, 40, (false, 60)).await?;
    let given_up_job = old_job(&portal, acme, 39, "dead").await?;
    job::Entity::update_many()
        .col_expr(
            job::Column::Kind,
            sea_orm::sea_query::Expr::value("mail.deliver"),
        )
        .col_expr(
            job::Column::IdempotencyKey,
            sea_orm::sea_query::Expr::value(given_up.to_string()),
        )
        .filter(job::Column::Id.eq(given_up_job))
        .exec(&portal.db)
        .await?;
    let job_old = old_job(&portal, acme, 40, "succeeded").await?;
    let job_waiting = old_job(&portal, acme, 400, "queued").await?;
    let delivered_old = delivery(&portal, acme, 40, "DELIVERED").await?;
    let pending_old = delivery(&portal, acme, 40, "PENDING").await?;
    // A thread whose only message is sixty days old, under a rule of thirty.
    let thread = as_role(
        "customer_user",
        "mutation { createThread(input: { subject: \"Old question\", body: \"Sixty days ago\" }) { id } }",
        json!({}),
    )
    .await?;
    let thread_id = Uuid::parse_str(
        thread["data"]["createThread"]["id"]
            .as_str()
            .unwrap_or_default(),
    )?;
    {
        use portal_entities::messages::message;
        message::Entity::update_many()
            .col_expr(
                message::Column::CreatedAt,
                sea_orm::sea_query::Expr::value(Utc::now() - Duration::days(60)),
            )
            .filter(message::Column::ThreadId.eq(thread_id))
            .exec(&portal.db)
            .await?;
    }
    let rule = as_role(
        "tenant_admin",
        "mutation { setMessageRetentionRule(input: { threadStatus: OPEN, action: DELETE, olderThanDays: 30 }) { olderThanDays } }",
        json!({}),
    )
    .await?;
    assert!(rule["errors"].is_null(), "{rule}");
    let made_old = made_file(&portal, acme, 10, true).await?;
    let made_recent = made_file(&portal, acme, 2, true).await?;
    let attachment_old = made_file(&portal, acme, 400, false).await?;
    let held = as_role(
        "tenant_admin",
        "mutation($i: PlaceLegalHoldInput!) { placeLegalHold(input: $i) { id } }",
        json!({ "i": { "userId": seed.bob_id.to_string(), "reason": "Matter 11" } }),
    )
    .await?;
    assert!(held["errors"].is_null(), "{held}");

    // Auditors read the periods and bounds; customers do not.
    let periods = as_role("auditor", PERIODS, json!({})).await?;
    let list = &periods["data"]["retentionPeriods"];
    assert_eq!(list.as_array().map(Vec::len), Some(7), "{periods}");
    let messages = by_class(list, "MESSAGES");
    assert!(messages["days"].is_null(), "{periods}");
    assert_eq!(
        messages["configuredBy"], "setMessageRetentionRule",
        "{periods}"
    );
    let files = by_class(list, "STORED_FILES");
    assert_eq!(files["setByTenant"], false, "{periods}");
    assert_eq!(files["days"], files["defaultDays"], "{periods}");
    let sessions = by_class(list, "SESSIONS");
    assert_eq!(sessions["days"], 90, "{periods}");
    assert_eq!(sessions["setByTenant"], false);
    assert_eq!(sessions["minimumDays"], 30);
    let refused = as_role("customer_user", PERIODS, json!({})).await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");

    // Tenant admins set periods within the bounds; auditors and customers cannot.
    let set = |class: &str, days: Value| json!({ "i": { "class": class, "days": days } });
    let by_auditor = as_role("auditor", SET, set("SESSIONS", json!(60))).await?;
    assert_eq!(code(&by_auditor), "FORBIDDEN", "{by_auditor}");
    let too_short = as_role("tenant_admin", SET, set("SESSIONS", json!(29))).await?;
    assert_eq!(code(&too_short), "BAD_USER_INPUT", "{too_short}");
    let too_long = as_role("tenant_admin", SET, set("MAIL_OUTBOX", json!(366))).await?;
    assert_eq!(code(&too_long), "BAD_USER_INPUT", "{too_long}");
    let changed = as_role("tenant_admin", SET, set("SESSIONS", json!(60))).await?;
    assert_eq!(
        changed["data"]["setRetentionPeriod"]["days"], 60,
        "{changed}"
    );
    assert_eq!(changed["data"]["setRetentionPeriod"]["setByTenant"], true);
    // Files' period is the tenant's file retention: one setting, set either way.
    let files_set = as_role("tenant_admin", SET, set("STORED_FILES", json!(7))).await?;
    assert_eq!(
        files_set["data"]["setRetentionPeriod"]["days"], 7,
        "{files_set}"
    );
    let tenant = as_role(
        "tenant_admin",
        "{ tenant { fileRetentionDays } }",
        json!({}),
    )
    .await?;
    assert_eq!(tenant["data"]["tenant"]["fileRetentionDays"], 7, "{tenant}");
    let by_rules = as_role("tenant_admin", SET, set("MESSAGES", json!(30))).await?;
    assert_eq!(
        code(&by_rules),
        "BAD_USER_INPUT",
        "messages keep their rules: {by_rules}"
    );
    let back = as_role("tenant_admin", SET, set("JOB_HISTORY", Value::Null)).await?;
    assert_eq!(back["data"]["setRetentionPeriod"]["days"], 30, "{back}");
    assert_eq!(back["data"]["setRetentionPeriod"]["setByTenant"], false);

    // The dry run counts what would go, and changes nothing.
    let preview = as_role("auditor", PREVIEW, json!({})).await?;
    let items = &preview["data"]["retentionPreview"];
    assert_eq!(by_class(items, "SESSIONS")["days"], 60, "{preview}");
    assert_eq!(
        by_class(items, "SESSIONS")["due"],
        1,
        "Bob is held: {preview}"
    );
    assert_eq!(by_class(items, "MAIL_OUTBOX")["due"], 2, "{preview}");
    assert!(
        by_class(items, "JOB_HISTORY")["due"].as_i64() >= Some(1),
        "{preview}"
    );
    assert_eq!(by_class(items, "WEBHOOK_DELIVERIES")["due"], 1, "{preview}");
    assert_eq!(by_class(items, "STORED_FILES")["due"], 1, "{preview}");
    assert_eq!(by_class(items, "MESSAGES")["due"], 1, "{preview}");
    assert!(by_class(items, "MESSAGES")["days"].is_null(), "{preview}");
    assert!(
        session::Entity::find_by_id(carol_old)
            .one(&portal.db)
            .await?
            .is_some()
    );

    // Only tenant admins sweep now; the sweep is a job.
    let by_customer = as_role("customer_user", SWEEP, json!({})).await?;
    assert_eq!(code(&by_customer), "FORBIDDEN", "{by_customer}");
    let swept = as_role("tenant_admin", SWEEP, json!({})).await?;
    let job_id = swept["data"]["runRetentionSweep"]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{swept}"))?
        .to_owned();
    let mut state = Value::Null;
    for _ in 0..300 {
        let followed = as_role(
            "tenant_admin",
            "query($id: ID!) { job(id: $id) { state lastError } }",
            json!({ "id": job_id }),
        )
        .await?;
        state = followed["data"]["job"].clone();
        if state["state"] != "QUEUED" && state["state"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state["state"], "SUCCEEDED", "{state}");

    // Exactly what outlived its period went.
    let gone = |found: bool| !found;
    assert!(gone(
        session::Entity::find_by_id(carol_old)
            .one(&portal.db)
            .await?
            .is_some()
    ));
    for (what, kept) in [
        (
            "a recent session",
            session::Entity::find_by_id(carol_recent)
                .one(&portal.db)
                .await?
                .is_some(),
        ),
        (
            "a held person's session",
            session::Entity::find_by_id(bob_old)
                .one(&portal.db)
                .await?
                .is_some(),
        ),
        (
            "another tenant's session",
            session::Entity::find_by_id(globex_old)
                .one(&portal.db)
                .await?
                .is_some(),
        ),
        (
            "recent mail",
            email_outbox::Entity::find_by_id(sent_recent)
                .one(&portal.db)
                .await?
                .is_some(),
        ),
        (
            "waiting mail",
            email_outbox::Entity::find_by_id(waiting_old)
                .one(&portal.db)
                .await?
                .is_some(),
        ),
        (
            "a waiting job",
            job::Entity::find_by_id(job_waiting)
                .one(&portal.db)
                .await?
                .is_some(),
        ),
        (
            "a delivery under way",
            webhook_message::Entity::find_by_id(pending_old)
                .one(&portal.db)
                .await?
                .is_some(),
        ),
    ] {
        assert!(kept, "{what} stays");
    }
    assert!(
        email_outbox::Entity::find_by_id(sent_old)
            .one(&portal.db)
            .await?
            .is_none()
    );
    assert!(
        portal_entities::messages::thread::Entity::find_by_id(thread_id)
            .one(&portal.db)
            .await?
            .is_none(),
        "the old thread went by its rule"
    );
    {
        use portal_entities::platform::file;
        assert!(
            file::Entity::find_by_id(made_old.0)
                .one(&portal.db)
                .await?
                .is_none()
        );
        assert!(
            portal.files.read_all(&made_old.1).await.is_err(),
            "its object is gone"
        );
        assert!(
            file::Entity::find_by_id(made_recent.0)
                .one(&portal.db)
                .await?
                .is_some()
        );
        assert!(
            file::Entity::find_by_id(attachment_old.0)
                .one(&portal.db)
                .await?
                .is_some()
        );
    }
    assert!(
        job::Entity::find_by_id(job_old)
            .one(&portal.db)
            .await?
            .is_none()
    );
    assert!(
        webhook_message::Entity::find_by_id(delivered_old)
            .one(&portal.db)
            .await?
            .is_none()
    );
    let after = as_role("auditor", PREVIEW, json!({})).await?;
    assert_eq!(
        by_class(&after["data"]["retentionPreview"], "SESSIONS")["due"],
        0,
        "{after}"
    );

    // The sweep and the change of period are in the tenant's audit log.
    let actions: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(acme))
        .all(&portal.db)
        .await?
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.iter().any(|a| a == "retention.sweep"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "retention.update"),
        "{actions:?}"
    );
    let sweep = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(acme))
        .filter(audit_event::Column::Action.eq("retention.sweep"))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no sweep audited"))?;
    let details = sweep.details.unwrap_or_default();
    assert_eq!(details["classes"]["SESSIONS"]["deleted"], 1, "{details}");
    assert_eq!(details["classes"]["MAIL_OUTBOX"]["deleted"], 2, "{details}");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_go_in_whole_segments_and_what_remains_still_verifies() -> anyhow::Result<()> {
    use portal_entities::platform::{audit_checkpoint, audit_guard_lift};
    use portal_kit::audit::{chain, pack};
    use sea_orm::QueryOrder;
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let acme = seed.tenant_id;
    let admin = |query: &'static str, variables: Value| {
        let portal = &portal;
        async move {
            portal
                .query_with_roles(acme, seed.alice_id, &["tenant_admin"], query, variables)
                .await
        }
    };
    let signer = portal_kit::evidence::EvidenceSigner::new(
        portal.db.clone(),
        portal_tests::identity_settings().data_key,
    );
    let set = |class: &str, days: i64| json!({ "i": { "class": class, "days": days } });

    // Events, a signed checkpoint over them, and one more event after it.
    let shortest = admin(SET, set("AUDIT_EVENTS", 365)).await?;
    assert_eq!(
        shortest["data"]["setRetentionPeriod"]["days"], 365,
        "{shortest}"
    );
    let below = admin(SET, set("AUDIT_EVENTS", 364)).await?;
    assert_eq!(
        code(&below),
        "BAD_USER_INPUT",
        "the legal minimum holds: {below}"
    );
    let more = admin(SET, set("MAIL_OUTBOX", 20)).await?;
    assert!(more["errors"].is_null(), "{more}");
    let checkpoint = chain::checkpoint_now(&portal.db, &signer, Some(acme), chain::kind::PERIODIC)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(checkpoint.sequence >= 2, "{checkpoint:?}");
    let after = admin(SET, set("SESSIONS", 45)).await?;
    assert!(after["errors"].is_null(), "{after}");
    chain::chain_all(&portal.db, &signer, 1_000)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    let engine = portal::retention_engine(&portal.db, &portal.keys, &portal.files);
    let due = |outcomes: &[portal_kit::retention::Outcome]| {
        outcomes
            .iter()
            .find(|o| o.setting.class == portal_kit::retention::AUDIT_EVENTS)
            .map_or(0, |o| o.count)
    };
    let today = engine
        .preview(acme, Utc::now())
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(due(&today), 0, "nothing is a year old yet");

    // A year and a day on, everything up to the checkpoint goes — not one event after it.
    let later = Utc::now() + Duration::days(366);
    let preview = engine
        .preview(acme, later)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(
        due(&preview),
        u64::try_from(checkpoint.sequence)?,
        "{preview:?}"
    );
    let actor = portal_kit::Actor::user(seed.alice_id, acme, vec!["tenant_admin".into()]);
    engine
        .sweep(acme, later, (&actor, &portal_kit::RequestMeta::default()))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let remaining = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(acme))
        .filter(audit_event::Column::ChainSeq.is_not_null())
        .order_by_asc(audit_event::Column::ChainSeq)
        .all(&portal.db)
        .await?;
    assert_eq!(
        remaining.first().and_then(|e| e.chain_seq),
        Some(checkpoint.sequence + 1)
    );
    assert_eq!(
        remaining.first().and_then(|e| e.chain_prev.clone()),
        Some(checkpoint.head_hash.clone())
    );
    let unchained_or_all = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(acme))
        .all(&portal.db)
        .await?;
    assert!(
        unchained_or_all
            .iter()
            .any(|e| e.action == "retention.update"
                && e.details
                    .as_ref()
                    .is_some_and(|d| d.to_string().contains("SESSIONS"))),
        "the event after the checkpoint stays"
    );
    let segment = unchained_or_all
        .iter()
        .find(|e| e.action == "audit.segment_delete")
        .ok_or_else(|| anyhow::anyhow!("the deletion is recorded"))?;
    let details = segment.details.clone().unwrap_or_default();
    assert_eq!(details["throughSequence"], checkpoint.sequence, "{details}");
    assert_eq!(details["headHash"], checkpoint.head_hash, "{details}");
    let lift = audit_guard_lift::Entity::find()
        .filter(audit_guard_lift::Column::Reason.eq(portal_kit::audit::retention::REASON))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the guard lift is recorded"))?;
    assert!(lift.finished_at.is_some(), "and closed");
    assert_eq!(lift.rows_changed, checkpoint.sequence);

    // What remains verifies, in the database and as an evidence pack; the checkpoints stay.
    let report = pack::verify_database(&portal.db, Some(acme), Duration::minutes(5), Utc::now())
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(report.ok(), "{}", pack::describe(&report));
    let files = pack::build(&portal.db, &signer, Some(acme))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let verified = pack::verify_files(&files, None).map_err(anyhow::Error::msg)?;
    assert!(verified.ok(), "{}", pack::describe(&verified));
    assert!(
        audit_checkpoint::Entity::find_by_id(checkpoint.id)
            .one(&portal.db)
            .await?
            .is_some()
    );
    // Without a lift, the guard still refuses deleting an audit event.
    let refused = audit_event::Entity::delete_many()
        .filter(audit_event::Column::TenantId.eq(acme))
        .exec(&portal.db)
        .await;
    assert!(refused.is_err(), "the append-only guard is back");

    // A legal hold in the tenant keeps the whole log.
    let held = admin(
        "mutation($i: PlaceLegalHoldInput!) { placeLegalHold(input: $i) { id } }",
        json!({ "i": { "userId": seed.carol_id.to_string(), "reason": "Matter 12" } }),
    )
    .await?;
    assert!(held["errors"].is_null(), "{held}");
    chain::checkpoint_now(&portal.db, &signer, Some(acme), chain::kind::PERIODIC)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let much_later = Utc::now() + Duration::days(800);
    let kept = engine
        .preview(acme, much_later)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(due(&kept), 0, "held: {kept:?}");
    portal.stop().await;
    Ok(())
}
