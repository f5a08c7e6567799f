//! `@override(from:)`, and progressive override with `label:`.
//!
//! Each request draws a percentage: `percent(p)` moves the field for about p % of the
//! requests (`percent(100)` always, `percent(0)` never). A custom label moves it when the
//! gateway is configured to treat the label as active (`gateway.override_labels`).

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json};

/// The original owner of `Product.price`.
mod legacy {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Product {
        pub id: ID,
        pub name: String,
        pub price: i32,
    }

    fn product(id: &str) -> Option<Product> {
        let (name, price) = match id {
            "p1" => ("Kettle", 101),
            "p2" => ("Toaster", 102),
            _ => return None,
        };
        Some(Product {
            id: id.into(),
            name: name.into(),
            price,
        })
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            ["p1", "p2"].into_iter().filter_map(product).collect()
        }

        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Option<Product> {
            product(&id)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Takes `Product.price` over from `legacy`, with different prices so the answer shows
/// which subgraph resolved it.
mod pricing {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Product {
        pub id: ID,
        #[graphql(override_from = "legacy")]
        pub price: i32,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Product {
            let price = if id.as_str() == "p1" { 201 } else { 202 };
            Product { id, price }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// The pricing subgraph with `label` on its `@override` (Federation 2.7).
async fn with_label(label: Option<&str>) -> anyhow::Result<TestGateway> {
    with_label_and(label, Supergraph::new()).await
}

/// [`with_label`] on a gateway configured by `supergraph`.
async fn with_label_and(
    label: Option<&str>,
    supergraph: Supergraph,
) -> anyhow::Result<TestGateway> {
    let schema = pricing::schema();
    let mut sdl = super::federation_sdl(&schema);
    if let Some(label) = label {
        let plain = "@override(from: \"legacy\")";
        assert!(sdl.contains(plain), "unexpected pricing SDL:\n{sdl}");
        sdl = sdl
            .replace(
                plain,
                &format!("@override(from: \"legacy\", label: \"{label}\")"),
            )
            .replace("federation/v2.5", "federation/v2.7");
    }
    supergraph
        .subgraph("legacy", legacy::schema())
        .subgraph_with_sdl("pricing", schema, sdl)
        .start()
        .await
}

const QUERY: &str = "{ products { name price } }";

fn prices(p1: i32, p2: i32) -> serde_json::Value {
    json!({ "data": { "products": [
        { "name": "Kettle", "price": p1 },
        { "name": "Toaster", "price": p2 },
    ]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overridden_field_is_resolved_by_the_overriding_subgraph() -> anyhow::Result<()> {
    let gateway = with_label(None).await?;
    assert!(
        !gateway.supergraph.contains("overrideLabel: \""),
        "{}",
        gateway.supergraph
    );
    let response = gateway.query(QUERY, json!({})).await;
    assert_json(&response, prices(201, 202));
    assert_eq!(gateway.requests("pricing").entity_batches().len(), 1);
    // The old owner is no longer asked for the field.
    let legacy = gateway.requests("legacy").all();
    assert!(
        legacy
            .iter()
            .all(|r| !r["query"].as_str().unwrap_or("").contains("price")),
        "{legacy:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progressive_override_at_one_hundred_percent_always_uses_the_new_subgraph()
-> anyhow::Result<()> {
    let gateway = with_label(Some("percent(100)")).await?;
    let response = gateway.query(QUERY, json!({})).await;
    assert_json(&response, prices(201, 202));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progressive_override_at_zero_percent_keeps_the_old_subgraph() -> anyhow::Result<()> {
    let gateway = with_label(Some("percent(0)")).await?;
    assert!(
        gateway.supergraph.contains("overrideLabel: \""),
        "{}",
        gateway.supergraph
    );
    let response = gateway.query(QUERY, json!({})).await;
    assert_json(&response, prices(101, 102));
    assert_eq!(gateway.requests("pricing").count(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progressive_override_behind_an_inactive_label_keeps_the_old_subgraph()
-> anyhow::Result<()> {
    let gateway = with_label(Some("new-pricing")).await?;
    let response = gateway.query(QUERY, json!({})).await;
    assert_json(&response, prices(101, 102));
    assert_eq!(gateway.requests("pricing").count(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progressive_override_at_fifty_percent_sends_some_requests_to_each_subgraph()
-> anyhow::Result<()> {
    let gateway = with_label(Some("percent(50)")).await?;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let response = gateway.query(QUERY, json!({})).await;
        seen.insert(response["data"]["products"][0]["price"].to_string());
    }
    // 60 fair draws all landing on one side: about 1 in 10^17.
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["101".to_owned(), "201".to_owned()]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progressive_override_behind_an_active_label_uses_the_new_subgraph() -> anyhow::Result<()>
{
    let gateway = with_label_and(
        Some("new-pricing"),
        Supergraph::new().override_label("new-pricing"),
    )
    .await?;
    let response = gateway.query(QUERY, json!({})).await;
    assert_json(&response, prices(201, 202));
    let legacy = gateway.requests("legacy").all();
    assert!(
        legacy
            .iter()
            .all(|r| !r["query"].as_str().unwrap_or("").contains("price")),
        "{legacy:?}"
    );
    Ok(())
}
