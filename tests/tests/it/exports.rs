//! Account data exports through the gateway: a ledger range, invoices, a chart series or a
//! widget's data as CSV, XLSX and JSON, read back with parsers; small exports ready in the
//! request, large ones written by a job; downloads through short-lived signed links that
//! re-check membership and roles at download time; SHA-256 and row count on every file;
//! every step audited.

use portal_kit::db::BeginWrite;
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::Utc;
use portal_entities::accounts::{account_export, account_member, ledger_entry};
use portal_entities::identity::user_role;
use portal_entities::platform::{audit_event, file};
use portal_tests::{Mode, TestPortal};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const EXPORT: &str = "mutation($input: ExportAccountDataInput!) {
    exportAccountData(input: $input) {
        id dataset format status rowCount error
        file { name contentType sizeBytes sha256 rowCount expiresAt download { url expiresAt } }
    }
}";
const FOLLOW: &str = "query($id: ID!) { accountExport(id: $id) {
    id status rowCount error
    file { name sha256 sizeBytes rowCount download { url } }
} }";
const POST: &str =
    "mutation($input: PostLedgerEntryInput!) { postLedgerEntry(input: $input) { id } }";

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

async fn as_carol(portal: &TestPortal, query: &str, variables: Value) -> anyhow::Result<Value> {
    as_role(
        portal,
        portal.seed.carol_id,
        "customer_user",
        query,
        variables,
    )
    .await
}

fn data<'a>(response: &'a Value, field: &str) -> anyhow::Result<&'a Value> {
    anyhow::ensure!(response["errors"].is_null(), "{field} failed: {response}");
    Ok(&response["data"][field])
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

/// Downloads `url` (a gateway path) and returns status, headers and body.
async fn download(
    portal: &TestPortal,
    url: &str,
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
    let base = portal.endpoint.trim_end_matches("/graphql");
    let response = portal.http().get(format!("{base}{url}")).send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Ok((status, headers, response.bytes().await?.to_vec()))
}

/// Posts entries to `account` as Bob: one whose reference would be a spreadsheet formula,
/// one with a comma and quotes, and `plain` more.
async fn post_entries(portal: &TestPortal, account: &str, plain: usize) -> anyhow::Result<()> {
    let mut references = vec![
        "=HYPERLINK(\"http://evil.example\")".to_owned(),
        "a, \"quoted\" one".to_owned(),
    ];
    references.extend((0..plain).map(|i| format!("REF-{i}")));
    for (i, reference) in references.iter().enumerate() {
        let posted = as_role(
            portal,
            portal.seed.bob_id,
            "billing_admin",
            POST,
            json!({ "input": {
                "accountId": account, "kind": "CHARGE", "amount": format!("{}.2500", i + 1),
                "currency": "USD", "reference": reference,
                "idempotencyKey": format!("export-{}", Uuid::now_v7()),
            } }),
        )
        .await?;
        data(&posted, "postLedgerEntry")?;
    }
    Ok(())
}

async fn ledger_rows(portal: &TestPortal, account: &str) -> anyhow::Result<u64> {
    let id: Uuid = account.parse()?;
    Ok(ledger_entry::Entity::find()
        .filter(ledger_entry::Column::AccountId.eq(id))
        .count(&portal.db)
        .await?)
}

