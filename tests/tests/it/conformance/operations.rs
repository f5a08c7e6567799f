//! The client's operation shapes the response: `__typename`, aliases, fragments,
//! variables and their defaults, `@skip`/`@include` — across subgraph boundaries.

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json};

/// Owns products.
mod products {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub id: ID,
        pub name: String,
        pub price: i32,
    }

    fn all() -> Vec<Product> {
        [("p1", "Kettle", 30), ("p2", "Toaster", 45)]
            .into_iter()
            .map(|(id, name, price)| Product {
                id: id.into(),
                name: name.into(),
                price,
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

/// Adds `Product.reviews(first: Int = 10)`; `first: null` means "all of them".
mod reviews {
    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject,
    };

    #[derive(SimpleObject, Clone)]
    pub struct Review {
        pub body: String,
        pub stars: i32,
    }

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Product {
        pub id: ID,
    }

    #[ComplexObject]
    impl Product {
        async fn reviews(&self, #[graphql(default = 10)] first: Option<i32>) -> Vec<Review> {
            let all: Vec<Review> = match self.id.as_str() {
                "p1" => vec![("Great", 5), ("Fine", 3), ("Loud", 2)],
                "p2" => vec![("Burnt my toast", 1)],
                _ => vec![],
            }
            .into_iter()
            .map(|(body, stars)| Review {
                body: body.into(),
                stars,
            })
            .collect();
            let take = first.map_or(all.len(), |n| usize::try_from(n).unwrap_or(0));
            all.into_iter().take(take).collect()
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

async fn shop() -> anyhow::Result<TestGateway> {
    Supergraph::new()
        .subgraph("products", products::schema())
        .subgraph("reviews", reviews::schema())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typename_is_answered_at_the_root_and_at_every_level() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"{
                __typename
                product(id: "p2") { __typename kind: __typename reviews { __typename body } }
            }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "__typename": "Query",
            "product": {
                "__typename": "Product",
                "kind": "Product",
                "reviews": [{ "__typename": "Review", "body": "Burnt my toast" }],
            },
        }}),
    );
    // A query of nothing but `__typename` needs no subgraph.
    let response = gateway.query("{ __typename }", json!({})).await;
    assert_json(&response, json!({ "data": { "__typename": "Query" } }));
    assert_eq!(gateway.requests("products").count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_rename_fields_and_the_same_field_can_be_asked_with_different_arguments()
-> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"{
                first: product(id: "p1") { id title: name best: reviews(first: 1) { body } }
                second: product(id: "p2") { name }
                products { name top: reviews(first: 1) { stars } all: reviews(first: 5) { stars } }
            }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "first": { "id": "p1", "title": "Kettle", "best": [{ "body": "Great" }] },
            "second": { "name": "Toaster" },
            "products": [
                { "name": "Kettle", "top": [{ "stars": 5 }], "all": [{ "stars": 5 }, { "stars": 3 }, { "stars": 2 }] },
                { "name": "Toaster", "top": [{ "stars": 1 }], "all": [{ "stars": 1 }] },
            ],
        }}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_and_inline_fragments_merge_into_selection_order() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"
            query Shop {
                products {
                    ...Basics
                    ... on Product { reviews(first: 1) { ...Verdict } }
                    ... { id name }
                    id
                }
            }
            fragment Basics on Product { name price }
            fragment Verdict on Review { stars body }
            "#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "name": "Kettle", "price": 30, "reviews": [{ "stars": 5, "body": "Great" }], "id": "p1" },
            { "name": "Toaster", "price": 45, "reviews": [{ "stars": 1, "body": "Burnt my toast" }], "id": "p2" },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variable_defaults_apply_when_a_variable_is_not_sent() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let query = r#"query ($id: ID! = "p1", $first: Int = 2) {
        product(id: $id) { name reviews(first: $first) { body } }
    }"#;
    let response = gateway.query(query, json!({})).await;
    assert_json(
        &response,
        json!({ "data": { "product": {
            "name": "Kettle",
            "reviews": [{ "body": "Great" }, { "body": "Fine" }],
        }}}),
    );
    let response = gateway.query(query, json!({ "first": 1 })).await;
    assert_json(
        &response,
        json!({ "data": { "product": { "name": "Kettle", "reviews": [{ "body": "Great" }] } } }),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_null_variable_overrides_its_default() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let query = r#"query ($first: Int = 1) {
        product(id: "p1") { reviews(first: $first) { body } }
    }"#;
    let response = gateway.query(query, json!({ "first": null })).await;
    assert_json(
        &response,
        json!({ "data": { "product": {
            "reviews": [{ "body": "Great" }, { "body": "Fine" }, { "body": "Loud" }],
        }}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_and_excluded_fields_are_absent_and_not_fetched() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let query = r#"query ($reviews: Boolean!, $hidePrice: Boolean!) {
        products {
            name
            price @skip(if: $hidePrice)
            reviews(first: 1) @include(if: $reviews) { body }
            ... on Product @include(if: $reviews) { id }
        }
    }"#;
    let response = gateway
        .query(query, json!({ "reviews": false, "hidePrice": true }))
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [{ "name": "Kettle" }, { "name": "Toaster" }] } }),
    );
    assert_eq!(gateway.requests("reviews").count(), 0);

    let response = gateway
        .query(query, json!({ "reviews": true, "hidePrice": false }))
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "name": "Kettle", "price": 30, "reviews": [{ "body": "Great" }], "id": "p1" },
            { "name": "Toaster", "price": 45, "reviews": [{ "body": "Burnt my toast" }], "id": "p2" },
        ]}}),
    );
    assert_eq!(gateway.requests("reviews").count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_skipped_in_one_place_but_selected_in_another_is_present() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"query ($no: Boolean = false) {
                product(id: "p2") {
                    name @include(if: $no)
                    reviews @skip(if: true) { stars }
                    ... on Product { name reviews { body } }
                }
            }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "product": {
            "name": "Toaster",
            "reviews": [{ "body": "Burnt my toast" }],
        }}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_alias_named_like_a_key_field_does_not_replace_the_key() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            "{ products { id: name key: id r: reviews(first: 1) { b: body stars } } }",
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "id": "Kettle", "key": "p1", "r": [{ "b": "Great", "stars": 5 }] },
            { "id": "Toaster", "key": "p2", "r": [{ "b": "Burnt my toast", "stars": 1 }] },
        ]}}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_include_condition_left_to_its_default_decides_whether_to_fetch() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let query = r#"query ($withReviews: Boolean = false) {
        products { name reviews(first: 1) @include(if: $withReviews) { stars } }
    }"#;
    let response = gateway.query(query, json!({})).await;
    assert_json(
        &response,
        json!({ "data": { "products": [{ "name": "Kettle" }, { "name": "Toaster" }] } }),
    );
    assert_eq!(gateway.requests("reviews").count(), 0);
    let response = gateway.query(query, json!({ "withReviews": true })).await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "name": "Kettle", "reviews": [{ "stars": 5 }] },
            { "name": "Toaster", "reviews": [{ "stars": 1 }] },
        ]}}),
    );
    Ok(())
}
