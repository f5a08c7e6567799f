//! `@key`: single, several on one type, and `resolvable: false` (compound and nested keys
//! are in `compound_keys`).

use serde_json::json;

use super::{Supergraph, assert_json, assert_json_unordered};

/// Owns `Product @key(fields: "id")` and lists products.
mod catalog {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub id: ID,
        pub name: String,
    }

    fn all() -> Vec<Product> {
        [("p1", "Kettle"), ("p2", "Toaster"), ("p3", "Blender")]
            .into_iter()
            .map(|(id, name)| Product {
                id: id.into(),
                name: name.into(),
            })
            .collect()
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            all()
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

/// Contributes `Product.inStock` through the `id` key.
mod inventory {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Product {
        pub id: ID,
        pub in_stock: bool,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn product_by_id(&self, id: ID) -> Product {
            let in_stock = id.as_str() != "p2";
            Product { id, in_stock }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_with_a_single_key_gets_fields_from_two_subgraphs() -> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("catalog", catalog::schema())
        .subgraph("inventory", inventory::schema())
        .start()
        .await?;
    let response = gateway
        .query("{ products { id name inStock } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "id": "p1", "name": "Kettle", "inStock": true },
            { "id": "p2", "name": "Toaster", "inStock": false },
            { "id": "p3", "name": "Blender", "inStock": true },
        ]}}),
    );
    assert_json_unordered(
        &json!(gateway.requests("inventory").entity_batches()),
        json!([[
            { "__typename": "Product", "id": "p1" },
            { "__typename": "Product", "id": "p2" },
            { "__typename": "Product", "id": "p3" },
        ]]),
    );
    Ok(())
}

/// `User @key(fields: "id") @key(fields: "email")`: reviews know users by id, the
/// newsletter subgraph only by email, so the gateway must hop id → accounts → email.
mod accounts {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    pub struct User {
        pub id: ID,
        pub email: String,
        pub name: String,
    }

    fn all() -> Vec<User> {
        vec![
            User {
                id: "u1".into(),
                email: "ada@example.com".into(),
                name: "Ada".into(),
            },
            User {
                id: "u2".into(),
                email: "bob@example.com".into(),
                name: "Bob".into(),
            },
        ]
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn users(&self) -> Vec<User> {
            all()
        }

        #[graphql(entity)]
        async fn user_by_id(&self, id: ID) -> Option<User> {
            all().into_iter().find(|u| u.id == id)
        }

        #[graphql(entity)]
        async fn user_by_email(&self, email: String) -> Option<User> {
            all().into_iter().find(|u| u.email == email)
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

mod newsletter {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct User {
        pub email: String,
        pub subscribed: bool,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn user_by_email(&self, email: String) -> User {
            let subscribed = email.starts_with("ada");
            User { email, subscribed }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

mod user_reviews {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct User {
        pub id: ID,
    }

    #[derive(SimpleObject)]
    pub struct Review {
        pub body: String,
        pub author: User,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn reviews(&self) -> Vec<Review> {
            [("Great", "u2"), ("Meh", "u1")]
                .into_iter()
                .map(|(body, author)| Review {
                    body: body.into(),
                    author: User { id: author.into() },
                })
                .collect()
        }

        #[graphql(entity)]
        async fn user_by_id(&self, id: ID) -> User {
            User { id }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_with_several_keys_is_reached_through_whichever_key_a_subgraph_knows()
-> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("accounts", accounts::schema())
        .subgraph("newsletter", newsletter::schema())
        .subgraph("reviews", user_reviews::schema())
        .start()
        .await?;
    let response = gateway
        .query("{ reviews { body author { name subscribed } } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "reviews": [
            { "body": "Great", "author": { "name": "Bob", "subscribed": false } },
            { "body": "Meh", "author": { "name": "Ada", "subscribed": true } },
        ]}}),
    );
    assert_json_unordered(
        &json!(gateway.requests("newsletter").entity_batches()),
        json!([[
            { "__typename": "User", "email": "bob@example.com" },
            { "__typename": "User", "email": "ada@example.com" },
        ]]),
    );
    Ok(())
}

/// References `Product @key(fields: "id", resolvable: false)` without resolving it.
mod product_reviews {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    #[graphql(unresolvable)]
    pub struct Product {
        pub id: ID,
    }

    #[derive(SimpleObject)]
    pub struct Review {
        pub body: String,
        pub product: Product,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn reviews(&self) -> Vec<Review> {
            [("Loud", "p3"), ("Hot", "p1")]
                .into_iter()
                .map(|(body, id)| Review {
                    body: body.into(),
                    product: Product { id: id.into() },
                })
                .collect()
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_key_is_only_followed_into_the_owning_subgraph() -> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("catalog", catalog::schema())
        .subgraph("reviews", product_reviews::schema())
        .start()
        .await?;
    let response = gateway
        .query("{ reviews { body product { id name } } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "reviews": [
            { "body": "Loud", "product": { "id": "p3", "name": "Blender" } },
            { "body": "Hot", "product": { "id": "p1", "name": "Kettle" } },
        ]}}),
    );
    // The reviews subgraph is asked for its root field only, never for entities.
    assert_eq!(gateway.requests("reviews").count(), 1);
    assert!(gateway.requests("reviews").entity_batches().is_empty());
    Ok(())
}
