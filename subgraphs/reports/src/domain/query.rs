//! What a report reads, and how: a dataset (a paginated list field of the supergraph,
//! reached from `Query` through at most a few fields with their arguments), the columns
//! (field paths from each row, which may cross subgraphs: `owner.displayName`), optional
//! grouping with aggregates, and a row limit — validated against the supergraph's types
//! and compiled into one GraphQL query the gateway runs page by page as the report's
//! owner.
//!
//! Pure: no GraphQL server, HTTP or database types.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use portal_kit::{ApiError, ApiResult};

use super::schema::{Kind, SchemaView};

/// Most fields from `Query` to the dataset's list field.
pub const MAX_STEPS: usize = 4;
/// Most columns (plain, grouped and aggregates together).
pub const MAX_COLUMNS: usize = 50;
/// Most fields in one column path.
pub const MAX_PATH: usize = 5;
/// Most rows a report may read.
pub const MAX_LIMIT: u64 = 1_000_000;
/// Longest column label, in characters.
pub const MAX_LABEL: usize = 100;

/// A report's query, as saved (JSON in the definition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportQuery {
    /// From `Query` to the list field: e.g. `account(id: …)` then `ledgerEntries(filter: …)`.
    pub dataset: Vec<Step>,
    /// One output column per row field (without aggregates).
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    /// The fields rows are grouped by (with aggregates): one output row per group.
    #[serde(default)]
    pub group_by: Vec<ColumnSpec>,
    /// What is computed per group (or over all rows, without `groupBy`).
    #[serde(default)]
    pub aggregates: Vec<AggregateSpec>,
    /// Most rows read from the dataset.
    pub limit: u64,
}

impl ReportQuery {
    /// This query without the columns and aggregates that read any of `fields` (field
    /// names, as the gateway's refusals name them) — what a recipient who may not read
    /// them still receives — and the labels of those left out. `None` when nothing would
    /// be left out, a grouping key reads one of them, or nothing would be left.
    pub fn without_fields(&self, fields: &[String]) -> Option<(Self, Vec<String>)> {
        let reads = |path: &str| {
            path.split('.')
                .any(|segment| fields.iter().any(|f| f == segment))
        };
        if self.group_by.iter().any(|c| reads(&c.path)) {
            return None;
        }
        let mut left_out = Vec::new();
        let columns: Vec<ColumnSpec> = self
            .columns
            .iter()
            .filter(|c| {
                let out = reads(&c.path);
                if out {
                    left_out.push(c.label.clone().unwrap_or_else(|| c.path.clone()));
                }
                !out
            })
            .cloned()
            .collect();
        let aggregates: Vec<AggregateSpec> = self
            .aggregates
            .iter()
            .filter(|a| {
                let out = a.path.as_deref().is_some_and(reads);
                if out {
                    left_out.push(
                        a.label
                            .clone()
                            .unwrap_or_else(|| a.path.clone().unwrap_or_default()),
                    );
                }
                !out
            })
            .cloned()
            .collect();
        if left_out.is_empty() || (columns.is_empty() && aggregates.is_empty()) {
            return None;
        }
        let trimmed = Self {
            dataset: self.dataset.clone(),
            columns,
            group_by: self.group_by.clone(),
            aggregates,
            limit: self.limit,
        };
        Some((trimmed, left_out))
    }
}

/// One field on the way to the dataset, with the arguments it is called with (the list
/// field's own filters and sort among them; `first` and `after` are the runner's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The field's name.
    pub field: String,
    /// Its arguments, as GraphQL variables' JSON values.
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// One column: a field path from the row, and its header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Dotted field path from the row (`owner.displayName`).
    pub path: String,
    /// Header text (the path when omitted).
    #[serde(default)]
    pub label: Option<String>,
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Aggregate {
    /// Rows (no path), or rows where the path has a value.
    Count,
    /// Sum of a number.
    Sum,
    /// Mean of a number.
    Avg,
    /// Least number, date or time.
    Min,
    /// Greatest number, date or time.
    Max,
}

impl Aggregate {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "COUNT",
            Self::Sum => "SUM",
            Self::Avg => "AVG",
            Self::Min => "MIN",
            Self::Max => "MAX",
        }
    }
}

