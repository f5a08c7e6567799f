//! Saved dashboard layouts through the gateway: widgets validated against the catalogue
//! and the grid, bound only to accounts the user may see; optimistic concurrency; limits;
//! per-user isolation; role defaults published by tenant admins and reset to by users.

use portal_tests::{Mode, TestPortal};
use serde_json::{Value, json};

const CREATE: &str = "mutation($input: CreateDashboardLayoutInput!) {
    createDashboardLayout(input: $input) { id name version widgets { id kind binding { accountId metric } options placement { lg { x y w h } } } }
}";
const UPDATE: &str = "mutation($id: ID!, $v: Int!, $input: UpdateDashboardLayoutInput!) {
    updateDashboardLayout(id: $id, version: $v, input: $input) { id name version widgets { id } }
}";

fn cell(x: i32, y: i32, w: i32, h: i32) -> Value {
    json!({ "x": x, "y": y, "w": w, "h": h })
}

fn widget(kind: &str, account: Option<&str>, options: Value, x: i32, y: i32) -> Value {
    json!({
        "kind": kind,
        "binding": { "accountId": account, "metric": if kind == "USAGE" { Some("api.calls") } else { None } },
        "options": options,
        "placement": { "lg": cell(x, y, 6, 4), "md": cell(x, y, 6, 4), "sm": cell(0, y * 3 + x, 12, 4) },
    })
}

