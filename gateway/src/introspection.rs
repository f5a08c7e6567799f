//! Introspection of the API schema, answered by the gateway itself.
//!
//! The full `__schema` value is computed once per supergraph as plain data; a request's
//! `__schema` / `__type(name:)` selections are then shaped by the ordinary projection,
//! which knows the `__Schema`/`__Type` types from the API schema. Type references inside
//! the data carry `kind`, `name` and `ofType`; projection swaps a reference to a named
//! type for the whole type when more of it is selected ([`LocalFields::named_type`]), and
//! drops deprecated entries unless `includeDeprecated: true`. Federation internals never
//! appear: the API schema has none.

use std::collections::HashMap;

use graphql_tools::static_graphql::query::Field;
use graphql_tools::static_graphql::schema::{
    Definition, Directive, Document, InputValue, Type, TypeDefinition, Value as Gql,
};
use serde_json::{Map, Value, json};

use crate::project::LocalFields;
use crate::request::literal_to_json;
use crate::schema::{SchemaIndex, TypeKind};

/// Precomputed introspection data of one API schema.
pub struct Introspection {
    schema: Value,
    types: HashMap<String, Value>,
}

impl Introspection {
    /// Computes the introspection data of `document`.
    pub fn new(document: &Document, index: &SchemaIndex) -> Self {
        let mut types = HashMap::new();
        let mut ordered = Vec::new();
        let mut directives = Vec::new();
        for definition in &document.definitions {
            match definition {
                Definition::TypeDefinition(ty) => {
                    let value = full_type(ty, index);
                    let name = type_definition_name(ty).to_owned();
                    types.insert(name, value.clone());
                    ordered.push(value);
                }
                Definition::DirectiveDefinition(d) => directives.push(json!({
                    "name": d.name,
                    "description": d.description,
                    "isRepeatable": d.repeatable,
                    "locations": d.locations.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
                    "args": d.arguments.iter().map(|v| input_value(v, index)).collect::<Vec<_>>(),
                })),
                _ => {}
            }
        }
        let root = |kind| {
            index
                .root_type(kind)
                .and_then(|name| types.get(name).cloned())
                .unwrap_or(Value::Null)
        };
        let schema = json!({
            "description": null,
            "queryType": root(crate::schema::OperationKind::Query),
            "mutationType": root(crate::schema::OperationKind::Mutation),
            "subscriptionType": root(crate::schema::OperationKind::Subscription),
            "types": ordered,
            "directives": directives,
        });
        Self { schema, types }
    }
}

impl LocalFields for Introspection {
    fn resolve_root(&self, field: &Field, variables: &Map<String, Value>) -> Option<&Value> {
        match field.name.as_str() {
            "__schema" => Some(&self.schema),
            "__type" => {
                let name = field
                    .arguments
                    .iter()
                    .find(|(arg, _)| arg == "name")
                    .map(|(_, value)| literal_to_json(value, variables))?;
                self.types.get(name.as_str()?)
            }
            _ => None,
        }
    }

    fn named_type(&self, name: &str) -> Option<&Value> {
        self.types.get(name)
    }
}

/// The name a type definition declares.
pub(crate) fn type_definition_name(ty: &TypeDefinition) -> &str {
    match ty {
        TypeDefinition::Scalar(t) => &t.name,
        TypeDefinition::Object(t) => &t.name,
        TypeDefinition::Interface(t) => &t.name,
        TypeDefinition::Union(t) => &t.name,
        TypeDefinition::Enum(t) => &t.name,
        TypeDefinition::InputObject(t) => &t.name,
    }
}

