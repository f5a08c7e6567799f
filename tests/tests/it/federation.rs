//! One operation spanning all five subgraphs, in both deployment modes.

use portal_tests::{Mode, TestPortal};
use serde_json::{Value, json};

const ACROSS_ALL_SUBGRAPHS: &str = r#"
query CarolsPortal {
  me {
    displayName
    email
    roles { name }
    accounts {
      edges {
        node {
          number
          balance
          currency
          owner { email }
          reports { edges { node { name format } } }
          externalRefs { externalId integration { name kind } }
        }
      }
    }
    threads {
      edges {
        node {
          subject
          messages { edges { node { body author { displayName } } } }
        }
      }
    }
  }
}
"#;

fn refs(number: u32) -> Value {
    json!([
        { "externalId": format!("SF-{number:04}"), "integration": { "name": "Salesforce", "kind": "CRM" } },
        { "externalId": format!("cus_acme{number:04}"), "integration": { "name": "Stripe", "kind": "BILLING" } },
    ])
}

fn reports() -> Value {
    json!({ "edges": [
        { "node": { "name": "Monthly statement", "format": "PDF" } },
        { "node": { "name": "Balance summary", "format": "XLSX" } },
    ]})
}

fn expected_carol() -> Value {
    json!({
        "me": {
            "displayName": "Carol Customer",
            "email": "carol@acme.example",
            "roles": [{ "name": "customer_user" }],
            "accounts": { "edges": [
                { "node": {
                    "number": "ACME-0002", "balance": "3000.0000", "currency": "EUR",
                    "owner": { "email": "carol@acme.example" },
                    "reports": reports(), "externalRefs": refs(2),
                }},
                { "node": {
                    "number": "ACME-0003", "balance": "98765.4321", "currency": "USD",
                    "owner": { "email": "carol@acme.example" },
                    "reports": reports(), "externalRefs": refs(3),
                }},
            ]},
            "threads": { "edges": [
                { "node": {
                    "subject": "Welcome to the portal",
                    "messages": { "edges": [
                        { "node": { "body": "Hi Carol, your accounts are now visible in the portal.", "author": { "displayName": "Alice Admin" } } },
                        { "node": { "body": "Thanks Alice, I can see them.", "author": { "displayName": "Carol Customer" } } },
                    ]},
                }},
                { "node": {
                    "subject": "Question about an invoice",
                    "messages": { "edges": [
                        { "node": { "body": "Could you check invoice 2026-118?", "author": { "displayName": "Carol Customer" } } },
                    ]},
                }},
            ]},
        }
    })
}

async fn one_operation_reaches_all_five_subgraphs(mode: Mode) -> anyhow::Result<()> {
    let portal = TestPortal::start(mode).await?;
    let response = portal
        .query_as_carol(ACROSS_ALL_SUBGRAPHS, json!({}))
        .await?;
    assert_eq!(response, json!({ "data": expected_carol() }));
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operation_reaches_all_five_subgraphs_all_in_one() -> anyhow::Result<()> {
    one_operation_reaches_all_five_subgraphs(Mode::AllInOne).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operation_reaches_all_five_subgraphs_over_http() -> anyhow::Result<()> {
    one_operation_reaches_all_five_subgraphs(Mode::Distributed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_follows_the_clients_selection_aliases_fragments_and_directives()
-> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let query = r#"
        query Shape($withEmail: Boolean!, $skipRoles: Boolean = true) {
          who: me {
            __typename
            ...Names
            mail: email @include(if: $withEmail)
            roles @skip(if: $skipRoles) { name }
            accounts(first: 1) {
              pageInfo { hasNextPage }
              edges { node { ... on Account { number } } }
            }
          }
        }
        fragment Names on User { displayName name2: displayName }
    "#;
    let response = portal
        .query_as_carol(query, json!({ "withEmail": false }))
        .await?;
    let expected = json!({ "data": { "who": {
        "__typename": "User",
        "displayName": "Carol Customer",
        "name2": "Carol Customer",
        "accounts": { "pageInfo": { "hasNextPage": true }, "edges": [{ "node": { "number": "ACME-0002" } }] },
    }}});
    assert_eq!(response, expected);
    // Keys come in selection order, not alphabetically.
    let keys: Vec<&String> = response["data"]["who"]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["__typename", "displayName", "name2", "accounts"]);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_pagination_walks_every_page_through_the_gateway() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let query = "query($after: String) { accounts(first: 1, after: $after) { edges { cursor node { number } } pageInfo { hasNextPage endCursor } } }";
    let mut after = Value::Null;
    let mut numbers = Vec::new();
    loop {
        let response = portal
            .query_as_carol(query, json!({ "after": after }))
            .await?;
        let page = &response["data"]["accounts"];
        for edge in page["edges"].as_array().into_iter().flatten() {
            numbers.push(
                edge["node"]["number"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    // Carol's own accounts and the one she is a member of; not Bob's.
    assert_eq!(numbers, ["ACME-0001", "ACME-0002", "ACME-0003"]);
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_describes_the_api_schema_without_federation_internals() -> anyhow::Result<()>
{
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let response = portal
        .query_as_carol(
            "{ __schema { queryType { name } types { name } } account: __type(name: \"Account\") { kind fields { name } } }",
            json!({}),
        )
        .await?;
    let names: Vec<&str> = response["data"]["__schema"]["types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"Account") && names.contains(&"Thread") && names.contains(&"__Type"));
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("join__") || n.starts_with("link__") || *n == "_Any")
    );
    assert_eq!(response["data"]["__schema"]["queryType"]["name"], "Query");
    assert_eq!(response["data"]["account"]["kind"], "OBJECT");
    let fields: Vec<&str> = response["data"]["account"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        fields.contains(&"externalRefs")
            && fields.contains(&"reports")
            && fields.contains(&"owner")
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_inside_root_fragments_is_answered_alongside_subgraph_fields()
-> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let query = "query { ...Q me { displayName } ... on Query { t: __type(name: \"Account\") { name } } } fragment Q on Query { __schema { queryType { name } } __typename }";
    let response = portal.query_as_carol(query, json!({})).await?;
    assert_eq!(
        response,
        json!({ "data": {
            "__schema": { "queryType": { "name": "Query" } },
            "__typename": "Query",
            "me": { "displayName": "Carol Customer" },
            "t": { "name": "Account" },
        }})
    );
    let only_local = "{ ... on Query { __typename } ...L } fragment L on Query { __type(name: \"User\") { kind } }";
    let response = portal.query_as_carol(only_local, json!({})).await?;
    assert_eq!(
        response,
        json!({ "data": { "__typename": "Query", "__type": { "kind": "OBJECT" } } })
    );
    portal.stop().await;
    Ok(())
}
