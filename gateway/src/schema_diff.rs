//! Schema compatibility: the changes between two API schemas (what clients see) that can
//! break a client written against the older one — the check the schema registries frontend
//! teams use run before a release. Additions are never breaking; removals, type changes
//! that loosen an output or tighten an input, new required inputs and removed enum values
//! are. Each change renders as one stable line (`FIELD_TYPE_CHANGED Account.owner: User!
//! -> User`), which a release acknowledges in `CHANGELOG.md`.

use std::collections::BTreeMap;

use crate::introspection::type_definition_name;
use graphql_tools::static_graphql::schema::{
    Definition, Document, InputValue, Type, TypeDefinition,
};

/// One breaking change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BreakingChange {
    /// Stable kind: `TYPE_REMOVED`, `FIELD_REMOVED`, `FIELD_TYPE_CHANGED`, ….
    pub kind: &'static str,
    /// What changed, e.g. `Account.owner: User! -> User`.
    pub detail: String,
}

impl std::fmt::Display for BreakingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.detail)
    }
}

/// The changes from `old` to `new` that can break clients of `old`, sorted.
pub fn breaking_changes(old: &Document, new: &Document) -> Vec<BreakingChange> {
    let (old_types, new_types) = (types(old), types(new));
    let mut changes = Vec::new();
    let mut push = |kind, detail: String| changes.push(BreakingChange { kind, detail });
    for (name, old_type) in &old_types {
        let Some(new_type) = new_types.get(name) else {
            push("TYPE_REMOVED", (*name).to_owned());
            continue;
        };
        match (old_type, new_type) {
            (TypeDefinition::Object(o), TypeDefinition::Object(n)) => {
                for interface in &o.implements_interfaces {
                    if !n.implements_interfaces.contains(interface) {
                        push(
                            "INTERFACE_REMOVED",
                            format!("{name} implements {interface}"),
                        );
                    }
                }
                output_fields(name, &o.fields, &n.fields, &mut push);
            }
            (TypeDefinition::Interface(o), TypeDefinition::Interface(n)) => {
                output_fields(name, &o.fields, &n.fields, &mut push);
            }
            (TypeDefinition::Union(o), TypeDefinition::Union(n)) => {
                for member in o.types.iter().filter(|m| !n.types.contains(m)) {
                    push("UNION_MEMBER_REMOVED", format!("{name}: {member}"));
                }
            }
            (TypeDefinition::Enum(o), TypeDefinition::Enum(n)) => {
                for value in &o.values {
                    if !n.values.iter().any(|v| v.name == value.name) {
                        push("ENUM_VALUE_REMOVED", format!("{name}.{}", value.name));
                    }
                }
            }
            (TypeDefinition::InputObject(o), TypeDefinition::InputObject(n)) => {
                inputs(name, &o.fields, &n.fields, "INPUT_FIELD", &mut push);
            }
            (TypeDefinition::Scalar(_), TypeDefinition::Scalar(_)) => {}
            (o, n) => push(
                "TYPE_KIND_CHANGED",
                format!("{name}: {} -> {}", kind_of(o), kind_of(n)),
            ),
        }
    }
    changes.sort();
    changes
}

fn types(document: &Document) -> BTreeMap<&str, &TypeDefinition> {
    document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::TypeDefinition(t) => Some((type_definition_name(t), t)),
            _ => None,
        })
        .filter(|(name, _)| !name.starts_with("__"))
        .collect()
}

fn kind_of(t: &TypeDefinition) -> &'static str {
    match t {
        TypeDefinition::Scalar(_) => "scalar",
        TypeDefinition::Object(_) => "object",
        TypeDefinition::Interface(_) => "interface",
        TypeDefinition::Union(_) => "union",
        TypeDefinition::Enum(_) => "enum",
        TypeDefinition::InputObject(_) => "input",
    }
}

type Field = graphql_tools::static_graphql::schema::Field;

