//! Operation limits refuse oversized documents with a code per limit, before any work.

use portal_tests::{Mode, TestPortal};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_operations_are_refused_with_a_code_per_limit() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let deep = format!(
        "{{ me {} }}",
        "{ accounts { edges { node { owner ".repeat(4)
            + "{ id"
            + " } } } }".repeat(4).as_str()
            + " }"
    );
    let aliases = format!(
        "{{ me {{ {} }} }}",
        (0..31)
            .map(|i| format!("a{i}: id"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let roots = format!(
        "{{ {} }}",
        (0..21).map(|_| "me { id }").collect::<Vec<_>>().join(" ")
    );
    let tokens = format!("{{ me {{ {} }} }}", "id ".repeat(16_000));
    let via_fragment =
        "query { ...F } fragment F on Query { a: me { id } b: me { id } } ".to_owned();
    for (document, code) in [
        (deep, "MAX_DEPTH_EXCEEDED"),
        (aliases, "MAX_ALIASES_EXCEEDED"),
        (roots, "MAX_ROOT_FIELDS_EXCEEDED"),
        (tokens, "MAX_TOKENS_EXCEEDED"),
    ] {
        let response = portal.query_as_carol(&document, json!({})).await?;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], code,
            "{response}"
        );
        assert_eq!(
            response.get("data"),
            None,
            "refused before execution: {response}"
        );
    }
    // Fragments spread many times expand exponentially: refused at once, not expanded.
    let letters: Vec<char> = ('A'..='J').collect();
    let mut bomb = "query { me { ...A } } ".to_owned();
    for pair in letters.windows(2) {
        bomb.push_str(&format!(
            "fragment {} on User {{ {} }} ",
            pair[0],
            format!("...{} ", pair[1]).repeat(10)
        ));
    }
    bomb.push_str("fragment J on User { id }");
    let started = std::time::Instant::now();
    let response = portal.query_as_carol(&bomb, json!({})).await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "MAX_FIELDS_EXCEEDED",
        "{response}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // A long chain of fragments spreading each other.
    let mut chain = "query { me { ...F0 } } ".to_owned();
    for i in 0..100 {
        chain.push_str(&format!("fragment F{i} on User {{ ...F{} }} ", i + 1));
    }
    chain.push_str("fragment F100 on User { id }");
    let response = portal.query_as_carol(&chain, json!({})).await?;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "MAX_DEPTH_EXCEEDED",
        "{response}"
    );

    // Within limits, fragments and aliases are fine.
    let response = portal.query_as_carol(&via_fragment, json!({})).await?;
    assert_eq!(response.get("errors"), None, "{response}");
    let carol = portal.seed.carol_id.to_string();
    assert_eq!(response["data"]["a"]["id"], carol.as_str());
    assert_eq!(response["data"]["b"]["id"], carol.as_str());
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directive_overloading_is_refused_with_a_small_answer() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    // graphql-cop's "Directive Overloading": thousands of unknown directives.
    let overloaded = format!("{{ __typename {} }}", "@aa".repeat(5_000));
    let repeated =
        "{ __typename @skip(if: false) @skip(if: false) @skip(if: false) @skip(if: false) }";
    for document in [overloaded.as_str(), repeated] {
        let response = portal
            .http()
            .post(&portal.endpoint)
            .json(&json!({ "query": document }))
            .send()
            .await?
            .text()
            .await?;
        assert!(response.len() < 1_000, "{} bytes", response.len());
        let response: serde_json::Value = serde_json::from_str(&response)?;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "MAX_DIRECTIVES_EXCEEDED",
            "{response}"
        );
    }
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_are_capped_per_request() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    // 150 unknown fields, within every other limit: at most 100 errors plus a summary.
    let document = format!(
        "{{ me {{ {} }} }}",
        (0..150)
            .map(|i| format!("f{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let response = portal.query_as_carol(&document, json!({})).await?;
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 101, "{response}");
    assert!(
        errors[100]["message"]
            .as_str()
            .is_some_and(|m| m.contains("50 more")),
        "{}",
        errors[100]
    );
    assert!(
        errors
            .iter()
            .all(|e| e["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED")
    );
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_meta_fields_are_validation_errors_not_planning_failures() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    for document in [
        "{ __typenam }",
        "{ me { __foo } }",
        "query { ...F } fragment F on Query { __bar }",
    ] {
        let response = portal.query_as_carol(document, json!({})).await?;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{document}: {response}"
        );
    }
    let fine = portal.query_as_carol("{ __typename }", json!({})).await?;
    assert_eq!(fine["data"]["__typename"], "Query", "{fine}");
    portal.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_type_are_only_query_root_fields() -> anyhow::Result<()> {
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let nested = portal
        .query_as_carol("{ me { __schema { queryType { name } } } }", json!({}))
        .await?;
    assert_eq!(
        nested["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{nested}"
    );
    let root = portal
        .query_as_carol("{ __schema { queryType { name } } }", json!({}))
        .await?;
    assert_eq!(
        root["data"]["__schema"]["queryType"]["name"], "Query",
        "{root}"
    );
    portal.stop().await;
    Ok(())
}
