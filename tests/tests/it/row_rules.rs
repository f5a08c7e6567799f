//! Row-level rules inside a tenant, walked on every path through the gateway (and the
//! entity path at the subgraph): threads are read by their participants and by staff who
//! work the support queue; accounts — and the reports about them — by their owner,
//! members and staff. A user of the same tenant outside those sees nothing of them.

use portal_tests::{Mode, TestPortal};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;

/// Alice (tenant admin) invites Dave, a customer of the same tenant who takes part in no
/// thread and is a member of no account.
async fn dave(portal: &TestPortal) -> anyhow::Result<Uuid> {
    portal.create_user("dave@acme.example", "Dave").await
}

async fn as_role(
    portal: &TestPortal,
    user: Uuid,
    role: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    portal
        .query_with_roles(portal.seed.tenant_id, user, &[role], query, variables)
        .await
}

/// The welcome thread (Alice and Carol) and its first message.
async fn welcome_thread(portal: &TestPortal) -> anyhow::Result<(String, String)> {
    let listed = as_role(
        portal,
        portal.seed.carol_id,
        "customer_user",
        "{ threads { edges { node { id subject messages(first: 1) { edges { node { id } } } } } } }",
        json!({}),
    )
    .await?;
    let edges = listed["data"]["threads"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let welcome = edges
        .iter()
        .find(|e| e["node"]["subject"] == "Welcome to the portal")
        .ok_or_else(|| anyhow::anyhow!("no welcome thread: {listed}"))?;
    Ok((
        welcome["node"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        welcome["node"]["messages"]["edges"][0]["node"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_reads_no_thread_it_does_not_take_part_in_on_any_path() -> anyhow::Result<()> {
    for mode in [Mode::AllInOne, Mode::Distributed] {
        let portal = TestPortal::start_enforcing(mode).await?;
        let dave = dave(&portal).await?;
        let (thread, message) = welcome_thread(&portal).await?;
        let ids = json!({ "t": thread, "m": message });
        let read = "query($t: ID!, $m: ID!) {
            thread(id: $t) { subject }
            message(id: $m) { body }
            threads { edges { node { id } } }
            me { threads { edges { node { id } } } }
        }";
        let outsider = as_role(&portal, dave, "customer_user", read, ids.clone()).await?;
        assert!(outsider.get("errors").is_none(), "{mode:?}: {outsider}");
        let data = &outsider["data"];
        assert!(data["thread"].is_null(), "{mode:?}: {outsider}");
        assert!(data["message"].is_null(), "{mode:?}: {outsider}");
        assert_eq!(data["threads"]["edges"], json!([]), "{mode:?}");
        assert_eq!(data["me"]["threads"]["edges"], json!([]), "{mode:?}");
        // Writes see the same: no such thread, and no posting.
        let update = as_role(
            &portal,
            dave,
            "customer_user",
            "mutation($t: ID!) { updateThread(id: $t, input: { subject: \"Mine now\" }) { id } }",
            json!({ "t": thread }),
        )
        .await?;
        assert_eq!(
            update["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{update}"
        );
        let post = as_role(
            &portal,
            dave,
            "customer_user",
            "mutation($t: ID!) { postMessage(input: { threadId: $t, body: \"hi\" }) { id } }",
            json!({ "t": thread }),
        )
        .await?;
        assert_eq!(
            post["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{post}"
        );

        // A participant, and staff who work the queue (the Thread.all grant), read it.
        for (user, role) in [
            (portal.seed.carol_id, "customer_user"),
            (dave, "support_agent"),
            (portal.seed.alice_id, "tenant_admin"),
        ] {
            let reader = as_role(&portal, user, role, read, ids.clone()).await?;
            assert_eq!(
                reader["data"]["thread"]["subject"], "Welcome to the portal",
                "{mode:?} {role}: {reader}"
            );
            assert!(
                reader["data"]["message"]["body"].is_string(),
                "{role}: {reader}"
            );
        }
        portal.stop().await;
    }
    Ok(())
}

#[tokio::test]
async fn the_thread_entity_resolver_applies_the_participation_rule() -> anyhow::Result<()> {
    use async_graphql::{Request, Variables};
    use portal_kit::{Actor, RequestMeta};
    let test_db = portal_tests::TestDb::new().await?;
    let db = test_db.connect().await?;
    let seed = portal::seed::seed(&db).await?;
    let schema = portal_messages::build_schema(
        db.clone(),
        Default::default(),
        portal_tests::feed(&db),
        portal_tests::tenant_keys(&db),
        portal_kit::storage::FileStore::in_memory(&portal_tests::identity_settings().data_key),
    );
    let threads = portal_entities::messages::thread::Entity::find()
        .all(&db)
        .await?;
    let acme: Vec<String> = threads
        .iter()
        .filter(|t| t.tenant_id == seed.tenant_id)
        .map(|t| t.id.to_string())
        .collect();
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Thread { id } } }";
    let representations: Vec<Value> = acme
        .iter()
        .map(|id| json!({ "__typename": "Thread", "id": id }))
        .collect();
    let ask = |actor: Actor| {
        let request = Request::new(query)
            .variables(Variables::from_json(json!({ "r": representations })))
            .data(actor)
            .data(RequestMeta::default());
        let schema = schema.clone();
        async move { serde_json::to_value(schema.execute(request).await).unwrap_or_default() }
    };
    let outsider = ask(Actor::user(Uuid::now_v7(), seed.tenant_id, vec![])).await;
    let resolved = outsider["data"]["_entities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(resolved.len(), acme.len(), "{outsider}");
    assert!(resolved.iter().all(Value::is_null), "{outsider}");
    let mut staff = Actor::user(Uuid::now_v7(), seed.tenant_id, vec![]);
    staff.grants = vec![portal_kit::policy::THREADS_ALL.to_owned()];
    let answered = ask(staff).await;
    let resolved = answered["data"]["_entities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(resolved.iter().all(|t| t["id"].is_string()), "{answered}");
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_their_reports_are_seen_by_owner_members_and_staff_only() -> anyhow::Result<()>
{
    for mode in [Mode::AllInOne, Mode::Distributed] {
        let portal = TestPortal::start_enforcing(mode).await?;
        let dave = dave(&portal).await?;
        let operating = portal.account_id("ACME-0001").await?;
        let read = "query($a: ID!) {
            account(id: $a) { number externalRefs { externalId } reports { edges { node { name } } } }
            accounts { edges { node { number } } }
            reportDefinitions { edges { node { name account { number } } } }
            me { accounts { edges { node { number } } } }
        }";
        let vars = json!({ "a": operating });
        let outsider = as_role(&portal, dave, "customer_user", read, vars.clone()).await?;
        assert!(outsider.get("errors").is_none(), "{mode:?}: {outsider}");
        assert!(
            outsider["data"]["account"].is_null(),
            "{mode:?}: {outsider}"
        );
        assert_eq!(outsider["data"]["accounts"]["edges"], json!([]));
        assert_eq!(outsider["data"]["reportDefinitions"]["edges"], json!([]));

        // Carol: her own two accounts and, as a member, Alice's operating account; her
        // own report definitions only (not Alice's reports about the operating account).
        let carol = as_role(
            &portal,
            portal.seed.carol_id,
            "customer_user",
            read,
            vars.clone(),
        )
        .await?;
        assert!(carol.get("errors").is_none(), "{mode:?}: {carol}");
        assert_eq!(carol["data"]["account"]["number"], "ACME-0001");
        assert_eq!(
            carol["data"]["account"]["reports"]["edges"],
            json!([]),
            "{carol}"
        );
        let numbers: Vec<&str> = carol["data"]["accounts"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["node"]["number"].as_str())
            .collect();
        assert_eq!(numbers, ["ACME-0001", "ACME-0002", "ACME-0003"], "{mode:?}");
        assert_eq!(
            carol["data"]["reportDefinitions"]["edges"]
                .as_array()
                .map(Vec::len),
            Some(4),
            "{carol}"
        );
        // Paging never hands out an empty page that leads on, nor a cursor of a hidden
        // row: Alice's two reports about the account, one per page, are skipped at once.
        let page = as_role(
            &portal,
            portal.seed.carol_id,
            "customer_user",
            "query($a: ID!) { account(id: $a) { reports(first: 1) { edges { node { name } } pageInfo { hasNextPage endCursor } } } }",
            json!({ "a": operating }),
        )
        .await?;
        let reports = &page["data"]["account"]["reports"];
        assert_eq!(reports["edges"], json!([]), "{page}");
        assert_eq!(reports["pageInfo"]["hasNextPage"], json!(false), "{page}");
        assert!(reports["pageInfo"]["endCursor"].is_null(), "{page}");

        // Membership: only tenant admins manage it (policy), audited; it opens the
        // account to Dave, and closing it again hides it.
        let add = "mutation($a: ID!, $u: ID!) { addAccountMember(accountId: $a, userId: $u) { number members { displayName } } }";
        let remove = "mutation($a: ID!, $u: ID!) { removeAccountMember(accountId: $a, userId: $u) { number } }";
        let member = json!({ "a": operating, "u": dave.to_string() });
        let refused = as_role(
            &portal,
            portal.seed.carol_id,
            "customer_user",
            add,
            member.clone(),
        )
        .await?;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{refused}"
        );
        let added = as_role(
            &portal,
            portal.seed.alice_id,
            "tenant_admin",
            add,
            member.clone(),
        )
        .await?;
        assert!(added.get("errors").is_none(), "{mode:?}: {added}");
        let members = added["data"]["addAccountMember"]["members"].to_string();
        assert!(
            members.contains("Dave") && members.contains("Carol"),
            "{added}"
        );
        let again = as_role(
            &portal,
            portal.seed.alice_id,
            "tenant_admin",
            add,
            member.clone(),
        )
        .await?;
        assert_eq!(
            again["errors"][0]["extensions"]["code"], "CONFLICT",
            "{again}"
        );
        let inside = as_role(&portal, dave, "customer_user", read, vars.clone()).await?;
        assert_eq!(inside["data"]["account"]["number"], "ACME-0001", "{inside}");
        let removed = as_role(
            &portal,
            portal.seed.alice_id,
            "tenant_admin",
            remove,
            member.clone(),
        )
        .await?;
        assert!(removed.get("errors").is_none(), "{removed}");
        let outside = as_role(&portal, dave, "customer_user", read, vars.clone()).await?;
        assert!(outside["data"]["account"].is_null(), "{outside}");
        let trail = as_role(
            &portal,
            portal.seed.alice_id,
            "tenant_admin",
            "{ auditEvents(filter: { targetId: \"ACCOUNT\" }) { edges { node { action } } } }"
                .replace("ACCOUNT", &operating)
                .as_str(),
            json!({}),
        )
        .await?;
        let actions = trail.to_string();
        assert!(
            actions.contains("account.member.add") && actions.contains("account.member.remove"),
            "{trail}"
        );

        // Staff see every account (the Account.all grant); support still no balances.
        let support = as_role(
            &portal,
            dave,
            "support_agent",
            "{ accounts { edges { node { number balance } } } }",
            json!({}),
        )
        .await?;
        assert_eq!(
            support["data"]["accounts"]["edges"]
                .as_array()
                .map(Vec::len),
            Some(4),
            "{support}"
        );
        assert!(support["data"]["accounts"]["edges"][0]["node"]["balance"].is_null());
        portal.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_hangs_off_an_account_stays_hidden_when_reached_through_another_subgraph()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let billing = portal.account_id("ACME-0004").await?;
    let refs = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        "query($a: ID!) { account(id: $a) { externalRefs { externalId } } }",
        json!({ "a": billing }),
    )
    .await?;
    let external_ids: Vec<String> = refs["data"]["account"]["externalRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["externalId"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !external_ids.is_empty(),
        "the seed links Bob's account: {refs}"
    );
    // Support opens a thread about Bob's account with Carol, who may not see that account.
    let opened = as_role(
        &portal,
        seed.alice_id,
        "support_agent",
        "mutation($a: ID, $p: [ID!]) { createThread(input: { subject: \"Your billing\", body: \"…\", accountId: $a, participantIds: $p }) { id } }",
        json!({ "a": billing, "p": [seed.carol_id.to_string()] }),
    )
    .await?;
    let thread = opened["data"]["createThread"]["id"].clone();
    assert!(thread.is_string(), "{opened}");
    let seen = as_role(
        &portal,
        seed.carol_id,
        "customer_user",
        "query($t: ID!) { thread(id: $t) { subject account { id externalRefs { externalId } } } }",
        json!({ "t": thread }),
    )
    .await?;
    assert_eq!(seen["data"]["thread"]["subject"], "Your billing", "{seen}");
    for id in &external_ids {
        assert!(!seen.to_string().contains(id.as_str()), "{seen}");
    }
    portal.stop().await;
    Ok(())
}
