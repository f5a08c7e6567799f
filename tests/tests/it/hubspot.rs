//! The HubSpot connector end to end, against a fake HubSpot built from HubSpot's published
//! API descriptions (`portal_tests::fake_hubspot`): companies become accounts through the
//! gateway as the connector's service account (created once, with an idempotency key),
//! names follow the field rule both ways, remote deletes unlink, contacts become members
//! of their companies' accounts (inviting users only where a policy allows), search pages
//! past HubSpot's 10 000-result cap without losing a record, rate limits and outages are
//! waited out, inbound webhooks are verified (v3), and other tenants see nothing.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use portal_entities::accounts::account;
use portal_entities::platform::audit_event;
use portal_integrations::connectors::hubspot::{Auth, HubSpot, LAG_MS, Objects, Paced};
use portal_integrations::connectors::limits::Rate;
use portal_integrations::connectors::{Connector, Endpoints};
use portal_tests::fake_hubspot::{self, FakeHubSpot, Fault};
use portal_tests::{Mode, TestPortal};

use crate::connectors::{
    RUNS, START, admin, code, drain, last_run, ok, service_key, sync_worker, text,
};

const CREATE_INTEGRATION: &str = "mutation { createIntegration(input: { kind: CRM, provider: \"hubspot\", name: \"HubSpot\" }) { id } }";
const CONFIGURE: &str = "mutation($id: ID!, $input: ConfigureIntegrationInput!) { configureIntegration(id: $id, input: $input) { id configured syncContacts newAccounts { ownerId currency } fieldRules { field sourceOfTruth } } }";
const ACCOUNTS: &str = "query { accounts(first: 50) { edges { node { id number name owner { id } externalRefs { externalType externalId } } } } }";

fn endpoints(fake: &FakeHubSpot) -> Endpoints {
    Endpoints {
        hubspot: fake.base_url(),
        ..Endpoints::default()
    }
}

struct Setup {
    portal: TestPortal,
    fake: FakeHubSpot,
    integration: String,
    runner: std::sync::Arc<portal_kit::jobs::runner::Runner>,
}

/// A HubSpot integration of acme, configured with a private-app token and an
/// `integrator` key, and a worker.
async fn setup(mode: Mode) -> anyhow::Result<Setup> {
    let fake = FakeHubSpot::start().await?;
    let portal = TestPortal::start_enforcing_with_connectors(mode, endpoints(&fake)).await?;
    let key = service_key(&portal, "integrator").await?;
    let created = admin(&portal, CREATE_INTEGRATION, json!({})).await?;
    ok(&created)?;
    let integration = text(&created["data"]["createIntegration"]["id"]);
    let configured = admin(
        &portal,
        CONFIGURE,
        json!({ "id": integration, "input": {
            "apiKey": fake_hubspot::PRIVATE_APP_TOKEN,
            "webhookSecret": fake_hubspot::CLIENT_SECRET,
            "portalApiKey": key,
        }}),
    )
    .await?;
    ok(&configured)?;
    let runner = sync_worker(&portal, endpoints(&fake))?;
    Ok(Setup {
        portal,
        fake,
        integration,
        runner,
    })
}

/// Starts a run of `mode` and runs its jobs; the run.
async fn sync(setup: &Setup, mode: &str) -> anyhow::Result<Value> {
    let started = admin(
        &setup.portal,
        START,
        json!({ "id": setup.integration, "mode": mode }),
    )
    .await?;
    ok(&started)?;
    drain(&setup.runner).await?;
    last_run(&setup.portal, &setup.integration).await
}

fn counts(run: &Value) -> [i64; 5] {
    [
        "createdCount",
        "updatedCount",
        "unchangedCount",
        "deletedCount",
        "failedCount",
    ]
    .map(|field| run[field].as_i64().unwrap_or(-1))
}

/// Whether `testIntegrationConnection` of integration `id` succeeds.
async fn connects(portal: &TestPortal, id: &str) -> anyhow::Result<bool> {
    let tested = admin(
        portal,
        "mutation($id: ID!) { testIntegrationConnection(id: $id) { ok } }",
        json!({ "id": id }),
    )
    .await?;
    ok(&tested)?;
    Ok(tested["data"]["testIntegrationConnection"]["ok"] == true)
}

