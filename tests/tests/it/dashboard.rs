//! `dashboard` through the gateway: the KPIs of the signed-in user's accounts — balances,
//! open and overdue invoices, usage this month and last — in a constant number of SQL
//! statements however many accounts there are; only the caller's own accounts count.

use chrono::Utc;
use portal_entities::accounts::{account, account_member};
use portal_tests::{Mode, TestDb, TestPortal, connect_counting};
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use serde_json::{Value, json};
use uuid::Uuid;

const DASHBOARD: &str = "query($tz: String) { dashboard(timeZone: $tz) {
    id timeZone currentPeriod { start end }
    balances { currency amount count }
    openInvoices { count amountDue { currency amount } }
    overdueInvoices { count amountDue { currency amount } }
    usage { metric current previous }
    accounts(first: 100) { edges { node { number balance } } }
} }";

/// Gives Carol `extra` more USD accounts of 1.0000 each (half owned, half as a member).
async fn add_accounts(
    db: &DatabaseConnection,
    tenant: Uuid,
    carol: Uuid,
    alice: Uuid,
    extra: usize,
) -> anyhow::Result<()> {
    for i in 0..extra {
        let id = Uuid::now_v7();
        let owner = if i % 2 == 0 { carol } else { alice };
        let created = account::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant),
            owner_id: Set(owner),
            number: Set(format!("DASH-{i:04}")),
            name: Set(format!("Dashboard {i}")),
            status: Set("OPEN".into()),
            currency: Set("USD".into()),
            balance_e4: Set(10_000),
            idempotency_key: Set(None),
            request_hash: Set(None),
            created_at: Set(Utc::now()),
            updated_at: Set(Utc::now()),
        }
        .insert(db)
        .await?;
        portal_accounts::store::ledger::insert_opening_balance(db, &created).await?;
        if owner == alice {
            account_member::ActiveModel {
                account_id: Set(id),
                user_id: Set(carol),
                tenant_id: Set(tenant),
                added_by: Set(alice),
                created_at: Set(Utc::now()),
            }
            .insert(db)
            .await?;
        }
    }
    Ok(())
}

