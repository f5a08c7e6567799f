//! Errors: subgraph errors keep their code and get the path of the client's response;
//! a null in a non-null position propagates to the nearest nullable parent.
//!
//! Subgraph errors here carry client codes (`FORBIDDEN`, `NOT_FOUND`), which the
//! gateway's default masking lets through with their messages.

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json};

/// Owns products; `secret` is forbidden.
mod products {
    use async_graphql::{
        EmptyMutation, EmptySubscription, ErrorExtensions, ID, Object, Schema, SimpleObject,
    };

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub id: ID,
        pub name: String,
    }

    fn product(id: &str) -> Product {
        let name = match id {
            "p1" => "Kettle",
            "p2" => "Toaster",
            _ => "Blender",
        };
        Product {
            id: id.into(),
            name: name.into(),
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            ["p1", "p2", "p3"].into_iter().map(product).collect()
        }

        async fn shelf(&self) -> Vec<Option<Product>> {
            ["p1", "p2", "p3"]
                .into_iter()
                .map(product)
                .map(Some)
                .collect()
        }

        async fn product(&self, id: ID) -> Option<Product> {
            Some(product(&id))
        }

        async fn secret(&self) -> async_graphql::Result<Option<String>> {
            Err(async_graphql::Error::new("you may not see this")
                .extend_with(|_, e| e.set("code", "FORBIDDEN")))
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

/// Adds `Product.rating: Int!` (fails for p2, silently missing for p4) and
/// `Product.blurb: String` (fails for p2).
///
/// async-graphql's built-in entity resolution reports an entity's field errors without
/// the list index (`["_entities", "rating"]`), so this subgraph implements the
/// Federation subgraph spec's `_entities(representations: [_Any!]!): [_Entity]!` as an
/// ordinary field: each representation is resolved as one list item, and errors carry
/// `["_entities", i, …]`. The composed SDL is the Federation SDL of what it serves.
mod ratings {
    use async_graphql::{
        Any, EmptyMutation, EmptySubscription, ErrorExtensions, ID, Object, Schema, Union, Value,
    };

    pub const SDL: &str = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])

type Product @key(fields: "id") {
  id: ID!
  rating: Int!
  blurb: String
}
"#;

    pub struct Product {
        id: String,
    }

    fn not_found(what: &str) -> async_graphql::Error {
        async_graphql::Error::new(format!("no {what} for p2"))
            .extend_with(|_, e| e.set("code", "NOT_FOUND"))
    }

    #[Object]
    impl Product {
        async fn id(&self) -> ID {
            ID(self.id.clone())
        }

        async fn rating(&self) -> async_graphql::Result<i32> {
            match self.id.as_str() {
                "p2" => Err(not_found("rating")),
                "p1" => Ok(4),
                _ => Ok(2),
            }
        }

        async fn blurb(&self) -> async_graphql::Result<Option<String>> {
            match self.id.as_str() {
                "p2" => Err(not_found("blurb")),
                id => Ok(Some(format!("all about {id}"))),
            }
        }
    }

    #[derive(Union)]
    #[graphql(name = "_Entity")]
    pub enum Entity {
        Product(Product),
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(name = "_entities")]
        async fn entities(&self, representations: Vec<Any>) -> Vec<Option<Entity>> {
            representations
                .into_iter()
                .map(|Any(representation)| {
                    let Value::Object(fields) = representation else {
                        return None;
                    };
                    let field = |name: &str| match fields.get(name) {
                        Some(Value::String(s)) => Some(s.clone()),
                        _ => None,
                    };
                    let id = field("id").filter(|id| id != "p4")?;
                    (field("__typename")? == "Product").then_some(Entity::Product(Product { id }))
                })
                .collect()
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::new(Query, EmptyMutation, EmptySubscription)
    }
}

