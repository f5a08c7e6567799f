//! Message retention through the gateway, policies enforced: rules per thread status, the
//! preview that says what a sweep would remove, legal holds on a thread and on an account
//! that block it, the sweep (whole threads deleted, old messages tombstoned, others
//! anonymized), its audit trail, and other tenants untouched; and the erasure of one
//! person from messaging (their messages become deleted-user tombstones).

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::messages::{message, thread};
use portal_entities::platform::audit_event;
use portal_kit::jobs::runner::JobHandler;
use portal_messages::jobs::retention::RetentionSweep;
use portal_tests::{Mode, TestPortal};

fn ok(response: &Value) -> anyhow::Result<()> {
    anyhow::ensure!(response.get("errors").is_none(), "{response}");
    Ok(())
}

fn code(response: &Value) -> &Value {
    &response["errors"][0]["extensions"]["code"]
}

fn id_of(response: &Value, field: &str) -> anyhow::Result<String> {
    response["data"][field]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no id: {response}"))
}

const PREVIEW: &str = "{ messageRetentionPreview { messagesDeleted messagesAnonymized threadsDeleted threadsHeld
    byThread { thread { id } action wholeThread messages } byAccount { account { id } messages } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_what_the_preview_said_and_legal_holds_keep_theirs() -> anyhow::Result<()>
{
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let (tenant, alice, carol) = (seed.tenant_id, seed.alice_id, seed.carol_id);
    let admin =
        |q: &'static str, v: Value| portal.query_with_roles(tenant, alice, &["tenant_admin"], q, v);
    let customer = |q: &'static str, v: Value| {
        portal.query_with_roles(tenant, carol, &["customer_user"], q, v)
    };
    let accounts = admin("{ accounts { edges { node { id } } } }", json!({})).await?;
    ok(&accounts)?;
    let account = accounts["data"]["accounts"]["edges"][0]["node"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no account: {accounts}"))?;

    // Five threads: A closed (all old), B closed under a thread hold, C closed about an
    // account under hold, D resolved (anonymized), E closed with one old and one new
    // message.
    let create = "mutation($s: String!, $a: ID) { createThread(input: { subject: $s, body: \"first words\", accountId: $a }) { id } }";
    let post =
        "mutation($t: ID!, $b: String!) { postMessage(input: { threadId: $t, body: $b }) { id } }";
    let status = "mutation($t: ID!, $s: ThreadStatus!) { updateThread(id: $t, input: { status: $s }) { status } }";
    let mut threads = Vec::new();
    for (subject, account) in [
        ("A", None),
        ("B", None),
        ("C", Some(account.clone())),
        ("D", None),
        ("E", None),
    ] {
        let created = customer(create, json!({ "s": subject, "a": account })).await?;
        ok(&created)?;
        let id = id_of(&created, "createThread")?;
        ok(&admin(
            post,
            json!({ "t": id, "b": format!("answer in {subject}") }),
        )
        .await?)?;
        threads.push(id);
    }
    let [a, b, c, d, e] = threads
        .clone()
        .try_into()
        .map_err(|_| anyhow::anyhow!("five"))?;
    let newest_of_e = customer(post, json!({ "t": e, "b": "still relevant" })).await?;
    ok(&newest_of_e)?;
    let newest_of_e = id_of(&newest_of_e, "postMessage")?;
    for (t, s) in [
        (&a, "CLOSED"),
        (&b, "CLOSED"),
        (&c, "CLOSED"),
        (&d, "RESOLVED"),
        (&e, "CLOSED"),
    ] {
        ok(&admin(status, json!({ "t": t, "s": s })).await?)?;
    }
    // Sixty days pass for everything but E's newest message.
    let uuid = |s: &str| Uuid::parse_str(s);
    let old: Vec<Uuid> = [&a, &b, &c, &d, &e]
        .into_iter()
        .map(|t| uuid(t))
        .collect::<Result<_, _>>()?;
    message::Entity::update_many()
        .col_expr(
            message::Column::CreatedAt,
            Expr::value(Utc::now() - chrono::Duration::days(60)),
        )
        .filter(message::Column::ThreadId.is_in(old))
        .filter(message::Column::Id.ne(uuid(&newest_of_e)?))
        .exec(&portal.db)
        .await?;
    let globex_messages = || async {
        anyhow::Ok(
            message::Entity::find()
                .filter(message::Column::TenantId.eq(seed.other_tenant_id))
                .count(&portal.db)
                .await?,
        )
    };
    let globex_before = globex_messages().await?;

    // Rules: who may set them, and what they accept.
    let set = "mutation($s: ThreadStatus!, $a: RetentionAction!, $d: Int!) { setMessageRetentionRule(input: { threadStatus: $s, action: $a, olderThanDays: $d }) { threadStatus action olderThanDays } }";
    let refused = customer(set, json!({ "s": "CLOSED", "a": "DELETE", "d": 30 })).await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let zero = admin(set, json!({ "s": "CLOSED", "a": "DELETE", "d": 0 })).await?;
    assert_eq!(code(&zero), "BAD_USER_INPUT", "{zero}");
    ok(&admin(set, json!({ "s": "CLOSED", "a": "DELETE", "d": 30 })).await?)?;
    ok(&admin(set, json!({ "s": "RESOLVED", "a": "ANONYMIZE", "d": 30 })).await?)?;
    let rules = admin(
        "{ messageRetentionRules { threadStatus action olderThanDays } }",
        json!({}),
    )
    .await?;
    ok(&rules)?;
    assert_eq!(
        rules["data"]["messageRetentionRules"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Legal holds: on thread B, and on C's account.
    let hold = "mutation($a: ID, $t: ID, $r: String!) { placeLegalHold(input: { accountId: $a, threadId: $t, reason: $r }) { id targetType active } }";
    let both = admin(hold, json!({ "a": account, "t": b, "r": "Matter 7" })).await?;
    assert_eq!(code(&both), "BAD_USER_INPUT", "{both}");
    let no_reason = admin(hold, json!({ "t": b, "r": " " })).await?;
    assert_eq!(code(&no_reason), "BAD_USER_INPUT", "{no_reason}");
    let foreign = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            hold,
            json!({ "t": b, "r": "not ours" }),
        )
        .await?;
    assert_eq!(code(&foreign), "BAD_USER_INPUT", "{foreign}");
    let on_b = admin(hold, json!({ "t": b, "r": "Matter 7" })).await?;
    ok(&on_b)?;
    let hold_b = id_of(&on_b, "placeLegalHold")?;
    ok(&admin(hold, json!({ "a": account, "r": "Regulator request" })).await?)?;

    // The preview: A whole (2 messages), E's old two; D's two anonymized; B and C held.
    let preview = admin(PREVIEW, json!({})).await?;
    ok(&preview)?;
    let p = &preview["data"]["messageRetentionPreview"];
    assert_eq!(p["messagesDeleted"], 4, "{p}");
    assert_eq!(p["messagesAnonymized"], 2, "{p}");
    assert_eq!(p["threadsDeleted"], 1, "{p}");
    assert_eq!(p["threadsHeld"], 2, "{p}");
    let by_thread: Vec<(String, bool)> = p["byThread"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["thread"]["id"].as_str().unwrap_or_default().to_owned(),
                t["wholeThread"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert!(by_thread.contains(&(a.clone(), true)), "{p}");
    assert!(by_thread.contains(&(e.clone(), false)), "{p}");
    assert!(!by_thread.iter().any(|(t, _)| t == &b || t == &c), "{p}");
    let refused = customer(PREVIEW, json!({})).await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");

    // The sweep does what the preview said.
    let sweep = RetentionSweep::new(portal.messages_store(), portal_kit::clock::system());
    let run = portal_tests::job(RetentionSweep::KIND, json!({}), None);
    sweep
        .run(&run)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let thread_of = |t: String| async move {
        let found = admin(
            "query($t: ID!) { thread(id: $t) { id messages { edges { node { id body deletedAt author { displayName } } } } } }",
            json!({ "t": t }),
        )
        .await?;
        ok(&found)?;
        anyhow::Ok(found["data"]["thread"].clone())
    };
    assert!(thread_of(a.clone()).await?.is_null(), "A is gone");
    assert_eq!(
        thread::Entity::find_by_id(uuid(&a)?)
            .one(&portal.db)
            .await?,
        None
    );
    for held in [&b, &c] {
        let kept = thread_of(held.clone()).await?;
        let bodies: Vec<&Value> = kept["messages"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| &m["node"]["body"])
            .collect();
        assert_eq!(bodies.len(), 2, "{kept}");
        assert!(bodies.iter().all(|b| b.is_string()), "held: {kept}");
    }
    let anonymized = thread_of(d.clone()).await?;
    for m in anonymized["messages"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            m["node"]["author"]["displayName"], "Deleted user",
            "{anonymized}"
        );
        assert!(m["node"]["body"].is_string(), "kept: {anonymized}");
    }
    let partial = thread_of(e.clone()).await?;
    let edges = partial["messages"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 3, "{partial}");
    for m in &edges {
        let node = &m["node"];
        if node["id"] == newest_of_e {
            assert_eq!(node["body"], "still relevant");
        } else {
            assert!(
                node["body"].is_null() && node["deletedAt"].is_string(),
                "{partial}"
            );
        }
    }
    assert_eq!(globex_messages().await?, globex_before);
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .filter(audit_event::Column::Action.eq("message_retention.enforce"))
        .all(&portal.db)
        .await?;
    assert_eq!(audited.len(), 1);
    let details = audited[0].details.clone().unwrap_or_default();
    assert_eq!(details["threadsDeleted"], 1, "{details}");
    assert_eq!(details["messagesDeleted"], 4, "{details}");
    assert_eq!(details["messagesAnonymized"], 2, "{details}");
    assert_eq!(details["threadsHeld"], 2, "{details}");

    // A second sweep finds nothing more; releasing B's hold lets the next one remove it.
    let release = "mutation($h: ID!) { releaseLegalHold(id: $h) { active releasedBy { id } } }";
    let released = admin(release, json!({ "h": hold_b })).await?;
    ok(&released)?;
    assert_eq!(released["data"]["releaseLegalHold"]["active"], false);
    let again = admin(release, json!({ "h": hold_b })).await?;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    let holds = admin(
        "{ legalHolds { id } all: legalHolds(activeOnly: false) { id } }",
        json!({}),
    )
    .await?;
    ok(&holds)?;
    assert_eq!(
        holds["data"]["legalHolds"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(holds["data"]["all"].as_array().map(Vec::len), Some(2));
    sweep
        .run(&run)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    assert!(
        thread_of(b.clone()).await?.is_null(),
        "B is gone once released"
    );
    assert!(!thread_of(c.clone()).await?.is_null(), "C is still held");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_user_leaves_deleted_user_tombstones_and_nothing_they_wrote() -> anyhow::Result<()>
{
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let (tenant, carol) = (seed.tenant_id, seed.carol_id);
    let dave = portal
        .create_user("dave@acme.example", "Dave Support")
        .await?;
    let customer = |q: &'static str, v: Value| {
        portal.query_with_roles(tenant, carol, &["customer_user"], q, v)
    };
    let agent =
        |q: &'static str, v: Value| portal.query_with_roles(tenant, dave, &["support_agent"], q, v);
    let created = customer(
        "mutation { createThread(input: { subject: \"Refund\", body: \"Please refund order zebra\" }) { id } }",
        json!({}),
    )
    .await?;
    ok(&created)?;
    let thread = id_of(&created, "createThread")?;
    let post =
        "mutation($t: ID!, $b: String!) { postMessage(input: { threadId: $t, body: $b }) { id } }";
    ok(&agent(post, json!({ "t": thread, "b": "Refund on its way" })).await?)?;
    ok(&customer(
        post,
        json!({ "t": thread, "b": "Thanks, my iban is quokka" }),
    )
    .await?)?;
    let search = "query($q: String!) { searchMessages(query: $q) { edges { node { id } } } }";
    let found = agent(search, json!({ "q": "quokka" })).await?;
    assert_eq!(
        found["data"]["searchMessages"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{found}"
    );

    // Carol also wrote in the demo's threads.
    let authored = message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant))
        .filter(message::Column::AuthorId.eq(carol))
        .count(&portal.db)
        .await?;
    let erased = portal_messages::store::erasure::erase_user(
        &portal.messages_store(),
        (tenant, carol),
        Utc::now(),
        (
            &portal_kit::Actor {
                tenant_id: Some(tenant),
                ..portal_kit::Actor::anonymous()
            },
            &portal_kit::RequestMeta::default(),
        ),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(erased.messages as u64, authored);
    assert!(authored >= 2 && erased.threads_left >= 1, "{erased:?}");

    let view = agent(
        "query($t: ID!) { thread(id: $t) { members { user { id } } messages { edges { node { body deletedAt author { displayName } } } } } }",
        json!({ "t": thread }),
    )
    .await?;
    ok(&view)?;
    let messages = view["data"]["thread"]["messages"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(messages.len(), 3, "{view}");
    for m in &messages {
        let node = &m["node"];
        if node["author"]["displayName"] == "Dave Support" {
            assert_eq!(node["body"], "Refund on its way");
        } else {
            assert_eq!(node["author"]["displayName"], "Deleted user", "{view}");
            assert!(
                node["body"].is_null() && node["deletedAt"].is_string(),
                "{view}"
            );
        }
    }
    let members = view["data"]["thread"]["members"].to_string();
    assert!(!members.contains(&carol.to_string()), "{members}");
    for word in ["quokka", "zebra"] {
        let none = agent(search, json!({ "q": word })).await?;
        assert_eq!(none["data"]["searchMessages"]["edges"], json!([]), "{none}");
    }
    assert!(
        portal_messages::store::erasure::holds_nothing_of(&portal.db, tenant, carol)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
    );
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant))
        .filter(audit_event::Column::Action.eq("user_messages.erase"))
        .all(&portal.db)
        .await?;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].target_id, Some(carol));
    Ok(())
}
