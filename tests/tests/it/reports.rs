//! Reports that run: definitions checked against the supergraph when saved, runs produced
//! by a job that reads through the gateway as the report's owner (their current roles,
//! field policies and memberships), files read back in each format, failures that name
//! what the owner may not read, and audit events that name the delegation.

use std::io::Cursor;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::Utc;
use portal_entities::platform::audit_event;
use portal_entities::reports::report_run;
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value, json};
use uuid::Uuid;

const CREATE: &str = "mutation($input: CreateReportDefinitionInput!) {
    createReportDefinition(input: $input) {
        id version query { dataset { field arguments } columns { path label } limit }
    }
}";
const RUN: &str = "mutation($d: ID!) { requestReportRun(definitionId: $d) { id status cause } }";
const FOLLOW: &str = "query($id: ID!) { reportRun(id: $id) {
    id status cause error errorDetail rowCount bytes definitionVersion format durationMs manifest
    runAs { id } requestedBy { id }
    file { name contentType sizeBytes sha256 rowCount download { url } }
} }";

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

fn data<'a>(response: &'a Value, field: &str) -> anyhow::Result<&'a Value> {
    anyhow::ensure!(response["errors"].is_null(), "{field} failed: {response}");
    Ok(&response["data"][field])
}

/// Creates a definition as Bob (billing admin); its id.
async fn define(portal: &TestPortal, input: Value) -> anyhow::Result<String> {
    let created = as_role(
        portal,
        portal.seed.bob_id,
        "billing_admin",
        CREATE,
        json!({ "input": input }),
    )
    .await?;
    Ok(data(&created, "createReportDefinition")?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Requests a run as `user` holding `role` and waits until it is finished; the run.
async fn run_to_end(
    portal: &TestPortal,
    (user, role): (Uuid, &str),
    definition: &str,
) -> anyhow::Result<Value> {
    let requested = as_role(portal, user, role, RUN, json!({ "d": definition })).await?;
    let run = data(&requested, "requestReportRun")?.clone();
    assert_eq!(run["status"], "QUEUED", "{run}");
    for _ in 0..300 {
        let followed = as_role(portal, user, role, FOLLOW, json!({ "id": run["id"] })).await?;
        let now = &followed["data"]["reportRun"];
        if matches!(now["status"].as_str(), Some("SUCCEEDED" | "FAILED")) {
            return Ok(followed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("run {} did not finish", run["id"])
}

async fn download(portal: &TestPortal, url: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let base = portal.endpoint.trim_end_matches("/graphql");
    let response = portal.http().get(format!("{base}{url}")).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

fn balances_report() -> Value {
    json!({
        "name": "Balances by owner", "kind": "CUSTOM", "format": "CSV",
        "query": {
            "dataset": [{ "field": "accounts" }],
            "columns": [{ "path": "number" }, { "path": "owner.displayName", "label": "Owner" },
                        { "path": "balance" }, { "path": "currency" }],
            "limit": 1000
        }
    })
}

#[tokio::test]
async fn a_custom_report_runs_as_its_owner_across_subgraphs() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let definition = define(&portal, balances_report()).await?;
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let run = &run["data"]["reportRun"];
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["cause"], "MANUAL");
    assert_eq!(run["definitionVersion"], 1);
    assert_eq!(run["format"], "CSV");
    assert_eq!(run["runAs"]["id"], seed.bob_id.to_string());
    assert!(run["durationMs"].as_i64().is_some(), "{run}");

    // What Bob's own request reads, row for row.
    let own = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        "{ accounts(first: 100) { edges { node { number owner { displayName } balance currency } } } }",
        json!({}),
    )
    .await?;
    let expected: Vec<String> = data(&own, "accounts")?["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| {
            let node = &edge["node"];
            let balance: rust_decimal::Decimal = node["balance"]
                .as_str()
                .unwrap_or("0")
                .parse()
                .unwrap_or_default();
            format!(
                "{},{},{},{}",
                node["number"].as_str().unwrap_or_default(),
                node["owner"]["displayName"].as_str().unwrap_or_default(),
                balance.normalize(),
                node["currency"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(expected.len() >= 3, "{own}");
    let file = &run["file"];
    assert_eq!(file["rowCount"], expected.len());
    assert_eq!(run["rowCount"], expected.len());
    assert_eq!(file["contentType"], "text/csv; charset=utf-8");
    let (status, body) = download(&portal, file["download"]["url"].as_str().unwrap_or("")).await?;
    assert_eq!(status, 200);
    assert_eq!(run["bytes"], body.len());
    let text = String::from_utf8(body)?;
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("number,Owner,balance,currency"));
    assert_eq!(lines.collect::<Vec<_>>(), expected);

    // The run's work is audited for Bob, naming the delegation.
    let completed = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("report_run.complete"))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no report_run.complete"))?;
    assert_eq!(completed.actor_id, Some(seed.bob_id));
    let details = completed.details.unwrap_or_default();
    assert_eq!(details["delegation"]["by"], "reports");
    assert_eq!(
        details["delegation"]["purpose"],
        format!("report run {}", run["id"].as_str().unwrap_or_default())
    );
    // Another tenant sees nothing of it.
    let peek = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["billing_admin"],
            FOLLOW,
            json!({ "id": run["id"] }),
        )
        .await?;
    assert_eq!(peek["data"]["reportRun"], Value::Null, "{peek}");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn definitions_are_checked_against_the_supergraph_when_saved() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let with_query =
        |query: Value| json!({ "name": "Bad", "kind": "CUSTOM", "format": "CSV", "query": query });
    let cases = [
        (
            with_query(json!({ "dataset": [{ "field": "accounts" }],
                               "columns": [{ "path": "owner.nickname" }], "limit": 10 })),
            "`User` has no field `nickname`",
        ),
        (
            with_query(json!({ "dataset": [{ "field": "accounts" }],
                               "aggregates": [{ "function": "SUM", "path": "number" }], "limit": 10 })),
            "SUM of `number` needs a number",
        ),
        (
            with_query(json!({ "dataset": [{ "field": "me" }],
                               "columns": [{ "path": "id" }], "limit": 10 })),
            "is not a paginated list",
        ),
        (
            json!({ "name": "No query", "kind": "CUSTOM", "format": "CSV" }),
            "a custom report needs a query",
        ),
    ];
    for (input, expected) in cases {
        let response = as_role(
            &portal,
            seed.bob_id,
            "billing_admin",
            CREATE,
            json!({ "input": input }),
        )
        .await?;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{input}: {response}"
        );
        let message = response["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(expected), "{input}: {message}");
    }
    // A field the caller's roles may not read is refused by name: support staff and
    // balances (Alice, holding only support_agent here, with the policies' grant to save).
    let response = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["support_agent", "billing_admin"],
            CREATE,
            json!({ "input": balances_report() }),
        )
        .await?;
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("may not read `balance`"), "{response}");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_run_uses_the_owners_rights_when_it_runs_and_fails_closed() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let definition = define(&portal, balances_report()).await?;
    // Bob becomes support staff too, whose rules deny balances (a deny wins): his next run
    // fails, naming the field, though he could read it when he saved the report.
    portal.grant_role(seed.bob_id, "support_agent").await?;
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let run = &run["data"]["reportRun"];
    assert_eq!(run["status"], "FAILED", "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("may not read `balance`")),
        "{run}"
    );
    assert_eq!(run["file"], Value::Null);
    // The full detail is for admins: Bob reads `error` but not `errorDetail`.
    assert_eq!(run["errorDetail"], Value::Null, "{run}");
    let admin = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        FOLLOW,
        json!({ "id": run["id"] }),
    )
    .await?;
    assert!(
        admin["data"]["reportRun"]["errorDetail"]
            .as_str()
            .is_some_and(|d| d.contains("FORBIDDEN at accounts.edges.0.node.balance")),
        "{admin}"
    );
    let failed = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("report_run.fail"))
        .order_by_desc(audit_event::Column::CreatedAt)
        .one(&portal.db)
        .await?;
    assert!(failed.is_some());
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn grouped_reports_sum_exactly_and_read_back_as_typed_cells() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::Distributed).await?;
    let seed = portal.seed.clone();
    let operating = portal.account_id("ACME-0001").await?;
    for (i, amount) in ["0.10", "0.20", "12.3456"].iter().enumerate() {
        let posted = as_role(
            &portal,
            seed.bob_id,
            "billing_admin",
            "mutation($input: PostLedgerEntryInput!) { postLedgerEntry(input: $input) { id } }",
            json!({ "input": { "accountId": operating, "kind": "CHARGE", "amount": amount,
                               "currency": "USD", "idempotencyKey": format!("grouped-{i}") } }),
        )
        .await?;
        data(&posted, "postLedgerEntry")?;
    }
    let definition = define(
        &portal,
        json!({
            "name": "Charges by kind", "kind": "CUSTOM", "format": "XLSX",
            "query": {
                "dataset": [{ "field": "account", "arguments": { "id": operating } },
                            { "field": "ledgerEntries", "arguments": { "filter": { "kinds": ["CHARGE"] } } }],
                "groupBy": [{ "path": "kind" }],
                "aggregates": [{ "function": "COUNT", "label": "entries" },
                               { "function": "SUM", "path": "amount", "label": "total" },
                               { "function": "MAX", "path": "postedAt", "label": "last" }],
                "limit": 10000
            }
        }),
    )
    .await?;
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let run = &run["data"]["reportRun"];
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["rowCount"], 1);
    let (status, body) = download(
        &portal,
        run["file"]["download"]["url"].as_str().unwrap_or(""),
    )
    .await?;
    assert_eq!(status, 200);
    let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(body))?;
    let sheet = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| anyhow::anyhow!("no sheet"))??;
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(
        rows[0],
        vec![
            Data::String("kind".into()),
            Data::String("entries".into()),
            Data::String("total".into()),
            Data::String("last".into())
        ]
    );
    assert_eq!(rows[1][0], Data::String("CHARGE".into()));
    assert_eq!(rows[1][1], Data::Float(3.0));
    // Charges are posted as debits: 0.10 + 0.20 + 12.3456 owed, summed exactly.
    assert_eq!(rows[1][2], Data::Float(-12.6456));
    assert!(matches!(rows[1][3], Data::DateTime(_)), "{:?}", rows[1][3]);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn schedules_are_checked_shown_in_their_zone_and_start_runs_when_due() -> anyhow::Result<()> {
    use portal_entities::platform::job_schedule;
    use portal_entities::reports::report_run;
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let mut input = balances_report();
    // An hour and minute out of range; a time zone that does not exist.
    for (schedule, zone) in [("99 99 * * *", "UTC"), ("0 6 * * MON", "Mars/Olympus")] {
        input["schedule"] = json!(schedule);
        input["timeZone"] = json!(zone);
        let refused = as_role(
            &portal,
            seed.bob_id,
            "billing_admin",
            CREATE,
            json!({ "input": input.clone() }),
        )
        .await?;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{schedule} in {zone}: {refused}"
        );
    }

    input["timeZone"] = json!("Europe/Berlin");
    let created = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        "mutation($input: CreateReportDefinitionInput!) { createReportDefinition(input: $input) {
            id schedule timeZone paused nextRunAt scheduleDescription } }",
        json!({ "input": input }),
    )
    .await?;
    let created = data(&created, "createReportDefinition")?.clone();
    assert_eq!(created["schedule"], "0 6 * * MON");
    assert_eq!(created["timeZone"], "Europe/Berlin");
    // Next Monday 06:00 in Berlin: 04:00 or 05:00 UTC depending on the season.
    let next = chrono::DateTime::parse_from_rfc3339(created["nextRunAt"].as_str().unwrap_or(""))?;
    let local = next.with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!(
        local.format("%a %H:%M").to_string(),
        "Mon 06:00",
        "{created}"
    );
    assert!(created["scheduleDescription"].is_string(), "{created}");
    let id: Uuid = created["id"].as_str().unwrap_or_default().parse()?;
    let name = format!("report:{id}");
    let schedule = job_schedule::Entity::find_by_id(name.clone())
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no job schedule"))?;
    assert_eq!(schedule.next_run_at, next.with_timezone(&Utc));

    // Paused: no schedule, no next run; resumed: back.
    let update = "mutation($id: ID!, $input: UpdateReportDefinitionInput!) {
        updateReportDefinition(id: $id, input: $input) { paused nextRunAt } }";
    let paused = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        update,
        json!({ "id": id, "input": { "paused": true } }),
    )
    .await?;
    assert_eq!(
        data(&paused, "updateReportDefinition")?["nextRunAt"],
        Value::Null
    );
    assert!(
        job_schedule::Entity::find_by_id(name.clone())
            .one(&portal.db)
            .await?
            .is_none()
    );
    let resumed = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        update,
        json!({ "id": id, "input": { "paused": false } }),
    )
    .await?;
    assert!(data(&resumed, "updateReportDefinition")?["nextRunAt"].is_string());

    // Its occurrence comes due (as after downtime: long past): one scheduled run, asked
    // for by nobody, produced as the owner.
    let mut due: job_schedule::ActiveModel = job_schedule::Entity::find_by_id(name.clone())
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no job schedule"))?
        .into();
    due.next_run_at = Set(Utc::now() - chrono::Duration::days(30));
    sea_orm::ActiveModelTrait::update(due, &portal.db).await?;
    let mut finished = None;
    for _ in 0..300 {
        let runs = report_run::Entity::find()
            .filter(report_run::Column::DefinitionId.eq(id))
            .all(&portal.db)
            .await?;
        if runs
            .iter()
            .any(|r| r.status == "SUCCEEDED" || r.status == "FAILED")
        {
            finished = Some(runs);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = finished.ok_or_else(|| anyhow::anyhow!("no scheduled run finished"))?;
    assert_eq!(
        runs.len(),
        1,
        "one catch-up run, not one per missed week: {runs:?}"
    );
    let run = &runs[0];
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert_eq!(run.cause, "SCHEDULED");
    assert_eq!(run.requested_by, None);
    assert_eq!(run.run_as, Some(seed.bob_id));
    let after = job_schedule::Entity::find_by_id(name)
        .one(&portal.db)
        .await?;
    assert!(after.is_some_and(|s| s.next_run_at > Utc::now()));
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn scheduled_definitions_saved_before_schedules_ran_are_adopted_once() -> anyhow::Result<()> {
    use portal_entities::platform::job_schedule;
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    // The demo data's monthly statements are scheduled but were inserted directly.
    let adopted = portal_reports::store::adopt_schedules(&portal.db)
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    assert!(adopted >= 1, "{adopted}");
    let schedules = job_schedule::Entity::find()
        .filter(job_schedule::Column::Kind.eq("reports.scheduled"))
        .all(&portal.db)
        .await?;
    assert_eq!(schedules.len(), adopted);
    assert!(schedules.iter().all(|s| s.cron == "0 6 1 * *" && s.enabled));
    let again = portal_reports::store::adopt_schedules(&portal.db)
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    assert_eq!(again, 0);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn previews_show_the_first_rows_as_the_caller_sees_them() -> anyhow::Result<()> {
    use portal_entities::reports::report_definition;
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    const PREVIEW: &str = "query($d: ID, $q: ReportQueryInput) {
        previewReport(definitionId: $d, query: $q) { columns { label kind } rows truncated note } }";
    let query = balances_report()["query"].clone();
    let bob = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        PREVIEW,
        json!({ "q": query.clone() }),
    )
    .await?;
    let bob = data(&bob, "previewReport")?.clone();
    assert_eq!(
        bob["columns"],
        json!([{ "label": "number", "kind": "TEXT" }, { "label": "Owner", "kind": "TEXT" },
               { "label": "balance", "kind": "DECIMAL" }, { "label": "currency", "kind": "TEXT" }])
    );
    assert_eq!(bob["truncated"], false);
    let billing_rows = bob["rows"].as_array().map_or(0, Vec::len);
    assert!(billing_rows >= 3, "{bob}");

    // Carol previews her own balance summary: only the accounts she is a member of.
    let summary = report_definition::Entity::find()
        .filter(report_definition::Column::OwnerId.eq(seed.carol_id))
        .filter(report_definition::Column::Kind.eq("BALANCE_SUMMARY"))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Carol has no balance summary"))?;
    let carol = as_role(
        &portal,
        seed.carol_id,
        "customer_user",
        PREVIEW,
        json!({ "d": summary.id.to_string() }),
    )
    .await?;
    let carol = data(&carol, "previewReport")?.clone();
    let numbers: Vec<&str> = carol["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row[0].as_str())
        .collect();
    assert!(
        !numbers.is_empty() && numbers.len() < billing_rows,
        "{carol}"
    );

    // Support staff may not read balances (a deny wins over the customer rules): refused
    // by name.
    let support = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["customer_user", "support_agent"],
            PREVIEW,
            json!({ "q": query }),
        )
        .await?;
    assert_eq!(
        support["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{support}"
    );
    assert!(
        support["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("may not read `balance`")),
        "{support}"
    );
    // Another tenant cannot preview acme's definition.
    let other = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["billing_admin"],
            PREVIEW,
            json!({ "d": summary.id.to_string() }),
        )
        .await?;
    assert_eq!(
        other["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{other}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn subscribers_follow_a_run_from_start_to_file() -> anyhow::Result<()> {
    use portal_entities::reports::report_run;
    use portal_tests::streams::WsClient;
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let definition: Uuid = define(&portal, balances_report()).await?.parse()?;
    // A run waiting for its job (enqueued below, once the subscriber listens).
    let run_id = Uuid::now_v7();
    sea_orm::ActiveModelTrait::insert(
        report_run::ActiveModel {
            id: Set(run_id),
            tenant_id: Set(seed.tenant_id),
            definition_id: Set(definition),
            requested_by: Set(Some(seed.bob_id)),
            status: Set("QUEUED".into()),
            row_count: Set(None),
            error: Set(None),
            created_at: Set(Utc::now()),
            started_at: Set(None),
            finished_at: Set(None),
            cause: Set("MANUAL".into()),
            definition_version: Set(Some(1)),
            format: Set(Some("CSV".into())),
            run_as: Set(None),
            file_id: Set(None),
            bytes: Set(None),
            error_detail: Set(None),
            manifest: Set(None),
            recipient_id: Set(None),
        },
        &portal.db,
    )
    .await?;
    let mut payload = serde_json::Map::new();
    payload.insert(
        "x-portal-tenant-id".into(),
        json!(seed.tenant_id.to_string()),
    );
    payload.insert("x-portal-user-id".into(), json!(seed.bob_id.to_string()));
    payload.insert("x-portal-roles".into(), json!("billing_admin"));
    let mut ws = WsClient::connect(&portal.endpoint, Value::Object(payload)).await?;
    ws.subscribe(
        "1",
        "subscription($id: ID!) { reportRunUpdated(id: $id) { status rowCount file { name } runAs { displayName } } }",
        json!({ "id": run_id }),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob = portal_kit::Actor::user(seed.bob_id, seed.tenant_id, vec!["billing_admin".into()]);
    let job = portal_kit::jobs::NewJob::new("reports.run", json!({ "runId": run_id }))
        .acting_for(&bob)
        .max_attempts(3);
    portal_kit::jobs::enqueue(&portal.db, Utc::now(), job)
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    // Each event is completed with the run as it is when the gateway fetches it: the
    // start may already read as finished under load, never the other way round.
    let mut seen = Vec::new();
    let done = loop {
        let next = ws.next().await?;
        let run = next["payload"]["data"]["reportRunUpdated"].clone();
        let status = run["status"].as_str().unwrap_or_default().to_owned();
        assert!(
            ["RUNNING", "SUCCEEDED"].contains(&status.as_str()),
            "{next}"
        );
        seen.push(status.clone());
        if status == "SUCCEEDED" {
            break run;
        }
    };
    assert!(seen.len() <= 2, "{seen:?}");
    let done = &done;
    assert!(done["rowCount"].as_i64().is_some_and(|n| n >= 3), "{done}");
    assert!(done["file"]["name"].is_string(), "{done}");
    assert!(done["runAs"]["displayName"].is_string(), "{done}");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_access_log_shows_previews_runs_views_and_downloads_to_admins() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let definition = define(&portal, balances_report()).await?;
    let previewed = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        "query($d: ID) { previewReport(definitionId: $d) { truncated } }",
        json!({ "d": definition }),
    )
    .await?;
    data(&previewed, "previewReport")?;
    // run_to_end views the run while it waits; then the file is downloaded.
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let url = run["data"]["reportRun"]["file"]["download"]["url"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(download(&portal, &url).await?.0, 200);

    const LOG: &str = "query($d: ID!) { reportAccessLog(definitionId: $d, first: 100) {
        edges { node { action outcome actorKind runId sourceIp userAgent actor { id } } } } }";
    let log = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        LOG,
        json!({ "d": definition }),
    )
    .await?;
    let entries: Vec<Value> = data(&log, "reportAccessLog")?["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| edge["node"].clone())
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions.first(), Some(&"PREVIEW"), "{actions:?}");
    assert_eq!(actions.get(1), Some(&"RUN"), "{actions:?}");
    // Polled many times within a minute (and read again by the download's check): once.
    assert_eq!(
        actions.iter().filter(|a| **a == "VIEW").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(actions.last(), Some(&"DOWNLOAD"), "{actions:?}");
    let bob = seed.bob_id.to_string();
    for entry in &entries {
        assert_eq!(entry["actor"]["id"], bob.as_str(), "{entry}");
        assert_eq!(entry["outcome"], "success", "{entry}");
    }
    let run_entry = entries
        .iter()
        .find(|e| e["action"] == "RUN")
        .cloned()
        .unwrap_or_default();
    assert_eq!(run_entry["runId"], run["data"]["reportRun"]["id"]);
    assert_eq!(run_entry["userAgent"], "portal-tests/1");

    // Auditors read it too; customers and billing admins do not; nor does another tenant.
    let auditor = as_role(
        &portal,
        seed.alice_id,
        "auditor",
        LOG,
        json!({ "d": definition }),
    )
    .await?;
    assert!(
        data(&auditor, "reportAccessLog")?["edges"]
            .as_array()
            .is_some_and(|e| e.len() == entries.len())
    );
    for role in ["customer_user", "billing_admin"] {
        let denied = as_role(&portal, seed.bob_id, role, LOG, json!({ "d": definition })).await?;
        assert_eq!(
            denied["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{role}: {denied}"
        );
    }
    let other = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            LOG,
            json!({ "d": definition }),
        )
        .await?;
    assert_eq!(
        other["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{other}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn large_reports_can_be_newline_delimited_json() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let mut input = balances_report();
    input["format"] = json!("NDJSON");
    let definition = define(&portal, input).await?;
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let run = &run["data"]["reportRun"];
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["file"]["contentType"], "application/x-ndjson");
    let (status, body) = download(
        &portal,
        run["file"]["download"]["url"].as_str().unwrap_or(""),
    )
    .await?;
    assert_eq!(status, 200);
    let rows: Vec<Value> = String::from_utf8(body)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(Some(rows.len() as i64), run["rowCount"].as_i64());
    assert!(
        rows.iter()
            .all(|row| row["Owner"].is_string() && row["number"].is_string())
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn pdf_reports_are_paginated_tables_that_read_back() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let mut input = balances_report();
    input["format"] = json!("PDF");
    input["name"] = json!("Soldes par propriétaire");
    input["timeZone"] = json!("Europe/Paris");
    let definition = define(&portal, input).await?;
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let run = &run["data"]["reportRun"];
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["format"], "PDF");
    assert_eq!(run["file"]["contentType"], "application/pdf");
    assert!(
        run["file"]["name"]
            .as_str()
            .unwrap_or_default()
            .ends_with(".pdf"),
        "{run}"
    );
    let (status, body) = download(
        &portal,
        run["file"]["download"]["url"].as_str().unwrap_or(""),
    )
    .await?;
    assert_eq!(status, 200);
    assert!(body.starts_with(b"%PDF-"));
    assert_eq!(run["bytes"], body.len());
    let Some(text) = portal_tests::pdf_text(&body)? else {
        portal.stop().await;
        return Ok(());
    };
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("Soldes par propriétaire"), "{words}");
    assert!(
        words.contains("(Europe/Paris) · definition version 1"),
        "{words}"
    );
    assert!(words.contains("number Owner balance currency"), "{words}");
    assert!(words.contains("Page 1 of 1"), "{words}");
    // Every row Bob can read is there, as he reads it.
    let own = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        "{ accounts(first: 100) { edges { node { number owner { displayName } } } } }",
        json!({}),
    )
    .await?;
    let edges = data(&own, "accounts")?["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(Some(edges.len() as i64), run["rowCount"].as_i64());
    for edge in edges {
        let number = edge["node"]["number"].as_str().unwrap_or_default();
        let owner = edge["node"]["owner"]["displayName"]
            .as_str()
            .unwrap_or_default();
        assert!(
            words.contains(&format!("{number} {owner}")),
            "{number} {owner}: {words}"
        );
    }
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn every_file_has_a_signed_manifest_that_verifies_offline_across_key_rotations()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let definition = define(&portal, balances_report()).await?;
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let run = run["data"]["reportRun"].clone();
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let (_, file) = download(
        &portal,
        run["file"]["download"]["url"].as_str().unwrap_or(""),
    )
    .await?;
    let manifest_text = run["manifest"].as_str().unwrap_or_default().to_owned();
    let manifest: Value = serde_json::from_str(&manifest_text)?;
    assert_eq!(manifest["type"], "portal.report-manifest");
    assert_eq!(manifest["file"]["sha256"], run["file"]["sha256"]);
    assert_eq!(manifest["file"]["bytes"], run["bytes"]);
    assert_eq!(manifest["file"]["rows"], run["rowCount"]);
    assert_eq!(manifest["file"]["name"], run["file"]["name"]);
    assert_eq!(manifest["report"]["definitionId"], definition.as_str());
    assert_eq!(manifest["report"]["definitionVersion"], 1);
    assert_eq!(manifest["report"]["runId"], run["id"]);
    assert_eq!(manifest["runAs"], seed.bob_id.to_string());
    assert_eq!(manifest["tenantId"], seed.tenant_id.to_string());
    assert_eq!(manifest["signature"]["algorithm"], "Ed25519");

    let base = portal.endpoint.trim_end_matches("/graphql").to_owned();
    let keys_url = format!("{base}/.well-known/portal-evidence-keys.json");
    let keys = portal.http().get(&keys_url).send().await?.bytes().await?;
    let verified = portal::verify_report::verify(&file, manifest_text.as_bytes(), &keys)?;
    assert_eq!(verified.rows, run["rowCount"].as_i64().unwrap_or(-1));
    assert_eq!(verified.report, ("Balances by owner".to_owned(), 1));
    let first_key = verified.key_id.clone();
    assert_eq!(manifest["signature"]["keyId"], first_key.as_str());

    // A changed file, or a changed manifest, does not verify.
    let mut changed = file.clone();
    changed.push(b'\n');
    let refused = portal::verify_report::verify(&changed, manifest_text.as_bytes(), &keys);
    assert!(refused.is_err_and(|err| err.to_string().contains("bytes")));
    let mut claimed = manifest.clone();
    claimed["file"]["rows"] = json!(1);
    let refused = portal::verify_report::verify(&file, claimed.to_string().as_bytes(), &keys);
    assert!(
        refused.is_err_and(|err| err.to_string().contains("altered")),
        "forged rows"
    );
    let mut reassigned = manifest.clone();
    reassigned["runAs"] = json!(seed.carol_id);
    let refused = portal::verify_report::verify(&file, reassigned.to_string().as_bytes(), &keys);
    assert!(refused.is_err());

    // After a rotation the old file still verifies; new files are signed by the new key.
    let data_key = portal_tests::identity_settings().data_key;
    let signer = portal_kit::evidence::EvidenceSigner::new(portal.db.clone(), data_key);
    let second_key = signer
        .rotate()
        .await
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    assert_ne!(second_key, first_key);
    let keys = portal.http().get(&keys_url).send().await?.bytes().await?;
    let set: Value = serde_json::from_slice(&keys)?;
    assert_eq!(set["keys"].as_array().map(Vec::len), Some(2), "{set}");
    assert!(set["keys"][0]["retiredAt"].is_string(), "{set}");
    assert!(set.to_string().contains(&first_key));
    assert!(!set.to_string().contains("private"), "{set}");
    portal::verify_report::verify(&file, manifest_text.as_bytes(), &keys)?;
    let again = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let again: Value = serde_json::from_str(
        again["data"]["reportRun"]["manifest"]
            .as_str()
            .unwrap_or("{}"),
    )?;
    assert_eq!(again["signature"]["keyId"], second_key.as_str());

    portal.stop().await;
    Ok(())
}

/// Makes a definition's schedule due now and waits until every run of that occurrence
/// (the owner's and one per user recipient) has finished; the runs.
async fn run_occurrence(
    portal: &TestPortal,
    definition: Uuid,
    expected_runs: usize,
) -> anyhow::Result<Vec<report_run::Model>> {
    use portal_entities::platform::job_schedule;
    let mut due: job_schedule::ActiveModel =
        job_schedule::Entity::find_by_id(format!("report:{definition}"))
            .one(&portal.db)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no job schedule"))?
            .into();
    due.next_run_at = Set(Utc::now() - chrono::Duration::minutes(1));
    sea_orm::ActiveModelTrait::update(due, &portal.db).await?;
    for _ in 0..400 {
        let runs = report_run::Entity::find()
            .filter(report_run::Column::DefinitionId.eq(definition))
            .order_by_asc(report_run::Column::Id)
            .all(&portal.db)
            .await?;
        if runs.len() == expected_runs
            && runs
                .iter()
                .all(|r| r.status == "SUCCEEDED" || r.status == "FAILED")
        {
            return Ok(runs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the occurrence's runs did not all finish")
}

#[tokio::test]
async fn scheduled_reports_are_delivered_to_each_recipient_as_they_may_see_them()
-> anyhow::Result<()> {
    use portal_entities::platform::email_outbox;
    use portal_entities::reports::report_delivery;
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let mut input = balances_report();
    input["schedule"] = json!("0 6 1 * *");
    let id = define(&portal, input).await?;
    let definition: Uuid = id.parse()?;
    const ADD: &str = "mutation($d: ID!, $input: AddReportRecipientInput!) {
        addReportRecipient(definitionId: $d, input: $input) { id email user { id } vouchedBy { id } }
    }";
    let add = |user: Uuid, role: &'static str, input: Value| {
        let id = id.clone();
        let portal = &portal;
        async move { as_role(portal, user, role, ADD, json!({ "d": id, "input": input })).await }
    };
    // Bob (the owner), Carol (a customer: her own accounts only) and Alice (whose support
    // role denies balances) receive it.
    for user in [seed.bob_id, seed.carol_id, seed.alice_id] {
        let added = add(seed.bob_id, "billing_admin", json!({ "userId": user })).await?;
        assert_eq!(
            data(&added, "addReportRecipient")?["user"]["id"],
            user.to_string()
        );
    }
    let again = add(
        seed.bob_id,
        "billing_admin",
        json!({ "userId": seed.carol_id }),
    )
    .await?;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "CONFLICT",
        "{again}"
    );
    let foreign = add(
        seed.bob_id,
        "billing_admin",
        json!({ "userId": seed.other_user_id }),
    )
    .await?;
    assert_eq!(
        foreign["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{foreign}"
    );
    for bad in [
        json!({}),
        json!({ "userId": seed.carol_id, "email": "x@example.com" }),
        json!({ "email": "Partner <p@example.com>" }),
    ] {
        let refused = add(seed.bob_id, "billing_admin", bad).await?;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{refused}"
        );
    }
    // External addresses need a tenant admin's consent for this report, and the owner's word.
    let external = json!({ "email": "Partner@External.example" });
    let refused = add(seed.bob_id, "billing_admin", external.clone()).await?;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("tenant admin")),
        "{refused}"
    );
    const ALLOW: &str = "mutation($d: ID!, $allowed: Boolean!) {
        setExternalReportDelivery(definitionId: $d, allowed: $allowed) {
            externalDelivery { allowedAt allowedBy { id } }
        }
    }";
    let by_bob = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        ALLOW,
        json!({ "d": id, "allowed": true }),
    )
    .await?;
    assert_eq!(
        by_bob["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{by_bob}"
    );
    let by_alice = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        ALLOW,
        json!({ "d": id, "allowed": true }),
    )
    .await?;
    let consent = &data(&by_alice, "setExternalReportDelivery")?["externalDelivery"];
    assert_eq!(consent["allowedBy"]["id"], seed.alice_id.to_string());
    let not_owner = add(seed.alice_id, "tenant_admin", external.clone()).await?;
    assert!(
        not_owner["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("vouch")),
        "{not_owner}"
    );
    let partner = add(seed.bob_id, "billing_admin", external).await?;
    let partner = data(&partner, "addReportRecipient")?.clone();
    assert_eq!(partner["email"], "partner@external.example");
    assert_eq!(partner["vouchedBy"]["id"], seed.bob_id.to_string());

    // Alice's support role denies balances (a deny wins).
    portal.grant_role(seed.alice_id, "support_agent").await?;
    let runs = run_occurrence(&portal, definition, 3).await?;
    let by_reader = |user: Uuid| runs.iter().find(|r| r.run_as == Some(user)).cloned();
    let owner_run = by_reader(seed.bob_id).ok_or_else(|| anyhow::anyhow!("no owner run"))?;
    let carol_run = by_reader(seed.carol_id).ok_or_else(|| anyhow::anyhow!("no run for Carol"))?;
    let alice_run = by_reader(seed.alice_id).ok_or_else(|| anyhow::anyhow!("no run for Alice"))?;
    assert_eq!(
        (owner_run.cause.as_str(), owner_run.status.as_str()),
        ("SCHEDULED", "SUCCEEDED")
    );
    assert_eq!(
        (carol_run.cause.as_str(), carol_run.status.as_str()),
        ("DELIVERY", "SUCCEEDED")
    );
    // Alice may not read balances: she gets the report without them.
    assert_eq!(alice_run.status, "SUCCEEDED", "{alice_run:?}");

    // Carol's delivery is in her inbox: her run, read as her — her accounts only.
    const INBOX: &str = "{ reportDeliveries(first: 10) { edges { node {
        via email run { id cause rowCount file { download { url } } definition { name } }
    } } } }";
    let inbox = as_role(&portal, seed.carol_id, "customer_user", INBOX, json!({})).await?;
    let edges = data(&inbox, "reportDeliveries")?["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 1, "{inbox}");
    let delivered = &edges[0]["node"];
    assert_eq!(delivered["via"], "ATTACHMENT");
    assert_eq!(delivered["run"]["cause"], "DELIVERY");
    assert_eq!(delivered["run"]["definition"]["name"], "Balances by owner");
    let own = as_role(
        &portal,
        seed.carol_id,
        "customer_user",
        "{ accounts(first: 100) { edges { node { number } } } }",
        json!({}),
    )
    .await?;
    let her_accounts: Vec<String> = data(&own, "accounts")?["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["number"].as_str().map(str::to_owned))
        .collect();
    assert!(!her_accounts.is_empty() && Some(her_accounts.len() as i64) < owner_run.row_count);
    let (status, body) = download(
        &portal,
        delivered["run"]["file"]["download"]["url"]
            .as_str()
            .unwrap_or(""),
    )
    .await?;
    assert_eq!(status, 200);
    let text = String::from_utf8(body)?;
    let numbers: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(numbers, her_accounts);
    // Alice's, read as her: every account, no balance column.
    let alice_inbox = as_role(&portal, seed.alice_id, "tenant_admin", INBOX, json!({})).await?;
    let alice_edges = data(&alice_inbox, "reportDeliveries")?["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(alice_edges.len(), 1, "{alice_inbox}");
    let alice_url = alice_edges[0]["node"]["run"]["file"]["download"]["url"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let (status, body) = download(&portal, &alice_url).await?;
    assert_eq!(status, 200);
    let text = String::from_utf8(body)?;
    assert_eq!(text.lines().next(), Some("number,Owner,currency"), "{text}");
    assert_eq!(Some(text.lines().count() as i64 - 1), owner_run.row_count);

    // Emails: Bob, Carol, Alice and the partner each get one, the file attached.
    let deliveries = report_delivery::Entity::find()
        .filter(report_delivery::Column::DefinitionId.eq(definition))
        .all(&portal.db)
        .await?;
    assert_eq!(deliveries.len(), 4, "{deliveries:?}");
    let to_partner = deliveries
        .iter()
        .find(|d| d.email.as_deref() == Some("partner@external.example"))
        .ok_or_else(|| anyhow::anyhow!("nothing for the partner"))?;
    // The partner gets the owner's file: what Bob may see.
    assert_eq!(Some(to_partner.file_id), owner_run.file_id);
    let mut sent = Vec::new();
    for _ in 0..200 {
        sent = email_outbox::Entity::find()
            .filter(email_outbox::Column::AttachmentFileId.is_not_null())
            .filter(email_outbox::Column::SentAt.is_not_null())
            .all(&portal.db)
            .await?;
        if sent.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent.len(), 4, "{sent:?}");
    let partner_mail = sent
        .iter()
        .find(|m| m.recipient == "partner@external.example")
        .ok_or_else(|| anyhow::anyhow!("no mail to the partner"))?;
    let eml = std::fs::read_to_string(portal.mail_dir.join(format!("{}.eml", partner_mail.id)))?;
    assert!(eml.contains("Content-Disposition: attachment"), "{eml}");
    assert!(eml.contains("shares the report"), "{eml}");

    // A delivery link (what a large file's email carries) serves the file while the
    // delivery stands, and stops once the recipient is removed.
    let link = portal
        .files
        .delivery_link(to_partner.id, Utc::now() + chrono::Duration::hours(1));
    let (status, linked) = download(&portal, &link).await?;
    assert_eq!(status, 200);
    assert_eq!(Some(linked.len() as i64), owner_run.bytes);
    let (status, _) = download(&portal, &format!("{link}x")).await?;
    assert_eq!(status, 403);
    let expired = portal
        .files
        .delivery_link(to_partner.id, Utc::now() - chrono::Duration::seconds(1));
    assert_eq!(download(&portal, &expired).await?.0, 403);
    let listed = as_role(&portal, seed.bob_id, "billing_admin",
        "query($id: ID!) { reportDefinition(id: $id) { recipients { email user { id } } externalDelivery { allowedBy { id } } } }",
        json!({ "id": id })).await?;
    let listed = data(&listed, "reportDefinition")?;
    assert_eq!(
        listed["recipients"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );
    assert_eq!(
        listed["externalDelivery"]["allowedBy"]["id"],
        seed.alice_id.to_string()
    );
    const REMOVE: &str = "mutation($id: ID!) { removeReportRecipient(id: $id) }";
    let removed = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        REMOVE,
        json!({ "id": partner["id"] }),
    )
    .await?;
    assert_eq!(data(&removed, "removeReportRecipient")?, &json!(id));
    assert_eq!(download(&portal, &link).await?.0, 404);

    // Owners see where each run went.
    let sent_where = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        "query($id: ID!) { reportRun(id: $id) { deliveries { via email user { id } } } }",
        json!({ "id": owner_run.id }),
    )
    .await?;
    assert_eq!(
        data(&sent_where, "reportRun")?["deliveries"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("report_delivery.deliver"))
        .all(&portal.db)
        .await?;
    assert_eq!(audited.len(), 4);
    // Another tenant sees none of it.
    let peek = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            INBOX,
            json!({}),
        )
        .await?;
    assert_eq!(
        peek["data"]["reportDeliveries"]["edges"],
        json!([]),
        "{peek}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn tenants_switch_on_monthly_statements_that_each_recipient_gets_as_they_may_see()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let zone: chrono_tz::Tz = "Europe/Paris".parse()?;
    let month = portal_reports::monthly::Month::to_report(Utc::now(), zone, &json!({}))
        .ok_or_else(|| anyhow::anyhow!("no month"))?;
    // Carol's first account gets two entries in the month and one after it.
    let hers = as_role(
        &portal,
        seed.carol_id,
        "customer_user",
        "{ accounts(first: 100) { edges { node { id number currency } } } }",
        json!({}),
    )
    .await?;
    let her_accounts: Vec<Value> = data(&hers, "accounts")?["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["node"].clone())
        .collect();
    let account = her_accounts
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("Carol has no account"))?;
    let currency = account["currency"].as_str().unwrap_or("EUR").to_owned();
    const POST: &str =
        "mutation($input: PostLedgerEntryInput!) { postLedgerEntry(input: $input) { id } }";
    for (kind, amount, at, reference) in [
        (
            "CREDIT",
            "100.00",
            month.start + chrono::Duration::days(9),
            "M-IN-1",
        ),
        (
            "CHARGE",
            "15.50",
            month.start + chrono::Duration::days(12),
            "M-IN-2",
        ),
        (
            "CHARGE",
            "40.00",
            Utc::now() - chrono::Duration::minutes(1),
            "M-AFTER",
        ),
    ] {
        let posted = as_role(
            &portal,
            seed.bob_id,
            "billing_admin",
            POST,
            json!({ "input": {
            "accountId": account["id"], "kind": kind, "amount": amount, "currency": currency,
            "postedAt": at.to_rfc3339(), "reference": reference, "idempotencyKey": format!("monthly-{reference}"),
        } }),
        )
        .await?;
        data(&posted, "postLedgerEntry")?;
    }

    // Only tenant admins switch them on; the first switch makes the caller the owner.
    const SWITCH: &str = "mutation($kind: MonthlyReport!, $on: Boolean!, $zone: String) {
        setMonthlyReport(kind: $kind, enabled: $on, timeZone: $zone) {
            id kind format schedule timeZone paused owner { id }
        }
    }";
    let switch = |user: Uuid, role: &'static str, kind: &'static str, on: bool| {
        let portal = &portal;
        async move {
            as_role(
                portal,
                user,
                role,
                SWITCH,
                json!({ "kind": kind, "on": on, "zone": "Europe/Paris" }),
            )
            .await
        }
    };
    let refused = switch(seed.bob_id, "billing_admin", "STATEMENTS", true).await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let on = switch(seed.alice_id, "tenant_admin", "STATEMENTS", true).await?;
    let statements = data(&on, "setMonthlyReport")?.clone();
    assert_eq!(statements["kind"], "MONTHLY_STATEMENTS");
    assert_eq!(statements["format"], "PDF");
    assert_eq!(statements["schedule"], "0 0 1 * *");
    assert_eq!(statements["timeZone"], "Europe/Paris");
    assert_eq!(statements["owner"]["id"], seed.alice_id.to_string());
    let off = switch(seed.alice_id, "tenant_admin", "STATEMENTS", false).await?;
    assert_eq!(data(&off, "setMonthlyReport")?["paused"], true);
    let again = switch(seed.alice_id, "tenant_admin", "STATEMENTS", true).await?;
    let again = data(&again, "setMonthlyReport")?;
    assert_eq!(
        (&again["id"], &again["paused"]),
        (&statements["id"], &json!(false))
    );
    let id = statements["id"].as_str().unwrap_or_default().to_owned();
    let added = as_role(&portal, seed.alice_id, "tenant_admin",
        "mutation($d: ID!, $u: ID!) { addReportRecipient(definitionId: $d, input: { userId: $u }) { id } }",
        json!({ "d": id, "u": seed.carol_id })).await?;
    data(&added, "addReportRecipient")?;

    let runs = run_occurrence(&portal, id.parse()?, 2).await?;
    assert!(runs.iter().all(|r| r.status == "SUCCEEDED"), "{runs:?}");
    let owner_run = runs
        .iter()
        .find(|r| r.run_as == Some(seed.alice_id))
        .ok_or_else(|| anyhow::anyhow!("no run for Alice"))?;
    let all = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        "{ accounts(first: 100) { edges { node { id } } } }",
        json!({}),
    )
    .await?;
    let every = data(&all, "accounts")?["edges"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(
        owner_run.row_count,
        Some(every as i64),
        "one statement per account"
    );

    // Carol's statement, from her inbox: her accounts only, the month's entries, balances
    // that add up.
    const INBOX: &str = "{ reportDeliveries(first: 10) { edges { node {
        run { rowCount file { contentType download { url } } } } } } }";
    let inbox = as_role(&portal, seed.carol_id, "customer_user", INBOX, json!({})).await?;
    let run = &data(&inbox, "reportDeliveries")?["edges"][0]["node"]["run"];
    assert_eq!(run["rowCount"], her_accounts.len());
    assert_eq!(run["file"]["contentType"], "application/pdf");
    let (status, pdf) = download(
        &portal,
        run["file"]["download"]["url"].as_str().unwrap_or(""),
    )
    .await?;
    assert_eq!(status, 200);
    let Some(text) = portal_tests::pdf_text(&pdf)? else {
        portal.stop().await;
        return Ok(());
    };
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(&month.label()), "{words}");
    for theirs in &her_accounts {
        assert!(
            words.contains(theirs["number"].as_str().unwrap_or("?")),
            "{words}"
        );
    }
    let everyone = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        "{ accounts(first: 100) { edges { node { number } } } }",
        json!({}),
    )
    .await?;
    for other in data(&everyone, "accounts")?["edges"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let number = other["node"]["number"].as_str().unwrap_or_default();
        if !her_accounts.iter().any(|a| a["number"] == number) {
            assert!(!words.contains(number), "{number} is not Carol's: {words}");
        }
    }
    assert!(
        words.contains("M-IN-1") && words.contains("M-IN-2"),
        "{words}"
    );
    assert!(
        !words.contains("M-AFTER"),
        "posted after the month: {words}"
    );
    // Closing = today's balance − what was posted since the month ended; opening = closing −
    // the month's entries (read independently here).
    const SUMS: &str = "query($id: ID!, $from: DateTime!, $to: DateTime) { account(id: $id) {
        balance ledgerEntries(first: 100, filter: { postedFrom: $from, postedTo: $to }) { edges { node { amount } } }
    } }";
    let sum = |response: &Value| -> rust_decimal::Decimal {
        response["data"]["account"]["ledgerEntries"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e["node"]["amount"]
                    .as_str()?
                    .parse::<rust_decimal::Decimal>()
                    .ok()
            })
            .sum()
    };
    let after = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        SUMS,
        json!({ "id": account["id"], "from": month.end.to_rfc3339(), "to": null }),
    )
    .await?;
    let within = as_role(&portal, seed.alice_id, "tenant_admin", SUMS,
        json!({ "id": account["id"], "from": month.start.to_rfc3339(), "to": month.end.to_rfc3339() })).await?;
    let balance: rust_decimal::Decimal = after["data"]["account"]["balance"]
        .as_str()
        .unwrap_or("0")
        .parse()?;
    let closing = balance - sum(&after);
    let opening = closing - sum(&within);
    assert!(
        words.contains(&format!(
            "Opening balance: {} {currency}",
            opening.round_dp(2)
        )),
        "{opening}: {words}"
    );
    assert!(
        words.contains(&format!(
            "Closing balance: {} {currency}",
            closing.round_dp(2)
        )),
        "{closing}: {words}"
    );

    // The usage summary switches on the same way and runs; without a zone it takes the
    // tenant's.
    let usage = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        SWITCH,
        json!({ "kind": "USAGE_SUMMARY", "on": true }),
    )
    .await?;
    let usage = data(&usage, "setMonthlyReport")?;
    let tenant = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        "{ tenant { timeZone } }",
        json!({}),
    )
    .await?;
    assert_eq!(
        usage["timeZone"],
        data(&tenant, "tenant")?["timeZone"],
        "{usage}"
    );
    let usage_id: Uuid = usage["id"].as_str().unwrap_or_default().parse()?;
    let runs = run_occurrence(&portal, usage_id, 1).await?;
    assert_eq!(runs[0].status, "SUCCEEDED", "{runs:?}");
    // A statement report must be a PDF.
    let mut input = balances_report();
    input["kind"] = json!("MONTHLY_STATEMENTS");
    input.as_object_mut().map(|i| i.remove("query"));
    let refused = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        CREATE,
        json!({ "input": input }),
    )
    .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_report_file_is_not_downloaded_by_someone_who_lost_a_column() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let definition = define(&portal, balances_report()).await?;
    let run = run_to_end(&portal, (seed.bob_id, "billing_admin"), &definition).await?;
    let run_id = run["data"]["reportRun"]["id"].clone();
    let url = run["data"]["reportRun"]["file"]["download"]["url"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_eq!(download(&portal, &url).await?.0, 200);
    // Bob's support role now denies balances (a deny wins): the file holds balances.
    portal.grant_role(seed.bob_id, "support_agent").await?;
    let again = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        "query($id: ID!) { reportRun(id: $id) { file { download { url } } } }",
        json!({ "id": run_id }),
    )
    .await?;
    let url = again["data"]["reportRun"]["file"]["download"]["url"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(!url.is_empty(), "{again}");
    let (status, body) = download(&portal, &url).await?;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    portal.stop().await;
    Ok(())
}

