//! Parse and validate: a client document becomes a checked [`PreparedOperation`] or a
//! request error with a stable code (`GRAPHQL_PARSE_FAILED`, `MAX_TOKENS_EXCEEDED`, the
//! other limit codes, `GRAPHQL_VALIDATION_FAILED`, `OPERATION_RESOLUTION_FAILURE`); per
//! request, its variables are coerced (`BAD_USER_INPUT`).

use std::collections::HashMap;

use graphql_tools::static_graphql::query::{
    Definition, Document, FragmentDefinition, OperationDefinition, SelectionSet, Value as Gql,
    VariableDefinition,
};
use graphql_tools::static_graphql::schema::Document as SchemaDocument;
use graphql_tools::validation::rules::default_rules_validation_plan;
use graphql_tools::validation::validate::validate;
use serde_json::{Map, Number, Value};

use crate::limits::{self, Limits};
use crate::response::{GraphQLError, Location};
use crate::schema::{OperationKind, SchemaIndex};

/// A parsed, validated document with its operation selected. Depends only on the
/// document and the schema, so it is cached and shared by every request sending the same
/// document; variables are per request ([`PreparedOperation::variables`]).
pub struct PreparedOperation {
    /// The whole document (the planner needs it, with fragments).
    pub document: Document,
    /// Index of the selected operation among the document's definitions.
    operation_index: usize,
    /// Kind of the selected operation.
    pub kind: OperationKind,
    /// Name of the selected operation.
    pub name: Option<String>,
}

impl PreparedOperation {
    /// The selected operation's selection set.
    pub fn selection_set(&self) -> &SelectionSet {
        match &self.document.definitions[self.operation_index] {
            Definition::Operation(op) => selection_set(op),
            Definition::Fragment(fragment) => &fragment.selection_set,
        }
    }

    /// The document's fragments by name.
    pub fn fragments(&self) -> HashMap<&str, &FragmentDefinition> {
        fragments_of(&self.document)
    }

    /// The request's variables coerced to their declared types and completed by the
    /// operation's defaults, or `BAD_USER_INPUT`.
    pub fn variables(
        &self,
        index: &SchemaIndex,
        provided: Option<Map<String, Value>>,
    ) -> Result<Map<String, Value>, GraphQLError> {
        let definitions = match &self.document.definitions[self.operation_index] {
            Definition::Operation(op) => variable_definitions(op),
            Definition::Fragment(_) => &[],
        };
        crate::variables::coerce(index, definitions, provided.unwrap_or_default())
    }
}

/// Parses `query` (refusing documents of more than `max_tokens` tokens).
pub fn parse(query: &str, max_tokens: usize) -> Result<Document, GraphQLError> {
    hive_router_query_planner::utils::parsing::safe_parse_operation_with_token_limit(
        query, max_tokens,
    )
    .map_err(|err| {
        let message = err.to_string();
        if message.contains("Token limit exceeded") {
            GraphQLError::new(
                format!("the document has more than {max_tokens} tokens"),
                "MAX_TOKENS_EXCEEDED",
            )
        } else if message.contains("Recursion limit exceeded") {
            GraphQLError::new("the document nests too deeply", "MAX_DEPTH_EXCEEDED")
        } else {
            GraphQLError::new(format!("syntax error: {message}"), "GRAPHQL_PARSE_FAILED")
        }
    })
}

/// Checks `document` against the limits, validates it against the API schema and selects
/// the operation.
pub fn prepare(
    schema: &SchemaDocument,
    document: Document,
    operation_name: Option<&str>,
    limits: &Limits,
) -> Result<PreparedOperation, Vec<GraphQLError>> {
    limits::check_directives(limits, &document).map_err(|e| vec![e])?;
    {
        let fragments = fragments_of(&document);
        for definition in &document.definitions {
            if let Definition::Operation(op) = definition
                && (operation_name.is_none() || operation_name_of(op) == operation_name)
            {
                limits::check(limits, selection_set(op), &fragments).map_err(|e| vec![e])?;
            }
        }
    }
    let plan = default_rules_validation_plan();
    let mut errors = validate(schema, &document, &plan);
    // The validator lets any `__`-prefixed field through as a meta field; only three exist.
    errors.extend(unknown_meta_fields(&document, query_root(schema)));
    if !errors.is_empty() {
        let total = errors.len();
        let mut reported: Vec<GraphQLError> = errors
            .into_iter()
            .take(limits.max_validation_errors)
            .map(|err| {
                let mut error = GraphQLError::new(err.message, "GRAPHQL_VALIDATION_FAILED");
                error.locations = err
                    .locations
                    .iter()
                    .map(|pos| Location {
                        line: pos.line,
                        column: pos.column,
                    })
                    .collect();
                error
            })
            .collect();
        if total > reported.len() {
            reported.push(GraphQLError::new(
                format!(
                    "too many validation errors: {} more not reported",
                    total - reported.len()
                ),
                "GRAPHQL_VALIDATION_FAILED",
            ));
        }
        return Err(reported);
    }
    let operations: Vec<(usize, &OperationDefinition)> = document
        .definitions
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Definition::Operation(op) => Some((i, op)),
            Definition::Fragment(_) => None,
        })
        .collect();
    let selected = match operation_name {
        Some(name) => operations
            .iter()
            .find(|(_, op)| operation_name_of(op) == Some(name))
            .ok_or_else(|| {
                vec![GraphQLError::new(
                    format!("unknown operation named `{name}`"),
                    "OPERATION_RESOLUTION_FAILURE",
                )]
            })?,
        None if operations.len() == 1 => &operations[0],
        None => {
            return Err(vec![GraphQLError::new(
                "the document has several operations: set `operationName`",
                "OPERATION_RESOLUTION_FAILURE",
            )]);
        }
    };
    let (operation_index, operation) = *selected;
    let kind = match operation {
        OperationDefinition::SelectionSet(_) | OperationDefinition::Query(_) => {
            OperationKind::Query
        }
        OperationDefinition::Mutation(_) => OperationKind::Mutation,
        OperationDefinition::Subscription(_) => OperationKind::Subscription,
    };
    let name = operation_name_of(operation).map(str::to_owned);
    Ok(PreparedOperation {
        document,
        operation_index,
        kind,
        name,
    })
}

