//! A subgraph that is down or too slow costs only its part of the response: the rest is
//! served, its fields are `null`, and an error names it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Supergraph, TestGateway, assert_json, messages, redact_messages};

/// Owns products.
mod products {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Product {
        pub id: ID,
        pub name: String,
    }

    fn product(id: &str) -> Product {
        let name = if id == "p1" { "Kettle" } else { "Toaster" };
        Product {
            id: id.into(),
            name: name.into(),
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            vec![product("p1"), product("p2")]
        }

        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Product {
            product(&id)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Adds `Product.reviews` and a root `latestReview`; `slowReview` takes 3 s.
mod reviews {
    use std::time::Duration;

    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject,
    };

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Product {
        pub id: ID,
    }

    #[ComplexObject]
    impl Product {
        async fn reviews(&self) -> Option<Vec<String>> {
            Some(vec![format!("{} is fine", self.id.as_str())])
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn latest_review(&self) -> Option<String> {
            Some("Great kettle".into())
        }

        async fn slow_review(&self) -> Option<String> {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Some("Worth the wait".into())
        }

        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Product {
            Product { id }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

async fn shop(timeout: Duration) -> anyhow::Result<TestGateway> {
    Supergraph::new()
        .subgraph("products", products::schema())
        .subgraph("reviews", reviews::schema())
        .timeout(timeout)
        .start()
        .await
}

/// Asserts `response` has one error, from subgraph `service`, with `code`, and that its
/// message names the subgraph; returns `response` without the (gateway-worded) message.
#[track_caller]
fn one_subgraph_error(response: &Value, service: &str, code: &str) -> Value {
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{response:#}");
    assert_eq!(errors[0]["extensions"]["code"], json!(code), "{response:#}");
    assert_eq!(
        errors[0]["extensions"]["serviceName"],
        json!(service),
        "{response:#}"
    );
    assert!(messages(response)[0].contains(service), "{response:#}");
    redact_messages(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_subgraph_leaves_its_entity_fields_null_and_the_rest_served() -> anyhow::Result<()>
{
    let mut gateway = shop(Duration::from_secs(5)).await?;
    let query = "{ products { name reviews } }";
    // Up: everything is there (and the gateway holds a pooled connection to it).
    assert_json(
        &gateway.query(query, json!({})).await,
        json!({ "data": { "products": [
            { "name": "Kettle", "reviews": ["p1 is fine"] },
            { "name": "Toaster", "reviews": ["p2 is fine"] },
        ]}}),
    );

    gateway.stop_subgraph("reviews").await;
    let response = gateway.query(query, json!({})).await;
    let redacted = one_subgraph_error(&response, "reviews", "SUBGRAPH_UNAVAILABLE");
    assert_json(
        &redacted["data"],
        json!({ "products": [
            { "name": "Kettle", "reviews": null },
            { "name": "Toaster", "reviews": null },
        ]}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_subgraph_leaves_its_root_fields_null_and_the_rest_served() -> anyhow::Result<()>
{
    let mut gateway = shop(Duration::from_secs(5)).await?;
    gateway.stop_subgraph("reviews").await;
    let response = gateway
        .query("{ latestReview products { name } }", json!({}))
        .await;
    let redacted = one_subgraph_error(&response, "reviews", "SUBGRAPH_UNAVAILABLE");
    assert_json(
        &redacted["data"],
        json!({
            "latestReview": null,
            "products": [{ "name": "Kettle" }, { "name": "Toaster" }],
        }),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subgraph_slower_than_the_timeout_is_abandoned_with_subgraph_timeout()
-> anyhow::Result<()> {
    let gateway = shop(Duration::from_secs(1)).await?;
    let started = Instant::now();
    let response = gateway
        .query("{ products { name } slowReview }", json!({}))
        .await;
    let elapsed = started.elapsed();
    let redacted = one_subgraph_error(&response, "reviews", "SUBGRAPH_TIMEOUT");
    assert_json(
        &redacted["data"],
        json!({
            "products": [{ "name": "Kettle" }, { "name": "Toaster" }],
            "slowReview": null,
        }),
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "the gateway waited {elapsed:?} for a 1 s timeout"
    );
    // The same subgraph still answers what it can answer in time.
    assert_json(
        &gateway.query("{ latestReview }", json!({})).await,
        json!({ "data": { "latestReview": "Great kettle" } }),
    );
    Ok(())
}

/// Counts the requests it is working on at once, and the most it ever was.
mod counter {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Schema};

    #[derive(Default)]
    pub struct InFlight {
        now: AtomicUsize,
        pub most: AtomicUsize,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn slow(&self, ctx: &Context<'_>) -> i32 {
            let in_flight = ctx.data_unchecked::<Arc<InFlight>>();
            let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
            in_flight.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(150)).await;
            in_flight.now.fetch_sub(1, Ordering::SeqCst);
            1
        }
    }

    pub fn schema(in_flight: Arc<InFlight>) -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .data(in_flight)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_beyond_the_admission_limit_wait_their_turn_and_all_succeed()
-> anyhow::Result<()> {
    let in_flight = std::sync::Arc::new(counter::InFlight::default());
    let gateway = Supergraph::new()
        .subgraph("counter", counter::schema(in_flight.clone()))
        .max_concurrent_operations(2)
        .start()
        .await?;
    let one = || gateway.query("{ slow }", json!({}));
    let (a, b, c, d, e, f) = tokio::join!(one(), one(), one(), one(), one(), one());
    for response in [a, b, c, d, e, f].iter() {
        assert_json(response, json!({ "data": { "slow": 1 } }));
    }
    assert_eq!(
        in_flight.most.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "six operations at once, two admitted at a time"
    );
    Ok(())
}