async fn shop() -> anyhow::Result<TestGateway> {
    Supergraph::new()
        .subgraph("products", products::schema())
        .subgraph_with_sdl("ratings", ratings::schema(), ratings::SDL)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_field_error_keeps_its_path_and_code_and_names_the_subgraph() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query("{ products { name } secret }", json!({}))
        .await;
    assert_json(
        &response,
        json!({
            "errors": [{
                "message": "you may not see this",
                "path": ["secret"],
                "extensions": { "code": "FORBIDDEN", "serviceName": "products" },
            }],
            "data": {
                "products": [{ "name": "Kettle" }, { "name": "Toaster" }, { "name": "Blender" }],
                "secret": null,
            },
        }),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_field_error_is_reported_at_the_entitys_place_in_the_response()
-> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query("{ products { name blurb } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({
            "errors": [{
                "message": "no blurb for p2",
                "path": ["products", 1, "blurb"],
                "extensions": { "code": "NOT_FOUND", "serviceName": "ratings" },
            }],
            "data": { "products": [
                { "name": "Kettle", "blurb": "all about p1" },
                { "name": "Toaster", "blurb": null },
                { "name": "Blender", "blurb": "all about p3" },
            ]},
        }),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_non_null_entity_field_nulls_its_nullable_parent_object() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(r#"{ product(id: "p2") { name rating } }"#, json!({}))
        .await;
    assert_json(
        &response,
        json!({
            "errors": [{
                "message": "no rating for p2",
                "path": ["product", "rating"],
                "extensions": { "code": "NOT_FOUND", "serviceName": "ratings" },
            }],
            "data": { "product": null },
        }),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_non_null_entity_field_nulls_only_its_item_in_a_list_of_nullable_items()
-> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway.query("{ shelf { name rating } }", json!({})).await;
    assert_json(
        &response,
        json!({
            "errors": [{
                "message": "no rating for p2",
                "path": ["shelf", 1, "rating"],
                "extensions": { "code": "NOT_FOUND", "serviceName": "ratings" },
            }],
            "data": { "shelf": [
                { "name": "Kettle", "rating": 4 },
                null,
                { "name": "Blender", "rating": 2 },
            ]},
        }),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_that_reaches_the_root_through_non_null_types_nulls_data() -> anyhow::Result<()> {
    let gateway = shop().await?;
    // `products: [Product!]!` and `rating: Int!`: nothing nullable between the failed
    // field and the root.
    let response = gateway
        .query("{ products { name rating } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({
            "errors": [{
                "message": "no rating for p2",
                "path": ["products", 1, "rating"],
                "extensions": { "code": "NOT_FOUND", "serviceName": "ratings" },
            }],
            "data": null,
        }),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_entity_without_an_error_still_gets_an_error_at_the_null_non_null_field()
-> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(r#"{ product(id: "p4") { name rating } }"#, json!({}))
        .await;
    assert_json(&response["data"], json!({ "product": null }));
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{response}");
    assert_json(&errors[0]["path"], json!(["product", "rating"]));
    assert!(errors[0]["message"].is_string(), "{response}");
    // Nothing failed: the owner of `rating` knows no such product.
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{response}");
    Ok(())
}

/// The same ratings through async-graphql's built-in entity resolution (what Portal's own
/// subgraphs use): an entity's field error comes back as `["_entities", "rating"]`,
/// without the index of the representation.
mod derived_ratings {
    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, ErrorExtensions, ID, Object, Schema,
        SimpleObject,
    };

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Product {
        pub id: ID,
    }

    #[ComplexObject]
    impl Product {
        async fn rating(&self) -> async_graphql::Result<i32> {
            match self.id.as_str() {
                "p2" => Err(async_graphql::Error::new("no rating for p2")
                    .extend_with(|_, e| e.set("code", "NOT_FOUND"))),
                _ => Ok(4),
            }
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_error_without_an_index_is_placed_when_only_one_entity_was_sent()
-> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("products", products::schema())
        .subgraph("ratings", derived_ratings::schema())
        .start()
        .await?;
    let response = gateway
        .query(r#"{ product(id: "p2") { name rating } }"#, json!({}))
        .await;
    assert_json(
        &response,
        json!({
            "errors": [{
                "message": "no rating for p2",
                "path": ["product", "rating"],
                "extensions": { "code": "NOT_FOUND", "serviceName": "ratings" },
            }],
            "data": { "product": null },
        }),
    );
    Ok(())
}
