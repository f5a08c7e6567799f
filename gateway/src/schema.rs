//! An index of the API (consumer) schema: types, their fields' types and possible types.
//!
//! Built once per supergraph from the planner's consumer schema; the executor and the
//! response projection look types up here, never in the SDL text.

use std::collections::{BTreeSet, HashMap};

use graphql_tools::static_graphql::schema::{Definition, Document, Type, TypeDefinition};
use indexmap::IndexMap;

/// A reference to a type as written on a field: `[User!]!` and the like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeRef {
    /// A named type, nullable.
    Named(String),
    /// A list of the inner type, nullable.
    List(Box<TypeRef>),
    /// The inner type, non-null.
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// Converts a type written in a schema or an operation.
    pub fn from_ast(ty: &Type) -> Self {
        match ty {
            Type::NamedType(name) => Self::Named(name.clone()),
            Type::ListType(inner) => Self::List(Box::new(Self::from_ast(inner))),
            Type::NonNullType(inner) => Self::NonNull(Box::new(Self::from_ast(inner))),
        }
    }

    /// The innermost named type.
    pub fn named(&self) -> &str {
        match self {
            Self::Named(name) => name,
            Self::List(inner) | Self::NonNull(inner) => inner.named(),
        }
    }
}

impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named(name) => f.write_str(name),
            Self::List(inner) => write!(f, "[{inner}]"),
            Self::NonNull(inner) => write!(f, "{inner}!"),
        }
    }
}

/// The three operation kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// `query`
    Query,
    /// `mutation`
    Mutation,
    /// `subscription`
    Subscription,
}

impl OperationKind {
    /// The keyword: `query`, `mutation` or `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Mutation => "mutation",
            Self::Subscription => "subscription",
        }
    }
}

/// What kind of type a named type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeKind {
    /// Object type.
    Object,
    /// Interface.
    Interface,
    /// Union.
    Union,
    /// Enum.
    Enum,
    /// Scalar (built-in or custom).
    Scalar,
    /// Input object.
    InputObject,
}

/// One argument of a field.
#[derive(Clone, Debug)]
pub struct ArgumentDef {
    /// Argument name.
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// Whether it has a default value.
    pub has_default: bool,
}

/// One field of an object or interface type.
#[derive(Clone, Debug)]
pub struct FieldDef {
    /// Field name.
    pub name: String,
    /// Its output type.
    pub ty: TypeRef,
    /// Its arguments, in declaration order.
    pub arguments: Vec<ArgumentDef>,
}

/// One named type.
#[derive(Clone, Debug)]
pub struct TypeDef {
    /// Type name.
    pub name: String,
    /// Kind of type.
    pub kind: TypeKind,
    /// Fields (objects and interfaces), in declaration order.
    pub fields: IndexMap<String, FieldDef>,
    /// Object types a value of this type can be (itself for objects).
    pub possible_types: BTreeSet<String>,
    /// Input fields (input objects), in declaration order.
    pub input_fields: IndexMap<String, ArgumentDef>,
    /// Values (enums).
    pub enum_values: BTreeSet<String>,
}

/// The API schema, indexed.
#[derive(Clone, Debug, Default)]
pub struct SchemaIndex {
    types: HashMap<String, TypeDef>,
    query: String,
    mutation: Option<String>,
    subscription: Option<String>,
}