#[tokio::test]
async fn a_user_saves_changes_and_resets_dashboards_of_their_own() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let carol = |query: &'static str, vars: Value| {
        let portal = &portal;
        async move {
            portal
                .query_with_roles(
                    seed.tenant_id,
                    seed.carol_id,
                    &["customer_user"],
                    query,
                    vars,
                )
                .await
        }
    };
    let savings = portal.account_id("ACME-0002").await?;
    let billing = portal.account_id("ACME-0004").await?; // Bob's: Carol cannot see it.
    let widgets = json!([
        widget("KPI", None, json!({ "kpi": "BALANCES" }), 0, 0),
        widget(
            "USAGE",
            Some(&savings),
            json!({ "interval": "DAY", "rangeDays": 30 }),
            6,
            0
        ),
        widget("LEDGER", Some(&savings), json!({ "limit": 10 }), 0, 4),
    ]);
    let created = carol(
        CREATE,
        json!({ "input": { "name": "Home", "widgets": widgets } }),
    )
    .await?;
    let layout = &created["data"]["createDashboardLayout"];
    assert!(created["errors"].is_null(), "{created}");
    assert_eq!(layout["version"], 1);
    assert_eq!(layout["widgets"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        layout["widgets"][1]["options"],
        json!({ "interval": "DAY", "rangeDays": 30 })
    );
    let id = layout["id"].clone();

    // Bad widgets are refused, naming the widget; nothing changes.
    let bad_cases = [
        json!([widget("LEDGER", Some(&billing), json!({}), 0, 0)]),
        json!([widget(
            "LEDGER",
            Some(&savings),
            json!({ "limit": 500 }),
            0,
            0
        )]),
        json!([widget(
            "USAGE",
            Some(&savings),
            json!({ "colour": "red" }),
            0,
            0
        )]),
        json!([
            widget("KPI", None, json!({ "kpi": "BALANCES" }), 0, 0),
            widget("KPI", None, json!({ "kpi": "USAGE" }), 3, 0)
        ]),
        json!([widget("BALANCE", Some(&savings), json!({}), 9, 0)]),
        json!([widget("BALANCE", None, json!({}), 0, 0)]),
    ];
    for widgets in bad_cases {
        let out = carol(
            UPDATE,
            json!({ "id": id, "v": 1, "input": { "widgets": widgets } }),
        )
        .await?;
        assert_eq!(
            out["errors"][0]["extensions"]["field"], "input.widgets",
            "{widgets}: {out}"
        );
    }
    let too_many: Vec<Value> = (0..51)
        .map(|i| widget("KPI", None, json!({ "kpi": "USAGE" }), 0, i * 4))
        .collect();
    let out = carol(
        UPDATE,
        json!({ "id": id, "v": 1, "input": { "widgets": too_many } }),
    )
    .await?;
    assert_eq!(
        out["errors"][0]["extensions"]["field"], "input.widgets",
        "{out}"
    );

    // Optimistic concurrency: version 1 saves once; the second save of version 1 is stale.
    let renamed = carol(
        UPDATE,
        json!({ "id": id, "v": 1, "input": { "name": "Mine" } }),
    )
    .await?;
    assert_eq!(
        renamed["data"]["updateDashboardLayout"]["version"], 2,
        "{renamed}"
    );
    let stale = carol(
        UPDATE,
        json!({ "id": id, "v": 1, "input": { "name": "Theirs" } }),
    )
    .await?;
    assert_eq!(
        stale["errors"][0]["extensions"]["code"], "CONFLICT",
        "{stale}"
    );

    // Another user sees none of it and cannot change it.
    let bob = |query: &'static str, vars: Value| {
        let portal = &portal;
        async move {
            portal
                .query_with_roles(seed.tenant_id, seed.bob_id, &["billing_admin"], query, vars)
                .await
        }
    };
    let theirs = bob(
        "query($id: ID!) { dashboardLayout(id: $id) { id } dashboardLayouts { id } }",
        json!({ "id": id }),
    )
    .await?;
    assert_eq!(theirs["data"]["dashboardLayout"], Value::Null, "{theirs}");
    assert_eq!(theirs["data"]["dashboardLayouts"], json!([]));
    let hijack = bob(
        UPDATE,
        json!({ "id": id, "v": 2, "input": { "name": "Bob's" } }),
    )
    .await?;
    assert_eq!(
        hijack["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{hijack}"
    );

    // Limits: 20 layouts per user.
    for i in 1..20 {
        let out = carol(
            CREATE,
            json!({ "input": { "name": format!("Board {i}"), "widgets": [] } }),
        )
        .await?;
        assert!(out["errors"].is_null(), "{out}");
    }
    let over = carol(
        CREATE,
        json!({ "input": { "name": "One too many", "widgets": [] } }),
    )
    .await?;
    assert_eq!(
        over["errors"][0]["extensions"]["code"], "CONFLICT",
        "{over}"
    );

    // Reset: nothing published yet → NOT_FOUND; a customer may not publish.
    let reset = "mutation($id: ID!, $v: Int!) { resetDashboardLayout(id: $id, version: $v) { version widgets { kind } } }";
    let none = carol(reset, json!({ "id": id, "v": 2 })).await?;
    assert_eq!(
        none["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{none}"
    );
    let publish = "mutation($role: String!, $input: CreateDashboardLayoutInput!) {
        publishDefaultDashboardLayout(role: $role, input: $input) { id role version } }";
    let default_widgets = json!([widget(
        "KPI",
        None,
        json!({ "kpi": "OVERDUE_INVOICES" }),
        0,
        0
    )]);
    let input = json!({ "role": "customer_user", "input": { "name": "Customer home", "widgets": default_widgets } });
    let refused = carol(publish, input.clone()).await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let published = portal
        .query_with_roles(
            seed.tenant_id,
            seed.alice_id,
            &["tenant_admin"],
            publish,
            input,
        )
        .await?;
    assert_eq!(
        published["data"]["publishDefaultDashboardLayout"]["role"], "customer_user",
        "{published}"
    );
    let default = carol(
        "{ defaultDashboardLayout { name widgets { kind } } }",
        json!({}),
    )
    .await?;
    assert_eq!(
        default["data"]["defaultDashboardLayout"]["name"], "Customer home",
        "{default}"
    );
    let reset_done = carol(reset, json!({ "id": id, "v": 2 })).await?;
    assert_eq!(
        reset_done["data"]["resetDashboardLayout"],
        json!({ "version": 3, "widgets": [{ "kind": "KPI" }] }),
        "{reset_done}"
    );
    // Deleting frees a place.
    let deleted = carol(
        "mutation($id: ID!) { deleteDashboardLayout(id: $id) }",
        json!({ "id": id }),
    )
    .await?;
    assert_eq!(deleted["data"]["deleteDashboardLayout"], id, "{deleted}");
    let again = carol(
        "query($id: ID!) { dashboardLayout(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await?;
    assert_eq!(again["data"]["dashboardLayout"], Value::Null);
    portal.stop().await;
    Ok(())
}
