//! What a report definition is checked against: the supergraph's types, fields and
//! arguments as clients see them (elements marked `@inaccessible` left out), read from
//! the supergraph SDL the gateway serves.

use std::collections::HashMap;

use async_graphql::parser::types::{BaseType, TypeKind, TypeSystemDefinition};

/// What kind of type a name denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A scalar (`Int`, `Decimal`, `DateTime`, …).
    Scalar,
    /// An enum (read as text).
    Enum,
    /// An object, interface or union.
    Composite,
    /// An input object (arguments only).
    Input,
}

/// A field's type: its named type and whether it is a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldType {
    /// The innermost named type.
    pub named: String,
    /// Whether any list wraps it.
    pub list: bool,
}

/// An argument of a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Argument {
    /// Its name.
    pub name: String,
    /// Its type as written (`[InvoiceStatus!]`, `ID!`): how a variable for it is declared.
    pub ty: String,
    /// Whether it must be given (non-null, no default).
    pub required: bool,
}

/// A field of a composite type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its type.
    pub ty: FieldType,
    /// Its arguments.
    pub arguments: Vec<Argument>,
}

/// The supergraph's client-visible types.
#[derive(Clone, Debug, Default)]
pub struct SchemaView {
    kinds: HashMap<String, Kind>,
    fields: HashMap<(String, String), Field>,
}

fn inaccessible(
    directives: &[async_graphql::Positioned<async_graphql::parser::types::ConstDirective>],
) -> bool {
    directives
        .iter()
        .any(|d| d.node.name.node.as_str() == "inaccessible")
}

impl SchemaView {
    /// Reads `sdl` (a supergraph or any schema document); `None` if it does not parse.
    pub fn parse(sdl: &str) -> Option<Self> {
        let document = async_graphql::parser::parse_schema(sdl).ok()?;
        let mut view = Self::default();
        for builtin in ["Int", "Float", "String", "Boolean", "ID"] {
            view.kinds.insert(builtin.to_owned(), Kind::Scalar);
        }
        for definition in document.definitions {
            let TypeSystemDefinition::Type(definition) = definition else {
                continue;
            };
            let definition = definition.node;
            if inaccessible(&definition.directives) {
                continue;
            }
            let name = definition.name.node.to_string();
            let fields = match &definition.kind {
                TypeKind::Scalar => {
                    view.kinds.insert(name, Kind::Scalar);
                    continue;
                }
                TypeKind::Enum(_) => {
                    view.kinds.insert(name, Kind::Enum);
                    continue;
                }
                TypeKind::InputObject(_) => {
                    view.kinds.insert(name, Kind::Input);
                    continue;
                }
                TypeKind::Union(_) => {
                    view.kinds.insert(name, Kind::Composite);
                    continue;
                }
                TypeKind::Object(object) => &object.fields,
                TypeKind::Interface(interface) => &interface.fields,
            };
            view.kinds.insert(name.clone(), Kind::Composite);
            for field in fields {
                let field = &field.node;
                if inaccessible(&field.directives) {
                    continue;
                }
                let arguments = field
                    .arguments
                    .iter()
                    .filter(|a| !inaccessible(&a.node.directives))
                    .map(|a| Argument {
                        name: a.node.name.node.to_string(),
                        ty: a.node.ty.node.to_string(),
                        required: !a.node.ty.node.nullable && a.node.default_value.is_none(),
                    })
                    .collect();
                let mut ty = &field.ty.node;
                let mut list = false;
                let named = loop {
                    match &ty.base {
                        BaseType::Named(named) => break named.to_string(),
                        BaseType::List(inner) => {
                            list = true;
                            ty = inner;
                        }
                    }
                };
                view.fields.insert(
                    (name.clone(), field.name.node.to_string()),
                    Field {
                        ty: FieldType { named, list },
                        arguments,
                    },
                );
            }
        }
        Some(view)
    }

    /// The kind of the type `name`, if it exists.
    pub fn kind(&self, name: &str) -> Option<Kind> {
        self.kinds.get(name).copied()
    }

    /// The field `field` of the composite type `owner`, if it exists.
    pub fn field(&self, owner: &str, field: &str) -> Option<&Field> {
        self.fields.get(&(owner.to_owned(), field.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = r#"
        scalar Decimal
        enum Status { OPEN CLOSED }
        input Filter { status: Status }
        type Query { accounts(first: Int, after: String, filter: Filter): AccountConnection!
                     secret: String @inaccessible }
        type AccountConnection { edges: [AccountEdge!]! pageInfo: PageInfo! }
        type AccountEdge { cursor: String! node: Account! }
        type PageInfo { hasNextPage: Boolean! endCursor: String }
        type Account { id: ID! balance: Decimal! status: Status! tags: [String!]!
                       ledger(first: Int!, kind: Status = OPEN): AccountConnection! }
    "#;

    #[test]
    fn fields_arguments_and_kinds_are_read_and_inaccessible_ones_left_out() {
        let view = SchemaView::parse(SDL).unwrap_or_default();
        assert_eq!(view.kind("Decimal"), Some(Kind::Scalar));
        assert_eq!(view.kind("Status"), Some(Kind::Enum));
        assert_eq!(view.kind("Filter"), Some(Kind::Input));
        assert_eq!(view.kind("Account"), Some(Kind::Composite));
        let accounts = view.field("Query", "accounts");
        assert_eq!(
            accounts.map(|f| f.ty.clone()),
            Some(FieldType {
                named: "AccountConnection".into(),
                list: false
            })
        );
        assert_eq!(accounts.map(|f| f.arguments[2].ty.as_str()), Some("Filter"));
        assert!(view.field("Query", "secret").is_none());
        assert_eq!(view.field("Account", "tags").map(|f| f.ty.list), Some(true));
        let ledger = view.field("Account", "ledger");
        assert_eq!(
            ledger.map(|f| (f.arguments[0].required, f.arguments[1].required)),
            Some((true, false))
        );
    }
}