/// Runs `definition` as Bob and reads when its file expires.
async fn run_expiry(
    portal: &TestPortal,
    definition: &str,
) -> anyhow::Result<chrono::DateTime<Utc>> {
    const EXPIRY: &str = "query($id: ID!) { reportRun(id: $id) { file { expiresAt } } }";
    let bob = portal.seed.bob_id;
    let run = run_to_end(portal, (bob, "billing_admin"), definition).await?;
    let id = json!({ "id": run["data"]["reportRun"]["id"] });
    let read = as_role(portal, bob, "billing_admin", EXPIRY, id).await?;
    Ok(data(&read, "reportRun")?["file"]["expiresAt"]
        .as_str()
        .unwrap_or_default()
        .parse()?)
}

#[tokio::test]
async fn report_files_are_kept_for_the_tenants_retention() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    const RETAIN: &str = "mutation($days: Int) { updateTenant(input: { fileRetentionDays: $days }) { fileRetentionDays } }";
    let refused = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        RETAIN,
        json!({ "days": 0 }),
    )
    .await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );
    let by_bob = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        RETAIN,
        json!({ "days": 30 }),
    )
    .await?;
    assert_eq!(
        by_bob["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{by_bob}"
    );
    let set = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        RETAIN,
        json!({ "days": 30 }),
    )
    .await?;
    assert_eq!(data(&set, "updateTenant")?["fileRetentionDays"], 30);
    let definition = define(&portal, balances_report()).await?;
    let expires = run_expiry(&portal, &definition).await?;
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "{days} days");
    // Back to the platform's default (seven days here).
    let reset = as_role(
        &portal,
        seed.alice_id,
        "tenant_admin",
        RETAIN,
        json!({ "days": null }),
    )
    .await?;
    assert_eq!(
        data(&reset, "updateTenant")?["fileRetentionDays"],
        Value::Null
    );
    let expires = run_expiry(&portal, &definition).await?;
    assert!((expires - Utc::now()).num_days() < 8, "{expires}");
    portal.stop().await;
    Ok(())
}
