//! Usage metering and chart series through the gateway: batches are idempotent by the
//! client's keys; `Account.usage` and `Account.balanceHistory` bucket in the caller's time
//! zone (across a DST change), fill empty buckets, refuse more than 1 000 points; members
//! and staff with the grant read them, support never the balance history.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use portal_entities::accounts::{usage_event, usage_rollup};
use portal_entities::platform::audit_event;
use portal_tests::{Mode, TestPortal};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use uuid::Uuid;

const RECORD: &str =
    "mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted duplicates } }";
const USAGE: &str = "query($id: ID!, $from: DateTime!, $to: DateTime!, $i: SeriesInterval!, $tz: String) {
    account(id: $id) { usageMetrics usage(metric: \"api.calls\", from: $from, to: $to, interval: $i, timeZone: $tz) {
        timeZone points { start end value } } }
}";

async fn as_bob(portal: &TestPortal, query: &str, variables: Value) -> anyhow::Result<Value> {
    let seed = &portal.seed;
    portal
        .query_with_roles(
            seed.tenant_id,
            seed.bob_id,
            &["billing_admin"],
            query,
            variables,
        )
        .await
}

/// The most recent local day in Berlin (within the last year) that is not 24 hours long:
/// the day summer time ends (25 h) or starts (23 h), and its local midnight.
fn recent_dst_day(zone: Tz) -> (NaiveDate, DateTime<Utc>, i64) {
    let today = Utc::now().with_timezone(&zone).date_naive();
    for back in 1..=366 {
        let day = today - Duration::days(back);
        let start = zone
            .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest();
        let end = zone
            .from_local_datetime(
                &(day + Duration::days(1))
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default(),
            )
            .earliest();
        if let (Some(start), Some(end)) = (start, end) {
            let hours = (end - start).num_hours();
            if hours != 24 {
                return (day, start.with_timezone(&Utc), hours);
            }
        }
    }
    panic!("no DST change in Berlin within a year");
}

