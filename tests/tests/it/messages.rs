//! Secure messaging through the gateway, policies enforced: the support conversation
//! (assignment, statuses, replies, edits with history, tombstones, read state), what the
//! database holds (no plaintext), key rotation with re-sealing, and crypto-shredding.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::messages::{message, message_edit, thread};
use portal_entities::platform::{audit_event, domain_event, job};
use portal_kit::jobs::runner::{JobContext, JobHandler};
use portal_tests::{Mode, TestPortal};

async fn as_role(
    portal: &TestPortal,
    tenant: Uuid,
    user: Uuid,
    role: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    portal
        .query_with_roles(tenant, user, &[role], query, variables)
        .await
}

fn code(response: &Value) -> &Value {
    &response["errors"][0]["extensions"]["code"]
}

fn ok(response: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(response.get("errors").is_none(), "{response}");
    Ok(())
}

const THREAD: &str = "query($t: ID!) { thread(id: $t) { status unreadCount
    assignee { displayName }
    members { kind user { displayName } }
    messages { edges { node { id body deletedAt edits { body } replyTo { id } author { displayName } } } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_support_conversation_runs_from_question_to_closed() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let (tenant, alice, carol) = (
        portal.seed.tenant_id,
        portal.seed.alice_id,
        portal.seed.carol_id,
    );
    let dave = portal
        .create_user("dave@acme.example", "Dave Support")
        .await?;
    let customer =
        |q: &'static str, v: Value| as_role(&portal, tenant, carol, "customer_user", q, v);
    let agent = |q: &'static str, v: Value| as_role(&portal, tenant, dave, "support_agent", q, v);

    // A customer asks.
    let created = customer(
        "mutation { createThread(input: { subject: \"Card declined\", body: \"My card was declined\" }) { id status unreadCount messages { edges { node { id } } } } }",
        json!({}),
    )
    .await?;
    ok(&created)?;
    let thread = created["data"]["createThread"]["id"].clone();
    let question = created["data"]["createThread"]["messages"]["edges"][0]["node"]["id"].clone();
    assert_eq!(created["data"]["createThread"]["status"], "OPEN");
    assert_eq!(created["data"]["createThread"]["unreadCount"], 0);

    // Support sees it in the queue (no read state: not taking part yet); a customer may
    // not assign, a tenant admin may.
    let seen = agent(THREAD, json!({ "t": thread })).await?;
    ok(&seen)?;
    assert!(seen["data"]["thread"]["unreadCount"].is_null(), "{seen}");
    let assign = "mutation($t: ID!, $u: ID) { assignThread(id: $t, assigneeId: $u) { assignee { displayName } } }";
    let refused = customer(assign, json!({ "t": thread, "u": dave })).await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let assigned = as_role(
        &portal,
        tenant,
        alice,
        "tenant_admin",
        assign,
        json!({ "t": thread, "u": dave }),
    )
    .await?;
    ok(&assigned)?;
    assert_eq!(
        assigned["data"]["assignThread"]["assignee"]["displayName"],
        "Dave Support"
    );
    let nobody = as_role(
        &portal,
        tenant,
        alice,
        "tenant_admin",
        assign,
        json!({ "t": thread, "u": Uuid::now_v7() }),
    )
    .await?;
    assert_eq!(code(&nobody), "BAD_USER_INPUT", "{nobody}");

    // Support answers, replying to the question: the thread waits on the customer, who has
    // one unread message.
    let answered = agent(
        "mutation($t: ID!, $r: ID) { postMessage(input: { threadId: $t, body: \"Please try again now\", replyToId: $r }) { id replyTo { id } } }",
        json!({ "t": thread, "r": question }),
    )
    .await?;
    ok(&answered)?;
    let answer = answered["data"]["postMessage"]["id"].clone();
    assert_eq!(answered["data"]["postMessage"]["replyTo"]["id"], question);
    let view = customer(THREAD, json!({ "t": thread })).await?;
    ok(&view)?;
    let read = &view["data"]["thread"];
    assert_eq!(read["status"], "WAITING_ON_CUSTOMER", "{view}");
    assert_eq!(read["unreadCount"], 1, "{view}");
    assert_eq!(read["assignee"]["displayName"], "Dave Support");
    let kinds: Vec<(&str, &str)> = read["members"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|p| Some((p["user"]["displayName"].as_str()?, p["kind"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        kinds,
        [("Carol Customer", "CUSTOMER"), ("Dave Support", "STAFF")],
        "{view}"
    );

    // A reply to a message of another thread is refused.
    let elsewhere = customer(
        "mutation { createThread(input: { subject: \"Other\", body: \"x\" }) { id } }",
        json!({}),
    )
    .await?;
    let foreign_reply = customer(
        "mutation($t: ID!, $r: ID) { postMessage(input: { threadId: $t, body: \"y\", replyToId: $r }) { id } }",
        json!({ "t": elsewhere["data"]["createThread"]["id"], "r": answer }),
    )
    .await?;
    assert_eq!(code(&foreign_reply), "BAD_USER_INPUT", "{foreign_reply}");

    // Reading: marks never move backwards; up to the answer clears the count.
    let mark = "mutation($t: ID!, $m: ID) { markThreadRead(id: $t, upToId: $m) { unreadCount } }";
    let marked = customer(mark, json!({ "t": thread, "m": answer })).await?;
    ok(&marked)?;
    assert_eq!(marked["data"]["markThreadRead"]["unreadCount"], 0);
    let back = customer(mark, json!({ "t": thread, "m": question })).await?;
    assert_eq!(back["data"]["markThreadRead"]["unreadCount"], 0, "{back}");

    // The customer writes again: open for support, who has one unread.
    let again = customer(
        "mutation($t: ID!) { postMessage(input: { threadId: $t, body: \"Still declined\" }) { id } }",
        json!({ "t": thread }),
    )
    .await?;
    ok(&again)?;
    let follow_up = again["data"]["postMessage"]["id"].clone();
    let support_view = agent(THREAD, json!({ "t": thread })).await?;
    assert_eq!(support_view["data"]["thread"]["status"], "OPEN");
    assert_eq!(
        support_view["data"]["thread"]["unreadCount"], 1,
        "{support_view}"
    );

    // Edits keep history; only the author edits; deleting leaves a tombstone.
    let edit = "mutation($m: ID!, $b: String!) { editMessage(id: $m, input: { body: $b }) { body editedAt edits { body } } }";
    let edited = customer(
        edit,
        json!({ "m": follow_up, "b": "Still declined (Visa)" }),
    )
    .await?;
    ok(&edited)?;
    assert_eq!(
        edited["data"]["editMessage"]["body"],
        "Still declined (Visa)"
    );
    assert_eq!(
        edited["data"]["editMessage"]["edits"],
        json!([{ "body": "Still declined" }])
    );
    let not_theirs = agent(edit, json!({ "m": follow_up, "b": "hacked" })).await?;
    assert_eq!(code(&not_theirs), "FORBIDDEN", "{not_theirs}");
    let delete = "mutation($m: ID!) { deleteMessage(id: $m) { body deletedAt edits { body } } }";
    let deleted = customer(delete, json!({ "m": follow_up })).await?;
    ok(&deleted)?;
    assert!(deleted["data"]["deleteMessage"]["body"].is_null());
    assert!(deleted["data"]["deleteMessage"]["deletedAt"].is_string());
    assert_eq!(deleted["data"]["deleteMessage"]["edits"], json!([]));
    let twice = customer(delete, json!({ "m": follow_up })).await?;
    assert_eq!(code(&twice), "CONFLICT", "{twice}");
    let gone = message::Entity::find_by_id(follow_up.as_str().unwrap_or_default().parse::<Uuid>()?)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the tombstone is gone"))?;
    assert!(gone.body_sealed.is_none() && gone.legacy_body.is_none());
    let history = message_edit::Entity::find()
        .filter(message_edit::Column::MessageId.eq(gone.id))
        .all(&portal.db)
        .await?;
    assert!(history.is_empty(), "earlier bodies go with the message");
    // The deleted message no longer counts as unread.
    let support_view = agent(THREAD, json!({ "t": thread })).await?;
    assert_eq!(
        support_view["data"]["thread"]["unreadCount"], 0,
        "{support_view}"
    );

    // Past the edit window, the author may no longer change a message.
    let answer_id: Uuid = answer.as_str().unwrap_or_default().parse()?;
    message::Entity::update(message::ActiveModel {
        id: Set(answer_id),
        created_at: Set(Utc::now() - chrono::Duration::minutes(16)),
        ..Default::default()
    })
    .exec(&portal.db)
    .await?;
    let late = agent(edit, json!({ "m": answer, "b": "too late" })).await?;
    assert_eq!(code(&late), "CONFLICT", "{late}");

    // Closed threads are read-only.
    let closed = as_role(
        &portal,
        tenant,
        alice,
        "tenant_admin",
        "mutation($t: ID!) { updateThread(id: $t, input: { status: CLOSED }) { status } }",
        json!({ "t": thread }),
    )
    .await?;
    ok(&closed)?;
    let refused = customer(
        "mutation($t: ID!) { postMessage(input: { threadId: $t, body: \"hello?\" }) { id } }",
        json!({ "t": thread }),
    )
    .await?;
    assert_eq!(code(&refused), "CONFLICT", "{refused}");

    // Another customer of the tenant, and another tenant, read nothing of it.
    let erin = portal.create_user("erin@acme.example", "Erin").await?;
    let outsider = as_role(
        &portal,
        tenant,
        erin,
        "customer_user",
        THREAD,
        json!({ "t": thread }),
    )
    .await?;
    assert!(outsider["data"]["thread"].is_null(), "{outsider}");
    let foreign = as_role(
        &portal,
        portal.seed.other_tenant_id,
        portal.seed.other_user_id,
        "tenant_admin",
        THREAD,
        json!({ "t": thread }),
    )
    .await?;
    assert!(foreign["data"]["thread"].is_null(), "{foreign}");

    // Every change is in the audit trail.
    let actions: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .all(&portal.db)
        .await?
        .into_iter()
        .map(|row| row.action)
        .collect();
    for action in [
        "thread.create",
        "thread.assign",
        "message.post",
        "thread.update",
        "message.edit",
        "message.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "no {action} in {actions:?}"
        );
    }
    portal.stop().await;
    Ok(())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_holds_no_plaintext_subject_or_body() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let (tenant, carol) = (portal.seed.tenant_id, portal.seed.carol_id);
    let secrets = [
        "Zebra merger rumours",
        "pelican passphrase 7781",
        "walrus replacement text",
        "narwhal follow-up",
    ];
    let created = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation($s: String!, $b: String!) { createThread(input: { subject: $s, body: $b }) { id messages { edges { node { id } } } } }",
        json!({ "s": secrets[0], "b": secrets[1] }),
    )
    .await?;
    ok(&created)?;
    let thread = created["data"]["createThread"]["id"].clone();
    let first = created["data"]["createThread"]["messages"]["edges"][0]["node"]["id"].clone();
    let edited = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation($m: ID!, $b: String!) { editMessage(id: $m, input: { body: $b }) { id } }",
        json!({ "m": first, "b": secrets[2] }),
    )
    .await?;
    ok(&edited)?;
    let posted = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation($t: ID!, $b: String!) { postMessage(input: { threadId: $t, body: $b }) { id } }",
        json!({ "t": thread, "b": secrets[3] }),
    )
    .await?;
    ok(&posted)?;

    // Read back through the API: all there.
    let read = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "query($t: ID!) { thread(id: $t) { subject messages { edges { node { body edits { body } } } } } }",
        json!({ "t": thread }),
    )
    .await?;
    let text = read.to_string();
    for secret in &secrets {
        assert!(text.contains(secret), "{secret} not readable: {read}");
    }

    // Every row that could hold them, read straight from the database.
    let mut stored = Vec::new();
    for row in thread::Entity::find().all(&portal.db).await? {
        stored.push(format!("{row:?}").into_bytes());
        stored.extend(row.subject_sealed);
    }
    for row in message::Entity::find().all(&portal.db).await? {
        stored.push(format!("{row:?}").into_bytes());
        stored.extend(row.body_sealed);
    }
    for row in message_edit::Entity::find().all(&portal.db).await? {
        stored.push(format!("{row:?}").into_bytes());
        stored.extend(row.body_sealed);
    }
    for row in audit_event::Entity::find().all(&portal.db).await? {
        stored.push(format!("{row:?}").into_bytes());
    }
    for row in domain_event::Entity::find().all(&portal.db).await? {
        stored.push(format!("{row:?}").into_bytes());
    }
    for row in job::Entity::find().all(&portal.db).await? {
        stored.push(format!("{row:?}").into_bytes());
    }
    // The scan sees plaintext where there is some: the demo's rows from before
    // encryption, which no re-seal sweep has sealed yet in this test.
    let demo = "Thanks Alice, I can see them.";
    assert!(stored.iter().any(|bytes| contains(bytes, demo)));
    for secret in &secrets {
        assert!(
            !stored.iter().any(|bytes| contains(bytes, secret)),
            "{secret} is stored in plaintext"
        );
    }
    // On SQLite, the whole database file (and its write-ahead log) too.
    if let Some(path) = portal
        .database_url()
        .and_then(|url| url.strip_prefix("sqlite://"))
        .map(|rest| rest.split('?').next().unwrap_or(rest).to_owned())
    {
        let mut scanned = Vec::new();
        for file in [path.clone(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                for secret in &secrets {
                    assert!(!contains(&bytes, secret), "{secret} is in {file}");
                }
                scanned.push(contains(&bytes, demo));
            }
        }
        assert!(
            scanned.contains(&true),
            "the file scan saw no plaintext at all"
        );
    }
    portal.stop().await;
    Ok(())
}