fn output_fields(
    type_name: &str,
    old: &[Field],
    new: &[Field],
    push: &mut impl FnMut(&'static str, String),
) {
    for field in old {
        let coordinate = format!("{type_name}.{}", field.name);
        let Some(now) = new.iter().find(|f| f.name == field.name) else {
            push("FIELD_REMOVED", coordinate);
            continue;
        };
        if !safe_output_change(&field.field_type, &now.field_type) {
            push(
                "FIELD_TYPE_CHANGED",
                format!("{coordinate}: {} -> {}", field.field_type, now.field_type),
            );
        }
        inputs(
            &coordinate,
            &field.arguments,
            &now.arguments,
            "ARGUMENT",
            push,
        );
    }
}

/// Input values (arguments or input-object fields) of `owner`.
fn inputs(
    owner: &str,
    old: &[InputValue],
    new: &[InputValue],
    what: &'static str,
    push: &mut impl FnMut(&'static str, String),
) {
    let (removed, changed, added) = match what {
        "ARGUMENT" => (
            "ARGUMENT_REMOVED",
            "ARGUMENT_TYPE_CHANGED",
            "REQUIRED_ARGUMENT_ADDED",
        ),
        _ => (
            "INPUT_FIELD_REMOVED",
            "INPUT_FIELD_TYPE_CHANGED",
            "REQUIRED_INPUT_FIELD_ADDED",
        ),
    };
    for value in old {
        let place = format!("{owner}({})", value.name);
        match new.iter().find(|v| v.name == value.name) {
            None => push(removed, place),
            Some(now) if !safe_input_change(&value.value_type, &now.value_type) => push(
                changed,
                format!("{place}: {} -> {}", value.value_type, now.value_type),
            ),
            Some(_) => {}
        }
    }
    for value in new {
        let required =
            matches!(value.value_type, Type::NonNullType(_)) && value.default_value.is_none();
        if required && !old.iter().any(|v| v.name == value.name) {
            push(
                added,
                format!("{owner}({}): {}", value.name, value.value_type),
            );
        }
    }
}

/// Whether clients reading an output of type `old` still cope with `new`: the same type,
/// or one that is non-null where the old was nullable (at any list level).
fn safe_output_change(old: &Type, new: &Type) -> bool {
    match (old, new) {
        (Type::NonNullType(o), Type::NonNullType(n)) => safe_output_change(o, n),
        (_, Type::NonNullType(n)) => safe_output_change(old, n),
        (Type::ListType(o), Type::ListType(n)) => safe_output_change(o, n),
        (Type::NamedType(o), Type::NamedType(n)) => o == n,
        _ => false,
    }
}

/// Whether values clients send as `old` are still accepted as `new`: the same type, or
/// one that is nullable where the old was non-null (at any list level).
fn safe_input_change(old: &Type, new: &Type) -> bool {
    match (old, new) {
        (Type::NonNullType(o), Type::NonNullType(n)) => safe_input_change(o, n),
        (Type::NonNullType(o), _) => safe_input_change(o, new),
        (Type::ListType(o), Type::ListType(n)) => safe_input_change(o, n),
        (Type::NamedType(o), Type::NamedType(n)) => o == n,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sdl: &str) -> Document {
        hive_router_query_planner::utils::parsing::safe_parse_schema(sdl).expect("valid SDL")
    }

    fn changes(old: &str, new: &str) -> Vec<String> {
        breaking_changes(&parse(old), &parse(new))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn loosened_outputs_and_tightened_inputs_break_clients() {
        let old = "type Query { a: Int! b: Int c(x: Int!, y: Int): [Int!]! d: String e: E }
                   enum E { ONE TWO } input I { f: Int! g: Int } type T { t: Int }";
        let new = "type Query { a: Int b: Int! c(x: Int, y: Int!, z: Int!): [Int]! f: Int e: E }
                   enum E { ONE THREE } input I { f: Int g: Int h: Int! }";
        assert_eq!(
            changes(old, new),
            [
                "ARGUMENT_TYPE_CHANGED Query.c(y): Int -> Int!",
                "ENUM_VALUE_REMOVED E.TWO",
                "FIELD_REMOVED Query.d",
                "FIELD_TYPE_CHANGED Query.a: Int! -> Int",
                "FIELD_TYPE_CHANGED Query.c: [Int!]! -> [Int]!",
                "REQUIRED_ARGUMENT_ADDED Query.c(z): Int!",
                "REQUIRED_INPUT_FIELD_ADDED I(h): Int!",
                "TYPE_REMOVED T",
            ]
        );
    }

    #[test]
    fn additions_and_safe_changes_break_nothing() {
        let old = "type Query { a: Int c(x: Int!): Int } enum E { ONE } input I { f: Int! }";
        let new = "type Query { a: Int! b: Int c(x: Int, y: Int = 1, z: Int): Int }
                   enum E { ONE TWO } input I { f: Int g: Int } type New { n: Int }";
        assert!(changes(old, new).is_empty(), "{:?}", changes(old, new));
    }
}