/// The ids of the records a run skipped.
fn failed_ids(run: &Value) -> BTreeSet<String> {
    run["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|failure| failure["externalId"].as_str().map(str::to_owned))
        .collect()
}

/// Acme's accounts made from HubSpot companies, by number.
async fn hubspot_accounts(portal: &TestPortal) -> anyhow::Result<Vec<Value>> {
    let listed = admin(portal, ACCOUNTS, json!({})).await?;
    ok(&listed)?;
    Ok(listed["data"]["accounts"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| edge["node"].clone())
        .filter(|node| {
            node["number"]
                .as_str()
                .is_some_and(|n| n.starts_with("HS-"))
        })
        .collect())
}

#[tokio::test]
async fn hubspot_companies_become_accounts_and_follow_their_rules() -> anyhow::Result<()> {
    let setup = setup(Mode::AllInOne).await?;
    let (portal, fake) = (&setup.portal, &setup.fake.clone());
    let globex = fake.add_company("Globex", "globex.example");
    let hooli = fake.add_company("Hooli", "hooli.example");
    let nameless = fake.add_company("", "nameless.example");

    // Without new-account defaults an unlinked company is recorded and skipped. (A
    // backfill goes on with the changes since it started, search index lag included:
    // records that recent are read twice in that run.)
    let run = sync(&setup, "BACKFILL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[..4], [0, 0, 0, 0], "{run}");
    assert_eq!(
        failed_ids(&run),
        BTreeSet::from([globex.clone(), hooli.clone(), nameless.clone()])
    );
    assert!(
        run["failures"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("newAccounts")),
        "{run}"
    );

    // A bad owner is refused at configuration, changing nothing.
    let refused = admin(
        portal,
        CONFIGURE,
        json!({ "id": setup.integration, "input": { "newAccounts": { "ownerId": portal.seed.other_user_id, "currency": "EUR" } } }),
    )
    .await?;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let configured = admin(
        portal,
        CONFIGURE,
        json!({ "id": setup.integration, "input": { "newAccounts": { "ownerId": portal.seed.alice_id, "currency": "eur" } } }),
    )
    .await?;
    ok(&configured)?;
    assert_eq!(
        configured["data"]["configureIntegration"]["newAccounts"],
        json!({ "ownerId": portal.seed.alice_id.to_string(), "currency": "EUR" })
    );

    let run = sync(&setup, "BACKFILL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[0], 3, "{run}");
    assert_eq!(counts(&run)[4], 0, "{run}");
    let accounts = hubspot_accounts(portal).await?;
    let by_number = |id: &str| {
        accounts
            .iter()
            .find(|a| a["number"] == format!("HS-{id}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_number(&globex)["name"], "Globex");
    assert_eq!(by_number(&nameless)["name"], "nameless.example");
    assert_eq!(
        by_number(&hooli)["externalRefs"],
        json!([{ "externalType": "company", "externalId": hooli }])
    );
    assert_eq!(
        by_number(&hooli)["owner"]["id"],
        portal.seed.alice_id.to_string()
    );
    // Created by the connector's service account, audited as such.
    let created = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("account.create"))
        .all(&portal.db)
        .await?;
    assert_eq!(created.len(), 3);
    assert!(
        created.iter().all(|e| e.actor_kind == "service"),
        "{created:?}"
    );

    // Again: nothing changes, nothing is created twice.
    let run = sync(&setup, "BACKFILL").await?;
    assert_eq!(counts(&run)[..2], [0, 0], "{run}");
    assert_eq!(counts(&run)[3..], [0, 0], "{run}");
    assert!(counts(&run)[2] >= 3, "{run}");

    // Links lost after their accounts were made (a crash between the two): the retry
    // gets the same account back — by its idempotency key, or, the company renamed
    // meanwhile (another request under that key), by its number — never a second one.
    for company in [&globex, &nameless] {
        portal_entities::integrations::external_ref::Entity::delete_many()
            .filter(
                portal_entities::integrations::external_ref::Column::ExternalId
                    .eq(company.as_str()),
            )
            .exec(&portal.db)
            .await?;
    }
    fake.update_company(&nameless, &[("name", "Named At Last")]);
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[0], 2, "{run}");
    assert_eq!(counts(&run)[4], 0, "{run}");
    let relinked = hubspot_accounts(portal).await?;
    assert_eq!(relinked.len(), 3, "{relinked:?}");
    for company in [&globex, &nameless] {
        let account = relinked
            .iter()
            .find(|a| a["number"] == format!("HS-{company}"))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            account["externalRefs"],
            json!([{ "externalType": "company", "externalId": company }]),
            "{relinked:?}"
        );
    }
    fake.clear_requests();
    assert_eq!(hubspot_accounts(portal).await?.len(), 3);

    // Renamed in HubSpot while the portal owns the name: the portal's goes back.
    fake.update_company(&globex, &[("name", "Globex Corp")]);
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[1], 1, "{run}");
    let remote = fake.company(&globex).unwrap_or_default();
    assert_eq!(remote["properties"]["name"], "Globex", "{remote}");
    let patches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(patches[0].path.ends_with(&globex));

    // With HubSpot the source of truth, its name is written to the account.
    ok(&admin(
        portal,
        CONFIGURE,
        json!({ "id": setup.integration, "input": { "fieldRules": [{ "field": "Account.name", "sourceOfTruth": "REMOTE" }] } }),
    )
    .await?)?;
    fake.update_company(&hooli, &[("name", "Hooli XYZ")]);
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(counts(&run)[1], 1, "{run}");
    let accounts = hubspot_accounts(portal).await?;
    assert!(
        accounts
            .iter()
            .any(|a| a["number"] == format!("HS-{hooli}") && a["name"] == "Hooli XYZ"),
        "{accounts:?}"
    );

    // Deleted in HubSpot: the link goes, the account (and its history) stays.
    fake.archive_company(&hooli);
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[3], 1, "{run}");
    let accounts = hubspot_accounts(portal).await?;
    let gone = accounts
        .iter()
        .find(|a| a["number"] == format!("HS-{hooli}"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(gone["externalRefs"], json!([]), "{accounts:?}");
    // The next run has nothing left to delete.
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(counts(&run)[3], 0, "{run}");

    // Another tenant sees neither the integration nor its accounts.
    let seed = &portal.seed;
    let other = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            "query($id: ID!) { integration(id: $id) { id } accounts(first: 50) { edges { node { number } } } }",
            json!({ "id": setup.integration }),
        )
        .await?;
    assert_eq!(other["data"]["integration"], Value::Null, "{other}");
    assert!(
        !other.to_string().contains("HS-"),
        "another tenant sees HubSpot accounts: {other}"
    );
    setup.portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn hubspot_contacts_join_their_companies_accounts() -> anyhow::Result<()> {
    let setup = setup(Mode::AllInOne).await?;
    let (portal, fake) = (&setup.portal, &setup.fake.clone());
    ok(&admin(
        portal,
        CONFIGURE,
        json!({ "id": setup.integration, "input": {
            "newAccounts": { "ownerId": portal.seed.alice_id, "currency": "USD" },
        }}),
    )
    .await?)?;
    let initech = fake.add_company("Initech", "initech.example");
    // Bob is a user already; Peter is not.
    let bob = fake.add_contact("Bob@Acme.example", "Bob", "Builder");
    let peter = fake.add_contact("peter@initech.example", "Peter", "Gibbons");
    let no_email = fake.add_contact("", "No", "Email");
    fake.associate(&bob, &initech);
    fake.associate(&peter, &initech);

    // Companies only, at first: no contact is read.
    let run = sync(&setup, "BACKFILL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[0], 1, "{run}");
    assert!(
        fake.requests().iter().all(|r| !r.path.contains("contacts")),
        "contacts read before contact sync was on"
    );

    // Turned on later: the next run lists the contacts there are, then goes on.
    ok(&admin(
        portal,
        CONFIGURE,
        json!({ "id": setup.integration, "input": { "syncContacts": true } }),
    )
    .await?)?;
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    // Bob; Peter would need an invitation, which the integrator role may not send
    // (deny by default), and a contact without email is no user.
    assert_eq!(counts(&run)[0], 1, "{run}");
    assert_eq!(
        failed_ids(&run),
        BTreeSet::from([peter.clone(), no_email.clone()])
    );
    let failures = run["failures"].to_string();
    assert!(
        failures.contains(&peter) && failures.contains("FORBIDDEN"),
        "{failures}"
    );
    assert!(failures.contains(&no_email), "{failures}");
    let members = "query($id: ID!) { account(id: $id) { members { id } } }";
    let initech_account = hubspot_accounts(portal).await?[0]["id"].clone();
    let listed = admin(portal, members, json!({ "id": initech_account })).await?;
    ok(&listed)?;
    assert_eq!(
        listed["data"]["account"]["members"],
        json!([{ "id": portal.seed.bob_id.to_string() }]),
        "{listed}"
    );

    // An admin lets the connector invite: the next run invites Peter and adds him.
    let added = admin(
        portal,
        "mutation { addPolicyRule(input: { role: \"integrator\", object: \"Mutation.createUser\", action: WRITE, effect: ALLOW }) { id } }",
        json!({}),
    )
    .await?;
    ok(&added)?;
    fake.update_contact(&peter, &[("jobtitle", "Engineer")]);
    let mut invited = false;
    for _ in 0..20 {
        let run = sync(&setup, "INCREMENTAL").await?;
        if counts(&run)[0] == 1 {
            invited = true;
            break;
        }
        // The gateway picks the rule up within a second or so.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        fake.update_contact(&peter, &[("jobtitle", "Engineer")]);
    }
    assert!(invited, "the invitation never went out");
    let listed = admin(portal, members, json!({ "id": initech_account })).await?;
    assert_eq!(
        listed["data"]["account"]["members"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{listed}"
    );
    let invitations = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("user.create"))
        .all(&portal.db)
        .await?;
    assert_eq!(invitations.len(), 1);
    setup.portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn hubspot_search_pages_past_the_result_cap_and_waits_out_limits() -> anyhow::Result<()> {
    let fake = FakeHubSpot::start().await?;
    fake.set_search_rate_limit(50);
    let remote =
        portal_integrations::sync::remote_for_jobs().map_err(|e| anyhow::anyhow!("{e}"))?;
    // Paced faster than HubSpot allows (the fake's search limit is raised to match).
    let paced = Paced {
        key: "cap-test".into(),
        calls: Rate::within(1000, std::time::Duration::from_secs(1), 100),
        searches: Rate::within(40, std::time::Duration::from_secs(1), 10),
    };
    let hubspot = HubSpot::new(
        &fake.base_url(),
        Auth::Token(Some(fake_hubspot::PRIVATE_APP_TOKEN.into())),
        None,
        Objects::from_settings(None),
        remote,
        paced,
    );
    // 10 100 companies changed in one millisecond (past the cap at one time: read by id),
    // then 250 more, all longer ago than the search index lag.
    let then = fake.now_ms() - 10 * LAG_MS;
    fake.add_companies_bulk_at(10_100, then);
    fake.add_companies_bulk_at(250, then + 5);
    let mut cursor = hubspot
        .incremental_cursor()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    cursor["since"]["companies"] = json!(then - 1000);
    cursor["deletedSince"]["companies"] = json!(then - 1000);
    // An outage and rate limits on the way (search's, and the ten-second one with a
    // `Retry-After`) are waited out within the calls.
    fake.fail_next(1, Fault::ServerError);
    fake.fail_next(1, Fault::SearchSecondly);
    fake.fail_next(
        1,
        Fault::TenSecondly {
            retry_after: Some(1),
        },
    );
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = hubspot
            .pull(&cursor)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        pages += 1;
        anyhow::ensure!(pages < 200, "no end in sight");
        for record in &page.records {
            assert!(!record.deleted);
            seen.insert(record.external_id.clone());
        }
        cursor = page.next;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen.len(), 10_350, "every company is read");
    // The watermark moved to the newest change read.
    assert_eq!(cursor["since"]["companies"], json!(then + 5), "{cursor}");
    assert_eq!(cursor["phase"], "search");
    // Paced: never more searches in a second than the pace allows (40 a second, 10 at
    // once).
    let searches: Vec<std::time::Instant> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/search"))
        .map(|r| r.at)
        .collect();
    let busiest = searches
        .iter()
        .map(|start| {
            searches
                .iter()
                .filter(|at| {
                    **at >= *start && at.duration_since(*start) < std::time::Duration::from_secs(1)
                })
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(busiest <= 50, "{busiest} searches in one second");
    // Pages go by time: no search pages by position, so none nears the cap.
    for request in fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/search"))
    {
        let body: Value = serde_json::from_str(&request.body)?;
        let after: u64 = body["after"].as_str().unwrap_or("0").parse()?;
        assert!(after + 200 <= 10_000, "{}", request.body);
    }

    // The next run reads only what changed since: the newest millisecond again (its
    // records are unchanged to the sync) and the new company.
    let changed = fake.add_company("Fresh", "fresh.example");
    let mut again = BTreeSet::new();
    loop {
        let page = hubspot
            .pull(&cursor)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        again.extend(page.records.iter().map(|r| r.external_id.clone()));
        cursor = page.next;
        if !page.more {
            break;
        }
    }
    assert!(again.contains(&changed));
    assert_eq!(
        again.len(),
        251,
        "only the boundary millisecond is read again"
    );
    Ok(())
}

#[tokio::test]
async fn hubspot_search_reads_records_changed_between_pages() -> anyhow::Result<()> {
    let fake = FakeHubSpot::start().await?;
    fake.set_search_rate_limit(50);
    let remote =
        portal_integrations::sync::remote_for_jobs().map_err(|e| anyhow::anyhow!("{e}"))?;
    let hubspot = HubSpot::new(
        &fake.base_url(),
        Auth::Token(Some(fake_hubspot::PRIVATE_APP_TOKEN.into())),
        None,
        Objects::from_settings(None),
        remote,
        Paced {
            key: "moving".into(),
            calls: Rate::within(1000, std::time::Duration::from_secs(1), 100),
            searches: Rate::within(40, std::time::Duration::from_secs(1), 10),
        },
    );
    // 450 companies a millisecond apart.
    let start = fake.now_ms();
    fake.add_companies_bulk(450);
    let mut cursor = hubspot
        .incremental_cursor()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    cursor["since"]["companies"] = json!(start - 10_000);
    let first = hubspot
        .pull(&cursor)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(first.records.len(), 200);
    let mut seen: BTreeSet<String> = first
        .records
        .iter()
        .map(|r| r.external_id.clone())
        .collect();
    // A company of the first page changes before the second is read: it moves to the end
    // of the order, and every other slides up one place.
    let moved = first.records[10].external_id.clone();
    fake.update_company(&moved, &[("name", "Moved Along")]);
    cursor = first.next;
    let mut moved_again = false;
    loop {
        let page = hubspot
            .pull(&cursor)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for record in &page.records {
            moved_again |=
                record.external_id == moved && record.body["properties"]["name"] == "Moved Along";
            seen.insert(record.external_id.clone());
        }
        cursor = page.next;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen.len(), 450, "a company slid past the pages");
    assert!(moved_again, "the change itself is read");
    Ok(())
}

#[tokio::test]
async fn hubspot_webhooks_are_verified_and_start_a_run() -> anyhow::Result<()> {
    let setup = setup(Mode::AllInOne).await?;
    let (portal, fake) = (&setup.portal, &setup.fake.clone());
    let company = fake.add_company("Umbrella", "umbrella.example");
    let url = portal.endpoint.replace(
        "/graphql",
        &format!("/integrations/{}/webhook", setup.integration),
    );
    let body = fake.webhook_payload(&[("company.propertyChange", company.as_str())]);
    let send = |secret: &str, at: i64| {
        let signature = fake_hubspot::sign_v3(secret, "POST", &url, &body, at);
        portal
            .http()
            .post(&url)
            .header("x-hubspot-signature-v3", signature)
            .header("x-hubspot-request-timestamp", at.to_string())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(send("someone-else", now).await?.status(), 400);
    assert_eq!(
        send(fake_hubspot::CLIENT_SECRET, now - 400_000)
            .await?
            .status(),
        400
    );
    // v1 signatures carry no time: not accepted.
    let v1 = portal
        .http()
        .post(&url)
        .header(
            "x-hubspot-signature",
            fake_hubspot::sign_v1(fake_hubspot::CLIENT_SECRET, &body),
        )
        .header("x-hubspot-signature-version", "v1")
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(v1.status(), 400);
    ok(&admin(
        portal,
        CONFIGURE,
        json!({ "id": setup.integration, "input": { "newAccounts": { "ownerId": portal.seed.alice_id, "currency": "EUR" } } }),
    )
    .await?)?;
    sync(&setup, "BACKFILL").await?;

    fake.update_company(&company, &[("domain", "umbrella-corp.example")]);
    let genuine = send(fake_hubspot::CLIENT_SECRET, now).await?;
    assert_eq!(genuine.status(), 200);
    let run = last_run(portal, &setup.integration).await?;
    assert_eq!(
        (run["mode"].clone(), run["status"].clone()),
        (json!("INCREMENTAL"), json!("RUNNING")),
        "{run}"
    );
    drain(&setup.runner).await?;
    let run = last_run(portal, &setup.integration).await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[1], 1, "{run}");
    let refused = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("integration.webhook_receive"))
        .filter(audit_event::Column::Outcome.eq("failure"))
        .all(&portal.db)
        .await?;
    assert_eq!(refused.len(), 3);
    let runs = admin(portal, RUNS, json!({ "id": setup.integration })).await?;
    ok(&runs)?;
    let rows = account::Entity::find()
        .filter(account::Column::Number.eq(format!("HS-{company}")))
        .all(&portal.db)
        .await?;
    assert_eq!(rows.len(), 1);
    setup.portal.stop().await;
    Ok(())
}

const START_AUTHORIZATION: &str = "mutation($id: ID!, $redirect: String!) { startIntegrationAuthorization(id: $id, redirectUri: $redirect) { authorizeUrl expiresAt } }";
const COMPLETE_AUTHORIZATION: &str = "mutation($id: ID!, $code: String!, $state: String!) { completeIntegrationAuthorization(id: $id, code: $code, state: $state) { authMethod health } }";

#[tokio::test]
async fn hubspot_connects_with_oauth_and_renews_its_tokens() -> anyhow::Result<()> {
    let setup = setup(Mode::AllInOne).await?;
    let (portal, fake) = (&setup.portal, &setup.fake.clone());
    let id = setup.integration.clone();
    // The app's own credentials instead of a private-app token: client credentials.
    let configured = admin(
        portal,
        "mutation($id: ID!, $input: ConfigureIntegrationInput!) { configureIntegration(id: $id, input: $input) { authMethod } }",
        json!({ "id": id, "input": {
            "apiKey": "",
            "oauthClientId": fake_hubspot::CLIENT_ID,
            "oauthClientSecret": fake_hubspot::CLIENT_SECRET,
            "newAccounts": { "ownerId": portal.seed.alice_id, "currency": "EUR" },
        }}),
    )
    .await?;
    ok(&configured)?;
    assert_eq!(
        configured["data"]["configureIntegration"]["authMethod"],
        "OAUTH_CLIENT_CREDENTIALS"
    );
    assert!(connects(portal, &id).await?);
    assert_eq!(fake.token_requests(), 1);

    // A person authorizes: only tenant admins may start it.
    let redirect = "https://portal.example/integrations/hubspot/callback";
    let seed = &portal.seed;
    let integrator = portal
        .query_with_roles(
            seed.tenant_id,
            seed.bob_id,
            &["integrator"],
            START_AUTHORIZATION,
            json!({ "id": id, "redirect": redirect }),
        )
        .await?;
    assert_eq!(code(&integrator), "FORBIDDEN", "{integrator}");
    // Another tenant's admin does not find the integration at all.
    let stranger = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            START_AUTHORIZATION,
            json!({ "id": id, "redirect": redirect }),
        )
        .await?;
    assert_eq!(code(&stranger), "NOT_FOUND", "{stranger}");
    let insecure = admin(
        portal,
        START_AUTHORIZATION,
        json!({ "id": id, "redirect": "http://portal.example/callback" }),
    )
    .await?;
    assert_eq!(code(&insecure), "BAD_USER_INPUT", "{insecure}");
    // A code HubSpot refuses: refused here too (audited), and the authorization is over.
    let started = admin(
        portal,
        START_AUTHORIZATION,
        json!({ "id": id, "redirect": redirect }),
    )
    .await?;
    ok(&started)?;
    let url = text(&started["data"]["startIntegrationAuthorization"]["authorizeUrl"]);
    let (_, state) = fake.consent(&url)?;
    let refused = admin(
        portal,
        COMPLETE_AUTHORIZATION,
        json!({ "id": id, "code": "not-a-code", "state": state }),
    )
    .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["field"], "code",
        "{refused}"
    );
    let failed = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("integration.authorize"))
        .filter(audit_event::Column::Outcome.eq("failure"))
        .all(&portal.db)
        .await?;
    assert_eq!(failed.len(), 1);

    let started = admin(
        portal,
        START_AUTHORIZATION,
        json!({ "id": id, "redirect": redirect }),
    )
    .await?;
    ok(&started)?;
    let url = text(&started["data"]["startIntegrationAuthorization"]["authorizeUrl"]);
    assert!(url.contains("scope=crm.objects.companies.read"), "{url}");
    let (consent_code, state) = fake.consent(&url)?;
    let forged = admin(
        portal,
        COMPLETE_AUTHORIZATION,
        json!({ "id": id, "code": consent_code, "state": "forged" }),
    )
    .await?;
    assert_eq!(
        forged["errors"][0]["extensions"]["field"], "state",
        "{forged}"
    );
    let completed = admin(
        portal,
        COMPLETE_AUTHORIZATION,
        json!({ "id": id, "code": consent_code, "state": state }),
    )
    .await?;
    ok(&completed)?;
    assert_eq!(
        completed["data"]["completeIntegrationAuthorization"]["authMethod"],
        "OAUTH_AUTHORIZATION_CODE"
    );
    // The state is good once.
    let again = admin(
        portal,
        COMPLETE_AUTHORIZATION,
        json!({ "id": id, "code": consent_code, "state": state }),
    )
    .await?;
    assert_eq!(code(&again), "BAD_USER_INPUT", "{again}");
    let row =
        portal_entities::integrations::integration::Entity::find_by_id(uuid::Uuid::parse_str(&id)?)
            .one(&portal.db)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the integration"))?;
    let sealed = row.credentials_sealed.unwrap_or_default();
    assert!(!sealed.contains(fake_hubspot::REFRESH_TOKEN) && !sealed.contains("CJfake"));
    let authorized = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("integration.authorize"))
        .filter(audit_event::Column::Outcome.eq("success"))
        .all(&portal.db)
        .await?;
    assert_eq!(authorized.len(), 1);

    // Sync calls with the authorized token.
    fake.add_company("Initech", "initech.example");
    fake.clear_requests();
    let run = sync(&setup, "BACKFILL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(counts(&run)[0], 1, "{run}");
    assert!(
        fake.requests().iter().all(|r| r
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer CJfake"))),
        "every call carries an OAuth token"
    );

    // A token HubSpot says expired: renewed once (kept for the next job), the call made
    // again, the run unharmed.
    let before = fake.token_requests();
    fake.expire_access_tokens();
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(fake.token_requests(), before + 1);
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        fake.token_requests(),
        before + 1,
        "the renewed token was kept"
    );

    // Short-lived tokens are renewed in the second half of their life (not at every
    // call: the unit tests pin that down).
    fake.set_token_ttl(2);
    fake.expire_access_tokens();
    sync(&setup, "INCREMENTAL").await?;
    let before = fake.token_requests();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        fake.token_requests(),
        before + 1,
        "renewed in the second half of its life"
    );

    // Access revoked in HubSpot: the run fails saying to reconnect, and the integration
    // is FAILING.
    fake.revoke_refresh_token();
    fake.expire_access_tokens();
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert!(text(&run["error"]).contains("reconnect"), "{run}");
    let state = admin(portal, RUNS, json!({ "id": id })).await?;
    assert_eq!(state["data"]["integration"]["health"], "FAILING", "{state}");
    setup.portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn hubspot_health_says_what_failed_and_how_far_behind_sync_is() -> anyhow::Result<()> {
    let setup = setup(Mode::AllInOne).await?;
    let (portal, fake) = (&setup.portal, &setup.fake.clone());
    let id = setup.integration.clone();
    const HEALTH: &str = "query($id: ID!) { integration(id: $id) { health lastSuccessAt lastErrorKind lastError syncLagSeconds errorRate } }";
    let health = |vars: Value| async move { admin(portal, HEALTH, vars).await };
    let before = health(json!({ "id": id })).await?;
    ok(&before)?;
    assert_eq!(
        before["data"]["integration"],
        json!({ "health": "UNKNOWN", "lastSuccessAt": null, "lastErrorKind": null, "lastError": null, "syncLagSeconds": null, "errorRate": null })
    );

    // One company of two fails (no new-account defaults, one linked by hand).
    let linked = fake.add_company("Linked", "linked.example");
    fake.add_company("Unlinked", "unlinked.example");
    let account = admin(
        portal,
        "mutation($owner: ID!) { createAccount(input: { name: \"Linked\", number: \"LINK-0001\", currency: \"EUR\", ownerId: $owner }) { id } }",
        json!({ "owner": portal.seed.alice_id }),
    )
    .await?;
    ok(&account)?;
    ok(&admin(
        portal,
        "mutation($i: ID!, $a: ID!, $e: String!) { linkExternalRef(input: { integrationId: $i, accountId: $a, externalId: $e }) { id } }",
        json!({ "i": id, "a": account["data"]["createAccount"]["id"], "e": linked }),
    )
    .await?)?;
    let run = sync(&setup, "BACKFILL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let after = health(json!({ "id": id })).await?;
    let state = &after["data"]["integration"];
    assert!(state["lastSuccessAt"].is_string(), "{after}");
    assert!(
        state["syncLagSeconds"]
            .as_i64()
            .is_some_and(|lag| (0..60).contains(&lag)),
        "{after}"
    );
    // Half the records read failed (each is read twice: listed, then searched again).
    assert_eq!(state["errorRate"], json!(0.5), "{after}");

    // Revoked: classified so an admin knows to reconnect.
    ok(&admin(
        portal,
        CONFIGURE,
        json!({ "id": id, "input": { "apiKey": "pat-na1-revoked" } }),
    )
    .await?)?;
    let run = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(run["status"], "FAILED", "{run}");
    let failed = health(json!({ "id": id })).await?;
    let state = &failed["data"]["integration"];
    assert_eq!(state["health"], "FAILING", "{failed}");
    assert_eq!(state["lastErrorKind"], "AUTH_REVOKED", "{failed}");

    // Outages are told apart from refusals.
    ok(&admin(
        portal,
        CONFIGURE,
        json!({ "id": id, "input": { "apiKey": fake_hubspot::PRIVATE_APP_TOKEN } }),
    )
    .await?)?;
    fake.fail_next(1, Fault::ServerError);
    assert!(!connects(portal, &id).await?);
    let down = health(json!({ "id": id })).await?;
    assert_eq!(
        down["data"]["integration"]["lastErrorKind"], "REMOTE_DOWN",
        "{down}"
    );
    // And an answer that is not what HubSpot documents (cut short) is bad data.
    fake.fail_next(1, Fault::Malformed);
    assert!(!connects(portal, &id).await?);
    let bad = health(json!({ "id": id })).await?;
    assert_eq!(
        bad["data"]["integration"]["lastErrorKind"], "BAD_DATA",
        "{bad}"
    );
    setup.portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn runs_whose_job_is_gone_are_ended_and_quiet_runs_leave_no_trail() -> anyhow::Result<()> {
    use portal_integrations::store::connectors as state;
    let setup = setup(Mode::AllInOne).await?;
    let (portal, fake) = (&setup.portal, &setup.fake.clone());
    ok(&admin(
        portal,
        CONFIGURE,
        json!({ "id": setup.integration, "input": { "newAccounts": { "ownerId": portal.seed.alice_id, "currency": "EUR" } } }),
    )
    .await?)?;
    fake.add_company("Vandelay", "vandelay.example");
    let run = sync(&setup, "BACKFILL").await?;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");

    // Runs the schedule starts that change nothing write no audit rows (nor events).
    let trail = || async {
        Ok::<_, anyhow::Error>(
            audit_event::Entity::find()
                .filter(audit_event::Column::Action.starts_with("integration_sync."))
                .all(&portal.db)
                .await?
                .len(),
        )
    };
    let before = trail().await?;
    let integration_id = uuid::Uuid::parse_str(&setup.integration)?;
    let meta = portal_kit::RequestMeta::default();
    let quiet = state::start_run(
        &portal.db,
        &portal_kit::Actor::anonymous(),
        &meta,
        portal.seed.tenant_id,
        integration_id,
        portal_integrations::domain::sync::RunMode::Incremental,
        None,
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    drain(&setup.runner).await?;
    let ran = last_run(portal, &setup.integration).await?;
    assert_eq!(ran["id"], quiet.id.to_string());
    assert_eq!(ran["status"], "SUCCEEDED", "{ran}");
    assert_eq!(
        trail().await?,
        before,
        "a quiet scheduled run left audit rows"
    );
    // One that changes something is told.
    fake.add_company("Kramerica", "kramerica.example");
    state::start_run(
        &portal.db,
        &portal_kit::Actor::anonymous(),
        &meta,
        portal.seed.tenant_id,
        integration_id,
        portal_integrations::domain::sync::RunMode::Incremental,
        None,
    )
    .await
    .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    drain(&setup.runner).await?;
    assert_eq!(trail().await?, before + 1);

    // A run whose job an administrator cancelled is ended by the sweep, so the
    // integration can sync again.
    let started = admin(
        portal,
        START,
        json!({ "id": setup.integration, "mode": "INCREMENTAL" }),
    )
    .await?;
    ok(&started)?;
    let job = portal_entities::platform::job::Entity::find()
        .filter(portal_entities::platform::job::Column::Kind.eq("integration.sync"))
        .filter(portal_entities::platform::job::Column::State.eq("queued"))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the run's job"))?;
    // A run in the middle of a job (its pages moved on, the job keyed by its first page)
    // is alive however long it has run.
    let run_id =
        uuid::Uuid::parse_str(text(&started["data"]["startIntegrationSync"]["id"]).as_str())?;
    portal_entities::integrations::sync_run::Entity::update_many()
        .col_expr(
            portal_entities::integrations::sync_run::Column::Pages,
            sea_orm::sea_query::Expr::value(3),
        )
        .filter(portal_entities::integrations::sync_run::Column::Id.eq(run_id))
        .exec(&portal.db)
        .await?;
    let now = chrono::Utc::now();
    let much_later = now + chrono::Duration::hours(3);
    assert_eq!(
        state::fail_orphaned_runs(&portal.db, much_later)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        0,
        "a run whose job is queued is alive"
    );
    portal_kit::jobs::cancel(&portal.db, now, job.tenant_id, job.id)
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    assert_eq!(
        state::fail_orphaned_runs(&portal.db, now)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        0,
        "too soon"
    );
    let later = now + chrono::Duration::minutes(11);
    assert_eq!(
        state::fail_orphaned_runs(&portal.db, later)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        1
    );
    let ended = last_run(portal, &setup.integration).await?;
    assert_eq!(ended["status"], "FAILED", "{ended}");
    assert!(text(&ended["error"]).contains("cancelled"), "{ended}");
    let again = sync(&setup, "INCREMENTAL").await?;
    assert_eq!(again["status"], "SUCCEEDED", "{again}");
    setup.portal.stop().await;
    Ok(())
}
