//! Progressive `@override` (Federation 2.7 `@override(from:, label:)`).
//!
//! A labelled override moves a field to its new subgraph only for some requests: a
//! `percent(p)` label for a random `p` % of them, any other label when the gateway is
//! configured to treat it as active (`gateway.override_labels`). The draw happens per
//! request; the plan depends only on which labels are active, so plans are cached per
//! [`Variant`] — the set of percentage labels the draw activated.
//!
//! Supergraphs as Apollo composition writes them carry the label on both sides of the
//! move; `graphql-composition` writes it only on the overriding field, and the planner then
//! finds no path whenever the override is active. [`mirror_labels`] puts it on the
//! overridden side too.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use graphql_tools::static_graphql::schema::{
    Definition, Directive, Document, EnumType, TypeDefinition, Value,
};
use hive_router_query_planner::graph::PlannerOverrideContext;

/// Percentages are kept as integers scaled by this (as the planner does).
const SCALE: u64 = 100_000_000;

/// Which percentage labels a request's draw activated: the number of distinct percentages
/// (in ascending order) the draw did *not* fall under. `0` for a supergraph without
/// percentage labels.
pub type Variant = usize;

/// The override labels of one supergraph.
#[derive(Clone, Debug, Default)]
pub struct OverrideLabels {
    /// Distinct `percent(p)` values, scaled, ascending.
    percentages: Vec<u64>,
}

impl OverrideLabels {
    /// The labels `document` (a supergraph) uses.
    pub fn of(document: &Document) -> Self {
        let mut percentages = BTreeSet::new();
        for field_directive in join_fields(document) {
            if let Some(label) = argument(field_directive, "overrideLabel")
                && let Some(percentage) = parse_percentage(label)
            {
                percentages.insert(percentage);
            }
        }
        Self {
            percentages: percentages.into_iter().collect(),
        }
    }

    /// Draws the variant for one request.
    pub fn draw(&self) -> Variant {
        if self.percentages.is_empty() {
            return 0;
        }
        let draw = rand::random_range(0..100 * SCALE);
        self.variant_of(draw)
    }

    /// The variant of a draw in `0..100 * SCALE`: a label `percent(p)` is active when the
    /// draw is below `p`.
    fn variant_of(&self, draw: u64) -> Variant {
        self.percentages.partition_point(|&p| p <= draw)
    }

    /// The planner context for `variant`, with the custom labels in `active`.
    pub fn context(&self, variant: Variant, active: &BTreeSet<String>) -> PlannerOverrideContext {
        // The smallest draw of the variant: every percentage at or below it is inactive,
        // every one above it active.
        let draw = match variant {
            0 => 0,
            v => self.percentages.get(v - 1).copied().unwrap_or(100 * SCALE),
        };
        PlannerOverrideContext::new(active.iter().cloned().collect::<HashSet<_>>(), draw)
    }
}

/// `percent(p)` as a scaled integer, `None` for any other label (or a malformed one).
fn parse_percentage(label: &str) -> Option<u64> {
    let value: f64 = label
        .strip_prefix("percent(")?
        .strip_suffix(')')?
        .trim()
        .parse()
        .ok()?;
    // Truncated, as the planner does, so both sides agree on the boundary.
    (0.0..=100.0)
        .contains(&value)
        .then_some((value * SCALE as f64) as u64)
}

fn join_fields(document: &Document) -> impl Iterator<Item = &Directive> {
    document
        .definitions
        .iter()
        .flat_map(|definition| match definition {
            Definition::TypeDefinition(TypeDefinition::Object(object)) => object.fields.iter(),
            Definition::TypeDefinition(TypeDefinition::Interface(interface)) => {
                interface.fields.iter()
            }
            _ => [].iter(),
        })
        .flat_map(|field| &field.directives)
        .filter(|directive| directive.name == "join__field")
}