fn job_context(tenant: Option<Uuid>) -> JobContext {
    let payload = tenant.map_or(json!({}), |t| json!({ "tenantId": t }));
    portal_tests::job(portal_messages::jobs::Reseal::KIND, payload, tenant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reseals_every_row_and_destroyed_keys_shred_one_tenant() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let (tenant, alice, carol) = (seed.tenant_id, seed.alice_id, seed.carol_id);
    let admin = |q: &'static str| as_role(&portal, tenant, alice, "tenant_admin", q, json!({}));
    let reseal = portal_messages::jobs::Reseal::new(portal.messages_store());

    // The demo's threads were written before encryption: the sweep seals them.
    let plaintext = message::Entity::find()
        .filter(message::Column::LegacyBody.is_not_null())
        .all(&portal.db)
        .await?;
    assert!(!plaintext.is_empty(), "the demo starts with plaintext rows");
    let listing = "{ threads { edges { node { subject messages { edges { node { body } } } } } } }";
    let before = as_role(&portal, tenant, carol, "customer_user", listing, json!({})).await?;
    ok(&before)?;
    reseal
        .run(&job_context(None))
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let left = message::Entity::find()
        .filter(message::Column::LegacyBody.is_not_null())
        .all(&portal.db)
        .await?;
    assert!(left.is_empty(), "plaintext left: {left:?}");
    let legacy_subjects = thread::Entity::find()
        .filter(thread::Column::LegacySubject.is_not_null())
        .all(&portal.db)
        .await?;
    assert!(legacy_subjects.is_empty());
    let sealed = as_role(&portal, tenant, carol, "customer_user", listing, json!({})).await?;
    assert_eq!(sealed, before, "sealing changes nothing a reader sees");

    // Rotate: new writes use version 2, older rows stay readable, the job re-seals them.
    let keys = admin("{ tenantDataKeys { version state } }").await?;
    assert_eq!(
        keys["data"]["tenantDataKeys"],
        json!([{ "version": 1, "state": "active" }])
    );
    let denied = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation { rotateTenantDataKey { version } }",
        json!({}),
    )
    .await?;
    assert_eq!(code(&denied), "FORBIDDEN", "{denied}");
    let rotated = admin("mutation { rotateTenantDataKey { version state } }").await?;
    assert_eq!(
        rotated["data"]["rotateTenantDataKey"],
        json!({ "version": 2, "state": "active" })
    );
    let posted = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation { createThread(input: { subject: \"After rotation\", body: \"sealed with v2\" }) { id } }",
        json!({}),
    )
    .await?;
    ok(&posted)?;
    let versions = |rows: Vec<message::Model>| {
        rows.into_iter()
            .filter(|m| m.deleted_at.is_none())
            .map(|m| m.key_version)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let acme = message::Entity::find().filter(message::Column::TenantId.eq(tenant));
    let newest = acme
        .clone()
        .all(&portal.db)
        .await?
        .into_iter()
        .max_by_key(|m| m.id)
        .ok_or_else(|| anyhow::anyhow!("no messages"))?;
    assert_eq!(newest.key_version, Some(2));
    let mixed = as_role(&portal, tenant, carol, "customer_user", listing, json!({})).await?;
    ok(&mixed)?;
    assert!(mixed.to_string().contains("sealed with v2"));
    // The rotation enqueued the re-seal job; the portal's worker runs it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let done = job::Entity::find()
            .filter(job::Column::Kind.eq(portal_messages::jobs::Reseal::KIND))
            .filter(job::Column::TenantId.eq(tenant))
            .filter(job::Column::State.eq("succeeded"))
            .all(&portal.db)
            .await?;
        if !done.is_empty() {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the re-seal job did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        versions(acme.clone().all(&portal.db).await?),
        [Some(2)].into_iter().collect()
    );
    let after = as_role(&portal, tenant, carol, "customer_user", listing, json!({})).await?;
    assert_eq!(after, mixed, "re-sealing changes nothing a reader sees");
    let resealed = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .filter(audit_event::Column::Action.eq("tenant_key.reseal"))
        .all(&portal.db)
        .await?;
    assert_eq!(resealed.len(), 2, "sweep and rotation: {resealed:?}");

    // A ciphertext moved to another row does not open there.
    let rows = acme.clone().all(&portal.db).await?;
    let (a, b) = (&rows[0], &rows[1]);
    message::Entity::update(message::ActiveModel {
        id: Set(b.id),
        body_sealed: Set(a.body_sealed.clone()),
        ..Default::default()
    })
    .exec(&portal.db)
    .await?;
    let swapped = as_role(
        &portal,
        tenant,
        alice,
        "tenant_admin",
        "query($m: ID!) { message(id: $m) { body } }",
        json!({ "m": b.id }),
    )
    .await?;
    assert_eq!(code(&swapped), "INTERNAL", "{swapped}");

    // Off-boarding: the tenant's keys are destroyed; its messages no longer open and
    // nothing new can be written. The other tenant is untouched.
    let meta = portal_kit::RequestMeta::default();
    let destroyed = portal
        .keys
        .destroy(tenant, &portal_kit::Actor::anonymous(), &meta)
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    assert_eq!(destroyed, 2);
    let shredded = as_role(&portal, tenant, carol, "customer_user", listing, json!({})).await?;
    assert_eq!(code(&shredded), "CONFLICT", "{shredded}");
    let refused = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation { createThread(input: { subject: \"x\", body: \"y\" }) { id } }",
        json!({}),
    )
    .await?;
    assert_eq!(code(&refused), "CONFLICT", "{refused}");
    let other = as_role(
        &portal,
        seed.other_tenant_id,
        seed.other_user_id,
        "customer_user",
        listing,
        json!({}),
    )
    .await?;
    ok(&other)?;
    assert!(other.to_string().contains("Globex internal"), "{other}");
    let keys = admin("{ tenantDataKeys { version state } }").await?;
    assert_eq!(
        keys["data"]["tenantDataKeys"],
        json!([{ "version": 1, "state": "destroyed" }, { "version": 2, "state": "destroyed" }])
    );
    // The other tenant's keys are its own, and untouched.
    let theirs = as_role(
        &portal,
        seed.other_tenant_id,
        seed.other_user_id,
        "tenant_admin",
        "{ tenantDataKeys { version state } }",
        json!({}),
    )
    .await?;
    assert_eq!(
        theirs["data"]["tenantDataKeys"],
        json!([{ "version": 1, "state": "active" }]),
        "{theirs}"
    );
    portal.stop().await;
    Ok(())
}

const SEARCH_THREADS: &str = "query($q: String!, $f: ThreadSearchFilter, $n: Int, $a: String) {
  searchThreads(query: $q, filter: $f, first: $n, after: $a) {
    edges { cursor node { id subject } } pageInfo { hasNextPage } } }";

fn subjects(response: &Value) -> Vec<String> {
    found(response, "searchThreads", "subject")
}

/// The `field` of each node a search `root` found.
fn found(response: &Value, root: &str, field: &str) -> Vec<String> {
    response["data"][root]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"][field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_search_finds_readable_threads_without_storing_subjects() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let (tenant, carol) = (seed.tenant_id, seed.carol_id);
    let erin = portal.create_user("erin@acme.example", "Erin").await?;
    let dave = portal.create_user("dave@acme.example", "Dave").await?;
    let create = "mutation($s: String!) { createThread(input: { subject: $s, body: \"Details inside\" }) { id } }";
    let ask = |user: Uuid, subject: &'static str| {
        let portal = &portal;
        async move {
            let created = as_role(
                portal,
                tenant,
                user,
                "customer_user",
                create,
                json!({ "s": subject }),
            )
            .await?;
            ok(&created)?;
            anyhow::Ok(created["data"]["createThread"]["id"].clone())
        }
    };
    let refund = ask(carol, "Refund for order 77").await?;
    ask(carol, "Card declined").await?;
    ask(erin, "Refund of Erin's order").await?;
    let globex = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["customer_user"],
            create,
            json!({ "s": "Refund at Globex" }),
        )
        .await?;
    ok(&globex)?;
    let search = |user: Uuid, role: &'static str, variables: Value| {
        let portal = &portal;
        async move {
            let found = as_role(portal, tenant, user, role, SEARCH_THREADS, variables).await?;
            ok(&found)?;
            anyhow::Ok(found)
        }
    };

    // Only the caller's threads; prefixes, case, every word; never another tenant's.
    let mine = search(carol, "customer_user", json!({ "q": "REFU" })).await?;
    assert_eq!(subjects(&mine), ["Refund for order 77"]);
    let both_words = search(carol, "customer_user", json!({ "q": "order refund" })).await?;
    assert_eq!(subjects(&both_words), ["Refund for order 77"]);
    let no_match = search(carol, "customer_user", json!({ "q": "refund declined" })).await?;
    assert!(subjects(&no_match).is_empty());
    // The body is not the subject.
    let body_word = search(carol, "customer_user", json!({ "q": "details" })).await?;
    assert!(subjects(&body_word).is_empty());
    // Support: the tenant's queue, newest first, with filters and pages.
    let queue = search(dave, "support_agent", json!({ "q": "refund" })).await?;
    assert_eq!(
        subjects(&queue),
        ["Refund of Erin's order", "Refund for order 77"]
    );
    let erins = search(
        dave,
        "support_agent",
        json!({ "q": "refund", "f": { "participantId": erin } }),
    )
    .await?;
    assert_eq!(subjects(&erins), ["Refund of Erin's order"]);
    let closed = search(
        dave,
        "support_agent",
        json!({ "q": "refund", "f": { "status": "CLOSED" } }),
    )
    .await?;
    assert!(subjects(&closed).is_empty());
    let first = search(dave, "support_agent", json!({ "q": "refund", "n": 1 })).await?;
    assert_eq!(subjects(&first), ["Refund of Erin's order"]);
    assert_eq!(
        first["data"]["searchThreads"]["pageInfo"]["hasNextPage"],
        true
    );
    let cursor = first["data"]["searchThreads"]["edges"][0]["cursor"].clone();
    let next = search(
        dave,
        "support_agent",
        json!({ "q": "refund", "n": 1, "a": cursor }),
    )
    .await?;
    assert_eq!(subjects(&next), ["Refund for order 77"]);
    let empty = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        SEARCH_THREADS,
        json!({ "q": "?" }),
    )
    .await?;
    assert_eq!(code(&empty), "BAD_USER_INPUT", "{empty}");

    // A new subject re-indexes the thread.
    let renamed = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation($t: ID!) { updateThread(id: $t, input: { subject: \"Chargeback dispute\" }) { id } }",
        json!({ "t": refund }),
    )
    .await?;
    ok(&renamed)?;
    let old = search(carol, "customer_user", json!({ "q": "refund" })).await?;
    assert!(subjects(&old).is_empty(), "{old}");
    let new = search(carol, "customer_user", json!({ "q": "chargeback" })).await?;
    assert_eq!(subjects(&new), ["Chargeback dispute"]);

    // The index holds keyed hashes, never words.
    let key = portal
        .keys
        .index_key(tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let tokens = portal_messages::store::subject_search::indexed_tokens(&portal.db, tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(tokens.contains(&portal_kit::blind_index::hash(&key, "w:chargeback")));
    assert!(!tokens.contains(&portal_kit::blind_index::hash(&key, "w:77")));

    // Threads from before subjects were searchable (the seed's plaintext ones) are sealed
    // and indexed by the re-seal sweep — two sweeps at once (two workers) included.
    let before = search(carol, "customer_user", json!({ "q": "welcome" })).await?;
    assert!(subjects(&before).is_empty(), "{before}");
    let (one, two) = (
        portal_messages::jobs::Reseal::new(portal.messages_store()),
        portal_messages::jobs::Reseal::new(portal.messages_store()),
    );
    let (context_one, context_two) = (job_context(None), job_context(None));
    let (first, second) = tokio::join!(one.run(&context_one), two.run(&context_two));
    first.map_err(|err| anyhow::anyhow!("{err}"))?;
    second.map_err(|err| anyhow::anyhow!("{err}"))?;
    let after = search(carol, "customer_user", json!({ "q": "welcome" })).await?;
    assert_eq!(subjects(&after), ["Welcome to the portal"]);
    portal.stop().await;
    Ok(())
}

const SEARCH: &str = "query($q: String!, $f: MessageSearchFilter, $n: Int, $a: String) {
  searchMessages(query: $q, filter: $f, first: $n, after: $a) {
    edges { cursor node { body thread { subject } } } pageInfo { hasNextPage } } }";

fn bodies(response: &Value) -> Vec<String> {
    found(response, "searchMessages", "body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_words_in_readable_threads_without_storing_them() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let (tenant, carol) = (seed.tenant_id, seed.carol_id);
    let erin = portal.create_user("erin@acme.example", "Erin").await?;
    let dave = portal.create_user("dave@acme.example", "Dave").await?;
    let ask = |user: Uuid, subject: &'static str, body: &'static str| {
        let portal = &portal;
        async move {
            let created = as_role(
                portal,
                tenant,
                user,
                "customer_user",
                "mutation($s: String!, $b: String!) { createThread(input: { subject: $s, body: $b }) { id } }",
                json!({ "s": subject, "b": body }),
            )
            .await?;
            ok(&created)?;
            anyhow::Ok(created["data"]["createThread"]["id"].clone())
        }
    };
    let billing = ask(carol, "Billing", "The invoice 2026-118 is overdue").await?;
    let posted = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation($t: ID!) { postMessage(input: { threadId: $t, body: \"Reconciliation finished for March\" }) { id } }",
        json!({ "t": billing }),
    )
    .await?;
    ok(&posted)?;
    ask(erin, "Erin's", "An invoice only Erin sees").await?;
    let globex = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["customer_user"],
            "mutation { createThread(input: { subject: \"G\", body: \"Globex invoice\" }) { id } }",
            json!({}),
        )
        .await?;
    ok(&globex)?;

    let search = |user: Uuid, role: &'static str, q: &'static str, f: Value| {
        let portal = &portal;
        async move {
            let found = as_role(
                portal,
                tenant,
                user,
                role,
                SEARCH,
                json!({ "q": q, "f": f }),
            )
            .await?;
            ok(&found)?;
            anyhow::Ok(bodies(&found))
        }
    };
    // Only the caller's threads; words, prefixes and long words; every word must match.
    assert_eq!(
        search(carol, "customer_user", "invoice", json!(null)).await?,
        ["The invoice 2026-118 is overdue"]
    );
    assert_eq!(
        search(carol, "customer_user", "INVO", json!(null)).await?,
        ["The invoice 2026-118 is overdue"]
    );
    assert_eq!(
        search(carol, "customer_user", "reconciliation", json!(null)).await?,
        ["Reconciliation finished for March"]
    );
    assert_eq!(
        search(carol, "customer_user", "invoice overdue", json!(null)).await?,
        ["The invoice 2026-118 is overdue"]
    );
    assert!(
        search(carol, "customer_user", "invoice march", json!(null))
            .await?
            .is_empty()
    );
    assert!(
        search(carol, "customer_user", "voice", json!(null))
            .await?
            .is_empty()
    );
    // Support reads the whole queue of its tenant, newest first; never another tenant.
    assert_eq!(
        search(dave, "support_agent", "invoice", json!(null)).await?,
        [
            "An invoice only Erin sees",
            "The invoice 2026-118 is overdue"
        ]
    );
    // Filters: participant, status, posting time.
    assert_eq!(
        search(
            dave,
            "support_agent",
            "invoice",
            json!({ "participantId": erin })
        )
        .await?,
        ["An invoice only Erin sees"]
    );
    assert!(
        search(
            dave,
            "support_agent",
            "invoice",
            json!({ "status": "CLOSED" })
        )
        .await?
        .is_empty()
    );
    assert!(
        search(
            dave,
            "support_agent",
            "invoice",
            json!({ "postedAfter": "2999-01-01T00:00:00Z" })
        )
        .await?
        .is_empty()
    );
    // Pages.
    let first = as_role(
        &portal,
        tenant,
        dave,
        "support_agent",
        SEARCH,
        json!({ "q": "invoice", "n": 1 }),
    )
    .await?;
    assert_eq!(bodies(&first), ["An invoice only Erin sees"]);
    assert_eq!(
        first["data"]["searchMessages"]["pageInfo"]["hasNextPage"],
        true
    );
    let cursor = first["data"]["searchMessages"]["edges"][0]["cursor"].clone();
    let next = as_role(
        &portal,
        tenant,
        dave,
        "support_agent",
        SEARCH,
        json!({ "q": "invoice", "n": 1, "a": cursor }),
    )
    .await?;
    assert_eq!(bodies(&next), ["The invoice 2026-118 is overdue"]);
    // A query without a word.
    let empty = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        SEARCH,
        json!({ "q": "a !" }),
    )
    .await?;
    assert_eq!(code(&empty), "BAD_USER_INPUT", "{empty}");

    // Edits and deletes keep the index true.
    let message = message::Entity::find()
        .filter(message::Column::ThreadId.eq(billing.as_str().unwrap_or_default().parse::<Uuid>()?))
        .all(&portal.db)
        .await?
        .into_iter()
        .min_by_key(|m| m.id)
        .ok_or_else(|| anyhow::anyhow!("no message"))?;
    let edited = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation($m: ID!) { editMessage(id: $m, input: { body: \"The receipt is settled\" }) { id } }",
        json!({ "m": message.id }),
    )
    .await?;
    ok(&edited)?;
    assert!(
        search(carol, "customer_user", "overdue", json!(null))
            .await?
            .is_empty()
    );
    assert_eq!(
        search(carol, "customer_user", "receipt", json!(null)).await?,
        ["The receipt is settled"]
    );
    let deleted = as_role(
        &portal,
        tenant,
        carol,
        "customer_user",
        "mutation($m: ID!) { deleteMessage(id: $m) { id } }",
        json!({ "m": message.id }),
    )
    .await?;
    ok(&deleted)?;
    assert!(
        search(carol, "customer_user", "receipt", json!(null))
            .await?
            .is_empty()
    );

    // The index holds keyed hashes: the same word hashes differently in each tenant.
    let acme_key = portal
        .keys
        .index_key(tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let globex_key = portal
        .keys
        .index_key(seed.other_tenant_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let tokens_of = |t: Uuid| {
        let db = portal.db.clone();
        async move {
            portal_messages::store::search::indexed_tokens(&db, t)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))
        }
    };
    let (acme_tokens, globex_tokens) = (
        tokens_of(tenant).await?,
        tokens_of(seed.other_tenant_id).await?,
    );
    let invoice = |key: &[u8; 32]| portal_kit::blind_index::hash(key, "w:invoice");
    assert!(acme_tokens.contains(&invoice(&acme_key)));
    assert!(globex_tokens.contains(&invoice(&globex_key)));
    assert!(!globex_tokens.contains(&invoice(&acme_key)));
    assert_ne!(invoice(&acme_key), invoice(&globex_key));

    // Messages from before encryption are indexed when the re-seal sweep seals them.
    assert!(
        search(carol, "customer_user", "thanks", json!(null))
            .await?
            .is_empty()
    );
    let reseal = portal_messages::jobs::Reseal::new(portal.messages_store());
    reseal
        .run(&job_context(None))
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    assert_eq!(
        search(carol, "customer_user", "thanks", json!(null)).await?,
        ["Thanks Alice, I can see them."]
    );
    portal.stop().await;
    Ok(())
}