fn full_type(ty: &TypeDefinition, index: &SchemaIndex) -> Value {
    let mut value = json!({
        "name": type_definition_name(ty),
        "specifiedByURL": null,
        "fields": null,
        "interfaces": null,
        "possibleTypes": null,
        "enumValues": null,
        "inputFields": null,
        "ofType": null,
        "isOneOf": false,
    });
    let (kind, description) = match ty {
        TypeDefinition::Scalar(t) => ("SCALAR", &t.description),
        TypeDefinition::Object(t) => {
            value["fields"] = fields(&t.fields, index);
            value["interfaces"] = names_as_refs(&t.implements_interfaces, "INTERFACE");
            ("OBJECT", &t.description)
        }
        TypeDefinition::Interface(t) => {
            value["fields"] = fields(&t.fields, index);
            value["interfaces"] = names_as_refs(&t.implements_interfaces, "INTERFACE");
            let possible: Vec<String> = index
                .get(&t.name)
                .map(|def| def.possible_types.iter().cloned().collect())
                .unwrap_or_default();
            value["possibleTypes"] = names_as_refs(&possible, "OBJECT");
            ("INTERFACE", &t.description)
        }
        TypeDefinition::Union(t) => {
            value["possibleTypes"] = names_as_refs(&t.types, "OBJECT");
            ("UNION", &t.description)
        }
        TypeDefinition::Enum(t) => {
            value["enumValues"] = Value::Array(
                t.values
                    .iter()
                    .map(|v| {
                        let reason = deprecation(&v.directives);
                        json!({
                            "name": v.name,
                            "description": v.description,
                            "isDeprecated": reason.is_some(),
                            "deprecationReason": reason,
                        })
                    })
                    .collect(),
            );
            ("ENUM", &t.description)
        }
        TypeDefinition::InputObject(t) => {
            value["inputFields"] =
                Value::Array(t.fields.iter().map(|v| input_value(v, index)).collect());
            ("INPUT_OBJECT", &t.description)
        }
    };
    value["kind"] = Value::String(kind.into());
    value["description"] = json!(description);
    value
}

fn fields(defs: &[graphql_tools::static_graphql::schema::Field], index: &SchemaIndex) -> Value {
    Value::Array(
        defs.iter()
            .filter(|f| !f.name.starts_with("__"))
            .map(|f| {
                let reason = deprecation(&f.directives);
                json!({
                    "name": f.name,
                    "description": f.description,
                    "args": f.arguments.iter().map(|v| input_value(v, index)).collect::<Vec<_>>(),
                    "type": type_ref(&f.field_type, index),
                    "isDeprecated": reason.is_some(),
                    "deprecationReason": reason,
                })
            })
            .collect(),
    )
}

fn input_value(value: &InputValue, index: &SchemaIndex) -> Value {
    let reason = deprecation(&value.directives);
    json!({
        "name": value.name,
        "description": value.description,
        "type": type_ref(&value.value_type, index),
        "defaultValue": value.default_value.as_ref().map(print_value),
        "isDeprecated": reason.is_some(),
        "deprecationReason": reason,
    })
}

fn names_as_refs(names: &[String], kind: &str) -> Value {
    Value::Array(
        names
            .iter()
            .map(|name| json!({ "kind": kind, "name": name, "ofType": null }))
            .collect(),
    )
}

fn type_ref(ty: &Type, index: &SchemaIndex) -> Value {
    match ty {
        Type::NamedType(name) => {
            let kind = match index.get(name).map(|t| t.kind) {
                Some(TypeKind::Object) => "OBJECT",
                Some(TypeKind::Interface) => "INTERFACE",
                Some(TypeKind::Union) => "UNION",
                Some(TypeKind::Enum) => "ENUM",
                Some(TypeKind::InputObject) => "INPUT_OBJECT",
                Some(TypeKind::Scalar) | None => "SCALAR",
            };
            json!({ "kind": kind, "name": name, "ofType": null })
        }
        Type::ListType(inner) => {
            json!({ "kind": "LIST", "name": null, "ofType": type_ref(inner, index) })
        }
        Type::NonNullType(inner) => {
            json!({ "kind": "NON_NULL", "name": null, "ofType": type_ref(inner, index) })
        }
    }
}

fn deprecation(directives: &[Directive]) -> Option<String> {
    let directive = directives.iter().find(|d| d.name == "deprecated")?;
    let reason = directive
        .arguments
        .iter()
        .find(|(name, _)| name == "reason")
        .and_then(|(_, value)| match value {
            Gql::String(s) => Some(s.clone()),
            _ => None,
        });
    Some(reason.unwrap_or_else(|| "No longer supported".into()))
}

/// Prints a GraphQL literal in GraphQL syntax (for `defaultValue`).
fn print_value(value: &Gql) -> String {
    match value {
        Gql::Variable(name) => format!("${name}"),
        Gql::Int(n) => n.as_i64().map(|n| n.to_string()).unwrap_or_default(),
        Gql::Float(f) => f.to_string(),
        Gql::String(s) => Value::String(s.clone()).to_string(),
        Gql::Boolean(b) => b.to_string(),
        Gql::Null => "null".into(),
        Gql::Enum(e) => e.clone(),
        Gql::List(items) => format!(
            "[{}]",
            items.iter().map(print_value).collect::<Vec<_>>().join(", ")
        ),
        Gql::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", print_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
