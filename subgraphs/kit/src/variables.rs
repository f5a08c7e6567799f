//! Absent variables as the GraphQL specification means them.
//!
//! A nullable variable the request does not provide, and that has no default, has *no
//! value*: an argument or input-object field given only that variable is left out, so a
//! field's default applies and "not given" stays distinct from an explicit `null`
//! (CoerceArgumentValues and input-object coercion, §5.6 / §6.4.1 of the specification).
//! async-graphql instead reads such a variable as `null`, which would turn "leave the
//! quiet hours as they are" into "clear them". Every request a subgraph executes passes
//! through [`leave_out_absent`] first, which removes those arguments and fields from the
//! document (and the definitions of variables no longer used) before it is validated.

use std::collections::{HashMap, HashSet};

use async_graphql::Request;
use async_graphql::parser::types::{
    DocumentOperations, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};
use async_graphql_value::Value;

/// `request` with the arguments and input-object fields that name only an absent variable
/// left out. Requests whose variables are all given (the usual case) are returned as they
/// are, parsed; a document that does not parse is left for execution to report.
pub fn leave_out_absent(mut request: Request) -> Request {
    // Taken out while the parsed document is borrowed, put back before returning.
    let provided = std::mem::take(&mut request.variables);
    let operation_name = request.operation_name.take();
    let absent = |operation: &OperationDefinition| -> HashSet<Name> {
        operation
            .variable_definitions
            .iter()
            .filter(|definition| {
                let definition = &definition.node;
                definition.var_type.node.nullable
                    && definition.default_value.is_none()
                    && !provided.contains_key(definition.name.node.as_str())
            })
            .map(|definition| definition.node.name.node.clone())
            .collect()
    };
    let chosen = |name: &Name| operation_name.as_deref().is_none_or(|n| n == name.as_str());
    let rewritten = match request.parsed_query() {
        Ok(document) => {
            let needed = match &document.operations {
                DocumentOperations::Single(operation) => !absent(&operation.node).is_empty(),
                DocumentOperations::Multiple(operations) => operations
                    .iter()
                    .any(|(name, operation)| chosen(name) && !absent(&operation.node).is_empty()),
            };
            needed.then(|| document.clone())
        }
        // Left for execution to report.
        Err(_) => None,
    };
    let Some(mut document) = rewritten else {
        request.variables = provided;
        request.operation_name = operation_name;
        return request;
    };
    let mut fragments = std::mem::take(&mut document.fragments);
    let mut rewrite = |operation: &mut OperationDefinition| {
        let names = absent(operation);
        if names.is_empty() {
            return;
        }
        let mut remaining = HashMap::new();
        let mut visited = HashSet::new();
        prune_selection_set(
            &mut operation.selection_set.node,
            &names,
            (&mut fragments, &mut visited),
            &mut remaining,
        );
        for directive in &mut operation.directives {
            prune_arguments(&mut directive.node.arguments, &names, &mut remaining);
        }
        operation.variable_definitions.retain(|definition| {
            let name = &definition.node.name.node;
            !names.contains(name) || remaining.get(name).is_some_and(|n| *n > 0)
        });
    };
    match &mut document.operations {
        DocumentOperations::Single(operation) => rewrite(&mut operation.node),
        DocumentOperations::Multiple(operations) => {
            for (name, operation) in operations.iter_mut() {
                if chosen(name) {
                    rewrite(&mut operation.node);
                }
            }
        }
    }
    document.fragments = fragments;
    request.set_parsed_query(document);
    request.variables = provided;
    request.operation_name = operation_name;
    request
}

type Fragments<'a> = (
    &'a mut HashMap<Name, Positioned<async_graphql::parser::types::FragmentDefinition>>,
    &'a mut HashSet<Name>,
);

