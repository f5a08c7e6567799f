//! `@requires`, `@external`, `@provides` and `@shareable`.

use serde_json::json;

use super::{Supergraph, assert_json, assert_json_unordered};

/// Owns products: name (shareable), weight and dimensions.
mod products {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    #[graphql(shareable)]
    pub struct Dimensions {
        pub width: i32,
        pub height: i32,
    }

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub id: ID,
        #[graphql(shareable)]
        pub name: String,
        pub weight_kg: i32,
        pub dimensions: Dimensions,
    }

    pub fn all() -> Vec<Product> {
        [
            ("p1", "Kettle", 2, (10, 20)),
            ("p2", "Fridge", 60, (60, 180)),
        ]
        .into_iter()
        .map(|(id, name, weight_kg, (width, height))| Product {
            id: id.into(),
            name: name.into(),
            weight_kg,
            dimensions: Dimensions { width, height },
        })
        .collect()
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            all()
        }

        async fn product(&self, id: ID) -> Option<Product> {
            all().into_iter().find(|p| p.id == id)
        }

        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Option<Product> {
            all().into_iter().find(|p| p.id == id)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Computes shipping from the products subgraph's weight and dimensions.
mod shipping {
    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, ID, InputObject, Object, Schema,
        SimpleObject,
    };

    #[derive(SimpleObject, Clone)]
    #[graphql(shareable)]
    pub struct Dimensions {
        pub width: i32,
        pub height: i32,
    }

    #[derive(InputObject)]
    pub struct DimensionsInput {
        pub width: i32,
        pub height: i32,
    }

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Product {
        pub id: ID,
        #[graphql(shareable)]
        pub name: String,
        #[graphql(external)]
        pub weight_kg: Option<i32>,
        #[graphql(external)]
        pub dimensions: Option<Dimensions>,
    }

    #[ComplexObject]
    impl Product {
        /// Needs the weight, which only the products subgraph knows.
        #[graphql(requires = "weightKg")]
        async fn shipping_cost(&self, zone: String) -> async_graphql::Result<i32> {
            let weight = self.weight_kg.ok_or("weightKg was not provided")?;
            Ok(weight * if zone == "EU" { 2 } else { 3 })
        }

        /// Needs a nested selection of the products subgraph.
        #[graphql(requires = "dimensions { width height }")]
        async fn packaging(&self) -> async_graphql::Result<String> {
            let d = self
                .dimensions
                .as_ref()
                .ok_or("dimensions were not provided")?;
            Ok(if d.width * d.height > 1000 {
                "crate"
            } else {
                "box"
            }
            .into())
        }
    }

    fn name_of(id: &str) -> String {
        match id {
            "p1" => "Kettle",
            "p2" => "Fridge",
            _ => "?",
        }
        .into()
    }

    pub struct Query;

    #[Object]
    impl Query {
        /// The cheapest product to ship; its `name` is shareable, so no other subgraph is
        /// needed for it.
        async fn cheapest_to_ship(&self) -> Product {
            Product {
                id: "p1".into(),
                name: name_of("p1"),
                weight_kg: None,
                dimensions: None,
            }
        }

        #[graphql(entity)]
        async fn product_by_id(
            &self,
            #[graphql(key)] id: ID,
            weight_kg: Option<i32>,
            dimensions: Option<DimensionsInput>,
        ) -> Product {
            Product {
                name: name_of(&id),
                id,
                weight_kg,
                dimensions: dimensions.map(|d| Dimensions {
                    width: d.width,
                    height: d.height,
                }),
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

async fn shop() -> anyhow::Result<super::TestGateway> {
    Supergraph::new()
        .subgraph("products", products::schema())
        .subgraph("shipping", shipping::schema())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_with_requires_receives_the_external_field_and_its_own_arguments()
-> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"query ($zone: String!) {
                products { name eu: shippingCost(zone: "EU") other: shippingCost(zone: $zone) }
            }"#,
            json!({ "zone": "US" }),
        )
        .await;
    // The required `weightKg` is fetched for the representation but never shown.
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "name": "Kettle", "eu": 4, "other": 6 },
            { "name": "Fridge", "eu": 120, "other": 180 },
        ]}}),
    );
    assert_json_unordered(
        &json!(gateway.requests("shipping").entity_batches()),
        json!([[
            { "__typename": "Product", "id": "p1", "weightKg": 2 },
            { "__typename": "Product", "id": "p2", "weightKg": 60 },
        ]]),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_that_requires_a_nested_selection_receives_it_whole() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"{ product(id: "p2") { packaging name } p1: product(id: "p1") { packaging } }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "product": { "packaging": "crate", "name": "Fridge" },
            "p1": { "packaging": "box" },
        }}),
    );
    let mut representations: Vec<_> = gateway
        .requests("shipping")
        .entity_batches()
        .into_iter()
        .flatten()
        .collect();
    representations.sort_by_key(|r| r["id"].as_str().map(str::to_owned));
    assert_json_unordered(
        &json!(representations),
        json!([
            { "__typename": "Product", "id": "p1", "dimensions": { "width": 10, "height": 20 } },
            { "__typename": "Product", "id": "p2", "dimensions": { "width": 60, "height": 180 } },
        ]),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requires_field_and_a_plain_field_of_the_same_entity_come_back_together()
-> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"{ products { id weightKg shippingCost(zone: "EU") dimensions { width } packaging } }"#,
            json!({}),
        )
        .await;
    // Fields the client selected itself stay, in its order, and only those it selected.
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "id": "p1", "weightKg": 2, "shippingCost": 4, "dimensions": { "width": 10 }, "packaging": "box" },
            { "id": "p2", "weightKg": 60, "shippingCost": 120, "dimensions": { "width": 60 }, "packaging": "crate" },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shareable_field_is_resolved_by_the_subgraph_already_queried() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query("{ cheapestToShip { id name } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "cheapestToShip": { "id": "p1", "name": "Kettle" } } }),
    );
    assert_eq!(gateway.requests("products").count(), 0);
    assert_eq!(gateway.requests("shipping").count(), 1);
    Ok(())
}