/// One aggregate column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateSpec {
    /// What it computes.
    pub function: Aggregate,
    /// Over which field (none: `COUNT` of rows).
    #[serde(default)]
    pub path: Option<String>,
    /// Header text (`SUM(amount)` when omitted).
    #[serde(default)]
    pub label: Option<String>,
}

/// What a value is, for typed output (XLSX cells, exact sums).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValueKind {
    /// Text (strings, ids, enums, booleans).
    Text,
    /// A whole number (`Int`).
    Integer,
    /// A decimal (`Decimal`, `Float`).
    Decimal,
    /// A calendar date (`Date`).
    Date,
    /// An instant (`DateTime`).
    Time,
}

impl ValueKind {
    fn of_scalar(name: &str) -> Self {
        match name {
            "Int" => Self::Integer,
            "Float" | "Decimal" => Self::Decimal,
            "Date" => Self::Date,
            "DateTime" => Self::Time,
            _ => Self::Text,
        }
    }

    fn is_number(self) -> bool {
        matches!(self, Self::Integer | Self::Decimal)
    }
}

/// Where an output column's values come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Source {
    /// A field of each row (plain and grouped columns).
    Field {
        /// Index into [`Compiled::paths`].
        path: usize,
    },
    /// An aggregate over the group's rows.
    Aggregate {
        /// The function.
        function: Aggregate,
        /// Index into [`Compiled::paths`] (none: `COUNT` of rows).
        path: Option<usize>,
    },
}

/// One column of the report's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Header text.
    pub label: String,
    /// What its values are.
    pub kind: ValueKind,
    /// Where they come from.
    #[serde(flatten)]
    pub source: Source,
}

/// A validated report query, ready to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    /// The GraphQL query: variables `$first` and `$after` page it; the rest are the
    /// dataset's arguments ([`Compiled::variables`]).
    pub document: String,
    /// The dataset's arguments as variables.
    pub variables: Map<String, Value>,
    /// Path from `data` to the connection, field by field.
    pub connection: Vec<String>,
    /// The distinct field paths read from each row (split at the dots).
    pub paths: Vec<Vec<String>>,
    /// What each of those paths holds.
    pub kinds: Vec<ValueKind>,
    /// The output columns, in order.
    pub outputs: Vec<Output>,
    /// Whether rows are grouped (aggregates present).
    pub grouped: bool,
    /// Most rows read.
    pub limit: u64,
    /// What a download of the report's file re-checks as the downloader: a root selection
    /// of the dataset (its required arguments inlined, one row) and every field the rows
    /// read, so a holder who lost a column's field policy can no longer download it.
    /// `None` when a required argument cannot be written inline.
    pub access_selection: Option<String>,
}

fn invalid(field: &'static str, message: String) -> ApiError {
    ApiError::invalid(field, message)
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Resolves a dotted `path` from the row type `row`: every field but the last an object
/// (not a list), the last a scalar or enum (not a list), none needing an argument. The
/// value kind, or a message naming the offending part.
fn resolve(schema: &SchemaView, row: &str, path: &str) -> Result<ValueKind, String> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() > MAX_PATH {
        return Err(format!("`{path}` is longer than {MAX_PATH} fields"));
    }
    let mut owner = row.to_owned();
    for (i, segment) in segments.iter().enumerate() {
        if !is_name(segment) {
            return Err(format!("`{path}` is not a dotted field path"));
        }
        let field = schema
            .field(&owner, segment)
            .ok_or_else(|| format!("`{owner}` has no field `{segment}` (in `{path}`)"))?;
        if let Some(required) = field.arguments.iter().find(|a| a.required) {
            return Err(format!(
                "`{owner}.{segment}` needs the argument `{}`: it cannot be a column",
                required.name
            ));
        }
        if field.ty.list {
            return Err(format!(
                "`{owner}.{segment}` is a list: a column holds one value per row"
            ));
        }
        let last = i + 1 == segments.len();
        match (schema.kind(&field.ty.named), last) {
            (Some(Kind::Scalar), true) => return Ok(ValueKind::of_scalar(&field.ty.named)),
            (Some(Kind::Enum), true) => return Ok(ValueKind::Text),
            (Some(Kind::Composite), false) => owner = field.ty.named.clone(),
            (Some(Kind::Composite), true) => {
                return Err(format!(
                    "`{path}` ends at the object `{}`: name one of its fields",
                    field.ty.named
                ));
            }
            _ => {
                return Err(format!(
                    "`{owner}.{segment}` is a value: `{path}` cannot go past it"
                ));
            }
        }
    }
    Err(format!("`{path}` is empty"))
}

