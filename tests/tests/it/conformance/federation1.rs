//! Federation 1 supergraphs (`@core`, `join` v0.1, `@join__owner`, no `@join__type` on the
//! root types), as Apollo's Federation 1 composition writes them, are served like v2 ones.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Supergraph, assert_json};

/// Owns `Product @key(fields: "upc")` and the `topProducts` root field.
mod products {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub upc: String,
        pub name: String,
    }

    fn all() -> Vec<Product> {
        [("1", "Table"), ("2", "Couch"), ("3", "Chair")]
            .into_iter()
            .map(|(upc, name)| Product {
                upc: upc.into(),
                name: name.into(),
            })
            .collect()
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn top_products(&self, #[graphql(default = 5)] first: usize) -> Vec<Product> {
            all().into_iter().take(first).collect()
        }

        #[graphql(entity)]
        async fn product_by_upc(&self, upc: String) -> Option<Product> {
            all().into_iter().find(|p| p.upc == upc)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Extends `Product` with its reviews.
mod reviews {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    pub struct Review {
        pub id: ID,
        pub body: String,
    }

    pub struct Product {
        upc: String,
    }

    #[Object]
    impl Product {
        async fn upc(&self) -> &str {
            &self.upc
        }

        async fn reviews(&self) -> Vec<Review> {
            let bodies: &[&str] = match self.upc.as_str() {
                "1" => &["Love it!", "Too small"],
                "2" => &["Comfy"],
                _ => &[],
            };
            bodies
                .iter()
                .enumerate()
                .map(|(i, body)| Review {
                    id: format!("{}-{i}", self.upc).into(),
                    body: (*body).into(),
                })
                .collect()
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn product_by_upc(&self, upc: String) -> Product {
            Product { upc }
        }

        #[graphql(entity)]
        async fn review_by_id(&self, id: ID) -> Review {
            Review {
                id,
                body: String::new(),
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// The supergraph Apollo's Federation 1 composition writes for these two subgraphs.
fn federation_1_supergraph(urls: &BTreeMap<String, String>) -> String {
    r#"schema
  @core(feature: "https://specs.apollo.dev/core/v0.1")
  @core(feature: "https://specs.apollo.dev/join/v0.1")
{
  query: Query
}

directive @core(feature: String!) repeatable on SCHEMA

directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet) on FIELD_DEFINITION

directive @join__type(graph: join__Graph!, key: join__FieldSet) repeatable on OBJECT | INTERFACE

directive @join__owner(graph: join__Graph!) on OBJECT | INTERFACE

directive @join__graph(name: String!, url: String!) on ENUM_VALUE

type Product
  @join__owner(graph: PRODUCTS)
  @join__type(graph: PRODUCTS, key: "upc")
  @join__type(graph: REVIEWS, key: "upc")
{
  name: String! @join__field(graph: PRODUCTS)
  reviews: [Review!]! @join__field(graph: REVIEWS)
  upc: String! @join__field(graph: PRODUCTS)
}

type Query {
  topProducts(first: Int = 5): [Product!]! @join__field(graph: PRODUCTS)
}

type Review
  @join__owner(graph: REVIEWS)
  @join__type(graph: REVIEWS, key: "id")
{
  body: String! @join__field(graph: REVIEWS)
  id: ID! @join__field(graph: REVIEWS)
}

scalar join__FieldSet

enum join__Graph {
  PRODUCTS @join__graph(name: "products" url: "PRODUCTS_URL")
  REVIEWS @join__graph(name: "reviews" url: "REVIEWS_URL")
}
"#
    .replace("PRODUCTS_URL", &urls["products"])
    .replace("REVIEWS_URL", &urls["reviews"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federation_1_supergraph_is_planned_and_executed_across_its_subgraphs()
-> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("products", products::schema())
        .subgraph("reviews", reviews::schema())
        .handwritten(federation_1_supergraph)
        .start()
        .await?;
    let response = gateway
        .query(
            "{ topProducts(first: 2) { __typename name reviews { body } } }",
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "topProducts": [
            { "__typename": "Product", "name": "Table", "reviews": [{ "body": "Love it!" }, { "body": "Too small" }] },
            { "__typename": "Product", "name": "Couch", "reviews": [{ "body": "Comfy" }] },
        ]}}),
    );
    let introspection = gateway
        .query("{ __schema { types { name } } }", json!({}))
        .await;
    let names: Vec<&str> = introspection["data"]["__schema"]["types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"Review"));
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("join__") || n.starts_with("core")),
        "{names:?}"
    );
    Ok(())
}
