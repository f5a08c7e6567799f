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
    let rendered = dedupe_directive_arguments(&rendered);
    let supergraph = normalize(&rendered).map_err(ComposeError::Planner)?;
    probe(&supergraph)?;
    Ok(supergraph)
}

/// Normalizes a supergraph from any composer into the form the planner expects: root
/// types get their `@join__type`s ([`add_root_join_types`]) and progressive override
/// labels appear on both sides of the move ([`crate::overrides::mirror_labels`]).
pub fn normalize(supergraph: &str) -> Result<String, String> {
    let with_roots = add_root_join_types(supergraph)?;
    if !with_roots.contains("overrideLabel") {
        return Ok(with_roots);
    }
    let mut document = safe_parse_schema(&with_roots).map_err(|err| err.to_string())?;
    Ok(if crate::overrides::mirror_labels(&mut document) {
        document.to_string()
    } else {
        with_roots
    })
}

/// `graphql-composition` merges the definitions of a directive composed from several
/// subgraphs (`@composeDirective`) by concatenating their arguments; each argument is kept
/// once (the first definition wins), on the definition's own line.
fn dedupe_directive_arguments(supergraph: &str) -> String {
    let mut out = String::with_capacity(supergraph.len());
    for line in supergraph.split_inclusive('\n') {
        out.push_str(&dedupe_line(line).unwrap_or_else(|| line.to_owned()));
    }
    out
}

