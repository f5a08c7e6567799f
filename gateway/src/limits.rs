//! Operation limits, checked after parsing and before validation, so an expensive or
//! abusive document is refused before any work depends on its size: nesting depth, number
//! of aliases, number of root fields (tokens are limited by the parser itself).

use std::collections::HashMap;

use graphql_tools::static_graphql::query::{FragmentDefinition, Selection, SelectionSet};

use crate::response::GraphQLError;

/// Limits applied to every request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most tokens a document may have.
    pub max_tokens: usize,
    /// Deepest field nesting (a root field is depth 1).
    pub max_depth: usize,
    /// Most aliased fields in the operation (fragments counted where spread).
    pub max_aliases: usize,
    /// Most fields at the root of the operation.
    pub max_root_fields: usize,
    /// Most plans kept in the plan cache.
    pub plan_cache_size: usize,
    /// Most operations executing at once; further requests wait their turn (first come,
    /// first served). Bounds memory under load spikes without refusing anyone.
    pub max_concurrent_operations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tokens: 15_000,
            max_depth: 15,
            max_aliases: 30,
            max_root_fields: 20,
            plan_cache_size: 1_000,
            max_concurrent_operations: 256,
        }
    }
}

#[derive(Default)]
struct Measure {
    depth: usize,
    aliases: usize,
}

/// Checks `selection_set` (the selected operation's) against `limits`.
pub fn check(
    limits: &Limits,
    selection_set: &SelectionSet,
    fragments: &HashMap<&str, &FragmentDefinition>,
) -> Result<(), GraphQLError> {
    let root_fields = count_root_fields(selection_set, fragments, &mut Vec::new());
    if root_fields > limits.max_root_fields {
        return Err(GraphQLError::new(
            format!(
                "the operation selects {root_fields} root fields; at most {} are allowed",
                limits.max_root_fields
            ),
            "MAX_ROOT_FIELDS_EXCEEDED",
        ));
    }
    let mut measure = Measure::default();
    walk(
        selection_set,
        fragments,
        1,
        &mut Vec::new(),
        &mut measure,
        limits,
    )?;
    if measure.aliases > limits.max_aliases {
        return Err(GraphQLError::new(
            format!(
                "the operation uses more than {} aliases",
                limits.max_aliases
            ),
            "MAX_ALIASES_EXCEEDED",
        ));
    }
    Ok(())
}

fn count_root_fields<'a>(
    selection_set: &'a SelectionSet,
    fragments: &HashMap<&str, &'a FragmentDefinition>,
    visiting: &mut Vec<&'a str>,
) -> usize {
    selection_set
        .items
        .iter()
        .map(|selection| match selection {
            Selection::Field(_) => 1,
            Selection::InlineFragment(inline) => {
                count_root_fields(&inline.selection_set, fragments, visiting)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.fragment_name.as_str();
                match fragments.get(name) {
                    Some(fragment) if !visiting.contains(&name) => {
                        visiting.push(name);
                        let count = count_root_fields(&fragment.selection_set, fragments, visiting);
                        visiting.pop();
                        count
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}

fn walk<'a>(
    selection_set: &'a SelectionSet,
    fragments: &HashMap<&str, &'a FragmentDefinition>,
    depth: usize,
    visiting: &mut Vec<&'a str>,
    measure: &mut Measure,
    limits: &Limits,
) -> Result<(), GraphQLError> {
    for selection in &selection_set.items {
        match selection {
            Selection::Field(field) => {
                if field.alias.is_some() {
                    measure.aliases += 1;
                    if measure.aliases > limits.max_aliases {
                        return Ok(());
                    }
                }
                if !field.selection_set.items.is_empty() {
                    if depth + 1 > limits.max_depth {
                        return Err(GraphQLError::new(
                            format!(
                                "the operation nests deeper than {} levels",
                                limits.max_depth
                            ),
                            "MAX_DEPTH_EXCEEDED",
                        ));
                    }
                    measure.depth = measure.depth.max(depth + 1);
                    walk(
                        &field.selection_set,
                        fragments,
                        depth + 1,
                        visiting,
                        measure,
                        limits,
                    )?;
                }
            }
            Selection::InlineFragment(inline) => {
                walk(
                    &inline.selection_set,
                    fragments,
                    depth,
                    visiting,
                    measure,
                    limits,
                )?;
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.fragment_name.as_str();
                // A cycle is reported by validation; here it just stops the walk.
                if let Some(fragment) = fragments.get(name)
                    && !visiting.contains(&name)
                {
                    visiting.push(name);
                    walk(
                        &fragment.selection_set,
                        fragments,
                        depth,
                        visiting,
                        measure,
                        limits,
                    )?;
                    visiting.pop();
                }
            }
        }
    }
    Ok(())
}
