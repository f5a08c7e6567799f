//! Projection: shapes the merged subgraph data into exactly what the client asked for.
//!
//! Walks the client's own operation (not the planner's normalized copy), so response keys
//! come in selection order with the client's aliases, fragments apply by type, skipped
//! fields are absent, `__typename` is answered, internal fields the planner added are
//! dropped, and a null in a non-null position propagates to the nearest nullable parent
//! with an error at its path.

use std::collections::HashMap;

use graphql_tools::static_graphql::query::{
    Directive, Field, FragmentDefinition, Selection, SelectionSet, TypeCondition,
};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::authz::Decisions;
use crate::request::literal_to_json;
use crate::response::{GraphQLError, PathSegment};
use crate::schema::{SchemaIndex, TypeRef};

/// Resolves fields the gateway answers itself (introspection) instead of the subgraphs.
pub trait LocalFields {
    /// The value of root field `field` if the gateway answers it, else `None`. Borrowed:
    /// projection copies only what the client selected.
    fn resolve_root(&self, field: &Field, variables: &Map<String, Value>) -> Option<&Value>;

    /// The full `__Type` value of the named type `name` (type references inside
    /// introspection data only carry `kind`, `name` and `ofType`).
    fn named_type(&self, name: &str) -> Option<&Value>;
}

/// One projection run.
pub struct Projection<'a> {
    index: &'a SchemaIndex,
    fragments: HashMap<&'a str, &'a FragmentDefinition>,
    variables: &'a Map<String, Value>,
    errors: &'a mut Vec<GraphQLError>,
    local: Option<&'a dyn LocalFields>,
    denied: Option<&'a Decisions>,
    /// Type of the innermost object being projected whose entity its owning subgraph
    /// could not resolve (see [`crate::execute::ABSENT_ENTITY`]).
    absent: Option<String>,
}

/// Marker: a null reached a non-null position and must propagate upwards.
struct NullPropagation;

impl<'a> Projection<'a> {
    /// A projection over `index` for an operation with `fragments` and `variables`;
    /// errors found while projecting are appended to `errors`.
    pub fn new(
        index: &'a SchemaIndex,
        fragments: HashMap<&'a str, &'a FragmentDefinition>,
        variables: &'a Map<String, Value>,
        errors: &'a mut Vec<GraphQLError>,
        local: Option<&'a dyn LocalFields>,
    ) -> Self {
        Self {
            index,
            fragments,
            variables,
            errors,
            local,
            denied: None,
            absent: None,
        }
    }

    /// Answers fields `decisions` deny with `null` and a `FORBIDDEN` error at their path
    /// (propagating to the nearest nullable parent for non-null fields).
    pub fn with_denied(mut self, decisions: Option<&'a Decisions>) -> Self {
        self.denied = decisions;
        self
    }

    /// Projects `data` (the merged root object) through the root `selection_set` of
    /// `root_type`. Returns `Value::Null` when a null propagated to the root.
    pub fn root(
        &mut self,
        root_type: &str,
        selection_set: &'a SelectionSet,
        data: &Value,
    ) -> Value {
        let empty = Map::new();
        let object = data.as_object().unwrap_or(&empty);
        let mut path = Vec::new();
        match self.object(root_type, &[selection_set], object, &mut path, true) {
            Ok(value) => value,
            Err(NullPropagation) => Value::Null,
        }
    }