impl SchemaIndex {
    /// Indexes a parsed schema document.
    pub fn from_document(document: &Document) -> Self {
        let mut index = Self {
            query: "Query".into(),
            ..Self::default()
        };
        let mut implementations: Vec<(String, String)> = Vec::new();
        for definition in &document.definitions {
            match definition {
                Definition::SchemaDefinition(schema) => {
                    if let Some(query) = &schema.query {
                        index.query.clone_from(query);
                    }
                    index.mutation.clone_from(&schema.mutation);
                    index.subscription.clone_from(&schema.subscription);
                }
                Definition::TypeDefinition(ty) => {
                    let def = match ty {
                        TypeDefinition::Object(object) => {
                            for interface in &object.implements_interfaces {
                                implementations.push((interface.clone(), object.name.clone()));
                            }
                            TypeDef {
                                name: object.name.clone(),
                                kind: TypeKind::Object,
                                fields: fields(&object.fields),
                                possible_types: BTreeSet::from([object.name.clone()]),
                                ..simple(&object.name, TypeKind::Object)
                            }
                        }
                        TypeDefinition::Interface(interface) => TypeDef {
                            name: interface.name.clone(),
                            kind: TypeKind::Interface,
                            fields: fields(&interface.fields),
                            ..simple(&interface.name, TypeKind::Interface)
                        },
                        TypeDefinition::Union(union) => TypeDef {
                            name: union.name.clone(),
                            kind: TypeKind::Union,
                            possible_types: union.types.iter().cloned().collect(),
                            ..simple(&union.name, TypeKind::Union)
                        },
                        TypeDefinition::Enum(e) => TypeDef {
                            enum_values: e.values.iter().map(|v| v.name.clone()).collect(),
                            ..simple(&e.name, TypeKind::Enum)
                        },
                        TypeDefinition::Scalar(s) => simple(&s.name, TypeKind::Scalar),
                        TypeDefinition::InputObject(i) => TypeDef {
                            input_fields: i
                                .fields
                                .iter()
                                .map(|f| (f.name.clone(), argument(f)))
                                .collect(),
                            ..simple(&i.name, TypeKind::InputObject)
                        },
                    };
                    index.types.insert(def.name.clone(), def);
                }
                _ => {}
            }
        }
        for (interface, object) in implementations {
            if let Some(def) = index.types.get_mut(&interface) {
                def.possible_types.insert(object);
            }
        }
        if index.mutation.is_none() && index.types.contains_key("Mutation") {
            index.mutation = Some("Mutation".into());
        }
        if index.subscription.is_none() && index.types.contains_key("Subscription") {
            index.subscription = Some("Subscription".into());
        }
        index
    }