/// Fields named like meta fields that GraphQL does not have (`__typenam`, `__foo`), which
/// the validation rules let through; reported like any unknown field.
fn unknown_meta_fields(
    document: &Document,
    query_root: &str,
) -> Vec<graphql_tools::validation::utils::ValidationError> {
    fn walk(
        selection_set: &SelectionSet,
        at_root: bool,
        out: &mut Vec<graphql_tools::validation::utils::ValidationError>,
    ) {
        use graphql_tools::static_graphql::query::Selection;
        for selection in &selection_set.items {
            match selection {
                Selection::Field(field) => {
                    // `__schema` and `__type` exist on the query root only.
                    let known = field.name == "__typename"
                        || (at_root && matches!(field.name.as_str(), "__schema" | "__type"));
                    if field.name.starts_with("__") && !known {
                        out.push(graphql_tools::validation::utils::ValidationError {
                            locations: vec![field.position],
                            message: format!("Cannot query field \"{}\".", field.name),
                            error_code: "FieldsOnCorrectType",
                        });
                    }
                    walk(&field.selection_set, false, out);
                }
                Selection::InlineFragment(inline) => walk(&inline.selection_set, at_root, out),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    for definition in &document.definitions {
        match definition {
            Definition::Operation(op) => {
                let is_query = matches!(
                    op,
                    OperationDefinition::SelectionSet(_) | OperationDefinition::Query(_)
                );
                walk(selection_set(op), is_query, &mut out);
            }
            Definition::Fragment(fragment) => {
                let graphql_tools::static_graphql::query::TypeCondition::On(on) =
                    &fragment.type_condition;
                walk(&fragment.selection_set, on == query_root, &mut out);
            }
        }
    }
    out
}

/// The name of the schema's query root type.
fn query_root(schema: &SchemaDocument) -> &str {
    use graphql_tools::static_graphql::schema::Definition as SchemaDefinitionKind;
    schema
        .definitions
        .iter()
        .find_map(|d| match d {
            SchemaDefinitionKind::SchemaDefinition(s) => s.query.as_deref(),
            _ => None,
        })
        .unwrap_or("Query")
}

fn fragments_of(document: &Document) -> HashMap<&str, &FragmentDefinition> {
    document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.as_str(), f)),
            Definition::Operation(_) => None,
        })
        .collect()
}

fn operation_name_of(op: &OperationDefinition) -> Option<&str> {
    match op {
        OperationDefinition::SelectionSet(_) => None,
        OperationDefinition::Query(q) => q.name.as_deref(),
        OperationDefinition::Mutation(m) => m.name.as_deref(),
        OperationDefinition::Subscription(s) => s.name.as_deref(),
    }
}

fn selection_set(op: &OperationDefinition) -> &SelectionSet {
    match op {
        OperationDefinition::SelectionSet(s) => s,
        OperationDefinition::Query(q) => &q.selection_set,
        OperationDefinition::Mutation(m) => &m.selection_set,
        OperationDefinition::Subscription(s) => &s.selection_set,
    }
}

fn variable_definitions(op: &OperationDefinition) -> &[VariableDefinition] {
    match op {
        OperationDefinition::SelectionSet(_) => &[],
        OperationDefinition::Query(q) => &q.variable_definitions,
        OperationDefinition::Mutation(m) => &m.variable_definitions,
        OperationDefinition::Subscription(s) => &s.variable_definitions,
    }
}

/// A GraphQL literal as JSON, with variables substituted (an absent variable is `null` as
/// a value or list item, and leaves its field out of an object).
pub fn literal_to_json(value: &Gql, variables: &Map<String, Value>) -> Value {
    match value {
        Gql::Variable(name) => variables.get(name).cloned().unwrap_or(Value::Null),
        Gql::Int(n) => n.as_i64().map(Value::from).unwrap_or(Value::Null),
        Gql::Float(f) => Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Gql::String(s) => Value::String(s.clone()),
        Gql::Boolean(b) => Value::Bool(*b),
        Gql::Null => Value::Null,
        Gql::Enum(e) => Value::String(e.clone()),
        Gql::List(items) => Value::Array(
            items
                .iter()
                .map(|v| literal_to_json(v, variables))
                .collect(),
        ),
        // A field given only a variable that has no value is left out, not null.
        Gql::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, v)| !matches!(v, Gql::Variable(name) if !variables.contains_key(name)))
                .map(|(k, v)| (k.clone(), literal_to_json(v, variables)))
                .collect(),
        ),
    }
}