/// `directive @name(a: A, b: B, a: A) on …` without the repeated arguments; `None` when
/// the line is something else or repeats nothing.
fn dedupe_line(line: &str) -> Option<String> {
    let rest = line.strip_prefix("directive @")?;
    let open = rest.find('(')?;
    let close = rest.rfind(") on ")?;
    if close <= open {
        return None;
    }
    let arguments = &rest[open + 1..close];
    // Top-level commas only (list types and defaults hold brackets, not commas, here;
    // a nested comma leaves the line unchanged below).
    if arguments.contains('{') || arguments.contains('"') {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    let kept: Vec<&str> = arguments
        .split(',')
        .map(str::trim)
        .filter(|argument| seen.insert(argument.split(':').next().unwrap_or("").trim()))
        .collect();
    if kept.len() == arguments.split(',').count() {
        return None;
    }
    Some(format!(
        "directive @{}({}{}",
        &rest[..open],
        kept.join(", "),
        &rest[close..]
    ))
}

/// Adds `@join__type(graph: G)` to each root operation type that has none, for every
/// graph `G` that resolves one of its fields: the planner only enters subgraphs listed
/// there. Needed for `graphql-composition` output and for Federation 1 supergraphs; a
/// supergraph whose root types already carry `@join__type` is returned unchanged.
///
/// The directives are inserted as text when the root type is laid out as
/// `graphql-composition` prints it (keeping the committed supergraph readable), otherwise
/// the document is re-printed.
pub fn add_root_join_types(supergraph: &str) -> Result<String, String> {
    use graphql_tools::static_graphql::schema::{Definition, Directive, TypeDefinition, Value};
    let mut document = safe_parse_schema(supergraph).map_err(|err| err.to_string())?;
    let mut roots: Vec<String> = vec!["Query".into(), "Mutation".into(), "Subscription".into()];
    for definition in &document.definitions {
        if let Definition::SchemaDefinition(schema) = definition {
            roots = [&schema.query, &schema.mutation, &schema.subscription]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
        }
    }
    let mut missing: Vec<(String, BTreeSet<String>)> = Vec::new();
    for definition in &mut document.definitions {
        let Definition::TypeDefinition(TypeDefinition::Object(object)) = definition else {
            continue;
        };
        if !roots.contains(&object.name) || object.directives.iter().any(|d| d.name == "join__type")
        {
            continue;
        }
        let graphs: BTreeSet<String> = object
            .fields
            .iter()
            .flat_map(|field| &field.directives)
            .filter(|directive| directive.name == "join__field")
            .flat_map(|directive| &directive.arguments)
            .filter(|(name, _)| name == "graph")
            .filter_map(|(_, value)| match value {
                Value::Enum(graph) => Some(graph.clone()),
                _ => None,
            })
            .collect();
        for graph in &graphs {
            object.directives.push(Directive {
                position: object.position,
                name: "join__type".into(),
                arguments: vec![("graph".into(), Value::Enum(graph.clone()))],
            });
        }
        if !graphs.is_empty() {
            missing.push((object.name.clone(), graphs));
        }
    }
    if missing.is_empty() {
        return Ok(supergraph.to_owned());
    }
    Ok(insert_as_text(supergraph, &missing).unwrap_or_else(|| document.to_string()))
}

/// Inserts the directives after `type Root` lines followed by a `{` line, or `None` when
/// some root type is laid out differently.
fn insert_as_text(supergraph: &str, missing: &[(String, BTreeSet<String>)]) -> Option<String> {
    let lines: Vec<&str> = supergraph.lines().collect();
    let mut out = String::with_capacity(supergraph.len() + 64 * missing.len());
    let mut inserted = 0;
    for (i, line) in lines.iter().enumerate() {
        out.push_str(line);
        out.push('\n');
        let next_opens = lines.get(i + 1).is_some_and(|next| next.trim() == "{");
        let root = missing
            .iter()
            .find(|(name, _)| next_opens && line.trim_end() == format!("type {name}"));
        if let Some((_, graphs)) = root {
            for graph in graphs {
                out.push_str(&format!("  @join__type(graph: {graph})\n"));
            }
            inserted += 1;
        }
    }
    (inserted == missing.len()).then_some(out)
}

/// Builds the planner for a parsed supergraph. The planner panics on some malformed
/// supergraphs instead of returning an error: that becomes an error here.
pub fn load_planner(
    document: &graphql_tools::static_graphql::schema::Document,
) -> Result<Planner, String> {
    std::panic::catch_unwind(|| {
        Planner::new_from_supergraph(document, QueryPlannerOptions::default())
    })
    .map_err(|_| "the planner panicked loading the supergraph".to_owned())?
    .map_err(|err| err.to_string())
}

/// Loads `supergraph` into the planner and plans every root field with everything below
/// it (to `PROBE_DEPTH` levels), failing on the first field that cannot be planned.
pub fn probe(supergraph: &str) -> Result<(), ComposeError> {
    let document =
        safe_parse_schema(supergraph).map_err(|err| ComposeError::Planner(err.to_string()))?;
    let planner = load_planner(&document).map_err(ComposeError::Planner)?;
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
            let token = CancellationToken::with_timeout(crate::plan::PLANNING_TIMEOUT);
            // In the planner's default override context (percentage labels above 0
            // active, custom labels inactive); other variants are planned, and any
            // failure reported, as requests meet them.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_types_without_join_type_get_one_per_graph_of_their_fields() {
        let sdl = "schema { query: Query }\ntype Query { a: Int @join__field(graph: A) b: Int @join__field(graph: B) }\nenum join__Graph { A @join__graph(name: \"a\", url: \"\") B @join__graph(name: \"b\", url: \"\") }\n";
        let normalized = add_root_join_types(sdl).unwrap_or_default();
        let reparsed = safe_parse_schema(&normalized)
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(reparsed.contains("@join__type(graph: A)"), "{reparsed}");
        assert!(reparsed.contains("@join__type(graph: B)"), "{reparsed}");
        // Already normalized supergraphs are left alone.
        assert_eq!(
            add_root_join_types(&normalized).ok(),
            Some(normalized.clone())
        );
    }

    #[test]
    fn a_directive_composed_from_two_subgraphs_is_defined_once() {
        let twice = "directive @events(subject: String!, types: [String!], subject: String!, types: [String!]) on FIELD_DEFINITION\ntype Query { a: Int }\n";
        assert_eq!(
            dedupe_directive_arguments(twice),
            "directive @events(subject: String!, types: [String!]) on FIELD_DEFINITION\ntype Query { a: Int }\n"
        );
        let once = "directive @key(fields: String!) on OBJECT\n";
        assert_eq!(dedupe_directive_arguments(once), once);
    }
}