async fn dashboard_statements(extra: usize) -> anyhow::Result<(Value, usize)> {
    let test_db = TestDb::new().await?;
    let (db, counter) = connect_counting(&test_db).await?;
    let seed = portal::seed::seed(&db).await?;
    add_accounts(&db, seed.tenant_id, seed.carol_id, seed.alice_id, extra).await?;
    let portal = TestPortal::start_on(Mode::AllInOne, db, seed).await?;
    let mut statements = usize::MAX;
    let mut response = Value::Null;
    for _ in 0..5 {
        let before = counter.get();
        response = portal
            .query_as_carol(DASHBOARD, json!({ "tz": "Europe/Berlin" }))
            .await?;
        statements = statements.min(counter.get() - before);
    }
    portal.stop().await;
    test_db.cleanup().await;
    Ok((response, statements))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_costs_the_same_statements_for_3_or_43_accounts() -> anyhow::Result<()> {
    let (few, few_statements) = dashboard_statements(0).await?;
    let (many, many_statements) = dashboard_statements(40).await?;
    assert!(few["errors"].is_null(), "{few}");
    assert!(many["errors"].is_null(), "{many}");
    let count = |r: &Value| {
        r["data"]["dashboard"]["accounts"]["edges"]
            .as_array()
            .map_or(0, Vec::len)
    };
    // Carol owns Savings (EUR) and Payroll (USD) and is a member of Operating (USD).
    assert_eq!((count(&few), count(&many)), (3, 43));
    assert_eq!(
        few["data"]["dashboard"]["balances"],
        json!([
            { "currency": "EUR", "amount": "3000.0000", "count": 1 },
            { "currency": "USD", "amount": "111265.9321", "count": 2 },
        ])
    );
    assert_eq!(
        many["data"]["dashboard"]["balances"][1]["amount"],
        "111305.9321"
    );
    assert_eq!(many["data"]["dashboard"]["balances"][1]["count"], 42);
    assert_eq!(few["data"]["dashboard"]["timeZone"], "Europe/Berlin");
    assert_eq!(
        few_statements, many_statements,
        "statements grew with the accounts: {few_statements} for 3, {many_statements} for 43"
    );
    Ok(())
}

#[tokio::test]
async fn the_dashboard_counts_only_what_the_caller_may_see() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let as_role = |user: Uuid, role: &'static str, query: &'static str, vars: Value| {
        let portal = &portal;
        let tenant = seed.tenant_id;
        async move {
            portal
                .query_with_roles(tenant, user, &[role], query, vars)
                .await
        }
    };
    let bob = |query: &'static str, vars: Value| as_role(seed.bob_id, "billing_admin", query, vars);
    let operating = portal.account_id("ACME-0001").await?;
    let billing = portal.account_id("ACME-0004").await?;
    let issue = "mutation($input: IssueInvoiceInput!) { issueInvoice(input: $input) { id } }";
    for (account, number, currency, due) in [
        (&operating, "INV-D1", "USD", "2099-01-01"),
        (&operating, "INV-D2", "USD", "2020-01-31"),
        (&billing, "INV-D3", "GBP", "2020-01-31"),
    ] {
        let out = bob(
            issue,
            json!({ "input": {
                "accountId": account, "number": number, "amount": "10", "currency": currency,
                "periodStart": "2020-01-01", "periodEnd": "2020-01-31", "dueDate": due,
                "idempotencyKey": format!("dash-{number}-{}", Uuid::now_v7()),
            } }),
        )
        .await?;
        anyhow::ensure!(out["errors"].is_null(), "{out}");
    }
    let usage = "mutation($input: RecordUsageInput!) { recordUsage(input: $input) { accepted } }";
    let out = bob(
        usage,
        json!({ "input": { "accountId": operating, "events": [
            { "metric": "api.calls", "quantity": "5", "occurredAt": Utc::now().to_rfc3339(), "key": format!("dash-{}", Uuid::now_v7()) }
        ] } }),
    )
    .await?;
    anyhow::ensure!(out["errors"].is_null(), "{out}");

    // Carol is a member of Operating, not of Billing float (Bob's): she sees one open and
    // one overdue USD invoice, and Operating's usage.
    let carol = as_role(seed.carol_id, "customer_user", DASHBOARD, json!({})).await?;
    let board = &carol["data"]["dashboard"];
    assert!(carol["errors"].is_null(), "{carol}");
    assert_eq!(board["id"], seed.carol_id.to_string());
    assert_eq!(
        board["openInvoices"],
        json!({ "count": 1, "amountDue": [{ "currency": "USD", "amount": "10.0000" }] })
    );
    assert_eq!(
        board["overdueInvoices"],
        json!({ "count": 1, "amountDue": [{ "currency": "USD", "amount": "10.0000" }] })
    );
    assert_eq!(
        board["usage"],
        json!([{ "metric": "api.calls", "current": "5.0000", "previous": "0.0000" }])
    );
    // Bob (the grant: every account) also sees the GBP invoice.
    let as_bob = bob(DASHBOARD, json!({})).await?;
    assert_eq!(
        as_bob["data"]["dashboard"]["overdueInvoices"]["count"], 2,
        "{as_bob}"
    );
    // Support: accounts and usage, never money.
    let support = as_role(seed.alice_id, "support_agent", DASHBOARD, json!({})).await?;
    let board = &support["data"]["dashboard"];
    assert_eq!(board["balances"], Value::Null, "{support}");
    assert_eq!(board["openInvoices"], Value::Null, "{support}");
    assert_eq!(board["usage"][0]["metric"], "api.calls", "{support}");
    // A bad time zone names the argument; no signed-in user, no dashboard.
    let bad = as_role(
        seed.carol_id,
        "customer_user",
        DASHBOARD,
        json!({ "tz": "Mars/Olympus" }),
    )
    .await?;
    assert_eq!(bad["errors"][0]["extensions"]["field"], "timeZone", "{bad}");
    let anonymous = portal
        .http()
        .post(&portal.endpoint)
        .json(&json!({ "query": "{ dashboard { id } }" }))
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert!(
        anonymous["data"].is_null() || anonymous["data"]["dashboard"].is_null(),
        "{anonymous}"
    );
    portal.stop().await;
    Ok(())
}
