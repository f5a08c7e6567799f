//! Introspection at the gateway: type references lead to whole types, and deprecated
//! entries are only listed when asked for.

use serde_json::json;

use super::{Supergraph, assert_json};

mod catalog {
    use async_graphql::{EmptyMutation, EmptySubscription, Enum, Object, Schema, SimpleObject};

    #[derive(Enum, Copy, Clone, Eq, PartialEq)]
    pub enum Size {
        Small,
        #[graphql(deprecation = "sold out for good")]
        Huge,
    }

    #[derive(SimpleObject)]
    pub struct Shelf {
        pub label: String,
        pub size: Size,
        #[graphql(deprecation = "use `label`")]
        pub name: String,
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn shelf(&self) -> Shelf {
            Shelf {
                label: "A1".into(),
                size: Size::Small,
                name: "A1".into(),
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
async fn type_references_lead_to_whole_types_and_deprecated_entries_are_opt_in()
-> anyhow::Result<()> {
    let gateway = Supergraph::new()
        .subgraph("catalog", catalog::schema())
        .start()
        .await?;
    let query = r#"{
      __type(name: "Query") {
        fields { name type { kind name fields { name } } }
      }
      shelf: __type(name: "Shelf") {
        current: fields { name }
        all: fields(includeDeprecated: true) { name isDeprecated deprecationReason }
      }
      size: __type(name: "Size") {
        enumValues { name }
        everything: enumValues(includeDeprecated: true) { name }
      }
    }"#;
    let response = gateway.query(query, json!({})).await;
    assert_json(
        &response,
        json!({ "data": {
            "__type": { "fields": [
                { "name": "shelf", "type": { "kind": "NON_NULL", "name": null, "fields": null } },
            ]},
            "shelf": {
                "current": [{ "name": "label" }, { "name": "size" }],
                "all": [
                    { "name": "label", "isDeprecated": false, "deprecationReason": null },
                    { "name": "name", "isDeprecated": true, "deprecationReason": "use `label`" },
                    { "name": "size", "isDeprecated": false, "deprecationReason": null },
                ],
            },
            "size": {
                "enumValues": [{ "name": "SMALL" }],
                "everything": [{ "name": "SMALL" }, { "name": "HUGE" }],
            },
        }}),
    );
    let nested = gateway
        .query(
            "{ __type(name: \"Query\") { fields { type { ofType { name fields { name } } } } } }",
            json!({}),
        )
        .await;
    assert_json(
        &nested,
        json!({ "data": { "__type": { "fields": [
            { "type": { "ofType": { "name": "Shelf", "fields": [{ "name": "label" }, { "name": "size" }] } } },
        ]}}}),
    );
    Ok(())
}