/// Owns users.
mod users {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct User {
        pub id: ID,
        #[graphql(shareable)]
        pub name: String,
        pub email: String,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn user_by_id(&self, id: ID) -> User {
            let name = if id.as_str() == "u1" { "Ada" } else { "Bob" };
            User {
                email: format!("{}@example.com", name.to_lowercase()),
                name: name.into(),
                id,
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

/// Reviews store the author's name too, and say so with `@provides(fields: "name")`.
mod reviews {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct User {
        pub id: ID,
        #[graphql(external)]
        pub name: String,
    }

    #[derive(SimpleObject)]
    pub struct Review {
        pub body: String,
        #[graphql(provides = "name")]
        pub author: User,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn reviews(&self) -> Vec<Review> {
            [("Lovely", "u1", "Ada"), ("Broken", "u2", "Bob")]
                .into_iter()
                .map(|(body, id, name)| Review {
                    body: body.into(),
                    author: User {
                        id: id.into(),
                        name: name.into(),
                    },
                })
                .collect()
        }

        #[graphql(entity)]
        async fn user_by_id(&self, id: ID) -> User {
            User {
                id,
                name: String::new(),
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provided_field_is_taken_from_the_providing_subgraph_without_an_entity_fetch()
-> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("users", users::schema())
        .subgraph("reviews", reviews::schema())
        .start()
        .await?;
    let response = gateway
        .query("{ reviews { body author { name } } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "reviews": [
            { "body": "Lovely", "author": { "name": "Ada" } },
            { "body": "Broken", "author": { "name": "Bob" } },
        ]}}),
    );
    assert_eq!(gateway.requests("users").count(), 0);

    // A field outside the provided set still comes from the owner.
    let response = gateway
        .query("{ reviews { author { name email } } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "reviews": [
            { "author": { "name": "Ada", "email": "ada@example.com" } },
            { "author": { "name": "Bob", "email": "bob@example.com" } },
        ]}}),
    );
    assert_eq!(gateway.requests("users").count(), 1);
    Ok(())
}
