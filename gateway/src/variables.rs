//! Variable coercion (GraphQL spec §6.1.2 CoerceVariableValues): every variable value a
//! client sends is checked against its declared type in the API schema before anything
//! runs. A wrong value is a request error (`BAD_USER_INPUT`, no data), never a subgraph's
//! problem — and input fields the API schema does not have (for instance `@inaccessible`
//! ones) cannot be smuggled to a subgraph through a variable.

use graphql_tools::static_graphql::query::VariableDefinition;
use serde_json::{Map, Value};

use crate::request::literal_to_json;
use crate::response::GraphQLError;
use crate::schema::{SchemaIndex, TypeKind, TypeRef};

/// The request's variables, coerced to the operation's declared types and completed by
/// their defaults (an explicit `null` is kept, as the spec says).
pub fn coerce(
    index: &SchemaIndex,
    definitions: &[VariableDefinition],
    mut provided: Map<String, Value>,
) -> Result<Map<String, Value>, GraphQLError> {
    let mut variables = Map::new();
    for definition in definitions {
        let name = &definition.name;
        let ty = TypeRef::from_ast(&definition.var_type);
        match provided.remove(name) {
            Some(value) => {
                let mut path = format!("${name}");
                let coerced = coerce_value(index, &ty, value, &mut path)?;
                variables.insert(name.clone(), coerced);
            }
            None => match &definition.default_value {
                Some(default) => {
                    variables.insert(name.clone(), literal_to_json(default, &Map::new()));
                }
                None if matches!(ty, TypeRef::NonNull(_)) => {
                    return Err(invalid(&format!("${name}"), "a value is required"));
                }
                None => {}
            },
        }
    }
    Ok(variables)
}

fn invalid(path: &str, problem: &str) -> GraphQLError {
    GraphQLError::new(
        format!("variable `{path}` is invalid: {problem}"),
        "BAD_USER_INPUT",
    )
}

fn coerce_value(
    index: &SchemaIndex,
    ty: &TypeRef,
    value: Value,
    path: &mut String,
) -> Result<Value, GraphQLError> {
    match ty {
        TypeRef::NonNull(inner) => {
            if value.is_null() {
                return Err(invalid(path, "must not be null"));
            }
            coerce_value(index, inner, value, path)
        }
        _ if value.is_null() => Ok(Value::Null),
        TypeRef::List(inner) => match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(coerce_value(index, inner, item, path)?);
                    path.truncate(len);
                }
                Ok(Value::Array(out))
            }
            // A single value where a list is expected is a list of one (input coercion).
            single => Ok(Value::Array(vec![coerce_value(
                index, inner, single, path,
            )?])),
        },
        TypeRef::Named(name) => coerce_named(index, name, value, path),
    }
}

fn coerce_named(
    index: &SchemaIndex,
    name: &str,
    value: Value,
    path: &mut String,
) -> Result<Value, GraphQLError> {
    match name {
        "Int" => match value.as_i64() {
            Some(n) if i32::try_from(n).is_ok() => Ok(value),
            _ => Err(invalid(path, "expected a 32-bit integer")),
        },
        "Float" => match value {
            Value::Number(_) => Ok(value),
            _ => Err(invalid(path, "expected a number")),
        },
        "String" => match value {
            Value::String(_) => Ok(value),
            _ => Err(invalid(path, "expected a string")),
        },
        "Boolean" => match value {
            Value::Bool(_) => Ok(value),
            _ => Err(invalid(path, "expected a boolean")),
        },
        "ID" => match value {
            Value::String(_) => Ok(value),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Value::String(n.to_string())),
            _ => Err(invalid(path, "expected an ID (string or integer)")),
        },
        _ => {
            let Some(def) = index.get(name) else {
                return Err(invalid(path, &format!("unknown type `{name}`")));
            };
            match def.kind {
                // Custom scalars are checked by the subgraph that owns them.
                TypeKind::Scalar => Ok(value),
                TypeKind::Enum => match value.as_str() {
                    Some(v) if def.enum_values.contains(v) => Ok(value),
                    _ => Err(invalid(path, &format!("expected a value of enum `{name}`"))),
                },
                TypeKind::InputObject => {
                    let Value::Object(mut fields) = value else {
                        return Err(invalid(
                            path,
                            &format!("expected an object of type `{name}`"),
                        ));
                    };
                    if let Some(unknown) =
                        fields.keys().find(|k| !def.input_fields.contains_key(*k))
                    {
                        return Err(invalid(path, &format!("`{name}` has no field `{unknown}`")));
                    }
                    let mut out = Map::new();
                    for (field, field_def) in &def.input_fields {
                        let len = path.len();
                        path.push('.');
                        path.push_str(field);
                        match fields.remove(field) {
                            Some(v) => {
                                out.insert(
                                    field.clone(),
                                    coerce_value(index, &field_def.ty, v, path)?,
                                );
                            }
                            None if matches!(field_def.ty, TypeRef::NonNull(_))
                                && !field_def.has_default =>
                            {
                                return Err(invalid(path, "a value is required"));
                            }
                            None => {}
                        }
                        path.truncate(len);
                    }
                    Ok(Value::Object(out))
                }
                TypeKind::Object | TypeKind::Interface | TypeKind::Union => {
                    Err(invalid(path, &format!("`{name}` is not an input type")))
                }
            }
        }
    }
}
