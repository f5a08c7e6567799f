//! Platform components acting for someone absent (a worker running a user's report): a
//! delegated credential, minted with the internal secret per request, read by the gateway
//! over HTTP as that user — the user's tenant, membership and field policies apply, only
//! queries run, and nothing else passes for one.

use portal::gateway_client::OverHttp;
use portal_kit::gateway_client::GatewayClient;
use portal_kit::internal_token::InternalTokenKey;
use portal_kit::{Actor, RequestMeta};
use portal_tests::{Mode, TEST_SECRET, TestPortal};
use serde_json::{Map, Value, json};

const ACCOUNTS: &str = "query { accounts(first: 50) { edges { node { number } } } }";

/// `ApiError` is not a `std::error::Error`: say what it was.
fn asked<T>(result: portal_kit::ApiResult<T>) -> anyhow::Result<T> {
    result.map_err(|err| anyhow::anyhow!("{err:?}"))
}

fn numbers(data: &Option<Value>) -> Vec<String> {
    data.as_ref()
        .and_then(|d| d["accounts"]["edges"].as_array().cloned())
        .into_iter()
        .flatten()
        .map(|edge| {
            edge["node"]["number"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_delegated_reader_sees_exactly_what_the_user_sees() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::Distributed).await?;
    let seed = portal.seed.clone();
    let gateway = OverHttp::new(
        &portal.endpoint,
        InternalTokenKey::new(TEST_SECRET.as_bytes()),
    )?;
    let carol = Actor::user(seed.carol_id, seed.tenant_id, vec!["customer_user".into()])
        .delegated("reports", "report run test");
    let meta = RequestMeta::default();

    // Carol's accounts, as her own request sees them (membership applies).
    let own = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["customer_user"],
            ACCOUNTS,
            json!({}),
        )
        .await?;
    let expected: Vec<String> = own["data"]["accounts"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| {
            edge["node"]["number"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(!expected.is_empty(), "{own}");
    let read = asked(gateway.query(&carol, &meta, ACCOUNTS, Map::new()).await)?;
    assert!(read.errors.is_empty(), "{:?}", read.errors);
    assert_eq!(numbers(&read.data), expected);

    // Field policies apply: support staff may not read balances.
    let support = Actor::user(seed.alice_id, seed.tenant_id, vec!["support_agent".into()])
        .delegated("reports", "report run test");
    let denied = asked(
        gateway
            .query(
                &support,
                &meta,
                "query { accounts(first: 5) { edges { node { number balance } } } }",
                Map::new(),
            )
            .await,
    )?;
    assert!(
        denied.errors.iter().any(|e| e.code() == Some("FORBIDDEN")),
        "{:?}",
        denied.errors
    );

    // Only queries: a delegated mutation is refused and writes nothing.
    let layouts = "query { dashboardLayouts { id } }";
    let before = asked(gateway.query(&carol, &meta, layouts, Map::new()).await)?;
    let changed = asked(
        gateway
            .query(
                &carol,
                &meta,
                "mutation { createDashboardLayout(input: { name: \"x\", widgets: [] }) { id } }",
                Map::new(),
            )
            .await,
    )?;
    assert_eq!(
        changed.errors.first().and_then(|e| e.code()),
        Some("METHOD_NOT_ALLOWED"),
        "{:?}",
        changed.errors
    );
    let after = asked(gateway.query(&carol, &meta, layouts, Map::new()).await)?;
    assert_eq!(before.data, after.data);

    // The supergraph SDL is there for the portal's processes, and no one else.
    let sdl = asked(gateway.supergraph_sdl().await)?;
    assert!(sdl.contains("type Account"), "{sdl}");
    let base = portal.endpoint.trim_end_matches("/graphql");
    let anonymous = portal
        .http()
        .get(format!("{base}/internal/supergraph"))
        .send()
        .await?;
    assert_eq!(anonymous.status().as_u16(), 401);
    portal.stop().await;
    Ok(())
}

#[tokio::test]
async fn nothing_else_passes_for_a_delegated_credential() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let key = InternalTokenKey::new(TEST_SECRET.as_bytes());
    let carol = Actor::user(seed.carol_id, seed.tenant_id, vec!["customer_user".into()]);
    let meta = RequestMeta::default();
    let credentials = [
        // Not marked as delegated: a plain internal token is not a credential here.
        key.sign("gateway", &carol, &meta),
        // Addressed to a subgraph.
        key.sign("accounts", &carol.clone().delegated("reports", "x"), &meta),
        // Signed with another secret.
        InternalTokenKey::new(b"another-secret-another-secret-xx").sign(
            "gateway",
            &carol.clone().delegated("reports", "x"),
            &meta,
        ),
        // Nobody.
        key.sign(
            "gateway",
            &Actor::anonymous().delegated("reports", "x"),
            &meta,
        ),
        "garbage".to_owned(),
    ];
    for credential in credentials {
        let response = portal
            .http()
            .post(&portal.endpoint)
            .header("x-portal-delegation", &credential)
            .json(&json!({ "query": ACCOUNTS }))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 401, "{credential}");
        let body: Value = response.json().await?;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
    portal.stop().await;
    Ok(())
}
