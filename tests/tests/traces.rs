//! Traces, as an OpenTelemetry collector receives them: the test runs an OTLP/HTTP
//! receiver (protobuf, `POST /v1/traces`), exports the process's spans to it, and serves
//! a portal whose gateway reaches its subgraphs over HTTP.
//!
//! - A client's `traceparent` is continued: the gateway's server span is its child, with
//!   the operation's name and type (never the document, its variables or a token), and
//!   spans for preparing (cache hit or miss), validating, planning, authorizing and
//!   executing the operation.
//! - Each subgraph fetch is a client span naming the subgraph, its attempt, outcome and
//!   HTTP status; the subgraph's own server span is the fetch's child (propagated in the
//!   `traceparent` header), and its batched queries are spans under it.
//! - A job started by a request continues the request's trace.
//!
//! Its own test binary: the subscriber and the span exporter are global to a process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};

use portal_tests::{Mode, TestPortal};

/// One received span, flattened.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const CONSUMER: i32 = 5;

type Store = Arc<Mutex<Vec<Received>>>;

/// An OTLP/HTTP receiver on a free local port; returns its base URL.
async fn receiver(store: Store) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut spans = Vec::new();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref())
                        .map(text)
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            spans.push(Received {
                                service: service.clone(),
                                name: span.name,
                                kind: span.kind,
                                trace_id: hex::encode(span.trace_id),
                                span_id: hex::encode(span.span_id),
                                parent: hex::encode(span.parent_span_id),
                                attributes: span
                                    .attributes
                                    .iter()
                                    .map(|kv| {
                                        (
                                            kv.key.clone(),
                                            kv.value.as_ref().map(text).unwrap_or_default(),
                                        )
                                    })
                                    .collect(),
                            });
                        }
                    }
                }
                if let Ok(mut all) = store.lock() {
                    all.extend(spans);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{address}"))
}