#[tokio::test]
async fn ledger_exports_read_back_in_every_format_with_their_digest() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let payroll = portal.account_id("ACME-0003").await?;
    post_entries(&portal, &payroll, 3).await?;
    let expected = ledger_rows(&portal, &payroll).await?;

    for format in ["CSV", "XLSX", "JSON"] {
        let response = as_carol(
            &portal,
            EXPORT,
            json!({ "input": { "accountId": payroll, "dataset": "LEDGER_ENTRIES", "format": format } }),
        )
        .await?;
        let export = data(&response, "exportAccountData")?;
        assert_eq!(export["status"], "READY", "{response}");
        assert_eq!(export["rowCount"], json!(expected));
        let file = &export["file"];
        assert_eq!(file["rowCount"], json!(expected));
        assert!(
            file["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("ACME-0003-ledger-entries-")
                    && n.ends_with(&format!(".{}", format.to_lowercase()))),
            "{file}"
        );
        let (status, headers, body) = download(
            &portal,
            file["download"]["url"].as_str().unwrap_or_default(),
        )
        .await?;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let sha = hex::encode(Sha256::digest(&body));
        assert_eq!(file["sha256"], sha);
        assert_eq!(file["sizeBytes"], json!(body.len()));
        assert_eq!(headers["x-row-count"], expected.to_string().as_str());
        assert!(
            headers["content-disposition"]
                .to_str()?
                .starts_with("attachment; filename=\"ACME-0003-ledger-entries-")
        );
        assert_eq!(headers["cache-control"], "no-store");
        assert!(headers["repr-digest"].to_str()?.starts_with("sha-256=:"));

        match format {
            "CSV" => {
                assert!(headers["content-type"].to_str()?.starts_with("text/csv"));
                let text = String::from_utf8(body.clone())?;
                assert!(text.contains("\r\n"), "RFC 4180 line ends");
                let mut reader = csv::Reader::from_reader(body.as_slice());
                let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
                assert_eq!(header[..5], ["id", "postedAt", "kind", "source", "amount"]);
                let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
                assert_eq!(rows.len() as u64, expected);
                let references: Vec<&str> = rows.iter().filter_map(|r| r.get(7)).collect();
                // A formula is defused; a comma and quotes survive the round trip.
                assert!(references.contains(&"'=HYPERLINK(\"http://evil.example\")"));
                assert!(references.contains(&"a, \"quoted\" one"));
                // Charges are negative numbers, not defused text.
                assert!(rows.iter().any(|r| r.get(4) == Some("-1.25")), "{text}");
            }
            "XLSX" => {
                let mut workbook: Xlsx<_> = open_workbook_from_rs(Cursor::new(body))?;
                let sheet = workbook.worksheet_range("Data 1")?;
                let rows: Vec<&[Data]> = sheet.rows().collect();
                assert_eq!(rows.len() as u64, expected + 1);
                assert_eq!(rows[0][4], Data::String("amount".into()));
                let charge = rows
                    .iter()
                    .find(|r| r[7] == Data::String("REF-0".into()))
                    .ok_or_else(|| anyhow::anyhow!("no REF-0 row"))?;
                // Real typed cells: the amount a number, the posting time a date.
                assert_eq!(charge[4], Data::Float(-3.25));
                assert!(matches!(charge[1], Data::DateTime(_)), "{:?}", charge[1]);
                assert_eq!(charge[5], Data::String("USD".into()));
                // Text that looks like a formula is a string cell, never a formula.
                assert!(rows.iter().any(|r| r[7]
                    == Data::String("=HYPERLINK(\"http://evil.example\")".into())));
            }
            _ => {
                let parsed: Value = serde_json::from_slice(&body)?;
                let rows = parsed.as_array().map_or(0, Vec::len) as u64;
                assert_eq!(rows, expected);
                let charge = parsed
                    .as_array()
                    .and_then(|rows| rows.iter().find(|r| r["reference"] == "REF-1"))
                    .ok_or_else(|| anyhow::anyhow!("no REF-1 row"))?;
                assert_eq!(charge["amount"], "-4.25");
                assert_eq!(charge["currency"], "USD");
            }
        }
    }

    // Requested, completed and downloaded: all audited, as Carol.
    let actions: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::ActorId.eq(portal.seed.carol_id))
        .order_by_asc(audit_event::Column::CreatedAt)
        .all(&portal.db)
        .await?
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.outcome))
        .collect();
    for action in [
        "account.export.request success",
        "account.export.complete success",
        "file.download success",
    ] {
        assert_eq!(
            actions.iter().filter(|a| a.as_str() == action).count(),
            3,
            "{action}: {actions:?}"
        );
    }
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn series_and_widget_exports_follow_the_callers_time_zone() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let savings = portal.account_id("ACME-0002").await?;
    // 24 to 27 October 2026 in Berlin: the 25th has 25 hours (summer time ends).
    let response = as_carol(
        &portal,
        EXPORT,
        json!({ "input": { "accountId": savings, "dataset": "BALANCE_HISTORY", "format": "JSON",
            "series": { "from": "2026-10-23T22:00:00Z", "to": "2026-10-26T23:00:00Z",
                        "interval": "DAY", "timeZone": "Europe/Berlin" } } }),
    )
    .await?;
    let export = data(&response, "exportAccountData")?;
    assert_eq!(export["rowCount"], 3, "{response}");
    let (status, _, body) = download(
        &portal,
        export["file"]["download"]["url"]
            .as_str()
            .unwrap_or_default(),
    )
    .await?;
    assert_eq!(status, 200);
    let rows: Value = serde_json::from_slice(&body)?;
    assert_eq!(rows[0]["start"], "2026-10-24T00:00:00+02:00");
    assert_eq!(rows[1]["start"], "2026-10-25T00:00:00+02:00");
    assert_eq!(rows[1]["end"], "2026-10-26T00:00:00+01:00");
    // The demo's opening balance was posted when the data was seeded (today).
    assert_eq!(rows[2]["value"], "0");

    // A saved chart widget exports what it shows; a KPI widget the dashboard's totals
    // over every account the caller sees.
    let layout = as_carol(
        &portal,
        "mutation($input: CreateDashboardLayoutInput!) { createDashboardLayout(input: $input) {
            id widgets { id kind } } }",
        json!({ "input": { "name": "Exports", "widgets": [
            { "kind": "BALANCE_HISTORY", "binding": { "accountId": savings },
              "options": { "interval": "DAY", "rangeDays": 7 },
              "placement": { "lg": { "x": 0, "y": 0, "w": 6, "h": 4 },
                             "md": { "x": 0, "y": 0, "w": 6, "h": 4 },
                             "sm": { "x": 0, "y": 0, "w": 4, "h": 4 } } },
            { "kind": "KPI", "binding": {}, "options": { "kpi": "BALANCES" },
              "placement": { "lg": { "x": 6, "y": 0, "w": 6, "h": 4 },
                             "md": { "x": 6, "y": 0, "w": 6, "h": 4 },
                             "sm": { "x": 0, "y": 4, "w": 4, "h": 4 } } },
            { "kind": "KPI", "binding": {}, "options": { "kpi": "USAGE" },
              "placement": { "lg": { "x": 0, "y": 4, "w": 6, "h": 4 },
                             "md": { "x": 0, "y": 4, "w": 6, "h": 4 },
                             "sm": { "x": 0, "y": 8, "w": 4, "h": 4 } } }
        ] } }),
    )
    .await?;
    let layout = data(&layout, "createDashboardLayout")?;
    let widget = |i: usize| layout["widgets"][i]["id"].clone();
    let export_widget = "mutation($input: ExportWidgetDataInput!) {
        exportWidgetData(input: $input) {
            id dataset status rowCount account { id } file { name rowCount download { url } } } }";
    let chart = as_carol(
        &portal,
        export_widget,
        json!({ "input": { "layoutId": layout["id"], "widgetId": widget(0), "format": "CSV",
                           "timeZone": "Europe/Berlin" } }),
    )
    .await?;
    let chart = data(&chart, "exportWidgetData")?;
    assert_eq!(chart["dataset"], "BALANCE_HISTORY");
    assert_eq!(chart["status"], "READY");
    // Seven days ending now: 7 or 8 local days, depending on the hour.
    let rows = chart["rowCount"].as_i64().unwrap_or_default();
    assert!((7..=8).contains(&rows), "{chart}");
    let kpi = as_carol(
        &portal,
        export_widget,
        json!({ "input": { "layoutId": layout["id"], "widgetId": widget(1), "format": "JSON" } }),
    )
    .await?;
    let kpi = data(&kpi, "exportWidgetData")?;
    assert_eq!(kpi["dataset"], "KPI_BALANCES", "{kpi}");
    assert_eq!(kpi["status"], "READY");
    assert_eq!(kpi["account"], Value::Null);
    assert!(
        kpi["file"]["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("dashboard-kpi-balances-")),
        "{kpi}"
    );
    let (status, _, body) = download(
        &portal,
        kpi["file"]["download"]["url"].as_str().unwrap_or_default(),
    )
    .await?;
    assert_eq!(status, 200);
    let rows: Value = serde_json::from_slice(&body)?;
    let shown = as_carol(
        &portal,
        "{ dashboard { balances { currency amount count } } }",
        json!({}),
    )
    .await?;
    let shown = data(&shown, "dashboard")?["balances"].clone();
    let expected: Vec<Value> = shown
        .as_array()
        .into_iter()
        .flatten()
        .map(|total| {
            // Exports write decimals normalized (3000, not 3000.0000).
            let amount: rust_decimal::Decimal = total["amount"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .unwrap_or_default();
            json!({ "currency": total["currency"], "balance": amount.normalize().to_string(),
                    "accounts": total["count"] })
        })
        .collect();
    assert!(!expected.is_empty(), "{shown}");
    assert_eq!(rows, Value::Array(expected), "{shown}");
    // Followed like any export of hers.
    let followed = as_carol(&portal, FOLLOW, json!({ "id": kpi["id"] })).await?;
    assert_eq!(data(&followed, "accountExport")?["status"], "READY");

    // Usage metered on Savings (visible to her) a minute ago.
    let recorded = as_role(
        &portal,
        portal.seed.bob_id,
        "billing_admin",
        "mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted } }",
        json!({ "input": { "accountId": savings, "events": [
            { "metric": "api.calls", "quantity": "12.5",
              "occurredAt": (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
              "key": Uuid::now_v7().to_string() } ] } }),
    )
    .await?;
    assert_eq!(data(&recorded, "recordUsage")?["accepted"], 1);
    let usage = as_carol(
        &portal,
        export_widget,
        json!({ "input": { "layoutId": layout["id"], "widgetId": widget(2), "format": "CSV",
                           "timeZone": "Asia/Kolkata" } }),
    )
    .await?;
    let usage = data(&usage, "exportWidgetData")?;
    assert_eq!(usage["dataset"], "KPI_USAGE", "{usage}");
    let (status, _, body) = download(
        &portal,
        usage["file"]["download"]["url"]
            .as_str()
            .unwrap_or_default(),
    )
    .await?;
    assert_eq!(status, 200);
    let text = String::from_utf8(body)?;
    assert!(
        text.starts_with("metric,currentPeriodStart,current,previousPeriodStart,previous\r\n"),
        "{text}"
    );
    // Periods start at local midnight of the month's first day.
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let cells: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(cells[0], "api.calls");
    assert!(cells[1].ends_with("-01T00:00:00+05:30"), "{text}");
    assert_eq!(cells[2], "12.5");
    assert!(cells[3].ends_with("-01T00:00:00+05:30"), "{text}");
    assert_eq!(cells[4], "0");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn bad_export_requests_are_refused_and_write_nothing() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let payroll = portal.account_id("ACME-0003").await?;
    let series =
        json!({ "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "interval": "HOUR" });
    let cases = [
        json!({ "accountId": payroll, "dataset": "LEDGER_ENTRIES", "format": "CSV",
                "invoiceFilter": { "statuses": ["OPEN"] } }),
        json!({ "accountId": payroll, "dataset": "BALANCE", "format": "CSV", "series": series }),
        json!({ "accountId": payroll, "dataset": "USAGE", "format": "CSV", "series": series }),
        json!({ "accountId": payroll, "dataset": "ACTIVITY", "format": "CSV" }),
        json!({ "accountId": payroll, "dataset": "ACTIVITY", "format": "CSV",
                "series": { "from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "interval": "DAY" } }),
        json!({ "accountId": payroll, "dataset": "BALANCE_HISTORY", "format": "CSV",
                "series": { "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z",
                            "interval": "DAY", "timeZone": "Mars/Olympus" } }),
        json!({ "accountId": payroll, "dataset": "LEDGER_ENTRIES", "format": "CSV",
                "ledgerFilter": { "postedFrom": "2026-02-01T00:00:00Z", "postedTo": "2026-01-01T00:00:00Z" } }),
        json!({ "accountId": "not-an-id", "dataset": "BALANCE", "format": "CSV" }),
    ];
    for input in cases {
        let response = as_carol(&portal, EXPORT, json!({ "input": input })).await?;
        assert_eq!(code(&response), "BAD_USER_INPUT", "{input}: {response}");
    }
    assert_eq!(account_export::Entity::find().count(&portal.db).await?, 0);
    assert_eq!(file::Entity::find().count(&portal.db).await?, 0);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn only_members_export_and_downloads_recheck_access() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::Distributed).await?;
    let seed = portal.seed.clone();
    let operating = portal.account_id("ACME-0001").await?;
    let balance =
        json!({ "input": { "accountId": operating, "dataset": "BALANCE", "format": "CSV" } });

    // Carol is a member of Alice's operating account: she exports it.
    let first = as_carol(&portal, EXPORT, balance.clone()).await?;
    let first = data(&first, "exportAccountData")?.clone();
    let url = first["file"]["download"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _, body) = download(&portal, &url).await?;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(body)?.starts_with("accountNumber,asOf,balance,currency\r\nACME-0001,")
    );

    // Support staff, who may not see money, export nothing; globex sees nothing of acme.
    let support = as_role(
        &portal,
        seed.alice_id,
        "support_agent",
        EXPORT,
        balance.clone(),
    )
    .await?;
    assert_eq!(code(&support), "FORBIDDEN", "{support}");
    let outsider = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["customer_user"],
            EXPORT,
            balance.clone(),
        )
        .await?;
    assert_ne!(outsider["errors"], Value::Null, "{outsider}");
    let peek = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["customer_user"],
            FOLLOW,
            json!({ "id": first["id"] }),
        )
        .await?;
    assert_eq!(peek["data"]["accountExport"], Value::Null, "{peek}");
    // Bob (billing, sees every account) cannot read Carol's export either: exports are
    // their requester's.
    let bob = as_role(
        &portal,
        seed.bob_id,
        "billing_admin",
        FOLLOW,
        json!({ "id": first["id"] }),
    )
    .await?;
    assert_eq!(bob["data"]["accountExport"], Value::Null, "{bob}");

    // A link is tamper-proof.
    let mut forged = url.clone();
    forged.insert(url.len() - 3, 'A');
    let (status, _, body) = download(&portal, &forged).await?;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));

    // An expired link says so.
    let row = file::Entity::find()
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no file"))?;
    let carol =
        portal_kit::Actor::user(seed.carol_id, seed.tenant_id, vec!["customer_user".into()]);
    let (old, _) = portal
        .files
        .link(&row, &carol, Utc::now() - chrono::Duration::minutes(10))
        .map_err(|err| anyhow::anyhow!("{err:?}"))?;
    let (status, _, body) = download(&portal, &old).await?;
    assert_eq!(status, 403);
    assert!(String::from_utf8(body)?.contains("LINK_EXPIRED"));

    // Carol leaves the account: her still-valid link stops working, and the refusal is
    // audited.
    let operating_id: Uuid = operating.parse()?;
    account_member::Entity::delete_many()
        .filter(account_member::Column::AccountId.eq(operating_id))
        .filter(account_member::Column::UserId.eq(seed.carol_id))
        .exec(&portal.db)
        .await?;
    let (status, _, body) = download(&portal, &url).await?;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // Refusals of signed links are audited (the expired one, and this one).
    let refused = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("file.download"))
        .filter(audit_event::Column::Outcome.eq("failure"))
        .count(&portal.db)
        .await?;
    assert_eq!(refused, 2);
    let gone = as_carol(&portal, FOLLOW, json!({ "id": first["id"] })).await?;
    assert_eq!(gone["data"]["accountExport"], Value::Null, "{gone}");

    // On her own account, links work until her roles change: a download acts with the
    // roles she holds now, not those she held when the link was made, and re-reads the
    // fields the file's data came from.
    let payroll = portal.account_id("ACME-0003").await?;
    let export_url = |dataset: &'static str, extra: Value| {
        let portal = &portal;
        let payroll = payroll.clone();
        async move {
            let mut input = json!({ "accountId": payroll, "dataset": dataset, "format": "XLSX" });
            if let (Value::Object(input), Value::Object(extra)) = (&mut input, extra) {
                input.extend(extra);
            }
            let made = as_carol(portal, EXPORT, json!({ "input": input })).await?;
            let made = data(&made, "exportAccountData")?;
            anyhow::Ok(
                made["file"]["download"]["url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    let invoices_url = export_url("INVOICES", json!({})).await?;
    let kpi_layout = as_carol(
        &portal,
        "mutation($input: CreateDashboardLayoutInput!) { createDashboardLayout(input: $input) {
            id widgets { id } } }",
        json!({ "input": { "name": "KPIs", "widgets": [
            { "kind": "KPI", "binding": {}, "options": { "kpi": "OPEN_INVOICES" },
              "placement": { "lg": { "x": 0, "y": 0, "w": 6, "h": 4 },
                             "md": { "x": 0, "y": 0, "w": 6, "h": 4 },
                             "sm": { "x": 0, "y": 0, "w": 4, "h": 4 } } }
        ] } }),
    )
    .await?;
    let kpi_layout = data(&kpi_layout, "createDashboardLayout")?;
    let kpi = as_carol(
        &portal,
        "mutation($input: ExportWidgetDataInput!) {
            exportWidgetData(input: $input) { file { download { url } } } }",
        json!({ "input": { "layoutId": kpi_layout["id"],
                           "widgetId": kpi_layout["widgets"][0]["id"], "format": "XLSX" } }),
    )
    .await?;
    let kpi_url = data(&kpi, "exportWidgetData")?["file"]["download"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(download(&portal, &kpi_url).await?.0, 200);
    let activity_url = export_url(
        "ACTIVITY",
        json!({ "series": { "from": "2026-01-01T00:00:00Z", "to": "2026-01-08T00:00:00Z", "interval": "DAY" } }),
    )
    .await?;
    assert_eq!(download(&portal, &invoices_url).await?.0, 200);
    assert_eq!(download(&portal, &activity_url).await?.0, 200);
    // She also becomes support staff, whose rules deny invoices (a deny wins) but not
    // activity counts: the invoice files (the account's, the dashboard's) are refused,
    // the activity file is not.
    portal.grant_role(seed.carol_id, "support_agent").await?;
    assert_eq!(download(&portal, &invoices_url).await?.0, 403);
    assert_eq!(download(&portal, &kpi_url).await?.0, 403);
    assert_eq!(download(&portal, &activity_url).await?.0, 200);
    // Without any role she reads no export at all.
    let txn = portal.db.begin_write().await?;
    user_role::Entity::delete_many()
        .filter(user_role::Column::UserId.eq(seed.carol_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    assert_eq!(download(&portal, &activity_url).await?.0, 403);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn large_exports_are_written_by_a_job() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let savings = portal.account_id("ACME-0002").await?;
    let account: Uuid = savings.parse()?;
    // Enough entries to pass the in-request limit (10 000), inserted directly.
    let now = Utc::now();
    let rows: Vec<ledger_entry::ActiveModel> = (0..10_050)
        .map(|i| ledger_entry::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(portal.seed.tenant_id),
            account_id: Set(account),
            kind: Set("CREDIT".into()),
            source: Set("MANUAL".into()),
            amount_e4: Set(1),
            balance_after_e4: Set(i),
            currency: Set("EUR".into()),
            posted_at: Set(now - chrono::Duration::seconds(20_000 - i)),
            reference: Set(Some(format!("BULK-{i}"))),
            description: Set(None),
            invoice_id: Set(None),
            payment_id: Set(None),
            idempotency_key: Set(None),
            request_hash: Set(None),
            created_by: Set(None),
            created_at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(500) {
        ledger_entry::Entity::insert_many(chunk.to_vec())
            .exec(&portal.db)
            .await?;
    }
    let expected = ledger_rows(&portal, &savings).await?;
    let queued = as_carol(
        &portal,
        EXPORT,
        json!({ "input": { "accountId": savings, "dataset": "LEDGER_ENTRIES", "format": "CSV" } }),
    )
    .await?;
    let queued = data(&queued, "exportAccountData")?.clone();
    assert_eq!(queued["status"], "QUEUED", "{queued}");
    assert_eq!(queued["file"], Value::Null);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ready = loop {
        let followed = as_carol(&portal, FOLLOW, json!({ "id": queued["id"] })).await?;
        let export = data(&followed, "accountExport")?.clone();
        if export["status"] == "READY" {
            break export;
        }
        assert!(
            ["QUEUED", "RUNNING"].contains(&export["status"].as_str().unwrap_or_default()),
            "{export}"
        );
        anyhow::ensure!(std::time::Instant::now() < deadline, "still {export}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(ready["rowCount"], json!(expected));
    let (status, _, body) = download(
        &portal,
        ready["file"]["download"]["url"]
            .as_str()
            .unwrap_or_default(),
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(ready["file"]["sha256"], hex::encode(Sha256::digest(&body)));
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert_eq!(records.len() as u64, expected);
    // Oldest first, every entry once.
    let bulk: Vec<&str> = records
        .iter()
        .filter_map(|r| r.get(7))
        .filter(|r| r.starts_with("BULK-"))
        .collect();
    assert_eq!(bulk.len(), 10_050);
    assert_eq!((bulk[0], bulk[10_049]), ("BULK-0", "BULK-10049"));
    portal.stop().await;
    Ok(())
}
