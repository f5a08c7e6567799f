//! Entity fetches: lists, nested lists and null items are merged back in the right
//! places, and representations are de-duplicated.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json, assert_json_unordered};

/// Products on shelves, in a grid and in a list with holes.
mod catalog {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub id: ID,
        pub name: String,
    }

    #[derive(SimpleObject)]
    pub struct Shelf {
        pub name: String,
        pub products: Vec<Product>,
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

    fn products(ids: &[&str]) -> Vec<Product> {
        ids.iter().map(|id| product(id)).collect()
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn shelves(&self) -> Vec<Shelf> {
            [
                ("A", &["p1", "p2"][..]),
                ("B", &["p2", "p3"]),
                ("C", &["p1"]),
            ]
            .into_iter()
            .map(|(name, ids)| Shelf {
                name: name.into(),
                products: products(ids),
            })
            .collect()
        }

        async fn grid(&self) -> Vec<Vec<Product>> {
            vec![products(&["p3", "p1"]), products(&["p2"]), vec![]]
        }

        async fn gaps(&self) -> Vec<Option<Product>> {
            vec![Some(product("p1")), None, Some(product("p3"))]
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

/// Adds `Product.stock`, counting every entity it resolves.
mod stock {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_graphql::{
        Context, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject,
    };

    #[derive(SimpleObject)]
    pub struct Product {
        pub id: ID,
        pub stock: i32,
    }

    pub struct Resolved(pub Arc<AtomicUsize>);

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn product_by_id(&self, ctx: &Context<'_>, id: ID) -> Product {
            ctx.data_unchecked::<Resolved>()
                .0
                .fetch_add(1, Ordering::SeqCst);
            let stock = match id.as_str() {
                "p1" => 10,
                "p2" => 20,
                _ => 30,
            };
            Product { id, stock }
        }
    }

    pub fn schema(resolved: Arc<AtomicUsize>) -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .data(Resolved(resolved))
            .finish()
    }
}

async fn warehouse() -> anyhow::Result<(TestGateway, Arc<AtomicUsize>)> {
    let resolved = Arc::new(AtomicUsize::new(0));
    let gateway = Supergraph::new()
        .subgraph("catalog", catalog::schema())
        .subgraph("stock", stock::schema(resolved.clone()))
        .start()
        .await?;
    Ok((gateway, resolved))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_in_lists_inside_lists_are_merged_back_in_place() -> anyhow::Result<()> {
    let (gateway, _) = warehouse().await?;
    let response = gateway
        .query("{ shelves { name products { id stock } } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "shelves": [
            { "name": "A", "products": [{ "id": "p1", "stock": 10 }, { "id": "p2", "stock": 20 }] },
            { "name": "B", "products": [{ "id": "p2", "stock": 20 }, { "id": "p3", "stock": 30 }] },
            { "name": "C", "products": [{ "id": "p1", "stock": 10 }] },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_entities_are_sent_once_and_resolved_once() -> anyhow::Result<()> {
    let (gateway, resolved) = warehouse().await?;
    let response = gateway
        .query("{ shelves { products { name stock } } }", json!({}))
        .await;
    assert_eq!(response.get("errors"), None, "{response}");
    // Five products on the shelves, three distinct ones.
    assert_eq!(resolved.load(Ordering::SeqCst), 3);
    assert_json_unordered(
        &json!(gateway.requests("stock").entity_batches()),
        json!([[
            { "__typename": "Product", "id": "p1" },
            { "__typename": "Product", "id": "p2" },
            { "__typename": "Product", "id": "p3" },
        ]]),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_in_a_list_of_lists_field_are_merged_back_in_place() -> anyhow::Result<()> {
    let (gateway, resolved) = warehouse().await?;
    let response = gateway.query("{ grid { name stock } }", json!({})).await;
    assert_json(
        &response,
        json!({ "data": { "grid": [
            [{ "name": "Blender", "stock": 30 }, { "name": "Kettle", "stock": 10 }],
            [{ "name": "Toaster", "stock": 20 }],
            [],
        ]}}),
    );
    assert_eq!(resolved.load(Ordering::SeqCst), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_items_of_an_entity_list_stay_null_and_are_not_sent() -> anyhow::Result<()> {
    let (gateway, _) = warehouse().await?;
    let response = gateway.query("{ gaps { id stock } }", json!({})).await;
    assert_json(
        &response,
        json!({ "data": { "gaps": [
            { "id": "p1", "stock": 10 },
            null,
            { "id": "p3", "stock": 30 },
        ]}}),
    );
    assert_json_unordered(
        &json!(gateway.requests("stock").entity_batches()),
        json!([[
            { "__typename": "Product", "id": "p1" },
            { "__typename": "Product", "id": "p3" },
        ]]),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_entities_under_several_root_fields_each_get_their_fields() -> anyhow::Result<()> {
    let (gateway, _) = warehouse().await?;
    let response = gateway
        .query(
            "{ gaps { stock } shelves { products { id stock } } grid { stock } }",
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "gaps": [{ "stock": 10 }, null, { "stock": 30 }],
            "shelves": [
                { "products": [{ "id": "p1", "stock": 10 }, { "id": "p2", "stock": 20 }] },
                { "products": [{ "id": "p2", "stock": 20 }, { "id": "p3", "stock": 30 }] },
                { "products": [{ "id": "p1", "stock": 10 }] },
            ],
            "grid": [[{ "stock": 30 }, { "stock": 10 }], [{ "stock": 20 }], []],
        }}),
    );
    // However the planner groups the fetches, no request carries a duplicate.
    for batch in gateway.requests("stock").entity_batches() {
        let mut unique = batch.clone();
        unique.sort_by_key(|r| r.to_string());
        unique.dedup();
        assert_eq!(unique.len(), batch.len(), "duplicates in {batch:?}");
    }
    Ok(())
}
