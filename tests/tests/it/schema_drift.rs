//! The committed contracts under `schema/` match what the code produces. When this fails,
//! review the change and run `cargo run -p portal -- compose` to update the files.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema")
}

#[tokio::test]
async fn committed_subgraph_and_supergraph_schemas_match_the_code() -> anyhow::Result<()> {
    let db = portal::connect_and_migrate("sqlite::memory:", 1).await?;
    let subgraphs = portal::subgraphs::build_all(&db, &portal_tests::authenticator(&db));
    let mut drifted = Vec::new();
    for subgraph in &subgraphs {
        let path = schema_dir().join(format!("{}.graphql", subgraph.name));
        if std::fs::read_to_string(&path).ok().as_deref() != Some(subgraph.sdl.as_str()) {
            drifted.push(path);
        }
    }
    let urls: BTreeMap<String, String> = portal::config::Config::default().subgraph_urls();
    let supergraph = portal::compose_subgraphs(&subgraphs, &urls)?;
    let path = schema_dir().join("supergraph.graphql");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(supergraph.as_str()) {
        drifted.push(path);
    }
    assert!(
        drifted.is_empty(),
        "schemas drifted from the code: {drifted:?}; run `cargo run -p portal -- compose`"
    );
    Ok(())
}

#[test]
fn composition_fails_loudly_when_a_root_field_cannot_be_planned() {
    // `Query.orphan` returns a type whose only field lives in no subgraph that can reach it.
    let a = portal_gateway::compose::SubgraphSdl {
        name: "a".into(),
        url: "http://a".into(),
        sdl: r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable"])
type Query { products: [Product!]! }
type Product @key(fields: "id") { id: ID! }"#
            .into(),
    };
    let b = portal_gateway::compose::SubgraphSdl {
        name: "b".into(),
        url: "http://b".into(),
        sdl: r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable"])
type Query { other: Int }
type Product @key(fields: "id", resolvable: false) { id: ID! name: String }"#
            .into(),
    };
    let ok = portal_gateway::compose::compose(std::slice::from_ref(&a));
    assert!(ok.is_ok(), "{ok:?}");
    let broken = portal_gateway::compose::compose(&[a, b]);
    assert!(
        broken.is_err(),
        "an unsatisfiable supergraph composed: {broken:?}"
    );
}

/// The `## Unreleased` section of `CHANGELOG.md`.
fn unreleased_changelog() -> anyhow::Result<String> {
    let changelog = std::fs::read_to_string(schema_dir().join("../CHANGELOG.md"))?;
    let start = changelog
        .find("\n## Unreleased\n")
        .ok_or_else(|| anyhow::anyhow!("CHANGELOG.md has no `## Unreleased` section"))?;
    let rest = &changelog[start + "\n## Unreleased\n".len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    Ok(rest[..end].to_owned())
}

#[test]
fn every_breaking_change_since_the_last_release_is_acknowledged_in_the_changelog()
-> anyhow::Result<()> {
    use portal_gateway::gateway::{Limits, Supergraph};
    let limits = Limits::default();
    let load = |name: &str| -> anyhow::Result<Supergraph> {
        let sdl = std::fs::read_to_string(schema_dir().join(name))?;
        Ok(Supergraph::load(&sdl, &limits)?)
    };
    let released = load("released/supergraph.graphql")?;
    let current = load("supergraph.graphql")?;
    let changes =
        portal_gateway::schema_diff::breaking_changes(released.api_schema(), current.api_schema());
    let changelog = unreleased_changelog()?;
    let unacknowledged: Vec<String> = changes
        .iter()
        .map(ToString::to_string)
        .filter(|change| !changelog.contains(&format!("`{change}`")))
        .collect();
    assert!(
        unacknowledged.is_empty(),
        "breaking changes to the API since the last release (schema/released/) are not \
         acknowledged under `## Unreleased` in CHANGELOG.md (deprecate first where possible; \
         list each as a `code span`):\n{}",
        unacknowledged.join("\n")
    );
    Ok(())
}
