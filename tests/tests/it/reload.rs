//! A gateway serving a supergraph file picks up a changed file without a restart and
//! ignores a broken one.

use std::collections::BTreeMap;
use std::time::Duration;

use portal_gateway::auth::Authentication;
use portal_gateway::gateway::Limits;
use portal_gateway::reload::{self, SupergraphSource};
use portal_gateway::subgraph::SubgraphSettings;
use portal_kit::internal_token::InternalTokenKey;
use portal_tests::{Mode, TEST_SECRET, TestPortal, serve};
use serde_json::{Value, json};

async fn post(
    http: &reqwest::Client,
    url: &str,
    portal: &TestPortal,
    query: &str,
) -> anyhow::Result<Value> {
    Ok(http
        .post(url)
        .header("x-portal-tenant-id", portal.seed.tenant_id.to_string())
        .header("x-portal-user-id", portal.seed.carol_id.to_string())
        .json(&json!({ "query": query }))
        .send()
        .await?
        .json()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_supergraph_file_is_hot_reloaded_and_a_broken_one_ignored() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::Distributed).await?;
    let key = InternalTokenKey::new(TEST_SECRET.as_bytes());
    let all = portal.subgraph_endpoints.clone();
    let without_integrations: BTreeMap<String, String> = all
        .iter()
        .filter(|(name, _)| *name != "integrations")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let clients = portal::http_clients(&all, &key)?;
    let full = portal::compose_remote(&clients, &all, Duration::from_secs(5)).await?;
    let partial =
        portal::compose_remote(&clients, &without_integrations, Duration::from_secs(5)).await?;

    let dir = std::env::temp_dir().join(format!("portal-reload-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("supergraph.graphql");
    std::fs::write(&file, &partial)?;
    let options = portal::GatewayOptions {
        rate_limiter: None,
        authentication: Authentication::anonymous_only().with_dev_headers(),
        limits: Limits::default(),
        subgraphs: SubgraphSettings::default(),
        ide: None,
        authorizer: None,
        trusted_proxies: Vec::new(),
        override_labels: Default::default(),
        cors_origins: Vec::new(),
        events: None,
        files: None,
        gateway_client: Default::default(),
        keys: None,
        connectors: Default::default(),
    };
    let (router, gateway) = portal::gateway_app(&partial, clients, &options)?;
    let source = SupergraphSource::parse(&file.display().to_string());
    let clients_for: reload::ClientsFor = {
        let all = all.clone();
        let key = key.clone();
        std::sync::Arc::new(move |_| portal::http_clients(&all, &key).map_err(|e| e.to_string()))
    };
    let watcher = reload::watch(
        gateway,
        source,
        reqwest::Client::new(),
        Duration::from_millis(50),
        clients_for,
    );
    let (addr, server) = serve(router).await?;
    let url = format!("http://{addr}/graphql");
    let http = reqwest::Client::new();
    let query = "{ me { accounts { edges { node { number externalRefs { externalId } } } } } }";

    let before = post(&http, &url, &portal, query).await?;
    assert_eq!(
        before["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{before}"
    );

    std::fs::write(&file, &full)?;
    let mut after = Value::Null;
    for _ in 0..100 {
        after = post(&http, &url, &portal, query).await?;
        if after.get("errors").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        after["data"]["me"]["accounts"]["edges"][0]["node"]["externalRefs"][0]["externalId"],
        "SF-0002",
        "{after}"
    );

    std::fs::write(&file, "this is not a supergraph")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = post(&http, &url, &portal, query).await?;
    assert_eq!(still, after, "a broken supergraph replaced the working one");

    watcher.abort();
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    portal.stop().await;
    Ok(())
}