/// The dataset's row type and connection path, checking each step. The list field must
/// be a connection (`edges { node }`, `pageInfo { hasNextPage endCursor }`) taking
/// `first` and `after`.
struct Dataset {
    row: String,
    connection: Vec<String>,
    page_types: (String, String),
    /// (variable name, declared type, value) per given argument, by step.
    arguments: Vec<Vec<(String, String, String, Value)>>,
}

fn dataset(schema: &SchemaView, steps: &[Step]) -> ApiResult<Dataset> {
    const FIELD: &str = "input.query.dataset";
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(invalid(
            FIELD,
            format!("must name 1 to {MAX_STEPS} fields from `Query` to a list"),
        ));
    }
    let mut owner = "Query".to_owned();
    let mut arguments = Vec::with_capacity(steps.len());
    let mut connection = Vec::with_capacity(steps.len());
    let mut page_types = (String::new(), String::new());
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let field = schema.field(&owner, &step.field).ok_or_else(|| {
            invalid(
                FIELD,
                format!("dataset[{i}]: `{owner}` has no field `{}`", step.field),
            )
        })?;
        let mut given = Vec::new();
        for (name, value) in &step.arguments {
            if last && (name == "first" || name == "after") {
                return Err(invalid(
                    FIELD,
                    format!("dataset[{i}]: `{name}` is set by the report runner (use `limit`)"),
                ));
            }
            let argument = field
                .arguments
                .iter()
                .find(|a| &a.name == name)
                .ok_or_else(|| {
                    invalid(
                        FIELD,
                        format!(
                            "dataset[{i}]: `{owner}.{}` has no argument `{name}`",
                            step.field
                        ),
                    )
                })?;
            given.push((
                format!("d{i}_{name}"),
                argument.ty.clone(),
                name.clone(),
                value.clone(),
            ));
        }
        for argument in field.arguments.iter().filter(|a| a.required) {
            let paged = last && (argument.name == "first" || argument.name == "after");
            if !paged && !step.arguments.contains_key(&argument.name) {
                return Err(invalid(
                    FIELD,
                    format!(
                        "dataset[{i}]: `{owner}.{}` needs the argument `{}`",
                        step.field, argument.name
                    ),
                ));
            }
        }
        if field.ty.list || schema.kind(&field.ty.named) != Some(Kind::Composite) {
            return Err(invalid(
                FIELD,
                format!(
                    "dataset[{i}]: `{owner}.{}` is not an object: a dataset is a paginated list",
                    step.field
                ),
            ));
        }
        if last {
            let connection_type = &field.ty.named;
            let edges = schema.field(connection_type, "edges");
            let node = edges.and_then(|e| schema.field(&e.ty.named, "node"));
            let page_info = schema.field(connection_type, "pageInfo");
            let paged = page_info.is_some_and(|p| {
                schema.field(&p.ty.named, "hasNextPage").is_some()
                    && schema.field(&p.ty.named, "endCursor").is_some()
            });
            let first = field.arguments.iter().find(|a| a.name == "first");
            let after = field.arguments.iter().find(|a| a.name == "after");
            let (Some(node), true, Some(first), Some(after)) = (node, paged, first, after) else {
                return Err(invalid(
                    FIELD,
                    format!(
                        "dataset[{i}]: `{owner}.{}` is not a paginated list (a connection with `first` and `after`)",
                        step.field
                    ),
                ));
            };
            if schema.kind(&node.ty.named) != Some(Kind::Composite) || node.ty.list {
                return Err(invalid(
                    FIELD,
                    format!("dataset[{i}]: its rows are not objects"),
                ));
            }
            page_types = (first.ty.clone(), after.ty.clone());
            owner = node.ty.named.clone();
        } else {
            owner = field.ty.named.clone();
        }
        connection.push(step.field.clone());
        arguments.push(given);
    }
    Ok(Dataset {
        row: owner,
        connection,
        page_types,
        arguments,
    })
}

