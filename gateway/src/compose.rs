//! Composition: subgraph SDLs in, a supergraph the planner can plan out.
//!
//! `graphql-composition` does the Federation v2 merge. Its output is then normalized into
//! the Apollo-style supergraph `hive-router-query-planner` expects (root operation types
//! carry `@join__type` for every subgraph that contributes a root field), and probed: every
//! root field is planned once, so an unsatisfiable supergraph fails here, loudly, instead
//! of on some later request.

use std::collections::BTreeSet;

use hive_router_query_planner::ast::normalization::normalize_operation;
use hive_router_query_planner::planner::{Planner, QueryPlannerOptions};
use hive_router_query_planner::utils::cancellation::CancellationToken;
use hive_router_query_planner::utils::parsing::{safe_parse_operation, safe_parse_schema};

/// How many levels below each root field the probe selects every field.
const PROBE_DEPTH: usize = 4;

/// One subgraph as input to composition.
#[derive(Clone, Debug)]
pub struct SubgraphSdl {
    /// Subgraph name (becomes the `join__Graph` value).
    pub name: String,
    /// URL the gateway reaches it at; empty for the in-process transport.
    pub url: String,
    /// The subgraph's Federation v2 SDL (`_service { sdl }`).
    pub sdl: String,
}

/// Why composition failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A subgraph SDL did not parse.
    #[error("subgraph `{subgraph}` SDL is invalid: {message}")]
    InvalidSubgraph {
        /// The subgraph.
        subgraph: String,
        /// The parser's report.
        message: String,
    },
    /// The subgraphs do not compose.
    #[error("composition failed:\n{0}")]
    Composition(String),
    /// The composed supergraph cannot be loaded by the planner.
    #[error("the supergraph cannot be planned: {0}")]
    Planner(String),
    /// Some root field cannot be planned.
    #[error("root field `{coordinate}` cannot be planned: {message}")]
    Unsatisfiable {
        /// `Query.field` or `Mutation.field`.
        coordinate: String,
        /// The planner's reason.
        message: String,
    },
}

/// Composes `subgraphs` into a normalized, probed supergraph SDL.
pub fn compose(subgraphs: &[SubgraphSdl]) -> Result<String, ComposeError> {
    let mut input = graphql_composition::Subgraphs::default();
    for subgraph in subgraphs {
        let url = (!subgraph.url.is_empty()).then_some(subgraph.url.as_str());
        input
            .ingest_str(&subgraph.sdl, &subgraph.name, url)
            .map_err(|err| ComposeError::InvalidSubgraph {
                subgraph: subgraph.name.clone(),
                message: format!("{err:#}"),
            })?;
    }
    let result = graphql_composition::compose(&mut input);
    for warning in result.diagnostics().iter_warnings() {
        tracing::warn!(%warning, "composition warning");
    }
    let graph = result.into_result().map_err(|diagnostics| {
        ComposeError::Composition(diagnostics.iter_errors().collect::<Vec<_>>().join("\n"))
    })?;
    let rendered = graphql_composition::render_federated_sdl(&graph)
        .map_err(|err| ComposeError::Composition(err.to_string()))?;
    let supergraph = add_root_join_types(&rendered);
    probe(&supergraph)?;
    Ok(supergraph)
}

/// Adds `@join__type(graph: G)` to each root operation type for every graph `G` that
/// resolves one of its fields: the planner only enters subgraphs listed there.
pub fn add_root_join_types(supergraph: &str) -> String {
    let mut out = String::with_capacity(supergraph.len() + 512);
    let mut lines = supergraph.lines().peekable();
    while let Some(line) = lines.next() {
        let is_root = ["type Query", "type Mutation", "type Subscription"]
            .iter()
            .any(|root| line.trim_end() == *root);
        if !is_root {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // Collect the root type's body to find the graphs of its fields.
        let mut body = Vec::new();
        for inner in lines.by_ref() {
            body.push(inner);
            if inner.trim() == "}" {
                break;
            }
        }
        let graphs: BTreeSet<&str> = body.iter().flat_map(|field| graphs_in(field)).collect();
        out.push_str(line.trim_end());
        out.push('\n');
        for graph in graphs {
            out.push_str(&format!("  @join__type(graph: {graph})\n"));
        }
        for inner in body {
            out.push_str(inner);
            out.push('\n');
        }
    }
    out
}

fn graphs_in(line: &str) -> Vec<&str> {
    line.match_indices("@join__field(graph: ")
        .filter_map(|(start, marker)| {
            let rest = &line[start + marker.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            Some(&rest[..end])
        })
        .collect()
}

/// Loads `supergraph` into the planner and plans every root field with everything below
/// it (to [`PROBE_DEPTH`] levels), failing on the first field that cannot be planned.
pub fn probe(supergraph: &str) -> Result<(), ComposeError> {
    let document =
        safe_parse_schema(supergraph).map_err(|err| ComposeError::Planner(err.to_string()))?;
    let planner = std::panic::catch_unwind(|| {
        Planner::new_from_supergraph(&document, QueryPlannerOptions::default())
    })
    .map_err(|_| ComposeError::Planner("the planner panicked loading the supergraph".into()))?
    .map_err(|err| ComposeError::Planner(err.to_string()))?;
    let index = crate::schema::SchemaIndex::from_document(&planner.consumer_schema.document);
    for (kind, root) in index.root_types() {
        let Some(root_type) = index.object(&root) else {
            continue;
        };
        for field in root_type.fields.values() {
            if field.name.starts_with("__") {
                continue;
            }
            let operation = index.probe_operation(kind, field, PROBE_DEPTH);
            let coordinate = format!("{}.{}", root, field.name);
            let parsed =
                safe_parse_operation(&operation).map_err(|err| ComposeError::Unsatisfiable {
                    coordinate: coordinate.clone(),
                    message: err.to_string(),
                })?;
            let normalized =
                normalize_operation(&planner.supergraph, &parsed, None).map_err(|err| {
                    ComposeError::Unsatisfiable {
                        coordinate: coordinate.clone(),
                        message: err.to_string(),
                    }
                })?;
            let token = CancellationToken::with_timeout(std::time::Duration::from_secs(10));
            planner
                .plan_from_normalized_operation(&normalized.operation, Default::default(), &token)
                .map_err(|err| ComposeError::Unsatisfiable {
                    coordinate,
                    message: err.to_string(),
                })?;
        }
    }
    Ok(())
}
