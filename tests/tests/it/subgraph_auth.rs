//! Subgraphs only serve the gateway: HTTP requests without a valid internal token are
//! refused before any resolver runs.

use portal_kit::internal_token::{HEADER, InternalTokenKey};
use portal_kit::{Actor, RequestMeta};
use portal_tests::{Mode, TestPortal};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subgraphs_refuse_requests_that_do_not_come_from_the_gateway() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::Distributed).await?;
    let body = json!({ "query": "{ accounts { edges { node { number } } } }" });
    let forged_key = InternalTokenKey::new(b"not-the-secret-not-the-secret-not!");
    let victim = Actor::user(portal.seed.carol_id, portal.seed.tenant_id, vec![]);
    let forged = forged_key.sign("accounts", &victim, &RequestMeta::default());
    for (name, url) in &portal.subgraph_endpoints {
        let missing = portal.http().post(url).json(&body).send().await?;
        assert_eq!(
            missing.status(),
            StatusCode::UNAUTHORIZED,
            "{name} without a token"
        );
        let response = portal
            .http()
            .post(url)
            .header(HEADER, &forged)
            .json(&body)
            .send()
            .await?;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{name} with a forged token"
        );
        let body: serde_json::Value = response.json().await?;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
    // A genuine token for one subgraph cannot be replayed against another.
    let key = InternalTokenKey::new(portal_tests::TEST_SECRET.as_bytes());
    let for_reports = key.sign("reports", &victim, &RequestMeta::default());
    let replayed = portal
        .http()
        .post(&portal.subgraph_endpoints["accounts"])
        .header(HEADER, for_reports)
        .json(&body)
        .send()
        .await?;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    // The genuine key works (the gateway path is covered by the federation tests).
    let genuine = InternalTokenKey::new(portal_tests::TEST_SECRET.as_bytes()).sign(
        "accounts",
        &victim,
        &RequestMeta::default(),
    );
    let url = &portal.subgraph_endpoints["accounts"];
    let response: serde_json::Value = portal
        .http()
        .post(url)
        .header(HEADER, genuine)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        response["data"]["accounts"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    portal.stop().await;
    Ok(())
}
