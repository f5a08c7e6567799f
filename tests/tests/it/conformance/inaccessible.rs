//! `@inaccessible`: hidden from the API schema (introspection, validation), still usable
//! between subgraphs.

use serde_json::json;

use super::{Supergraph, TestGateway, assert_json, messages, redact_messages};

/// `Product.internalCode`, `Product.warehouse` and `Query.legacyProducts` are
/// `@inaccessible`.
mod catalog {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub id: ID,
        pub name: String,
        #[graphql(inaccessible)]
        pub internal_code: String,
        #[graphql(inaccessible)]
        pub warehouse: String,
    }

    fn all() -> Vec<Product> {
        [
            ("p1", "Kettle", "K-77", "north"),
            ("p2", "Toaster", "T-12", "south"),
        ]
        .into_iter()
        .map(|(id, name, code, warehouse)| Product {
            id: id.into(),
            name: name.into(),
            internal_code: code.into(),
            warehouse: warehouse.into(),
        })
        .collect()
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn products(&self) -> Vec<Product> {
            all()
        }

        #[graphql(inaccessible)]
        async fn legacy_products(&self) -> Vec<Product> {
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

/// Needs the inaccessible `warehouse` to compute `stock`.
mod inventory {
    use async_graphql::{
        ComplexObject, EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject,
    };

    #[derive(SimpleObject)]
    #[graphql(complex)]
    pub struct Product {
        pub id: ID,
        #[graphql(external, inaccessible)]
        pub warehouse: Option<String>,
    }

    #[ComplexObject]
    impl Product {
        #[graphql(requires = "warehouse")]
        async fn stock(&self) -> async_graphql::Result<i32> {
            match self.warehouse.as_deref() {
                Some("north") => Ok(7),
                Some(_) => Ok(3),
                None => Err("warehouse was not provided".into()),
            }
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn product_by_id(
            &self,
            #[graphql(key)] id: ID,
            warehouse: Option<String>,
        ) -> Product {
            Product { id, warehouse }
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
        .subgraph("catalog", catalog::schema())
        .subgraph("inventory", inventory::schema())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inaccessible_fields_are_absent_from_introspection() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query(
            r#"{
                __type(name: "Product") { name fields { name } }
                __schema { queryType { fields { name } } }
            }"#,
            json!({}),
        )
        .await;
    assert_json(
        &response,
        json!({ "data": {
            "__type": {
                "name": "Product",
                "fields": [{ "name": "id" }, { "name": "name" }, { "name": "stock" }],
            },
            "__schema": { "queryType": { "fields": [{ "name": "products" }] } },
        }}),
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn querying_an_inaccessible_field_is_a_validation_error() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query("{ products { name internalCode } }", json!({}))
        .await;
    assert_json(
        &redact_messages(&response),
        json!({ "errors": [{
            "message": "…",
            "locations": [{ "line": 1, "column": 19 }],
            "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" },
        }]}),
    );
    assert!(
        messages(&response)[0].contains("internalCode"),
        "{response}"
    );
    assert_eq!(gateway.requests("catalog").count(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn querying_an_inaccessible_root_field_is_a_validation_error() -> anyhow::Result<()> {
    let gateway = shop().await?;
    let response = gateway
        .query("{ legacyProducts { name } }", json!({}))
        .await;
    assert_json(
        &redact_messages(&response),
        json!({ "errors": [{
            "message": "…",
            "locations": [{ "line": 1, "column": 3 }],
            "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" },
        }]}),
    );
    assert!(
        messages(&response)[0].contains("legacyProducts"),
        "{response}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inaccessible_field_is_still_sent_to_a_subgraph_that_requires_it() -> anyhow::Result<()>
{
    let gateway = shop().await?;
    let response = gateway
        .query("{ products { name stock } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "products": [
            { "name": "Kettle", "stock": 7 },
            { "name": "Toaster", "stock": 3 },
        ]}}),
    );
    Ok(())
}

/// `Membership.ANONYMOUS` is `@inaccessible`, yet the subgraph returns it for one member.
mod members {
    use async_graphql::{EmptyMutation, EmptySubscription, Enum, ID, Object, Schema, SimpleObject};

    #[derive(Enum, Copy, Clone, PartialEq, Eq)]
    pub enum Membership {
        Regular,
        #[graphql(inaccessible)]
        Anonymous,
    }

    #[derive(SimpleObject)]
    pub struct Member {
        pub id: ID,
        pub membership: Option<Membership>,
        pub strict_membership: Membership,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn members(&self) -> Vec<Option<Member>> {
            [("u1", Membership::Regular), ("u2", Membership::Anonymous)]
                .into_iter()
                .map(|(id, membership)| {
                    Some(Member {
                        id: id.into(),
                        membership: Some(membership),
                        strict_membership: membership,
                    })
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
async fn an_inaccessible_enum_value_from_a_subgraph_reaches_the_client_as_null()
-> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("members", members::schema())
        .start()
        .await?;
    let response = gateway
        .query("{ members { id membership } }", json!({}))
        .await;
    // The value is not in the API schema: null, with an error that does not name it.
    assert_json(
        &redact_messages(&response),
        json!({
            "errors": [{
                "message": "…",
                "path": ["members", 1, "membership"],
                "extensions": { "code": "SUBGRAPH_INVALID_RESPONSE" },
            }],
            "data": { "members": [
                { "id": "u1", "membership": "REGULAR" },
                { "id": "u2", "membership": null },
            ]},
        }),
    );
    assert!(!response.to_string().contains("ANONYMOUS"), "{response}");

    // In a non-null position the null propagates to the nearest nullable parent.
    let response = gateway
        .query("{ members { id strictMembership } }", json!({}))
        .await;
    assert_json(
        &redact_messages(&response),
        json!({
            "errors": [{
                "message": "…",
                "path": ["members", 1, "strictMembership"],
                "extensions": { "code": "SUBGRAPH_INVALID_RESPONSE" },
            }],
            "data": { "members": [{ "id": "u1", "strictMembership": "REGULAR" }, null] },
        }),
    );
    Ok(())
}