fn label(given: &Option<String>, default: String) -> ApiResult<String> {
    let label = given.clone().unwrap_or(default);
    let trimmed = label.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_LABEL {
        return Err(invalid(
            "input.query.columns",
            format!("label `{trimmed}` must be 1 to {MAX_LABEL} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks `query` against `schema` and compiles it. `BAD_USER_INPUT` naming the offending
/// part: an unknown field or argument, a path that is a list or an object, an aggregate
/// over something that is not a number (`SUM`, `AVG`) or not ordered (`MIN`, `MAX`),
/// grouping without aggregates, duplicate labels, a limit out of range.
pub fn compile(schema: &SchemaView, query: &ReportQuery) -> ApiResult<Compiled> {
    if query.limit == 0 || query.limit > MAX_LIMIT {
        return Err(invalid(
            "input.query.limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let grouped = !query.aggregates.is_empty();
    if grouped && !query.columns.is_empty() {
        return Err(invalid(
            "input.query.columns",
            "with aggregates the rows are groups: put the columns to group by in `groupBy`".into(),
        ));
    }
    if !grouped && !query.group_by.is_empty() {
        return Err(invalid(
            "input.query.groupBy",
            "needs at least one aggregate".into(),
        ));
    }
    if !grouped && query.columns.is_empty() {
        return Err(invalid(
            "input.query.columns",
            "name at least one column (or aggregates)".into(),
        ));
    }
    let count = query.columns.len() + query.group_by.len() + query.aggregates.len();
    if count > MAX_COLUMNS {
        return Err(invalid(
            "input.query.columns",
            format!("at most {MAX_COLUMNS} columns in all"),
        ));
    }
    let set = dataset(schema, &query.dataset)?;
    let mut paths: Vec<(String, ValueKind)> = Vec::new();
    let mut index_of = |path: &str, kind: ValueKind| match paths.iter().position(|p| p.0 == path) {
        Some(i) => i,
        None => {
            paths.push((path.to_owned(), kind));
            paths.len() - 1
        }
    };
    let mut outputs = Vec::with_capacity(count);
    let plain = query.columns.iter().map(|c| ("input.query.columns", c));
    let groups = query.group_by.iter().map(|c| ("input.query.groupBy", c));
    for (i, (field, column)) in plain.chain(groups).enumerate() {
        let kind = resolve(schema, &set.row, &column.path)
            .map_err(|why| invalid(field, format!("column {i}: {why}")))?;
        outputs.push(Output {
            label: label(&column.label, column.path.clone())?,
            kind,
            source: Source::Field {
                path: index_of(&column.path, kind),
            },
        });
    }
    for (i, aggregate) in query.aggregates.iter().enumerate() {
        const FIELD: &str = "input.query.aggregates";
        let function = aggregate.function;
        let (kind, path) = match (&aggregate.path, function) {
            (None, Aggregate::Count) => (ValueKind::Integer, None),
            (None, _) => {
                return Err(invalid(
                    FIELD,
                    format!("aggregate {i}: {} needs a path", function.name()),
                ));
            }
            (Some(path), _) => {
                let kind = resolve(schema, &set.row, path)
                    .map_err(|why| invalid(FIELD, format!("aggregate {i}: {why}")))?;
                let at = index_of(path, kind);
                let fits = match function {
                    Aggregate::Count => true,
                    Aggregate::Sum | Aggregate::Avg => kind.is_number(),
                    Aggregate::Min | Aggregate::Max => kind != ValueKind::Text,
                };
                if !fits {
                    let wanted = match function {
                        Aggregate::Sum | Aggregate::Avg => "a number",
                        _ => "a number, date or time",
                    };
                    return Err(invalid(
                        FIELD,
                        format!(
                            "aggregate {i}: {} of `{path}` needs {wanted}",
                            function.name()
                        ),
                    ));
                }
                let kind = match function {
                    Aggregate::Count => ValueKind::Integer,
                    Aggregate::Avg => ValueKind::Decimal,
                    _ => kind,
                };
                (kind, Some(at))
            }
        };
        let default = match &aggregate.path {
            Some(path) => format!("{}({path})", function.name()),
            None => "COUNT".to_owned(),
        };
        outputs.push(Output {
            label: label(&aggregate.label, default)?,
            kind,
            source: Source::Aggregate { function, path },
        });
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(duplicate) = outputs.iter().find(|o| !seen.insert(o.label.as_str())) {
        return Err(invalid(
            "input.query.columns",
            format!("two columns are labelled `{}`", duplicate.label),
        ));
    }
    let names: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
    let (document, variables) = document(&set, &names);
    let access_selection = access_selection(&set, &names);
    Ok(Compiled {
        document,
        variables,
        access_selection,
        connection: set.connection,
        kinds: paths.iter().map(|(_, kind)| *kind).collect(),
        paths: paths
            .iter()
            .map(|(p, _)| p.split('.').map(str::to_owned).collect())
            .collect(),
        outputs,
        grouped,
        limit: query.limit,
    })
}

/// A selection tree of field names.
#[derive(Default)]
struct Tree(BTreeMap<String, Tree>);

impl Tree {
    fn insert(&mut self, path: &str) {
        let mut at = self;
        for segment in path.split('.') {
            at = at.0.entry(segment.to_owned()).or_default();
        }
    }

    fn render(&self, out: &mut String) {
        for (name, sub) in &self.0 {
            out.push(' ');
            out.push_str(name);
            if !sub.0.is_empty() {
                out.push_str(" {");
                sub.render(out);
                out.push_str(" }");
            }
        }
    }
}

fn document(set: &Dataset, paths: &[&str]) -> (String, Map<String, Value>) {
    let mut declarations = format!("$first: {}, $after: {}", set.page_types.0, set.page_types.1);
    let mut variables = Map::new();
    for (name, ty, _, value) in set.arguments.iter().flatten() {
        let _ = write!(declarations, ", ${name}: {ty}");
        variables.insert(name.clone(), value.clone());
    }
    let mut tree = Tree::default();
    for path in paths {
        tree.insert(path);
    }
    let mut nodes = String::new();
    tree.render(&mut nodes);
    let mut body = format!("pageInfo {{ hasNextPage endCursor }} edges {{ node {{{nodes} }} }}");
    for (i, step) in set.connection.iter().enumerate().rev() {
        let mut args: Vec<String> = set.arguments[i]
            .iter()
            .map(|(var, _, name, _)| format!("{name}: ${var}"))
            .collect();
        if i + 1 == set.connection.len() {
            args.insert(0, "first: $first, after: $after".to_owned());
        }
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        body = format!("{step}{args} {{ {body} }}");
    }
    (
        format!("query Report({declarations}) {{ {body} }}"),
        variables,
    )
}

/// See [`Compiled::access_selection`].
fn access_selection(set: &Dataset, paths: &[&str]) -> Option<String> {
    const INLINE: [&str; 5] = ["ID", "String", "Int", "Float", "Boolean"];
    let mut tree = Tree::default();
    for path in paths {
        tree.insert(path);
    }
    let mut nodes = String::new();
    tree.render(&mut nodes);
    let mut body = format!("edges {{ node {{{nodes} }} }}");
    for (i, step) in set.connection.iter().enumerate().rev() {
        let mut args = Vec::new();
        for (_, ty, name, value) in set.arguments.get(i).into_iter().flatten() {
            let Some(base) = ty.strip_suffix('!') else {
                continue;
            };
            if !INLINE.contains(&base) {
                return None;
            }
            let literal = match value {
                Value::String(text) => serde_json::to_string(text).ok()?,
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => return None,
            };
            args.push(format!("{name}: {literal}"));
        }
        if i + 1 == set.connection.len() {
            args.insert(0, "first: 1".to_owned());
        }
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        body = format!("{step}{args} {{ {body} }}");
    }
    Some(body)
}

/// The value at `path` in a row (`null` where any field on the way is null or missing).
pub fn value_at<'v>(row: &'v Value, path: &[String]) -> &'v Value {
    let mut at = row;
    for segment in path {
        at = at.get(segment).unwrap_or(&Value::Null);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_recipient_query_leaves_out_the_columns_they_may_not_read() {
        let query: ReportQuery = serde_json::from_value(json!({
            "dataset": [{ "field": "accounts" }],
            "columns": [{ "path": "number" }, { "path": "balance", "label": "Balance" },
                        { "path": "owner.displayName" }],
            "limit": 10
        }))
        .unwrap_or_else(|_| unreachable!());
        let (trimmed, left_out) = query
            .without_fields(&["balance".into()])
            .unwrap_or_else(|| unreachable!());
        assert_eq!(left_out, vec!["Balance".to_string()]);
        let paths: Vec<&str> = trimmed.columns.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["number", "owner.displayName"]);
        // A field inside a path counts; nothing to leave out, or nothing left: no query.
        assert!(query.without_fields(&["displayName".into()]).is_some());
        assert!(query.without_fields(&["name".into()]).is_none());
        let only: ReportQuery = serde_json::from_value(json!({
            "dataset": [{ "field": "accounts" }], "columns": [{ "path": "balance" }], "limit": 1
        }))
        .unwrap_or_else(|_| unreachable!());
        assert!(only.without_fields(&["balance".into()]).is_none());
        let grouped: ReportQuery = serde_json::from_value(json!({
            "dataset": [{ "field": "accounts" }], "groupBy": [{ "path": "balance" }],
            "aggregates": [{ "function": "COUNT" }], "limit": 1
        }))
        .unwrap_or_else(|_| unreachable!());
        assert!(grouped.without_fields(&["balance".into()]).is_none());
    }

    const SDL: &str = r#"
        scalar Decimal
        scalar DateTime
        enum EntryKind { CHARGE PAYMENT }
        input EntryFilter { kinds: [EntryKind!] }
        type Query { account(id: ID!): Account
                     accounts(first: Int, after: String): AccountConnection! }
        type PageInfo { hasNextPage: Boolean! endCursor: String }
        type AccountConnection { edges: [AccountEdge!]! pageInfo: PageInfo! }
        type AccountEdge { cursor: String! node: Account! }
        type EntryConnection { edges: [EntryEdge!]! pageInfo: PageInfo! }
        type EntryEdge { cursor: String! node: Entry! }
        type User { displayName: String! }
        type Account { id: ID! number: String! balance: Decimal! owner: User tags: [String!]!
                       entries(first: Int, after: String, filter: EntryFilter): EntryConnection! }
        type Entry { id: ID! kind: EntryKind! amount: Decimal! postedAt: DateTime! count: Int! }
    "#;

    fn schema() -> SchemaView {
        SchemaView::parse(SDL).unwrap_or_default()
    }

    fn query(value: Value) -> ReportQuery {
        serde_json::from_value(value).unwrap_or_else(|err| panic!("{err}"))
    }

    fn message(err: ApiError) -> String {
        match err {
            ApiError::BadUserInput { message, .. } => message,
            other => format!("not BAD_USER_INPUT: {other:?}"),
        }
    }

    #[test]
    fn a_cross_subgraph_column_compiles_to_one_paged_query() -> ApiResult<()> {
        let compiled = compile(
            &schema(),
            &query(json!({
                "dataset": [{ "field": "accounts" }],
                "columns": [{ "path": "number" }, { "path": "owner.displayName", "label": "Owner" },
                            { "path": "balance" }],
                "limit": 1000
            })),
        )?;
        assert_eq!(
            compiled.document,
            "query Report($first: Int, $after: String) { accounts(first: $first, after: $after) \
             { pageInfo { hasNextPage endCursor } edges { node { balance number owner { displayName } } } } }"
        );
        let labels: Vec<_> = compiled
            .outputs
            .iter()
            .map(|o| (o.label.as_str(), o.kind))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("number", ValueKind::Text),
                ("Owner", ValueKind::Text),
                ("balance", ValueKind::Decimal)
            ]
        );
        let row = json!({ "number": "A-1", "owner": null, "balance": "1.5" });
        assert_eq!(value_at(&row, &compiled.paths[1]), &Value::Null);
        Ok(())
    }

    #[test]
    fn nested_datasets_take_their_arguments_as_typed_variables() -> ApiResult<()> {
        let compiled = compile(
            &schema(),
            &query(json!({
                "dataset": [{ "field": "account", "arguments": { "id": "a1" } },
                            { "field": "entries", "arguments": { "filter": { "kinds": ["CHARGE"] } } }],
                "groupBy": [{ "path": "kind" }],
                "aggregates": [{ "function": "COUNT" }, { "function": "SUM", "path": "amount" },
                               { "function": "MAX", "path": "postedAt" }],
                "limit": 10
            })),
        )?;
        assert_eq!(
            compiled.document,
            "query Report($first: Int, $after: String, $d0_id: ID!, $d1_filter: EntryFilter) { \
             account(id: $d0_id) { entries(first: $first, after: $after, filter: $d1_filter) \
             { pageInfo { hasNextPage endCursor } edges { node { amount kind postedAt } } } } }"
        );
        assert_eq!(compiled.variables["d0_id"], "a1");
        assert_eq!(compiled.connection, vec!["account", "entries"]);
        let kinds: Vec<_> = compiled
            .outputs
            .iter()
            .map(|o| (o.label.as_str(), o.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("kind", ValueKind::Text),
                ("COUNT", ValueKind::Integer),
                ("SUM(amount)", ValueKind::Decimal),
                ("MAX(postedAt)", ValueKind::Time)
            ]
        );
        Ok(())
    }

    #[test]
    fn bad_definitions_name_the_offending_part() {
        let cases = [
            (
                json!({ "dataset": [{ "field": "acounts" }], "columns": [{ "path": "number" }], "limit": 1 }),
                "`Query` has no field `acounts`",
            ),
            (
                json!({ "dataset": [{ "field": "account", "arguments": { "id": "x" } }], "columns": [{ "path": "number" }], "limit": 1 }),
                "is not a paginated list",
            ),
            (
                json!({ "dataset": [{ "field": "account" }, { "field": "entries" }], "columns": [{ "path": "id" }], "limit": 1 }),
                "needs the argument `id`",
            ),
            (
                json!({ "dataset": [{ "field": "accounts", "arguments": { "first": 5 } }], "columns": [{ "path": "number" }], "limit": 1 }),
                "`first` is set by the report runner",
            ),
            (
                json!({ "dataset": [{ "field": "accounts", "arguments": { "colour": 5 } }], "columns": [{ "path": "number" }], "limit": 1 }),
                "has no argument `colour`",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "columns": [{ "path": "owner.name" }], "limit": 1 }),
                "`User` has no field `name` (in `owner.name`)",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "columns": [{ "path": "owner" }], "limit": 1 }),
                "ends at the object `User`",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "columns": [{ "path": "tags" }], "limit": 1 }),
                "is a list",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "columns": [{ "path": "number.x" }], "limit": 1 }),
                "cannot go past it",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "aggregates": [{ "function": "SUM", "path": "number" }], "limit": 1 }),
                "SUM of `number` needs a number",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "aggregates": [{ "function": "MAX", "path": "owner.displayName" }], "limit": 1 }),
                "needs a number, date or time",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "groupBy": [{ "path": "number" }], "columns": [{ "path": "number" }], "limit": 1 }),
                "needs at least one aggregate",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "columns": [{ "path": "number" }, { "path": "balance", "label": "number" }], "limit": 1 }),
                "two columns are labelled `number`",
            ),
            (
                json!({ "dataset": [{ "field": "accounts" }], "columns": [{ "path": "number" }], "limit": 0 }),
                "must be 1 to",
            ),
        ];
        for (definition, expected) in cases {
            let got = compile(&schema(), &query(definition.clone()))
                .map(|_| "compiled".to_owned())
                .unwrap_or_else(message);
            assert!(got.contains(expected), "{definition}: {got}");
        }
    }
}