fn prune_selection_set(
    set: &mut SelectionSet,
    absent: &HashSet<Name>,
    (fragments, visited): Fragments<'_>,
    remaining: &mut HashMap<Name, usize>,
) {
    for item in &mut set.items {
        match &mut item.node {
            Selection::Field(field) => {
                let field = &mut field.node;
                prune_arguments(&mut field.arguments, absent, remaining);
                for directive in &mut field.directives {
                    prune_arguments(&mut directive.node.arguments, absent, remaining);
                }
                prune_selection_set(
                    &mut field.selection_set.node,
                    absent,
                    (fragments, visited),
                    remaining,
                );
            }
            Selection::InlineFragment(fragment) => {
                let fragment = &mut fragment.node;
                for directive in &mut fragment.directives {
                    prune_arguments(&mut directive.node.arguments, absent, remaining);
                }
                prune_selection_set(
                    &mut fragment.selection_set.node,
                    absent,
                    (fragments, visited),
                    remaining,
                );
            }
            Selection::FragmentSpread(spread) => {
                let spread = &mut spread.node;
                for directive in &mut spread.directives {
                    prune_arguments(&mut directive.node.arguments, absent, remaining);
                }
                let name = spread.fragment_name.node.clone();
                // Each fragment once (a fragment spread twice is rewritten alike).
                if !visited.insert(name.clone()) {
                    continue;
                }
                if let Some(mut definition) = fragments.remove(&name) {
                    for directive in &mut definition.node.directives {
                        prune_arguments(&mut directive.node.arguments, absent, remaining);
                    }
                    prune_selection_set(
                        &mut definition.node.selection_set.node,
                        absent,
                        (fragments, visited),
                        remaining,
                    );
                    fragments.insert(name, definition);
                }
            }
        }
    }
}

fn prune_arguments(
    arguments: &mut Vec<(Positioned<Name>, Positioned<Value>)>,
    absent: &HashSet<Name>,
    remaining: &mut HashMap<Name, usize>,
) {
    arguments.retain_mut(|(_, value)| prune_value(&mut value.node, absent, remaining));
}

/// Whether `value` stays (it is not only an absent variable); prunes inside objects and
/// counts the absent variables still referenced (as list items, which become `null`).
fn prune_value(
    value: &mut Value,
    absent: &HashSet<Name>,
    remaining: &mut HashMap<Name, usize>,
) -> bool {
    match value {
        Value::Variable(name) => !absent.contains(name),
        Value::Object(fields) => {
            fields.retain(|_, field| prune_value(field, absent, remaining));
            true
        }
        Value::List(items) => {
            for item in items.iter_mut() {
                if let Value::Variable(name) = item
                    && absent.contains(name)
                {
                    *remaining.entry(name.clone()).or_default() += 1;
                    continue;
                }
                prune_value(item, absent, remaining);
            }
            true
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptySubscription, InputObject, MaybeUndefined, Object, Schema};

    #[derive(InputObject)]
    struct Change {
        note: MaybeUndefined<String>,
        tags: Option<Vec<Option<String>>>,
    }

    struct Query;

    #[Object]
    impl Query {
        /// What the input held: `undefined`, `null` or the value, per field.
        async fn seen(&self, change: Change, limit: MaybeUndefined<i32>) -> String {
            let note = match change.note {
                MaybeUndefined::Undefined => "undefined".to_owned(),
                MaybeUndefined::Null => "null".to_owned(),
                MaybeUndefined::Value(v) => v,
            };
            let limit = match limit {
                MaybeUndefined::Undefined => "undefined".to_owned(),
                MaybeUndefined::Null => "null".to_owned(),
                MaybeUndefined::Value(v) => v.to_string(),
            };
            format!("{note} {limit} {:?}", change.tags)
        }
    }

    async fn run(query: &str, variables: serde_json::Value) -> serde_json::Value {
        let schema = Schema::new(Query, async_graphql::EmptyMutation, EmptySubscription);
        let request = Request::new(query).variables(async_graphql::Variables::from_json(variables));
        let response = schema.execute(leave_out_absent(request)).await;
        serde_json::to_value(&response).expect("a response serializes")
    }

    #[tokio::test]
    async fn an_absent_variable_leaves_its_field_out_and_null_stays_null() {
        let query = "query($n: String, $l: Int) { seen(change: { note: $n }, limit: $l) }";
        let absent = run(query, serde_json::json!({})).await;
        assert_eq!(
            absent["data"]["seen"], "undefined undefined None",
            "{absent}"
        );
        let null = run(query, serde_json::json!({ "n": null, "l": null })).await;
        assert_eq!(null["data"]["seen"], "null null None", "{null}");
        let given = run(query, serde_json::json!({ "n": "hi", "l": 3 })).await;
        assert_eq!(given["data"]["seen"], "hi 3 None", "{given}");
    }

    #[tokio::test]
    async fn in_fragments_lists_and_defaults() {
        // In a list an absent variable is null; a default applies; fragments are pruned.
        let query = "query($n: String, $t: String, $d: String = \"dflt\") { ...F } fragment F on Query { seen(change: { note: $n, tags: [$t, $d] }) }";
        let response = run(query, serde_json::json!({})).await;
        assert_eq!(
            response["data"]["seen"], "undefined undefined Some([None, Some(\"dflt\")])",
            "{response}"
        );
    }
}