fn values(response: &Value) -> Vec<String> {
    response["data"]["account"]["usage"]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["value"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn usage_batches_apply_once_and_chart_by_local_day_across_a_dst_change() -> anyhow::Result<()>
{
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let operating = portal.account_id("ACME-0001").await?;
    let berlin: Tz = "Europe/Berlin".parse()?;
    let (day, midnight, hours) = recent_dst_day(berlin);
    let next_midnight = midnight + Duration::hours(hours);
    // Half an hour before and after each of the two local midnights.
    let at = |t: DateTime<Utc>| t.to_rfc3339();
    let run = Uuid::now_v7();
    let events = json!([
        { "metric": "api.calls", "quantity": "1", "occurredAt": at(midnight - Duration::minutes(30)), "key": format!("{run}-1") },
        { "metric": "api.calls", "quantity": "2", "occurredAt": at(midnight + Duration::minutes(30)), "key": format!("{run}-2") },
        { "metric": "api.calls", "quantity": "4", "occurredAt": at(next_midnight - Duration::minutes(30)), "key": format!("{run}-3") },
        { "metric": "api.calls", "quantity": "8.5", "occurredAt": at(next_midnight + Duration::minutes(30)), "key": format!("{run}-4") },
        { "metric": "storage.gb", "quantity": "0.25", "occurredAt": at(midnight + Duration::hours(2)), "key": format!("{run}-5") },
        { "metric": "api.calls", "quantity": "1000", "occurredAt": at(midnight), "key": format!("{run}-1") },
    ]);
    let batch = json!({ "input": { "accountId": operating, "events": events } });
    let first = as_bob(&portal, RECORD, batch.clone()).await?;
    assert_eq!(
        first["data"]["recordUsage"],
        json!({ "accepted": 5, "duplicates": 1 }),
        "{first}"
    );
    // The same batch again stores nothing and records no audit event.
    let audits = audit_event::Entity::find().count(&portal.db).await?;
    let again = as_bob(&portal, RECORD, batch).await?;
    assert_eq!(
        again["data"]["recordUsage"],
        json!({ "accepted": 0, "duplicates": 6 }),
        "{again}"
    );
    assert_eq!(usage_event::Entity::find().count(&portal.db).await?, 5);
    assert_eq!(audit_event::Entity::find().count(&portal.db).await?, audits);

    // Local days in Berlin: the day before, the DST day (23 or 25 hours), the day after.
    let from = midnight - Duration::days(1);
    let to = next_midnight + Duration::days(1);
    let vars =
        |tz: &str| json!({ "id": operating, "from": at(from), "to": at(to), "i": "DAY", "tz": tz });
    let local = as_bob(&portal, USAGE, vars("Europe/Berlin")).await?;
    assert!(local["errors"].is_null(), "{local}");
    assert_eq!(
        values(&local),
        ["1.0000", "6.0000", "8.5000"],
        "{day}: {local}"
    );
    let points = &local["data"]["account"]["usage"]["points"];
    let start: DateTime<Utc> = points[1]["start"].as_str().unwrap_or_default().parse()?;
    let end: DateTime<Utc> = points[1]["end"].as_str().unwrap_or_default().parse()?;
    assert_eq!((start, (end - start).num_hours()), (midnight, hours));
    assert_eq!(
        local["data"]["account"]["usageMetrics"],
        json!(["api.calls", "storage.gb"])
    );
    // Hourly: every hour present, empty ones zero; the sum is the same.
    let hourly = as_bob(
        &portal,
        USAGE,
        json!({ "id": operating, "from": at(midnight), "to": at(next_midnight), "i": "HOUR", "tz": "Europe/Berlin" }),
    )
    .await?;
    let hours_seen = values(&hourly);
    assert_eq!(hours_seen.len() as i64, hours, "{hourly}");
    assert_eq!(hours_seen.iter().filter(|v| *v != "0.0000").count(), 2);

    // Bad batches are refused whole; bad series arguments name the argument.
    let before = usage_event::Entity::find().count(&portal.db).await?;
    let bad_events = [
        json!([{ "metric": "API Calls", "quantity": "1", "occurredAt": at(midnight), "key": "key-bad-1" }]),
        json!([{ "metric": "api.calls", "quantity": "-1", "occurredAt": at(midnight), "key": "key-bad-2" }]),
        json!([{ "metric": "api.calls", "quantity": "1000000000.0001", "occurredAt": at(midnight), "key": "key-bad-4" }]),
        json!([{ "metric": "api.calls", "quantity": "1", "occurredAt": "2099-01-01T00:00:00Z", "key": "key-bad-3" }]),
        json!([{ "metric": "api.calls", "quantity": "1", "occurredAt": at(midnight), "key": "k" }]),
        json!([]),
    ];
    for events in bad_events {
        let out = as_bob(
            &portal,
            RECORD,
            json!({ "input": { "accountId": operating, "events": events } }),
        )
        .await?;
        assert_eq!(
            out["errors"][0]["extensions"]["field"], "input.events",
            "{out}"
        );
    }
    assert_eq!(usage_event::Entity::find().count(&portal.db).await?, before);
    for (vars, field) in [
        (
            json!({ "id": operating, "from": at(to), "to": at(from), "i": "DAY" }),
            "to",
        ),
        (
            json!({ "id": operating, "from": at(from - Duration::days(60)), "to": at(to), "i": "HOUR" }),
            "interval",
        ),
        (
            json!({ "id": operating, "from": at(from), "to": at(to), "i": "DAY", "tz": "Mars/Olympus" }),
            "timeZone",
        ),
    ] {
        let out = as_bob(&portal, USAGE, vars).await?;
        assert_eq!(out["errors"][0]["extensions"]["field"], field, "{out}");
    }
    assert!(usage_rollup::Entity::find().count(&portal.db).await? >= 4);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn balance_history_is_the_running_balance_at_each_bucket_end() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let savings = portal.account_id("ACME-0002").await?;
    let today = Utc::now().date_naive();
    let noon = |days_ago: i64| {
        (today - Duration::days(days_ago))
            .and_hms_opt(12, 0, 0)
            .unwrap_or_default()
            .and_utc()
    };
    for (kind, amount, days_ago) in [("CREDIT", "100", 3), ("CHARGE", "30", 2)] {
        let out = as_bob(
            &portal,
            "mutation($input: PostLedgerEntryInput!) { postLedgerEntry(input: $input) { id } }",
            json!({ "input": {
                "accountId": savings, "kind": kind, "amount": amount, "currency": "EUR",
                "postedAt": noon(days_ago).to_rfc3339(), "idempotencyKey": format!("bh-{}", Uuid::now_v7()),
            } }),
        )
        .await?;
        anyhow::ensure!(out["errors"].is_null(), "{out}");
    }
    let history = "query($id: ID!, $from: DateTime!, $to: DateTime!) {
        account(id: $id) { balanceHistory(from: $from, to: $to, interval: DAY) { points { value } } }
    }";
    let from = (today - Duration::days(4))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let to = (today - Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let out = as_bob(
        &portal,
        history,
        json!({ "id": savings, "from": from.to_rfc3339(), "to": to.to_rfc3339() }),
    )
    .await?;
    let points: Vec<&str> = out["data"]["account"]["balanceHistory"]["points"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["value"].as_str())
        .collect();
    // The opening balance was posted when the demo was seeded (now): not yet in range.
    assert_eq!(points, ["0.0000", "100.0000", "70.0000"], "{out}");
    // Activity: entries posted per day.
    let activity = "query($id: ID!, $from: DateTime!, $to: DateTime!) {
        account(id: $id) { activity(from: $from, to: $to, interval: DAY) { points { value } } }
    }";
    let out = as_bob(
        &portal,
        activity,
        json!({ "id": savings, "from": from.to_rfc3339(), "to": to.to_rfc3339() }),
    )
    .await?;
    assert_eq!(
        out["data"]["account"]["activity"]["points"],
        json!([{ "value": "0" }, { "value": "1" }, { "value": "1" }]),
        "{out}"
    );

    // Support sees usage charts but not the balance history; Dave (no member) neither.
    let seed = portal.seed.clone();
    let vars = json!({ "id": savings, "from": from.to_rfc3339(), "to": to.to_rfc3339() });
    let both = "query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
        number balanceHistory(from: $from, to: $to, interval: DAY) { points { value } }
        usage(metric: \"api.calls\", from: $from, to: $to, interval: DAY) { points { value } } } }";
    let support = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["support_agent"],
            both,
            vars.clone(),
        )
        .await?;
    assert_eq!(
        support["data"]["account"]["balanceHistory"],
        Value::Null,
        "{support}"
    );
    assert_eq!(
        support["data"]["account"]["usage"]["points"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let created = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation { createUser(input: { email: \"dave@acme.example\", displayName: \"Dave\" }) { id } }",
            json!({}),
        )
        .await?;
    let dave: Uuid = created["data"]["createUser"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let as_dave = portal
        .query_with_roles(seed.tenant_id, dave, &["customer_user"], both, vars)
        .await?;
    assert_eq!(as_dave["data"]["account"], Value::Null, "{as_dave}");
    // Nor can a customer record usage, even for an account it reads.
    let recorded = portal
        .query_as_carol(
            RECORD,
            json!({ "input": { "accountId": savings, "events": [
                { "metric": "api.calls", "quantity": "1", "occurredAt": Utc::now().to_rfc3339(), "key": "carol-key-1" }
            ] } }),
        )
        .await?;
    assert_eq!(
        recorded["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{recorded}"
    );
    portal.stop().await;
    Ok(())
}

/// The first instant of the calendar month holding `at` in `zone`, and of the month before.
fn month_starts(at: DateTime<Utc>, zone: Tz) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    use chrono::Datelike;
    let local = at.with_timezone(&zone).date_naive();
    let first = NaiveDate::from_ymd_opt(local.year(), local.month(), 1)
        .ok_or_else(|| anyhow::anyhow!("no first day"))?;
    let previous = (first - Duration::days(1)).with_day(1).unwrap_or(first);
    let start = |day: NaiveDate| -> anyhow::Result<DateTime<Utc>> {
        Ok(zone
            .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .ok_or_else(|| anyhow::anyhow!("no midnight"))?
            .with_timezone(&Utc))
    };
    Ok((start(first)?, start(previous)?))
}

#[tokio::test]
async fn dashboard_usage_adds_whole_days_and_the_quarter_hours_at_a_months_ragged_ends()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let payroll = portal.account_id("ACME-0003").await?;
    // Kolkata is UTC+05:30: its months start and end in the middle of UTC days, so a month
    // is whole UTC days (daily rollups) plus quarter hours at both ends.
    let zone: Tz = "Asia/Kolkata".parse()?;
    let now = Utc::now();
    let (this_month, last_month) = month_starts(now, zone)?;
    let minute = Duration::minutes(1);
    let events = [
        (last_month - Duration::minutes(30), 1), // the month before last: not counted
        (last_month + Duration::minutes(30), 10), // last month's first (ragged) UTC day
        (last_month + Duration::days(10), 100),  // a whole day of last month
        (this_month - Duration::minutes(30), 1_000), // last month's last (ragged) UTC day
        (this_month + minute, 10_000),           // this month's first quarter hour
    ];
    let mut sent = Vec::new();
    for (at, quantity) in events {
        if at <= now {
            sent.push(
                json!({ "metric": "api.calls", "quantity": quantity.to_string(),
                "occurredAt": at.to_rfc3339(), "key": format!("month-{}", Uuid::now_v7()) }),
            );
        }
    }
    let recorded = as_bob(
        &portal,
        RECORD,
        json!({ "input": { "accountId": payroll, "events": sent } }),
    )
    .await?;
    assert!(recorded["errors"].is_null(), "{recorded}");
    let board = portal
        .query_with_roles(
            portal.seed.tenant_id,
            portal.seed.carol_id,
            &["customer_user"],
            "query { dashboard(timeZone: \"Asia/Kolkata\") { usage { metric current previous } } }",
            json!({}),
        )
        .await?;
    let usage = &board["data"]["dashboard"]["usage"];
    assert_eq!(usage[0]["metric"], "api.calls", "{board}");
    assert_eq!(usage[0]["previous"], "1110.0000", "{board}");
    let current = if this_month + minute <= now {
        "10000.0000"
    } else {
        "0.0000"
    };
    assert_eq!(usage[0]["current"], current, "{board}");
    portal.stop().await;
    Ok(())
}
