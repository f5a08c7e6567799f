//! GraphQL over HTTP at the gateway: methods, media types, status codes, the IDE.

use portal_tests::{Mode, TestPortal};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_transport_follows_graphql_over_http() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let http = portal.http();
    let url = &portal.endpoint;

    // GET runs queries...
    let response = http
        .get(url)
        .query(&[("query", "{ __typename }")])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await?,
        json!({ "data": { "__typename": "Query" } })
    );

    // ...but never mutations.
    let response = http
        .get(url)
        .query(&[(
            "query",
            "mutation { updateTenant(input: { name: \"x\" }) { name } }",
        )])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // POST bodies must be JSON (CSRF: simple cross-site requests cannot send it).
    let response = http
        .post(url)
        .header("content-type", "text/plain")
        .body("{\"query\":\"{__typename}\"}")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A body that is not a GraphQL request.
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body("[1,2]")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Parse and validation errors: 200 with application/json, 400 with graphql-response+json.
    let response = http
        .post(url)
        .json(&json!({ "query": "{ me { " }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await?;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
    assert_eq!(body.get("data"), None);
    let response = http
        .post(url)
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ nope }" }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/graphql-response+json")
    );
    let body: Value = response.json().await?;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );

    // Every response carries a request id.
    let response = http
        .post(url)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await?;
    assert!(response.headers().contains_key("x-request-id"));

    // The health endpoint answers (the IDE is off by default: see below and demo.rs).
    let health = url.replace("/graphql", "/health");
    assert_eq!(http.get(&health).send().await?.status(), StatusCode::OK);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_operations_need_an_operation_name() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let document = "query A { __typename } query B { me { displayName } }";
    let response = portal.query_as_carol(document, json!({})).await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        "OPERATION_RESOLUTION_FAILURE"
    );
    let response: Value = portal
        .http()
        .post(&portal.endpoint)
        .header("x-portal-tenant-id", portal.seed.tenant_id.to_string())
        .header("x-portal-user-id", portal.seed.carol_id.to_string())
        .json(&json!({ "query": document, "operationName": "B" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        response,
        json!({ "data": { "me": { "displayName": "Carol Customer" } } })
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_persisted_queries_register_once_then_run_by_hash() -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let http = portal.http();
    let url = &portal.endpoint;
    let document = "query Kind { __typename }";
    let hash: String = Sha256::digest(document.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let by_hash = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let code = |body: &Value| body["errors"][0]["extensions"]["code"].clone();

    // Unknown hash: the client is asked for the document.
    let body: Value = http
        .post(url)
        .json(&json!({ "extensions": by_hash }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(code(&body), json!("PERSISTED_QUERY_NOT_FOUND"), "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");

    // A document with a hash that is not its own is refused, and not remembered.
    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": "00".repeat(32) } });
    let body: Value = http
        .post(url)
        .json(&json!({ "query": document, "extensions": wrong }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        code(&body),
        json!("PERSISTED_QUERY_HASH_MISMATCH"),
        "{body}"
    );

    // Sent once with its hash...
    let body: Value = http
        .post(url)
        .json(&json!({ "query": document, "extensions": by_hash }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));

    // ...then by hash alone, over POST and over GET.
    let body: Value = http
        .post(url)
        .json(&json!({ "extensions": by_hash }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));
    let response = http
        .get(url)
        .query(&[("extensions", by_hash.to_string())])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await?,
        json!({ "data": { "__typename": "Query" } })
    );

    // Neither a document nor a hash.
    let response = http
        .post(url)
        .json(&json!({ "variables": {} }))
        .send()
        .await?;
    let body: Value = response.json().await?;
    assert_eq!(code(&body), json!("BAD_REQUEST"), "{body}");
    Ok(())
}

/// A subgraph with one field, for transport tests that need their own gateway options.
mod hello {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    pub struct Query;

    #[Object]
    impl Query {
        async fn hello(&self) -> &str {
            "world"
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_origins_may_call_from_the_browser() -> anyhow::Result<()> {
    let gateway = crate::conformance::Supergraph::new()
        .subgraph("hello", hello::schema())
        .cors_origin("https://app.example.com")
        .start()
        .await?;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, gateway.endpoint())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await?;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = allowed.headers()["access-control-allow-methods"].to_str()?;
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed.headers()["access-control-allow-headers"].to_str()?;
    assert!(headers.contains("authorization"), "{headers}");

    let other = preflight("https://evil.example").await?;
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // The actual request from the allowed origin carries the header too.
    let response = http
        .post(gateway.endpoint())
        .header("origin", "https://app.example.com")
        .json(&json!({ "query": "{ hello }" }))
        .send()
        .await?;
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        response.json::<Value>().await?,
        json!({ "data": { "hello": "world" } })
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_origins_no_page_elsewhere_may_call() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let response = portal
        .http()
        .request(reqwest::Method::OPTIONS, &portal.endpoint)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carrying_personal_data_are_never_cached_and_the_ide_is_off_by_default()
-> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let signed_in = portal
        .http()
        .post(&portal.endpoint)
        .header(
            portal_gateway::auth::DEV_TENANT_HEADER,
            portal.seed.tenant_id.to_string(),
        )
        .header(
            portal_gateway::auth::DEV_USER_HEADER,
            portal.seed.carol_id.to_string(),
        )
        .json(&json!({ "query": "{ me { displayName } }" }))
        .send()
        .await?;
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header(&signed_in, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(
        header(&signed_in, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    // The production default serves no IDE: a browser gets a GraphQL error, and no assets.
    let page = portal
        .http()
        .get(&portal.endpoint)
        .header("accept", "text/html")
        .send()
        .await?;
    assert_eq!(page.status(), 400);
    assert!(!page.text().await?.contains("<html"));
    let asset_url = portal.endpoint.replace("/graphql", "/ide/graphiql.min.js");
    let asset = portal.http().get(&asset_url).send().await?;
    assert_eq!(asset.status(), 404);
    portal.stop().await;
    Ok(())
}
