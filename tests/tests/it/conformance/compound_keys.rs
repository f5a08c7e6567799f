//! `@key`: compound (`"id sku"`) and nested (`"id organization { id }"`) keys.

use serde_json::json;

use super::{Supergraph, assert_json, assert_json_unordered};

/// `Variant @key(fields: "id sku")`: two variants share an id, so only the compound key
/// tells them apart.
mod variants {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Variant {
        pub id: ID,
        pub sku: String,
        pub color: String,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn variants(&self) -> Vec<Variant> {
            [
                ("v1", "S", "red"),
                ("v1", "M", "blue"),
                ("v2", "S", "green"),
            ]
            .into_iter()
            .map(|(id, sku, color)| Variant {
                id: id.into(),
                sku: sku.into(),
                color: color.into(),
            })
            .collect()
        }

        #[graphql(entity)]
        async fn variant(&self, id: ID, sku: String) -> Variant {
            Variant {
                id,
                sku,
                color: "unknown".into(),
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

mod pricing {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    pub struct Variant {
        pub id: ID,
        pub sku: String,
        pub price: i32,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn variant(&self, id: ID, sku: String) -> Variant {
            let price = match (id.as_str(), sku.as_str()) {
                ("v1", "S") => 10,
                ("v1", "M") => 12,
                ("v2", "S") => 20,
                _ => -1,
            };
            Variant { id, sku, price }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compound_key_sends_every_key_field_in_the_representation() -> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("variants", variants::schema())
        .subgraph("pricing", pricing::schema())
        .start()
        .await?;
    let response = gateway
        .query("{ variants { id sku color price } }", json!({}))
        .await;
    assert_json(
        &response,
        json!({ "data": { "variants": [
            { "id": "v1", "sku": "S", "color": "red", "price": 10 },
            { "id": "v1", "sku": "M", "color": "blue", "price": 12 },
            { "id": "v2", "sku": "S", "color": "green", "price": 20 },
        ]}}),
    );
    assert_json_unordered(
        &json!(gateway.requests("pricing").entity_batches()),
        json!([[
            { "__typename": "Variant", "id": "v1", "sku": "S" },
            { "__typename": "Variant", "id": "v1", "sku": "M" },
            { "__typename": "Variant", "id": "v2", "sku": "S" },
        ]]),
    );
    Ok(())
}

/// `Member @key(fields: "id organization { id }")`: member ids repeat across
/// organizations.
mod members {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject, Clone)]
    #[graphql(shareable)]
    pub struct Organization {
        pub id: ID,
    }

    #[derive(SimpleObject)]
    pub struct Member {
        pub id: ID,
        pub organization: Organization,
        pub name: String,
    }

    #[derive(async_graphql::InputObject)]
    pub struct OrganizationKey {
        pub id: ID,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn members(&self) -> Vec<Member> {
            [
                ("m1", "acme", "Ann"),
                ("m1", "globex", "Bob"),
                ("m2", "acme", "Cid"),
            ]
            .into_iter()
            .map(|(id, org, name)| Member {
                id: id.into(),
                organization: Organization { id: org.into() },
                name: name.into(),
            })
            .collect()
        }

        #[graphql(entity)]
        async fn member(&self, id: ID, organization: OrganizationKey) -> Member {
            Member {
                id,
                organization: Organization {
                    id: organization.id,
                },
                name: "unknown".into(),
            }
        }
    }

    pub fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .enable_federation()
            .finish()
    }
}

mod roles {
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Schema, SimpleObject};

    #[derive(SimpleObject)]
    #[graphql(shareable)]
    pub struct Organization {
        pub id: ID,
    }

    #[derive(SimpleObject)]
    pub struct Member {
        pub id: ID,
        pub organization: Organization,
        pub role: String,
    }

    #[derive(async_graphql::InputObject)]
    pub struct OrganizationKey {
        pub id: ID,
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn member(&self, id: ID, organization: OrganizationKey) -> Member {
            let role = match (id.as_str(), organization.id.as_str()) {
                ("m1", "acme") => "admin",
                ("m1", "globex") => "viewer",
                ("m2", "acme") => "editor",
                _ => "nobody",
            };
            Member {
                id,
                organization: Organization {
                    id: organization.id,
                },
                role: role.into(),
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
async fn a_nested_key_sends_the_nested_selection_in_the_representation() -> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("members", members::schema())
        .subgraph("roles", roles::schema())
        .start()
        .await?;
    let response = gateway.query("{ members { name role } }", json!({})).await;
    assert_json(
        &response,
        json!({ "data": { "members": [
            { "name": "Ann", "role": "admin" },
            { "name": "Bob", "role": "viewer" },
            { "name": "Cid", "role": "editor" },
        ]}}),
    );
    assert_json_unordered(
        &json!(gateway.requests("roles").entity_batches()),
        json!([[
            { "__typename": "Member", "id": "m1", "organization": { "id": "acme" } },
            { "__typename": "Member", "id": "m1", "organization": { "id": "globex" } },
            { "__typename": "Member", "id": "m2", "organization": { "id": "acme" } },
        ]]),
    );
    Ok(())
}
