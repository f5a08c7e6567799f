//! The account ledger through the gateway: postings move the balance and the ledger
//! always sums to it; bad input is refused and writes nothing; retried postings apply
//! once; invoices go open → paid or void; lists sort, filter and page by keyset; only
//! members (and staff with the grant) read it; every change is audited and followed by
//! `accountUpdated`.

use std::collections::HashSet;

use portal_entities::accounts::{account, invoice, ledger_entry, ledger_rollup, payment};
use portal_entities::platform::{audit_event, domain_event};
use portal_tests::streams::WsClient;
use portal_tests::{Mode, TestPortal};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

const POST: &str = "mutation($input: PostLedgerEntryInput!) {
    postLedgerEntry(input: $input) { id kind source amount balanceAfter currency reference }
}";
const ISSUE: &str = "mutation($input: IssueInvoiceInput!) {
    issueInvoice(input: $input) { id number status amount amountPaid amountDue dueDate }
}";
const PAY: &str = "mutation($input: RecordPaymentInput!) {
    recordPayment(input: $input) { id amount invoice { id status amountPaid amountDue } }
}";
const VOID: &str = "mutation($id: ID!) {
    voidInvoice(id: $id, reason: \"issued twice\") { id status amountDue voidReason }
}";
const BALANCE: &str = "query($id: ID!) { account(id: $id) { balance } }";

/// Bob, the demo tenant's billing admin.
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

fn data<'a>(response: &'a Value, field: &str) -> anyhow::Result<&'a Value> {
    anyhow::ensure!(response["errors"].is_null(), "{field} failed: {response}");
    Ok(&response["data"][field])
}

fn key() -> String {
    format!("test-{}", Uuid::now_v7())
}

fn dec(value: &Value) -> Decimal {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("not a decimal: {value}"))
}

async fn balance(portal: &TestPortal, account: &str) -> anyhow::Result<Decimal> {
    let response = as_bob(portal, BALANCE, json!({ "id": account })).await?;
    Ok(dec(&data(&response, "account")?["balance"]))
}

/// Every account's ledger sums to its balance, and its newest entry's running balance is
/// that balance.
async fn ledgers_sum_to_balances(db: &DatabaseConnection) -> anyhow::Result<()> {
    for row in account::Entity::find().all(db).await? {
        let entries = ledger_entry::Entity::find()
            .filter(ledger_entry::Column::AccountId.eq(row.id))
            .all(db)
            .await?;
        let sum: i64 = entries.iter().map(|e| e.amount_e4).sum();
        assert_eq!(
            sum, row.balance_e4,
            "ledger of {} sums to its balance",
            row.number
        );
        if let Some(last) = entries.iter().max_by_key(|e| (e.created_at, e.id)) {
            assert_eq!(last.balance_after_e4, row.balance_e4, "{}", row.number);
        }
        // The chart rollups hold the same entries.
        let rollups = ledger_rollup::Entity::find()
            .filter(ledger_rollup::Column::AccountId.eq(row.id))
            .all(db)
            .await?;
        let rolled: i64 = rollups.iter().map(|r| r.amount_e4).sum();
        let counted: i64 = rollups.iter().map(|r| r.entries).sum();
        assert_eq!(
            (rolled, counted),
            (row.balance_e4, entries.len() as i64),
            "{}",
            row.number
        );
    }
    Ok(())
}

/// Rows of every table a ledger mutation writes.
async fn written(db: &DatabaseConnection) -> anyhow::Result<[u64; 6]> {
    Ok([
        ledger_entry::Entity::find().count(db).await?,
        invoice::Entity::find().count(db).await?,
        payment::Entity::find().count(db).await?,
        audit_event::Entity::find().count(db).await?,
        domain_event::Entity::find().count(db).await?,
        account::Entity::find()
            .all(db)
            .await?
            .iter()
            .map(|a| a.balance_e4 as u64)
            .fold(0u64, u64::wrapping_add),
    ])
}