fn text(value: &opentelemetry_proto::tonic::common::v1::AnyValue) -> String {
    match &value.value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn spans_of(store: &Store, trace: &str) -> Vec<Received> {
    store
        .lock()
        .map(|all| {
            all.iter()
                .filter(|s| s.trace_id == trace)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_subgraph_fetches_and_jobs_are_exported_as_one_trace() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let store = Store::default();
    let endpoint = receiver(store.clone()).await?;
    let telemetry = Arc::new(portal::telemetry::init(
        portal::telemetry::LogFormat::Text,
        Some(&portal::telemetry::TraceExport {
            endpoint,
            service: "portal-tests".into(),
            sample_ratio: 1.0,
        }),
    )?);
    let flush = || {
        let telemetry = telemetry.clone();
        tokio::task::spawn_blocking(move || telemetry.flush())
    };

    let mut settings = portal_tests::identity_settings();
    settings.public_url = "http://portal.test/".into();
    let portal = TestPortal::start_with(Mode::Distributed, settings).await?;
    let seed = &portal.seed;
    let ask = |traceparent: String, body: Value| {
        portal
            .http()
            .post(&portal.endpoint)
            .header("x-portal-tenant-id", seed.tenant_id.to_string())
            .header("x-portal-user-id", seed.carol_id.to_string())
            .header("x-portal-roles", "customer_user")
            .header("traceparent", traceparent)
            .json(&body)
            .send()
    };

    // A query continuing the client's trace.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let secret_variable = "variable-value-never-exported";
    let answer: Value = ask(
        format!("00-{trace}-{client_span}-01"),
        json!({
            "query": "query Accounts($number: String) { accounts(first: 5, number: $number) { edges { node { number } } } me { accounts(first: 2) { edges { node { number } } } } }",
            "operationName": "Accounts",
            "variables": { "number": secret_variable },
        }),
    )
    .await?
    .json()
    .await?;
    assert!(answer["errors"].is_null(), "{answer}");

    // A password reset enqueues the mail's delivery job in its own trace.
    let job_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let reset: Value = portal
        .http()
        .post(&portal.endpoint)
        .header("traceparent", format!("00-{job_trace}-10f067aa0ba902b8-01"))
        .json(&json!({
            "query": "mutation { requestPasswordReset(tenant: \"acme\", email: \"carol@acme.example\") }"
        }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(reset["data"]["requestPasswordReset"], true, "{reset}");

    // Spans arrive as they end; the job's once a worker ran it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        flush().await?;
        let job = spans_of(&store, job_trace)
            .into_iter()
            .any(|s| s.kind == CONSUMER && s.name.starts_with("job "));
        let subgraph_server = spans_of(&store, trace)
            .iter()
            .filter(|s| s.kind == SERVER)
            .count()
            >= 2;
        if job && subgraph_server {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "spans missing; received: {:#?}",
            store.lock().map(|s| s.clone()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let spans = spans_of(&store, trace);
    let by_id: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let ancestors = |span: &Received| {
        let mut chain = Vec::new();
        let mut at = by_id.get(span.parent.as_str());
        while let Some(parent) = at {
            chain.push(parent.name.clone());
            at = by_id.get(parent.parent.as_str());
        }
        chain
    };

    // The gateway's server span: the client's span is its parent; names, never values.
    let gateway = spans
        .iter()
        .find(|s| s.kind == SERVER && s.parent == client_span)
        .ok_or_else(|| anyhow::anyhow!("no server span under the client's: {spans:#?}"))?;
    assert_eq!(gateway.name, "POST /graphql");
    assert_eq!(gateway.service, "portal-tests");
    assert_eq!(
        gateway
            .attributes
            .get("graphql.operation.name")
            .map(String::as_str),
        Some("Accounts")
    );
    assert_eq!(
        gateway
            .attributes
            .get("graphql.operation.type")
            .map(String::as_str),
        Some("query")
    );
    assert_eq!(
        gateway
            .attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    assert!(gateway.attributes.contains_key("request_id"));
    for stage in [
        "graphql.prepare",
        "graphql.validate",
        "graphql.plan",
        "graphql.authorize",
        "graphql.execute",
    ] {
        let found = named(stage);
        assert!(!found.is_empty(), "no {stage} span: {spans:#?}");
        assert!(
            ancestors(found[0]).contains(&"POST /graphql".to_owned()),
            "{stage} outside the request"
        );
    }
    assert_eq!(
        named("graphql.prepare")[0]
            .attributes
            .get("cache")
            .map(String::as_str),
        Some("miss")
    );

    // The fetch from accounts, and accounts' own server span as its child.
    let fetch = spans
        .iter()
        .find(|s| s.kind == CLIENT && s.name == "subgraph accounts")
        .ok_or_else(|| anyhow::anyhow!("no fetch span: {spans:#?}"))?;
    assert_eq!(
        fetch.attributes.get("subgraph").map(String::as_str),
        Some("accounts")
    );
    assert_eq!(
        fetch.attributes.get("attempt").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        fetch.attributes.get("outcome").map(String::as_str),
        Some("ok")
    );
    assert_eq!(
        fetch
            .attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    assert!(ancestors(fetch).contains(&"graphql.execute".to_owned()));
    let served = spans
        .iter()
        .find(|s| s.kind == SERVER && s.parent == fetch.span_id)
        .ok_or_else(|| {
            anyhow::anyhow!("the subgraph's span is not the fetch's child: {spans:#?}")
        })?;
    assert_eq!(served.name, "POST /graphql");
    // The user's accounts are loaded in one batched query under the subgraph's request.
    let batches: Vec<&Received> = spans.iter().filter(|s| s.name.starts_with("db ")).collect();
    assert!(
        batches
            .iter()
            .any(|b| ancestors(b).contains(&"POST /graphql".to_owned())),
        "no batched query under a request: {spans:#?}"
    );

    // Nothing exported carries the document's variables.
    let everything = store.lock().map(|s| format!("{s:?}")).unwrap_or_default();
    assert!(!everything.contains(secret_variable));

    // The delivery job joined the reset request's trace.
    let job_spans = spans_of(&store, job_trace);
    let job = job_spans
        .iter()
        .find(|s| s.kind == CONSUMER && s.name.starts_with("job "))
        .ok_or_else(|| anyhow::anyhow!("no job span"))?;
    assert!(
        job_spans.iter().any(|s| s.span_id == job.parent),
        "the job's parent is a span of the request: {job_spans:#?}"
    );

    portal.stop().await;
    if let Ok(telemetry) = Arc::try_unwrap(telemetry) {
        telemetry.shutdown();
    }
    Ok(())
}