    fn object(
        &mut self,
        type_name: &str,
        selection_sets: &[&'a SelectionSet],
        data: &Map<String, Value>,
        path: &mut Vec<PathSegment>,
        is_root: bool,
    ) -> Result<Value, NullPropagation> {
        let absent = data
            .contains_key(crate::execute::ABSENT_ENTITY)
            .then(|| type_name.to_owned());
        let outer = std::mem::replace(&mut self.absent, absent);
        let projected = self.object_fields(type_name, selection_sets, data, path, is_root);
        self.absent = outer;
        projected
    }

    fn object_fields(
        &mut self,
        type_name: &str,
        selection_sets: &[&'a SelectionSet],
        data: &Map<String, Value>,
        path: &mut Vec<PathSegment>,
        is_root: bool,
    ) -> Result<Value, NullPropagation> {
        let mut grouped: IndexMap<&'a str, Vec<&'a Field>> = IndexMap::new();
        for selection_set in selection_sets {
            self.collect_fields(type_name, selection_set, &mut grouped);
        }
        // A reference to a named type inside introspection data stands for the whole type.
        let full_type = match (type_name, self.local) {
            ("__Type", Some(local)) if !data.contains_key("fields") => data
                .get("name")
                .and_then(Value::as_str)
                .and_then(|name| local.named_type(name))
                .and_then(Value::as_object),
            _ => None,
        };
        let data = full_type.unwrap_or(data);
        let mut out = Map::with_capacity(grouped.len());
        for (response_key, fields) in grouped {
            let field = fields[0];
            path.push(PathSegment::Key(response_key.to_owned()));
            let value = if field.name == "__typename" {
                Ok(Value::String(type_name.to_owned()))
            } else if self
                .denied
                .is_some_and(|d| d.denies(type_name, &field.name))
            {
                let coordinate = format!("{type_name}.{}", field.name);
                self.errors.push(
                    GraphQLError::new(format!("not allowed to read `{coordinate}`"), "FORBIDDEN")
                        .at(path.clone())
                        .with_extension("coordinate", Value::String(coordinate)),
                );
                match self.index.field(type_name, &field.name) {
                    Some(def) if matches!(def.ty, TypeRef::NonNull(_)) => Err(NullPropagation),
                    _ => Ok(Value::Null),
                }
            } else if let Some(local) = self
                .local
                .filter(|_| is_root && field.name.starts_with("__"))
            {
                let raw = local
                    .resolve_root(field, self.variables)
                    .unwrap_or(&Value::Null);
                match self.index.field(type_name, &field.name) {
                    Some(def) => {
                        let ty = def.ty.clone();
                        let sub: Vec<&'a SelectionSet> =
                            fields.iter().map(|f| &f.selection_set).collect();
                        self.complete(&ty, &sub, raw, path)
                    }
                    None => Ok(raw.clone()),
                }
            } else {
                match self.index.field(type_name, &field.name) {
                    Some(def) => {
                        let ty = def.ty.clone();
                        // Subgraph data is keyed by response key; the gateway's own
                        // introspection data by field name.
                        let key = if type_name.starts_with("__") {
                            field.name.as_str()
                        } else {
                            response_key
                        };
                        let raw = data.get(key).unwrap_or(&Value::Null);
                        let sub: Vec<&'a SelectionSet> =
                            fields.iter().map(|f| &f.selection_set).collect();
                        match self.without_deprecated(type_name, field, raw) {
                            Some(filtered) => self.complete(&ty, &sub, &filtered, path),
                            None => self.complete(&ty, &sub, raw, path),
                        }
                    }
                    None => Ok(Value::Null),
                }
            };
            path.pop();
            out.insert(response_key.to_owned(), value?);
        }
        Ok(Value::Object(out))
    }

    fn complete(
        &mut self,
        ty: &TypeRef,
        selection_sets: &[&'a SelectionSet],
        value: &Value,
        path: &mut Vec<PathSegment>,
    ) -> Result<Value, NullPropagation> {
        match ty {
            TypeRef::NonNull(inner) => {
                let completed = self.complete(inner, selection_sets, value, path)?;
                if completed.is_null() {
                    self.null_error(path);
                    return Err(NullPropagation);
                }
                Ok(completed)
            }
            _ if value.is_null() => Ok(Value::Null),
            TypeRef::List(inner) => {
                let Value::Array(items) = value else {
                    return Ok(Value::Null);
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSegment::Index(i));
                    let completed = self.complete(inner, selection_sets, item, path);
                    path.pop();
                    match completed {
                        Ok(v) => out.push(v),
                        Err(NullPropagation) => return Ok(Value::Null),
                    }
                }
                Ok(Value::Array(out))
            }
            TypeRef::Named(name) => {
                if !self.index.is_composite(name) {
                    if !self.index.is_output_value(name, value) {
                        // An enum value the API schema does not have (`@inaccessible`, or
                        // unknown to the supergraph): never shown, not even in the error.
                        self.errors.push(
                            GraphQLError::new(
                                format!("the subgraph returned a value `{name}` does not have"),
                                "SUBGRAPH_INVALID_RESPONSE",
                            )
                            .at(path.clone()),
                        );
                        return Ok(Value::Null);
                    }
                    return Ok(value.clone());
                }
                let Value::Object(object) = value else {
                    return Ok(Value::Null);
                };
                let typename = object.get("__typename").and_then(Value::as_str);
                let concrete = match typename {
                    _ if !self.index.is_abstract(name) => name.clone(),
                    // A concrete type the field's type includes.
                    Some(t)
                        if t != name
                            && !self.index.is_abstract(t)
                            && self.index.type_condition_applies(name, t) =>
                    {
                        t.to_owned()
                    }
                    // No concrete type (absent, or the interface's own name, as an
                    // `@interfaceObject` subgraph reports it): enough for a selection that
                    // needs none — the interface's fields, fragments on the interface itself
                    // or on types including it.
                    t if t.is_none_or(|t| t == name) => {
                        match self.unknown_concrete_type(name, selection_sets, path) {
                            Some(t) => t,
                            None => return Ok(Value::Null),
                        }
                    }
                    // A type the API schema does not offer here (`@inaccessible`, or not
                    // a member at all): never served.
                    _ => {
                        self.concrete_type_error(name, path);
                        return Ok(Value::Null);
                    }
                };
                match self.object(&concrete, selection_sets, object, path, false) {
                    Ok(v) => Ok(v),
                    Err(NullPropagation) => Ok(Value::Null),
                }
            }
        }
    }

    /// For the introspection list fields that take `includeDeprecated` (default false):
    /// the list without its deprecated entries, unless the client asked for them.
    fn without_deprecated(&self, type_name: &str, field: &Field, raw: &Value) -> Option<Value> {
        let filters = matches!(
            (type_name, field.name.as_str()),
            ("__Type", "fields" | "enumValues" | "inputFields")
                | ("__Field" | "__Directive", "args")
        );
        if !filters {
            return None;
        }
        let include = field
            .arguments
            .iter()
            .find(|(name, _)| name == "includeDeprecated")
            .and_then(|(_, value)| literal_to_json(value, self.variables).as_bool())
            .unwrap_or(false);
        let Value::Array(items) = raw else {
            return None;
        };
        if include {
            return None;
        }
        Some(Value::Array(
            items
                .iter()
                .filter(|item| item.get("isDeprecated") != Some(&Value::Bool(true)))
                .cloned()
                .collect(),
        ))
    }

    /// Adds "cannot return null" unless an error already explains this null.
    fn null_error(&mut self, path: &[PathSegment]) {
        // A failed subgraph call (no path: it stands for every field that call would have
        // filled) or an error at or below/above this path explains the null.
        let explained = self.errors.iter().any(|e| match e.path.as_deref() {
            Some(p) => p.starts_with(path) || path.starts_with(p),
            None => e.code().is_some_and(|code| code.starts_with("SUBGRAPH_")),
        });
        if explained {
            return;
        }
        let error = match &self.absent {
            // The subgraph owning this field could not resolve the entity it belongs to:
            // nothing failed, the object does not exist (or not for this caller).
            Some(type_name) => GraphQLError::new(
                format!("the referenced `{type_name}` does not exist or is not visible to you"),
                "NOT_FOUND",
            ),
            None => GraphQLError::new("cannot return null for a non-null field", "INTERNAL"),
        };
        self.errors.push(error.at(path.to_vec()));
    }

    /// CollectFields (GraphQL spec §6.3.2): the fields of `selection_set` that apply to
    /// `type_name`, grouped by response key in order, honouring @skip/@include.
    fn collect_fields(
        &self,
        type_name: &str,
        selection_set: &'a SelectionSet,
        grouped: &mut IndexMap<&'a str, Vec<&'a Field>>,
    ) {
        for selection in &selection_set.items {
            match selection {
                Selection::Field(field) => {
                    if self.included(&field.directives) {
                        let key = field.alias.as_deref().unwrap_or(&field.name);
                        grouped.entry(key).or_default().push(field);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    if !self.included(&fragment.directives) {
                        continue;
                    }
                    let applies = match &fragment.type_condition {
                        Some(TypeCondition::On(condition)) => {
                            self.index.condition_covers(condition, type_name)
                        }
                        None => true,
                    };
                    if applies {
                        self.collect_fields(type_name, &fragment.selection_set, grouped);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if !self.included(&spread.directives) {
                        continue;
                    }
                    let Some(fragment) = self.fragments.get(spread.fragment_name.as_str()) else {
                        continue;
                    };
                    let TypeCondition::On(condition) = &fragment.type_condition;
                    if self.index.condition_covers(condition, type_name) {
                        self.collect_fields(type_name, &fragment.selection_set, grouped);
                    }
                }
            }
        }
    }

    /// The type to project a value of the abstract type `name` with no concrete type as:
    /// `name` itself when the selection needs no more; otherwise an error (guessing would
    /// answer `__typename` with an abstract type and drop fragments that apply) and `None`:
    /// the value is `null`.
    fn unknown_concrete_type(
        &mut self,
        name: &str,
        selection_sets: &[&'a SelectionSet],
        path: &[PathSegment],
    ) -> Option<String> {
        if self.needs_concrete_type(name, selection_sets) {
            self.concrete_type_error(name, path);
            return None;
        }
        Some(name.to_owned())
    }

    fn concrete_type_error(&mut self, name: &str, path: &[PathSegment]) {
        self.errors.push(
            GraphQLError::new(
                format!("could not determine the concrete type of this `{name}`"),
                "INTERNAL",
            )
            .at(path.to_vec()),
        );
    }

    /// Whether projecting `selection_sets` onto a value of the abstract type `name` needs
    /// the value's concrete type: for `__typename`, or a fragment that may or may not apply.
    fn needs_concrete_type(&self, name: &str, selection_sets: &[&'a SelectionSet]) -> bool {
        selection_sets
            .iter()
            .any(|set| self.set_needs_concrete_type(name, set, 0))
    }

    fn set_needs_concrete_type(&self, name: &str, set: &'a SelectionSet, depth: usize) -> bool {
        // Fragment spreads nest at most MAX_FRAGMENT_NESTING deep (validated); be safe.
        if depth > crate::limits::MAX_FRAGMENT_NESTING {
            return true;
        }
        set.items.iter().any(|selection| match selection {
            Selection::Field(field) => {
                field.name == "__typename" && self.included(&field.directives)
            }
            Selection::InlineFragment(fragment) => {
                self.included(&fragment.directives)
                    && match &fragment.type_condition {
                        Some(TypeCondition::On(condition))
                            if !self.index.condition_covers(condition, name) =>
                        {
                            true
                        }
                        _ => self.set_needs_concrete_type(name, &fragment.selection_set, depth + 1),
                    }
            }
            Selection::FragmentSpread(spread) => {
                if !self.included(&spread.directives) {
                    return false;
                }
                let Some(fragment) = self.fragments.get(spread.fragment_name.as_str()) else {
                    return false;
                };
                let TypeCondition::On(condition) = &fragment.type_condition;
                !self.index.condition_covers(condition, name)
                    || self.set_needs_concrete_type(name, &fragment.selection_set, depth + 1)
            }
        })
    }

    fn included(&self, directives: &[Directive]) -> bool {
        for directive in directives {
            let condition = directive
                .arguments
                .iter()
                .find(|(name, _)| name == "if")
                .map(|(_, value)| literal_to_json(value, self.variables));
            let flag = condition.and_then(|v| v.as_bool());
            match (directive.name.as_str(), flag) {
                ("skip", Some(true)) | ("include", Some(false)) => return false,
                _ => {}
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphql_tools::static_graphql::query::{Definition, OperationDefinition};
    use hive_router_query_planner::utils::parsing::{safe_parse_operation, safe_parse_schema};
    use serde_json::json;

    const SCHEMA: &str = r#"
        type Query { media: [Media] strict: Media! kind: Kind }
        interface Media { id: ID! title: String }
        type Book implements Media { id: ID! title: String pages: Int }
        type Movie implements Media { id: ID! title: String minutes: Int }
        enum Kind { BOOK MOVIE }
    "#;

    /// Projects `data` through `query` over [`SCHEMA`]: the response data and errors.
    fn project(query: &str, data: Value) -> (Value, Vec<GraphQLError>) {
        let schema = safe_parse_schema(SCHEMA).expect("schema parses");
        let index = SchemaIndex::from_document(&schema);
        let document = safe_parse_operation(query).expect("query parses");
        let selection_set = document
            .definitions
            .iter()
            .find_map(|d| match d {
                Definition::Operation(OperationDefinition::SelectionSet(s)) => Some(s),
                Definition::Operation(OperationDefinition::Query(q)) => Some(&q.selection_set),
                _ => None,
            })
            .expect("an operation");
        let fragments = document
            .definitions
            .iter()
            .filter_map(|d| match d {
                Definition::Fragment(f) => Some((f.name.as_str(), f)),
                _ => None,
            })
            .collect();
        let variables = Map::new();
        let mut errors = Vec::new();
        let projected = Projection::new(&index, fragments, &variables, &mut errors, None).root(
            "Query",
            selection_set,
            &data,
        );
        (projected, errors)
    }

    fn codes(errors: &[GraphQLError]) -> Vec<String> {
        errors
            .iter()
            .map(|e| e.code().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn interface_values_without_a_concrete_type_serve_interface_fields() {
        let data = json!({ "media": [{ "id": "b1", "title": "Dune" }, { "__typename": "Media", "id": "m1", "title": "Alien" }] });
        let (projected, errors) = project(
            "{ media { id ... on Media { title } ...F } } fragment F on Media { id }",
            data,
        );
        assert_eq!(
            projected,
            json!({ "media": [{ "id": "b1", "title": "Dune" }, { "id": "m1", "title": "Alien" }] })
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn a_selection_that_needs_the_concrete_type_gets_null_and_an_error() {
        // `__typename`, or a fragment on one implementation, cannot be answered.
        for query in [
            "{ media { id __typename } }",
            "{ media { id ... on Book { pages } } }",
        ] {
            let data = json!({ "media": [{ "__typename": "Media", "id": "b1" }] });
            let (projected, errors) = project(query, data);
            assert_eq!(projected, json!({ "media": [null] }), "{query}");
            assert_eq!(codes(&errors), ["INTERNAL"], "{query}");
        }
        // In a non-null position the null propagates.
        let (projected, errors) = project(
            "{ strict { __typename } }",
            json!({ "strict": { "id": "b1" } }),
        );
        assert_eq!(projected, Value::Null);
        assert_eq!(codes(&errors), ["INTERNAL"]);
    }

    #[test]
    fn a_concrete_type_the_api_schema_does_not_offer_is_never_served() {
        let data = json!({ "media": [{ "__typename": "Secret", "id": "s1", "title": "x" }, { "__typename": "Book", "id": "b1", "title": "Dune" }] });
        let (projected, errors) = project("{ media { id title } }", data);
        assert_eq!(
            projected,
            json!({ "media": [null, { "id": "b1", "title": "Dune" }] })
        );
        assert_eq!(codes(&errors), ["INTERNAL"]);
    }

    #[test]
    fn an_enum_value_the_api_schema_lacks_is_null_with_an_error_that_does_not_name_it() {
        let (projected, errors) = project("{ kind }", json!({ "kind": "PODCAST" }));
        assert_eq!(projected, json!({ "kind": null }));
        assert_eq!(codes(&errors), ["SUBGRAPH_INVALID_RESPONSE"]);
        assert!(!format!("{errors:?}").contains("PODCAST"));
        let (projected, errors) = project("{ kind }", json!({ "kind": "BOOK" }));
        assert_eq!(projected, json!({ "kind": "BOOK" }));
        assert!(errors.is_empty());
    }

    #[test]
    fn a_condition_covers_an_abstract_type_only_when_it_includes_all_its_types() {
        let schema = safe_parse_schema(SCHEMA).expect("schema parses");
        let index = SchemaIndex::from_document(&schema);
        assert!(index.condition_covers("Media", "Media"));
        assert!(!index.condition_covers("Book", "Media"));
        assert!(index.condition_covers("Media", "Book"));
        assert!(index.condition_covers("Book", "Book"));
        assert!(!index.condition_covers("Movie", "Book"));
    }
}