#[tokio::test]
async fn postings_invoices_and_payments_move_the_balance_and_are_audited() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let operating = portal.account_id("ACME-0001").await?;
    ledgers_sum_to_balances(&portal.db).await?;
    let opening = balance(&portal, &operating).await?;
    assert_eq!(opening.to_string(), "12500.5000");

    let post = |kind: &str, direction: Option<&str>, amount: &str| {
        json!({ "input": {
            "accountId": operating, "kind": kind, "direction": direction, "amount": amount,
            "currency": "USD", "reference": "T-1", "idempotencyKey": key(),
        } })
    };
    let charge = as_bob(&portal, POST, post("CHARGE", None, "100.25")).await?;
    let charge = data(&charge, "postLedgerEntry")?;
    assert_eq!(charge["amount"], "-100.2500");
    assert_eq!(charge["balanceAfter"], "12400.2500");
    assert_eq!(charge["source"], "MANUAL");
    for (kind, direction, amount) in [
        ("CREDIT", None, "20"),
        ("REFUND", None, "5"),
        ("ADJUSTMENT", Some("DEBIT"), "0.0001"),
        ("ADJUSTMENT", Some("CREDIT"), "1.5"),
    ] {
        let out = as_bob(&portal, POST, post(kind, direction, amount)).await?;
        data(&out, "postLedgerEntry")?;
    }
    let expected = opening - Decimal::new(10_025, 2) + Decimal::from(20)
        - Decimal::from(5)
        - Decimal::new(1, 4)
        + Decimal::new(15, 1);
    assert_eq!(balance(&portal, &operating).await?, expected);

    // An invoice charges its amount; two payments settle it.
    let issued = as_bob(
        &portal,
        ISSUE,
        json!({ "input": {
            "accountId": operating, "number": "inv-2026-0001", "amount": "50", "currency": "usd",
            "periodStart": "2026-11-01", "periodEnd": "2026-11-30", "dueDate": "2099-12-31",
            "idempotencyKey": key(),
        } }),
    )
    .await?;
    let issued = data(&issued, "issueInvoice")?.clone();
    assert_eq!(issued["number"], "INV-2026-0001");
    assert_eq!(issued["status"], "OPEN");
    assert_eq!(issued["amountDue"], "50.0000");
    let pay = |amount: &str| {
        json!({ "input": {
            "accountId": operating, "invoiceId": issued["id"], "amount": amount,
            "currency": "USD", "reference": "wire 42", "idempotencyKey": key(),
        } })
    };
    let first = as_bob(&portal, PAY, pay("20")).await?;
    let first = data(&first, "recordPayment")?;
    assert_eq!(first["invoice"]["status"], "OPEN");
    assert_eq!(first["invoice"]["amountDue"], "30.0000");
    // More than is owed is refused.
    let over = as_bob(&portal, PAY, pay("30.0001")).await?;
    assert_eq!(
        over["errors"][0]["extensions"]["field"], "input.amount",
        "{over}"
    );
    let second = as_bob(&portal, PAY, pay("30")).await?;
    let second = data(&second, "recordPayment")?;
    assert_eq!(second["invoice"]["status"], "PAID");
    assert_eq!(second["invoice"]["amountDue"], "0.0000");
    // Invoice and payments cancel out.
    assert_eq!(balance(&portal, &operating).await?, expected);
    // A paid invoice cannot be voided.
    let voided = as_bob(&portal, VOID, json!({ "id": issued["id"] })).await?;
    assert_eq!(
        voided["errors"][0]["extensions"]["code"], "CONFLICT",
        "{voided}"
    );

    ledgers_sum_to_balances(&portal.db).await?;
    let account_id: Uuid = operating.parse()?;
    let actions: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::TargetId.eq(account_id))
        .all(&portal.db)
        .await?
        .into_iter()
        .map(|row| row.action)
        .collect();
    for action in [
        "account.ledger.post",
        "account.invoice.issue",
        "account.payment.record",
        "account.invoice.settle",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "account.ledger.post")
            .count(),
        5
    );
    let events = domain_event::Entity::find()
        .filter(domain_event::Column::SubjectId.eq(account_id))
        .filter(domain_event::Column::EventType.eq("account.invoice.settled"))
        .count(&portal.db)
        .await?;
    assert_eq!(events, 1);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn bad_postings_are_refused_with_the_field_and_write_nothing() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let operating = portal.account_id("ACME-0001").await?;
    let other = portal.account_id("ACME-0003").await?;
    // A closed account, and an invoice of another account.
    let closed = portal.account_id("ACME-0004").await?;
    let close = "mutation($id: ID!) { updateAccount(id: $id, input: { status: CLOSED }) { id } }";
    data(
        &as_bob(&portal, close, json!({ "id": closed })).await?,
        "updateAccount",
    )?;
    let foreign = as_bob(
        &portal,
        ISSUE,
        json!({ "input": {
            "accountId": other, "number": "INV-OTHER", "amount": "10", "currency": "USD",
            "periodStart": "2026-11-01", "periodEnd": "2026-11-30", "dueDate": "2026-12-15",
            "idempotencyKey": key(),
        } }),
    )
    .await?;
    let foreign = data(&foreign, "issueInvoice")?["id"].clone();

    let entry = |patch: Value| {
        let mut input = json!({
            "accountId": operating, "kind": "CHARGE", "amount": "10", "currency": "USD",
            "idempotencyKey": key(),
        });
        for (k, v) in patch.as_object().into_iter().flatten() {
            input[k] = v.clone();
        }
        (POST, json!({ "input": input }))
    };
    let payment = |patch: Value| {
        let mut input = json!({
            "accountId": operating, "amount": "10", "currency": "USD", "idempotencyKey": key(),
        });
        for (k, v) in patch.as_object().into_iter().flatten() {
            input[k] = v.clone();
        }
        (PAY, json!({ "input": input }))
    };
    let invoice = |patch: Value| {
        let mut input = json!({
            "accountId": operating, "number": "INV-BAD", "amount": "10", "currency": "USD",
            "periodStart": "2026-11-01", "periodEnd": "2026-11-30", "dueDate": "2026-12-15",
            "idempotencyKey": key(),
        });
        for (k, v) in patch.as_object().into_iter().flatten() {
            input[k] = v.clone();
        }
        (ISSUE, json!({ "input": input }))
    };
    let cases = [
        (entry(json!({ "currency": "EUR" })), "input.currency"),
        (entry(json!({ "currency": "DOLLARS" })), "input.currency"),
        (entry(json!({ "amount": "0" })), "input.amount"),
        (entry(json!({ "amount": "-5" })), "input.amount"),
        (entry(json!({ "amount": "1.00001" })), "input.amount"),
        (entry(json!({ "amount": "1e30" })), "input.amount"),
        (
            entry(json!({ "accountId": closed, "currency": "GBP" })),
            "input.accountId",
        ),
        (entry(json!({ "kind": "PAYMENT" })), "input.kind"),
        (entry(json!({ "kind": "ADJUSTMENT" })), "input.direction"),
        (entry(json!({ "direction": "CREDIT" })), "input.direction"),
        (
            entry(json!({ "postedAt": "2099-01-01T00:00:00Z" })),
            "input.postedAt",
        ),
        (entry(json!({ "postedAt": "yesterday" })), "input.postedAt"),
        (
            entry(json!({ "postedAt": "1969-12-31T23:59:59Z" })),
            "input.postedAt",
        ),
        (
            entry(json!({ "idempotencyKey": "short" })),
            "input.idempotencyKey",
        ),
        (
            entry(json!({ "reference": "x".repeat(101) })),
            "input.reference",
        ),
        (
            entry(json!({ "accountId": "not-an-id" })),
            "input.accountId",
        ),
        (payment(json!({ "invoiceId": foreign })), "input.invoiceId"),
        (payment(json!({ "currency": "EUR" })), "input.currency"),
        (payment(json!({ "amount": "0" })), "input.amount"),
        (
            invoice(json!({ "periodEnd": "2026-10-31" })),
            "input.periodEnd",
        ),
        (invoice(json!({ "dueDate": "2026-10-01" })), "input.dueDate"),
        (invoice(json!({ "dueDate": "2026-02-30" })), "input.dueDate"),
        (invoice(json!({ "number": "#1" })), "input.number"),
        (invoice(json!({ "currency": "GBP" })), "input.currency"),
    ];
    let before = written(&portal.db).await?;
    for ((mutation, variables), field) in cases {
        let response = as_bob(&portal, mutation, variables.clone()).await?;
        let error = &response["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "BAD_USER_INPUT",
            "{variables}: {response}"
        );
        assert_eq!(
            error["extensions"]["field"], field,
            "{variables}: {response}"
        );
        assert_eq!(
            written(&portal.db).await?,
            before,
            "{variables} wrote something"
        );
    }
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_retried_posting_payment_or_invoice_applies_once() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let operating = portal.account_id("ACME-0001").await?;
    let entry_key = key();
    let input = json!({ "input": {
        "accountId": operating, "kind": "CHARGE", "amount": "7", "currency": "USD",
        "idempotencyKey": entry_key,
    } });
    // The same posting sent eight times at once is posted once; all get its id.
    let tries = (0..8).map(|_| as_bob(&portal, POST, input.clone()));
    let answers = futures::future::join_all(tries).await;
    let mut ids = HashSet::new();
    for answer in answers {
        let answer = answer?;
        ids.insert(data(&answer, "postLedgerEntry")?["id"].clone());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let entry_id = ids.iter().next().cloned().unwrap_or_default();
    let posted = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::IdempotencyKey.eq(entry_key.as_str()))
        .count(&portal.db)
        .await?;
    assert_eq!(posted, 1);
    // The same key with other input is a conflict, and writes nothing.
    let before = written(&portal.db).await?;
    let mut changed = input.clone();
    changed["input"]["amount"] = json!("8");
    let conflict = as_bob(&portal, POST, changed).await?;
    assert_eq!(
        conflict["errors"][0]["extensions"]["code"], "CONFLICT",
        "{conflict}"
    );
    assert_eq!(written(&portal.db).await?, before);

    // Invoices and payments alike.
    let invoice_input = json!({ "input": {
        "accountId": operating, "number": "INV-RETRY", "amount": "40", "currency": "USD",
        "periodStart": "2026-11-01", "periodEnd": "2026-11-30", "dueDate": "2099-01-01",
        "idempotencyKey": key(),
    } });
    let first = as_bob(&portal, ISSUE, invoice_input.clone()).await?;
    let again = as_bob(&portal, ISSUE, invoice_input).await?;
    let invoice_id = data(&first, "issueInvoice")?["id"].clone();
    assert_eq!(data(&again, "issueInvoice")?["id"], invoice_id);
    let pay = json!({ "input": {
        "accountId": operating, "invoiceId": invoice_id, "amount": "40", "currency": "USD",
        "idempotencyKey": key(),
    } });
    let tries = (0..4).map(|_| as_bob(&portal, PAY, pay.clone()));
    let mut ids = HashSet::new();
    for answer in futures::future::join_all(tries).await {
        let answer = answer?;
        ids.insert(data(&answer, "recordPayment")?["id"].clone());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(payment::Entity::find().count(&portal.db).await?, 1);
    // Another invoice with a number already taken is a conflict.
    let taken = as_bob(
        &portal,
        ISSUE,
        json!({ "input": {
            "accountId": operating, "number": "INV-RETRY", "amount": "1", "currency": "USD",
            "periodStart": "2026-11-01", "periodEnd": "2026-11-30", "dueDate": "2099-01-01",
            "idempotencyKey": key(),
        } }),
    )
    .await?;
    assert_eq!(
        taken["errors"][0]["extensions"]["code"], "CONFLICT",
        "{taken}"
    );
    // Once the account is closed, a retry still gets the first result; a new posting is
    // refused.
    let close = "mutation($id: ID!) { updateAccount(id: $id, input: { status: CLOSED }) { id } }";
    data(
        &as_bob(&portal, close, json!({ "id": operating })).await?,
        "updateAccount",
    )?;
    let late_retry = as_bob(&portal, POST, input.clone()).await?;
    assert_eq!(data(&late_retry, "postLedgerEntry")?["id"], entry_id);
    let mut fresh = input;
    fresh["input"]["idempotencyKey"] = json!(key());
    let refused = as_bob(&portal, POST, fresh).await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["field"], "input.accountId",
        "{refused}"
    );
    ledgers_sum_to_balances(&portal.db).await?;
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn invoices_turn_overdue_and_voiding_reverses_the_charge() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let payroll = portal.account_id("ACME-0003").await?;
    let before = balance(&portal, &payroll).await?;
    let issue = |number: &str, due: &str| {
        json!({ "input": {
            "accountId": payroll, "number": number, "amount": "99.99", "currency": "USD",
            "periodStart": "2020-01-01", "periodEnd": "2020-01-31", "dueDate": due,
            "idempotencyKey": key(),
        } })
    };
    let late = as_bob(&portal, ISSUE, issue("INV-LATE", "2020-02-15")).await?;
    let late = data(&late, "issueInvoice")?.clone();
    assert_eq!(late["status"], "OVERDUE");
    let current = as_bob(&portal, ISSUE, issue("INV-CURRENT", "2099-02-15")).await?;
    data(&current, "issueInvoice")?;
    let list = "query($id: ID!, $s: [InvoiceStatus!]) {
        account(id: $id) { invoices(filter: { statuses: $s }) { edges { node { number status } } } }
    }";
    let numbers = |response: &Value| -> Vec<String> {
        response["data"]["account"]["invoices"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["node"]["number"].as_str().map(str::to_owned))
            .collect()
    };
    let overdue = as_bob(&portal, list, json!({ "id": payroll, "s": ["OVERDUE"] })).await?;
    assert_eq!(numbers(&overdue), ["INV-LATE"], "{overdue}");
    let open = as_bob(&portal, list, json!({ "id": payroll, "s": ["OPEN"] })).await?;
    assert_eq!(numbers(&open), ["INV-CURRENT"], "{open}");

    let voided = as_bob(&portal, VOID, json!({ "id": late["id"] })).await?;
    let voided = data(&voided, "voidInvoice")?;
    assert_eq!(voided["status"], "VOID");
    assert_eq!(voided["amountDue"], "0.0000");
    assert_eq!(voided["voidReason"], "issued twice");
    let again = as_bob(&portal, VOID, json!({ "id": late["id"] })).await?;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "CONFLICT",
        "{again}"
    );
    // The late invoice's charge is reversed; the current one still stands.
    assert_eq!(
        balance(&portal, &payroll).await?,
        before - Decimal::new(9_999, 2)
    );
    let voids = as_bob(
        &portal,
        list,
        json!({ "id": payroll, "s": ["VOID", "PAID"] }),
    )
    .await?;
    assert_eq!(numbers(&voids), ["INV-LATE"], "{voids}");
    ledgers_sum_to_balances(&portal.db).await?;
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn ledger_lists_sort_filter_and_page_through_ties() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let savings = portal.account_id("ACME-0002").await?;
    // Ties on purpose: equal amounts and equal posting times.
    for (kind, amount, at) in [
        ("CHARGE", "5", "2026-11-01T10:00:00Z"),
        ("CHARGE", "5", "2026-11-01T10:00:00Z"),
        ("CREDIT", "5", "2026-11-02T10:00:00Z"),
        ("CHARGE", "2", "2026-11-03T10:00:00Z"),
        ("CREDIT", "9", "2026-11-03T10:00:00Z"),
        ("REFUND", "5", "2026-11-04T10:00:00Z"),
    ] {
        let out = as_bob(
            &portal,
            POST,
            json!({ "input": {
                "accountId": savings, "kind": kind, "amount": amount, "currency": "EUR",
                "postedAt": at, "idempotencyKey": key(),
            } }),
        )
        .await?;
        data(&out, "postLedgerEntry")?;
    }
    let page = "query($id: ID!, $after: String, $order: LedgerEntryOrder!, $f: LedgerEntryFilter) {
        account(id: $id) { ledgerEntries(first: 2, after: $after, orderBy: $order, filter: $f) {
            edges { cursor node { id amount postedAt kind } } pageInfo { hasNextPage endCursor } } }
    }";
    let walk = |order: &'static str, filter: Value| {
        let portal = &portal;
        let savings = savings.clone();
        async move {
            let mut seen: Vec<Value> = Vec::new();
            let mut after = Value::Null;
            loop {
                let vars = json!({ "id": savings, "after": after, "order": order, "f": filter });
                let out = as_bob(portal, page, vars).await?;
                let list = &data(&out, "account")?["ledgerEntries"];
                seen.extend(
                    list["edges"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| e["node"].clone()),
                );
                if list["pageInfo"]["hasNextPage"] != true {
                    break;
                }
                after = list["pageInfo"]["endCursor"].clone();
            }
            anyhow::Ok(seen)
        }
    };
    // The seeded opening balance (3000) plus the six postings.
    let by_amount = walk("AMOUNT_DESC", Value::Null).await?;
    let amounts: Vec<Decimal> = by_amount.iter().map(|n| dec(&n["amount"])).collect();
    assert_eq!(amounts.len(), 7, "{by_amount:?}");
    let mut sorted = amounts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(amounts, sorted);
    let ids: HashSet<_> = by_amount.iter().map(|n| n["id"].clone()).collect();
    assert_eq!(ids.len(), 7, "a tie was skipped or repeated");
    let by_time = walk("POSTED_AT_ASC", Value::Null).await?;
    let times: Vec<&str> = by_time
        .iter()
        .filter_map(|n| n["postedAt"].as_str())
        .collect();
    assert_eq!(by_time.len(), 7);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Filters: kinds and a half-open time range.
    let charges = walk("POSTED_AT_DESC", json!({ "kinds": ["CHARGE", "REFUND"] })).await?;
    assert_eq!(charges.len(), 4);
    let range = json!({ "postedFrom": "2026-11-02T00:00:00Z", "postedTo": "2026-11-04T10:00:00Z" });
    assert_eq!(walk("POSTED_AT_DESC", range).await?.len(), 3);
    // A cursor of one order is refused by another; inverted ranges are refused.
    let first = as_bob(
        &portal,
        page,
        json!({ "id": savings, "order": "AMOUNT_DESC" }),
    )
    .await?;
    let cursor = data(&first, "account")?["ledgerEntries"]["pageInfo"]["endCursor"].clone();
    let mixed = as_bob(
        &portal,
        page,
        json!({ "id": savings, "order": "POSTED_AT_ASC", "after": cursor }),
    )
    .await?;
    assert_eq!(
        mixed["errors"][0]["extensions"]["field"], "after",
        "{mixed}"
    );
    let inverted =
        json!({ "postedFrom": "2026-11-04T00:00:00Z", "postedTo": "2026-11-01T00:00:00Z" });
    let out = as_bob(
        &portal,
        page,
        json!({ "id": savings, "order": "POSTED_AT_ASC", "f": inverted }),
    )
    .await?;
    assert_eq!(
        out["errors"][0]["extensions"]["field"], "filter.postedTo",
        "{out}"
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn only_members_and_staff_with_the_grant_read_the_ledger() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let operating = portal.account_id("ACME-0001").await?;
    let issued = as_bob(
        &portal,
        ISSUE,
        json!({ "input": {
            "accountId": operating, "number": "INV-MEMBERS", "amount": "12", "currency": "USD",
            "periodStart": "2026-11-01", "periodEnd": "2026-11-30", "dueDate": "2099-01-01",
            "idempotencyKey": key(),
        } }),
    )
    .await?;
    let invoice_id = data(&issued, "issueInvoice")?["id"].clone();
    // Dave: a customer of the same tenant who is no member of the account.
    let created = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            "mutation { createUser(input: { email: \"dave@acme.example\", displayName: \"Dave\" }) { id } }",
            json!({}),
        )
        .await?;
    let dave: Uuid = data(&created, "createUser")?["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let read = "query($a: ID!, $i: ID!) {
        account(id: $a) { number ledgerEntries(first: 1) { edges { node { id } } } invoices { edges { node { number } } } }
        invoice(id: $i) { number account { number } }
    }";
    let vars = json!({ "a": operating, "i": invoice_id });
    let as_dave = portal
        .query_with_roles(seed.tenant_id, dave, &["customer_user"], read, vars.clone())
        .await?;
    assert_eq!(as_dave["data"]["account"], Value::Null, "{as_dave}");
    assert_eq!(as_dave["data"]["invoice"], Value::Null, "{as_dave}");
    // Carol is a member: she reads the ledger and the invoice.
    let as_carol = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["customer_user"],
            read,
            vars.clone(),
        )
        .await?;
    assert!(as_carol["errors"].is_null(), "{as_carol}");
    assert_eq!(as_carol["data"]["invoice"]["number"], "INV-MEMBERS");
    assert_eq!(
        as_carol["data"]["invoice"]["account"]["number"],
        "ACME-0001"
    );
    // Customers cannot post, not even to their own accounts.
    let posted = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["customer_user"],
            POST,
            json!({ "input": {
                "accountId": operating, "kind": "CREDIT", "amount": "1000", "currency": "USD",
                "idempotencyKey": key(),
            } }),
        )
        .await?;
    assert_eq!(
        posted["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{posted}"
    );
    // Support sees the account (with the grant) but never its money.
    let support = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["support_agent"],
            read,
            vars,
        )
        .await?;
    assert_eq!(
        support["data"]["account"]["number"], "ACME-0001",
        "{support}"
    );
    assert_eq!(support["data"]["account"]["ledgerEntries"], Value::Null);
    assert_eq!(support["data"]["account"]["invoices"], Value::Null);
    assert_eq!(support["data"]["invoice"], Value::Null, "{support}");
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn another_tenant_can_neither_read_nor_post_to_the_ledger() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let operating = portal.account_id("ACME-0001").await?;
    let issued = as_bob(
        &portal,
        ISSUE,
        json!({ "input": {
            "accountId": operating, "number": "INV-ACME", "amount": "12", "currency": "USD",
            "periodStart": "2026-11-01", "periodEnd": "2026-11-30", "dueDate": "2099-01-01",
            "idempotencyKey": key(),
        } }),
    )
    .await?;
    let invoice_id = data(&issued, "issueInvoice")?["id"].clone();
    let before = written(&portal.db).await?;
    let globex = |query: &'static str, variables: Value| {
        portal.query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["tenant_admin"],
            query,
            variables,
        )
    };
    let read = globex(
        "query($i: ID!) { invoice(id: $i) { number } }",
        json!({ "i": invoice_id }),
    )
    .await?;
    assert_eq!(read["data"]["invoice"], Value::Null, "{read}");
    let writes = [
        (
            POST,
            json!({ "input": { "accountId": operating, "kind": "CREDIT", "amount": "1", "currency": "USD", "idempotencyKey": key() } }),
        ),
        (
            PAY,
            json!({ "input": { "accountId": operating, "amount": "1", "currency": "USD", "idempotencyKey": key() } }),
        ),
        (VOID, json!({ "id": invoice_id })),
    ];
    for (mutation, variables) in writes {
        let out = globex(mutation, variables).await?;
        assert_eq!(out["errors"][0]["extensions"]["code"], "NOT_FOUND", "{out}");
    }
    assert_eq!(written(&portal.db).await?, before);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn posting_to_an_account_fires_account_updated_with_the_new_balance() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let savings = portal.account_id("ACME-0002").await?;
    let mut payload = serde_json::Map::new();
    payload.insert(
        "x-portal-tenant-id".into(),
        json!(seed.tenant_id.to_string()),
    );
    payload.insert("x-portal-user-id".into(), json!(seed.carol_id.to_string()));
    payload.insert("x-portal-roles".into(), json!("customer_user"));
    let mut ws = WsClient::connect(&portal.endpoint, Value::Object(payload)).await?;
    ws.subscribe(
        "1",
        "subscription($id: ID!) { accountUpdated(id: $id) { balance ledgerEntries(first: 1) { edges { node { kind amount } } } } }",
        json!({ "id": savings }),
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let out = as_bob(
        &portal,
        POST,
        json!({ "input": {
            "accountId": savings, "kind": "CREDIT", "amount": "250", "currency": "EUR",
            "idempotencyKey": key(),
        } }),
    )
    .await?;
    data(&out, "postLedgerEntry")?;
    let next = ws.next().await?;
    let updated = &next["payload"]["data"]["accountUpdated"];
    assert_eq!(updated["balance"], "3250.0000", "{next}");
    assert_eq!(
        updated["ledgerEntries"]["edges"][0]["node"]["kind"], "CREDIT",
        "{next}"
    );
    portal.stop().await;
    Ok(())
}