/// The text of argument `name` of `directive` (a string or an enum value).
fn argument<'a>(directive: &'a Directive, name: &str) -> Option<&'a str> {
    directive
        .arguments
        .iter()
        .find(|(argument, _)| argument == name)
        .and_then(|(_, value)| match value {
            Value::String(s) | Value::Enum(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Subgraph name (as `@join__graph(name:)` gives it) → `join__Graph` value.
fn graph_values(document: &Document) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for definition in &document.definitions {
        if let Definition::TypeDefinition(TypeDefinition::Enum(EnumType {
            name, values: v, ..
        })) = definition
            && name == "join__Graph"
        {
            for value in v {
                let subgraph = value
                    .directives
                    .iter()
                    .find(|d| d.name == "join__graph")
                    .and_then(|d| argument(d, "name"))
                    .unwrap_or(&value.name);
                values.insert(subgraph.to_owned(), value.name.clone());
            }
        }
    }
    values
}

/// Adds `overrideLabel: L` to the overridden subgraph's `@join__field` of every field
/// whose overriding `@join__field` has `override: "…", overrideLabel: L` but whose
/// overridden one has no label. Returns whether anything changed.
pub fn mirror_labels(document: &mut Document) -> bool {
    let graphs = graph_values(document);
    let graph_of = |subgraph: &str| {
        graphs.get(subgraph).cloned().or_else(|| {
            graphs
                .iter()
                .find(|(name, value)| {
                    name.eq_ignore_ascii_case(subgraph) || value.eq_ignore_ascii_case(subgraph)
                })
                .map(|(_, value)| value.clone())
        })
    };
    let mut changed = false;
    for definition in &mut document.definitions {
        let fields = match definition {
            Definition::TypeDefinition(TypeDefinition::Object(object)) => &mut object.fields,
            Definition::TypeDefinition(TypeDefinition::Interface(interface)) => {
                &mut interface.fields
            }
            _ => continue,
        };
        for field in fields {
            let moves: Vec<(String, String)> = field
                .directives
                .iter()
                .filter(|d| d.name == "join__field")
                .filter_map(|d| {
                    let from = argument(d, "override")?;
                    let label = argument(d, "overrideLabel")?;
                    Some((graph_of(from)?, label.to_owned()))
                })
                .collect();
            for (from_graph, label) in moves {
                for directive in field.directives.iter_mut().filter(|d| {
                    d.name == "join__field"
                        && argument(d, "graph") == Some(from_graph.as_str())
                        && argument(d, "override").is_none()
                        && argument(d, "overrideLabel").is_none()
                }) {
                    directive
                        .arguments
                        .push(("overrideLabel".into(), Value::String(label.clone())));
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use hive_router_query_planner::utils::parsing::safe_parse_schema;

    const SUPERGRAPH: &str = r#"
type Product @join__type(graph: LEGACY, key: "id") @join__type(graph: PRICING, key: "id") {
  id: ID!
  price: Int! @join__field(graph: LEGACY) @join__field(graph: PRICING, override: "legacy", overrideLabel: "percent(25)")
  tax: Int! @join__field(graph: LEGACY) @join__field(graph: PRICING, override: "legacy", overrideLabel: "percent(75.5)")
  name: String! @join__field(graph: LEGACY) @join__field(graph: PRICING, override: "legacy", overrideLabel: "new-names")
}
enum join__Graph {
  LEGACY @join__graph(name: "legacy", url: "http://legacy")
  PRICING @join__graph(name: "pricing", url: "http://pricing")
}
"#;

    #[test]
    fn the_overridden_side_gets_the_label_too() {
        let mut document = safe_parse_schema(SUPERGRAPH).expect("parses");
        assert!(mirror_labels(&mut document));
        let printed = document.to_string();
        assert!(
            printed.contains(r#"@join__field(graph: LEGACY, overrideLabel: "percent(25)")"#),
            "{printed}"
        );
        assert!(
            printed.contains(r#"@join__field(graph: LEGACY, overrideLabel: "new-names")"#),
            "{printed}"
        );
        // Idempotent.
        assert!(!mirror_labels(&mut document));
    }

    #[test]
    fn a_draw_activates_the_labels_whose_percentage_it_falls_under() {
        let document = safe_parse_schema(SUPERGRAPH).expect("parses");
        let labels = OverrideLabels::of(&document);
        assert_eq!(labels.percentages, vec![25 * SCALE, 755 * SCALE / 10]);
        // Below 25 %: both active; 25–75.5 %: only the 75.5 % one; above: none.
        assert_eq!(labels.variant_of(0), 0);
        assert_eq!(labels.variant_of(25 * SCALE - 1), 0);
        assert_eq!(labels.variant_of(25 * SCALE), 1);
        assert_eq!(labels.variant_of(755 * SCALE / 10 - 1), 1);
        assert_eq!(labels.variant_of(755 * SCALE / 10), 2);
        assert_eq!(labels.variant_of(100 * SCALE - 1), 2);
        let mut seen = [0usize; 3];
        for _ in 0..4000 {
            seen[labels.draw()] += 1;
        }
        // Expected 1000 / 2020 / 980; far outside these bounds is a broken draw.
        assert!((800..1200).contains(&seen[0]), "{seen:?}");
        assert!((1800..2250).contains(&seen[1]), "{seen:?}");
        assert!((780..1180).contains(&seen[2]), "{seen:?}");
    }

    #[test]
    fn malformed_percentages_are_not_percentages() {
        assert_eq!(parse_percentage("percent(50)"), Some(50 * SCALE));
        assert_eq!(parse_percentage("percent(0.5)"), Some(SCALE / 2));
        assert_eq!(parse_percentage("percent(150)"), None);
        assert_eq!(parse_percentage("percent(-1)"), None);
        assert_eq!(parse_percentage("percent(x)"), None);
        assert_eq!(parse_percentage("new-names"), None);
    }
}