    /// The named type `name`.
    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name)
    }

    /// The object or interface type `name`.
    pub fn object(&self, name: &str) -> Option<&TypeDef> {
        self.types
            .get(name)
            .filter(|t| matches!(t.kind, TypeKind::Object | TypeKind::Interface))
    }

    /// The field `type_name.field_name`.
    pub fn field(&self, type_name: &str, field_name: &str) -> Option<&FieldDef> {
        self.types.get(type_name)?.fields.get(field_name)
    }

    /// Root type name for an operation kind.
    pub fn root_type(&self, kind: OperationKind) -> Option<&str> {
        match kind {
            OperationKind::Query => Some(&self.query),
            OperationKind::Mutation => self.mutation.as_deref(),
            OperationKind::Subscription => self.subscription.as_deref(),
        }
    }

    /// The root types that exist, with their operation kinds.
    pub fn root_types(&self) -> Vec<(OperationKind, String)> {
        [
            OperationKind::Query,
            OperationKind::Mutation,
            OperationKind::Subscription,
        ]
        .into_iter()
        .filter_map(|kind| self.root_type(kind).map(|name| (kind, name.to_owned())))
        .filter(|(_, name)| self.types.contains_key(name))
        .collect()
    }

    /// Every named type.
    pub fn types(&self) -> impl Iterator<Item = &TypeDef> {
        self.types.values()
    }

    /// Whether a fragment on `condition` applies to an object of type `object_type`.
    pub fn type_condition_applies(&self, condition: &str, object_type: &str) -> bool {
        condition == object_type
            || self
                .types
                .get(condition)
                .is_some_and(|t| t.possible_types.contains(object_type))
    }

    /// Whether a fragment on `condition` applies to every value of type `type_name`: for an
    /// object type, [`Self::type_condition_applies`]; for an interface or union (a value
    /// whose concrete type is unknown), when `condition` is that type or includes all its
    /// possible types.
    pub fn condition_covers(&self, condition: &str, type_name: &str) -> bool {
        if !self.is_abstract(type_name) {
            return self.type_condition_applies(condition, type_name);
        }
        condition == type_name
            || match (self.types.get(type_name), self.types.get(condition)) {
                (Some(inner), Some(outer)) => {
                    !inner.possible_types.is_empty()
                        && inner.possible_types.is_subset(&outer.possible_types)
                }
                _ => false,
            }
    }

    /// Whether `name` is an interface or a union.
    pub fn is_abstract(&self, name: &str) -> bool {
        self.types
            .get(name)
            .is_some_and(|t| matches!(t.kind, TypeKind::Interface | TypeKind::Union))
    }

    /// Whether values of `name` have a selection set (objects, interfaces, unions).
    pub fn is_composite(&self, name: &str) -> bool {
        self.types.get(name).is_some_and(|t| {
            matches!(
                t.kind,
                TypeKind::Object | TypeKind::Interface | TypeKind::Union
            )
        })
    }

    /// Whether `value` may be output for the leaf type `name`: anything for scalars; for
    /// an enum, only its values in the API schema (`@inaccessible` ones are not there).
    pub fn is_output_value(&self, name: &str, value: &serde_json::Value) -> bool {
        match self.types.get(name) {
            Some(t) if t.kind == TypeKind::Enum => {
                value.as_str().is_some_and(|v| t.enum_values.contains(v))
            }
            _ => true,
        }
    }

    /// An operation selecting root field `field` and, below it, every field of every
    /// composite type down to `depth` levels, with each argument passed as a variable of
    /// its declared type. Planning it proves those coordinates are reachable.
    pub fn probe_operation(&self, kind: OperationKind, field: &FieldDef, depth: usize) -> String {
        let keyword = match kind {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
        };
        let mut variables = Vec::new();
        let selection = self.probe_field(field, depth, &mut variables);
        if variables.is_empty() {
            format!("{keyword} {{ {selection} }}")
        } else {
            format!("{keyword}({}) {{ {selection} }}", variables.join(", "))
        }
    }

    fn probe_field(&self, field: &FieldDef, depth: usize, variables: &mut Vec<String>) -> String {
        let mut out = field.name.clone();
        if !field.arguments.is_empty() {
            let arguments: Vec<String> = field
                .arguments
                .iter()
                .map(|arg| {
                    let name = format!("v{}", variables.len());
                    variables.push(format!("${name}: {}", arg.ty));
                    format!("{}: ${name}", arg.name)
                })
                .collect();
            out.push_str(&format!("({})", arguments.join(", ")));
        }
        let named = field.ty.named();
        if let Some(ty) = self.get(named).filter(|_| self.is_composite(named)) {
            out.push_str(" { __typename");
            if depth > 0 {
                for child in ty.fields.values().filter(|f| !f.name.starts_with("__")) {
                    out.push(' ');
                    out.push_str(&self.probe_field(child, depth - 1, variables));
                }
            }
            out.push_str(" }");
        }
        out
    }
}

fn simple(name: &str, kind: TypeKind) -> TypeDef {
    TypeDef {
        name: name.to_owned(),
        kind,
        fields: IndexMap::new(),
        possible_types: BTreeSet::new(),
        input_fields: IndexMap::new(),
        enum_values: BTreeSet::new(),
    }
}

fn argument(value: &graphql_tools::static_graphql::schema::InputValue) -> ArgumentDef {
    ArgumentDef {
        name: value.name.clone(),
        ty: TypeRef::from_ast(&value.value_type),
        has_default: value.default_value.is_some(),
    }
}

fn fields(defs: &[graphql_tools::static_graphql::schema::Field]) -> IndexMap<String, FieldDef> {
    defs.iter()
        .map(|field| {
            let def = FieldDef {
                name: field.name.clone(),
                ty: TypeRef::from_ast(&field.field_type),
                arguments: field.arguments.iter().map(argument).collect(),
            };
            (field.name.clone(), def)
        })
        .collect()
}
