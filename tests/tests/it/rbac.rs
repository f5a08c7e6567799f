//! Field-level RBAC through the gateway: filter (denied fields null with a `FORBIDDEN`
//! error naming the coordinate, everything else served), reject, dry run, mutations
//! refused whole, fragments, deny overriding allow, wildcards, non-null propagation,
//! tenant-scoped rules and a live policy change.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::accounts::account;
use portal_entities::platform::{casbin_rule, policy_revision};
use portal_gateway::authz::Mode as RbacMode;
use portal_tests::{Mode, TestPortal};

use crate::auth_helpers::code;

const BALANCES: &str = "{ accounts(first: 2) { edges { node { number balance createdAt } } } }";

async fn as_roles(portal: &TestPortal, roles: &[&str], query: &str) -> anyhow::Result<Value> {
    let seed = &portal.seed;
    portal
        .query_with_roles(seed.tenant_id, seed.carol_id, roles, query, json!({}))
        .await
}

fn forbidden(response: &Value) -> Vec<(String, Value)> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["extensions"]["code"] == "FORBIDDEN")
        .map(|e| {
            let coordinate = e["extensions"]["coordinate"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (coordinate, e["path"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_mode_nulls_denied_fields_and_serves_the_rest() -> anyhow::Result<()> {
    let portal = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;

    // A customer reads balances; support reads the accounts but not their balances.
    let customer = as_roles(&portal, &["customer_user"], BALANCES).await?;
    assert!(customer["errors"].is_null(), "{customer}");
    assert!(customer["data"]["accounts"]["edges"][0]["node"]["balance"].is_string());
    let support = as_roles(&portal, &["support_agent"], BALANCES).await?;
    let node = &support["data"]["accounts"]["edges"][0]["node"];
    assert!(
        node["number"].is_string() && node["createdAt"].is_string(),
        "{support}"
    );
    assert!(node["balance"].is_null(), "{support}");
    let denied = forbidden(&support);
    assert_eq!(denied.len(), 2, "one error per account: {support}");
    assert_eq!(denied[0].0, "Account.balance");
    assert_eq!(
        denied[0].1,
        json!(["accounts", "edges", 0, "node", "balance"])
    );

    // Fields inside fragments are checked the same way.
    let fragments = "query { accounts(first: 1) { edges { node { ...A ... on Account { id } } } } } fragment A on Account { number balance }";
    let response = as_roles(&portal, &["support_agent"], fragments).await?;
    assert_eq!(forbidden(&response).len(), 1, "{response}");
    assert!(response["data"]["accounts"]["edges"][0]["node"]["number"].is_string());

    // Deny overrides allow: billing admin allows balances, support denies them.
    let both = as_roles(&portal, &["billing_admin", "support_agent"], BALANCES).await?;
    assert_eq!(forbidden(&both).len(), 2, "{both}");

    // A non-null denied field nulls its nearest nullable parent.
    let me = "{ me { id displayName tenant { id } } tenant { slug } }";
    let lookup = format!(
        "{{ user(id: \"{}\") {{ id }} tenant {{ slug }} }}",
        portal.seed.alice_id
    );
    let nobody = as_roles(&portal, &[], &lookup).await?;
    assert_eq!(nobody["data"]["user"], Value::Null, "{nobody}");
    assert_eq!(
        nobody["data"]["tenant"]["slug"], "acme",
        "the rest is served"
    );
    assert_eq!(forbidden(&nobody)[0].0, "Query.user");
    // `users` is a non-null root field: its null reaches the root, as the spec says.
    let listing = as_roles(
        &portal,
        &[],
        "{ users { edges { node { id } } } tenant { slug } }",
    )
    .await?;
    assert_eq!(listing["data"], Value::Null, "{listing}");
    assert_eq!(forbidden(&listing)[0].0, "Query.users");
    let own = as_roles(&portal, &[], me).await?;
    assert!(
        own["errors"].is_null(),
        "every signed-in user reads their own profile: {own}"
    );
    let integrator = as_roles(&portal, &["integrator"], "{ me { id email } }").await?;
    assert_eq!(
        integrator["data"]["me"]["email"],
        Value::Null,
        "{integrator}"
    );
    assert_eq!(forbidden(&integrator)[0].0, "User.email");

    // Anonymous callers may sign in but read nothing.
    let anonymous: Value = portal
        .http()
        .post(&portal.endpoint)
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(forbidden(&anonymous)[0].0, "Query.me", "{anonymous}");
    let signed = crate::auth_helpers::session_of(&portal, "carol@acme.example").await;
    assert!(signed.is_ok(), "sign-in is public: {signed:?}");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_with_a_denied_field_are_refused_whole() -> anyhow::Result<()> {
    let portal = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;
    let before = account::Entity::find().count(&portal.db).await?;
    let create = "mutation { createAccount(input: { number: \"ACM-9999\", name: \"New\", currency: \"EUR\", ownerId: \"00000000-0000-0000-0000-000000000000\" }) { id } }";
    let refused = as_roles(&portal, &["customer_user"], create).await?;
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(
        refused["errors"][0]["extensions"]["coordinates"],
        json!(["Mutation.createAccount"])
    );
    // Allowed mutation, but it selects a field the role may not read: refused whole too.
    let sneaky = "mutation { updateThread(id: \"00000000-0000-0000-0000-000000000000\", input: { subject: \"x\" }) { id account { balance } } }";
    let refused = as_roles(&portal, &["support_agent"], sneaky).await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["coordinates"],
        json!(["Account.balance"]),
        "{refused}"
    );
    assert_eq!(
        account::Entity::find().count(&portal.db).await?,
        before,
        "nothing written"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_mode_refuses_and_dry_run_only_logs() -> anyhow::Result<()> {
    let reject = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Reject).await?;
    let refused = as_roles(&reject, &["support_agent"], BALANCES).await?;
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["coordinates"],
        json!(["Account.balance"])
    );
    let fine = as_roles(&reject, &["customer_user"], BALANCES).await?;
    assert!(fine["errors"].is_null(), "{fine}");
    reject.stop().await;

    let dry = TestPortal::start_rbac(Mode::AllInOne, RbacMode::DryRun).await?;
    let served = as_roles(&dry, &["support_agent"], BALANCES).await?;
    assert!(served["errors"].is_null(), "{served}");
    assert!(served["data"]["accounts"]["edges"][0]["node"]["balance"].is_string());
    dry.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_rules_and_live_changes_reach_the_gateway_within_a_second() -> anyhow::Result<()> {
    let portal = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;
    let users = "{ users { edges { node { email } } } }";
    let seed = portal.seed.clone();
    let before = as_roles(&portal, &["customer_user"], users).await?;
    assert_eq!(forbidden(&before)[0].0, "Query.users");

    // Acme lets its customers list users (and read UserConnection/UserEdge); Globex does not.
    for object in ["Query.users", "UserConnection.*", "UserEdge.*"] {
        casbin_rule::ActiveModel {
            id: Set(Uuid::now_v7()),
            ptype: Set("p".into()),
            v0: Set("customer_user".into()),
            v1: Set(seed.tenant_id.to_string()),
            v2: Set(object.into()),
            v3: Set("read".into()),
            v4: Set("allow".into()),
            v5: Set(String::new()),
        }
        .insert(&portal.db)
        .await?;
    }
    policy_revision::ActiveModel {
        id: Set(1),
        revision: Set(2),
        updated_at: Set(Utc::now()),
    }
    .update(&portal.db)
    .await?;
    let start = std::time::Instant::now();
    loop {
        let after = as_roles(&portal, &["customer_user"], users).await?;
        if after["errors"].is_null() {
            assert!(after.to_string().contains("alice@acme.example"), "{after}");
            break;
        }
        anyhow::ensure!(
            start.elapsed().as_secs() < 3,
            "policy change not applied: {after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        start.elapsed().as_millis() < 2000,
        "took {:?}",
        start.elapsed()
    );
    let globex = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["customer_user"],
            users,
            json!({}),
        )
        .await?;
    assert_eq!(
        forbidden(&globex)[0].0,
        "Query.users",
        "a tenant's rule stays in its tenant: {globex}"
    );
    portal.stop().await;
    Ok(())
}

const ADD: &str = "mutation($r: String!, $o: String!, $a: PolicyAction!, $e: PolicyEffect!, $all: Boolean) { addPolicyRule(input: { role: $r, object: $o, action: $a, effect: $e, allTenants: $all }) { id role domain object action effect } }";

async fn as_admin(portal: &TestPortal, query: &str, variables: Value) -> anyhow::Result<Value> {
    let seed = &portal.seed;
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

/// Waits up to 3 s for `check` to hold for carol's `query` answer.
async fn eventually(
    portal: &TestPortal,
    query: &str,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<std::time::Duration> {
    let start = std::time::Instant::now();
    loop {
        let response = as_roles(portal, &["customer_user"], query).await?;
        if check(&response) {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(start.elapsed().as_secs() < 3, "not applied: {response}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_policies_at_run_time_within_their_rights() -> anyhow::Result<()> {
    let portal = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;
    let listed = as_admin(
        &portal,
        "{ policyRules(role: \"support_agent\") { role object effect } }",
        json!({}),
    )
    .await?;
    let rules = listed["data"]["policyRules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        rules
            .iter()
            .any(|r| r["object"] == "Account.balance" && r["effect"] == "deny"),
        "{listed}"
    );

    // Validation: real coordinates, the right action, real roles, no more than held.
    for (vars, expected) in [
        (
            json!({ "r": "customer_user", "o": "*.balance", "a": "READ", "e": "ALLOW" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "r": "customer_user", "o": "Account.nope", "a": "READ", "e": "ALLOW" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "r": "customer_user", "o": "Query.users", "a": "WRITE", "e": "ALLOW" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "r": "wizard", "o": "Query.users", "a": "READ", "e": "ALLOW" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "r": "customer_user", "o": "*", "a": "READ", "e": "ALLOW" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "r": "customer_user", "o": "Mutation.createTenant", "a": "WRITE", "e": "ALLOW" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "r": "customer_user", "o": "Query.users", "a": "READ", "e": "ALLOW", "all": true }),
            "FORBIDDEN",
        ),
    ] {
        let refused = as_admin(&portal, ADD, vars.clone()).await?;
        assert_eq!(code(&refused), expected, "{vars}: {refused}");
    }
    // A tenant cannot mint the platform's role (or the implicit ones) for itself.
    for reserved in ["platform_admin", "public", "authenticated"] {
        let create = format!(
            "mutation {{ createRole(input: {{ name: \"{reserved}\", description: \"x\" }}) {{ id }} }}"
        );
        let refused = as_admin(&portal, &create, json!({})).await?;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{reserved}: {refused}");
    }
    let seed = portal.seed.clone();
    let billing = portal
        .query_with_roles(
            seed.tenant_id,
            seed.bob_id,
            &["billing_admin"],
            ADD,
            json!({ "r": "customer_user", "o": "Query.users", "a": "READ", "e": "ALLOW" }),
        )
        .await?;
    assert_eq!(code(&billing), "FORBIDDEN", "{billing}");

    // Alice lets Acme's customers list users; the gateway applies it within a second.
    let users = "{ users { edges { node { displayName } } } }";
    let mut added = Vec::new();
    for object in ["Query.users", "UserConnection.*", "UserEdge.*"] {
        let rule = as_admin(
            &portal,
            ADD,
            json!({ "r": "customer_user", "o": object, "a": "READ", "e": "ALLOW" }),
        )
        .await?;
        assert_eq!(
            rule["data"]["addPolicyRule"]["domain"],
            seed.tenant_id.to_string(),
            "{rule}"
        );
        added.push(
            rule["data"]["addPolicyRule"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let took = eventually(&portal, users, |r| r["errors"].is_null()).await?;
    assert!(took.as_millis() < 2000, "took {took:?}");

    // Another tenant's admin neither sees nor removes Acme's rules.
    let remove = "mutation($id: ID!) { removePolicyRule(id: $id) { object } }";
    let gina = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            remove,
            json!({ "id": added[0] }),
        )
        .await?;
    assert_eq!(code(&gina), "NOT_FOUND", "{gina}");
    let theirs = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            "{ policyRules(role: \"customer_user\") { domain } }",
            json!({}),
        )
        .await?;
    assert!(
        !theirs.to_string().contains(&seed.tenant_id.to_string()),
        "{theirs}"
    );

    // Removing the rule takes the access away again.
    let removed = as_admin(&portal, remove, json!({ "id": added[0] })).await?;
    assert_eq!(
        removed["data"]["removePolicyRule"]["object"], "Query.users",
        "{removed}"
    );
    eventually(&portal, users, |r| !forbidden(r).is_empty()).await?;

    // Every change is audited with before and after.
    let audit = as_admin(
        &portal,
        "{ auditEvents(filter: { action: \"policy.remove\" }) { edges { node { details } } } }",
        json!({}),
    )
    .await?;
    let details = &audit["data"]["auditEvents"]["edges"][0]["node"]["details"];
    assert_eq!(details["before"]["object"], "Query.users", "{audit}");
    assert!(details["after"].is_null());
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_access_names_the_rule_and_the_role_chain() -> anyhow::Result<()> {
    let portal = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;
    let explain = "query($u: ID!, $c: String!) { explainAccess(userId: $u, coordinate: $c) { allowed action roles inheritedRoles matchedRules { role object effect } reason } }";
    let alice = portal.seed.alice_id.to_string();
    let why = as_admin(
        &portal,
        explain,
        json!({ "u": alice, "c": "Account.balance" }),
    )
    .await?;
    let answer = &why["data"]["explainAccess"];
    assert_eq!(answer["allowed"], true, "{why}");
    assert!(
        answer["inheritedRoles"]
            .to_string()
            .contains("billing_admin ← tenant_admin"),
        "{why}"
    );
    assert!(
        answer["matchedRules"].to_string().contains("Account.*"),
        "{why}"
    );
    let why = as_admin(
        &portal,
        explain,
        json!({ "u": alice, "c": "Mutation.createTenant" }),
    )
    .await?;
    assert_eq!(why["data"]["explainAccess"]["allowed"], false, "{why}");
    assert_eq!(why["data"]["explainAccess"]["action"], "write");
    assert!(
        why["data"]["explainAccess"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("by default")
    );
    let unknown = as_admin(&portal, explain, json!({ "u": alice, "c": "Nope.nothing" })).await?;
    assert_eq!(code(&unknown), "BAD_USER_INPUT", "{unknown}");
    let carol = as_roles(&portal, &["customer_user"], &format!("{{ explainAccess(userId: \"{alice}\", coordinate: \"Account.balance\") {{ allowed }} }}")).await?;
    assert_eq!(forbidden(&carol)[0].0, "Query.explainAccess", "{carol}");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_authorized_only_when_configured() -> anyhow::Result<()> {
    let introspect = "{ __schema { queryType { name } } }";
    let open = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;
    let answer = as_roles(&open, &["customer_user"], introspect).await?;
    assert_eq!(
        answer["data"]["__schema"]["queryType"]["name"], "Query",
        "{answer}"
    );
    open.stop().await;

    let checked = TestPortal::start_rbac_with(Mode::AllInOne, RbacMode::Filter, true).await?;
    let answer = as_roles(&checked, &["customer_user"], introspect).await?;
    assert_eq!(forbidden(&answer)[0].0, "Query.__schema", "{answer}");
    assert!(answer["data"]["__schema"].is_null());
    let typename = as_roles(&checked, &["customer_user"], "{ __typename }").await?;
    assert_eq!(typename["data"]["__typename"], "Query", "{typename}");
    // Roles the seed policies let introspect: integrators, and tenant admins (inherited
    // by platform admins).
    for role in ["integrator", "tenant_admin", "platform_admin"] {
        let answer = as_roles(&checked, &[role], introspect).await?;
        assert_eq!(
            answer["data"]["__schema"]["queryType"]["name"], "Query",
            "{role}: {answer}"
        );
    }
    // Anonymous callers never introspect when it is checked.
    let anonymous: serde_json::Value = checked
        .http()
        .post(&checked.endpoint)
        .json(&serde_json::json!({ "query": introspect }))
        .send()
        .await?
        .json()
        .await?;
    assert!(anonymous["data"]["__schema"].is_null(), "{anonymous}");
    checked.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_supergraph_republishes_its_coordinates() -> anyhow::Result<()> {
    use portal_entities::platform::policy_coordinate;
    let portal = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;
    let gateway = portal
        .gateway
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no gateway"))?;
    let task = portal::policies::republish_on_reload(portal.db.clone(), gateway.clone());
    policy_coordinate::Entity::delete_many()
        .exec(&portal.db)
        .await?;
    let served = gateway.current();
    let reloaded = portal_gateway::gateway::Supergraph::load(
        &served.supergraph.sdl,
        &portal_gateway::gateway::Limits::default(),
    )?;
    gateway.replace(reloaded, served.clients.clone());
    let start = std::time::Instant::now();
    while policy_coordinate::Entity::find().count(&portal.db).await? == 0 {
        anyhow::ensure!(start.elapsed().as_secs() < 4, "coordinates not republished");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    task.abort();
    portal.stop().await;
    Ok(())
}

/// Who may call an operation is the policies' decision alone: an inherited role and a
/// custom role granted through the policy API reach what the policies allow, with no
/// subgraph second-guessing by role name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherited_and_custom_roles_get_exactly_what_the_policies_allow() -> anyhow::Result<()> {
    let portal = TestPortal::start_rbac(Mode::AllInOne, RbacMode::Filter).await?;
    let audit = "{ auditEvents(first: 3) { edges { node { action } } } }";
    // platform_admin inherits tenant_admin, which inherits auditor.
    let platform = as_roles(&portal, &["platform_admin"], audit).await?;
    assert!(platform.get("errors").is_none(), "{platform}");
    assert!(
        platform["data"]["auditEvents"]["edges"].is_array(),
        "{platform}"
    );

    // A custom role the tenant admin creates and grants the audit trail to.
    let created = as_admin(
        &portal,
        "mutation { createRole(input: { name: \"compliance_reviewer\", description: \"Reviews the trail\" }) { name } }",
        json!({}),
    )
    .await?;
    assert!(created.get("errors").is_none(), "{created}");
    let before = as_roles(&portal, &["compliance_reviewer"], audit).await?;
    assert_eq!(forbidden(&before)[0].0, "Query.auditEvents", "{before}");
    for object in [
        "Query.auditEvents",
        "AuditEvent.*",
        "AuditEventConnection.*",
        "AuditEventEdge.*",
    ] {
        let added = as_admin(
            &portal,
            ADD,
            json!({ "r": "compliance_reviewer", "o": object, "a": "READ", "e": "ALLOW" }),
        )
        .await?;
        assert!(added.get("errors").is_none(), "{object}: {added}");
    }
    let start = std::time::Instant::now();
    loop {
        let after = as_roles(&portal, &["compliance_reviewer"], audit).await?;
        if after.get("errors").is_none() {
            assert!(after["data"]["auditEvents"]["edges"].is_array(), "{after}");
            break;
        }
        anyhow::ensure!(start.elapsed().as_secs() < 3, "never allowed: {after}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    portal.stop().await;
    Ok(())
}
