//! From the rows the gateway returns to the report's output: typed cells, and groups
//! with exact aggregates (decimals never go through floating point).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::Decimal;
use serde_json::Value;

use portal_kit::export::Cell;
use portal_kit::{ApiError, ApiResult};

use super::query::{Aggregate, Compiled, Source, ValueKind, value_at};

/// Most groups a grouped report may have (each is held until the end).
pub const MAX_GROUPS: usize = 100_000;

/// Decimal places of an average.
const AVG_PLACES: u32 = 10;

/// A value as `kind`, for output and comparison; text when it does not parse as one.
fn typed(kind: ValueKind, value: &Value) -> Key {
    let text = || match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (kind, value) {
        (_, Value::Null) => Key::Null,
        (ValueKind::Integer | ValueKind::Decimal, Value::Number(n)) => {
            Decimal::from_str(&n.to_string()).map_or_else(|_| Key::Text(text()), Key::Number)
        }
        (ValueKind::Integer | ValueKind::Decimal, Value::String(s)) => {
            Decimal::from_str(s).map_or_else(|_| Key::Text(text()), Key::Number)
        }
        (ValueKind::Time, Value::String(s)) => {
            DateTime::parse_from_rfc3339(s).map_or_else(|_| Key::Text(text()), Key::Time)
        }
        (ValueKind::Date, Value::String(s)) => {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_or_else(|_| Key::Text(text()), Key::Date)
        }
        _ => Key::Text(text()),
    }
}

/// A typed value: what groups are keyed and ordered by, and what `MIN`/`MAX` compare.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Null,
    Number(Decimal),
    Date(NaiveDate),
    Time(DateTime<FixedOffset>),
    Text(String),
}

impl Key {
    fn cell(self, kind: ValueKind) -> Cell {
        match self {
            Self::Null => Cell::Empty,
            Self::Number(n) if kind == ValueKind::Integer => {
                i64::try_from(n).map_or(Cell::Decimal(n), Cell::Integer)
            }
            Self::Number(n) => Cell::Decimal(n.normalize()),
            Self::Date(d) => Cell::Date(d),
            Self::Time(t) => Cell::Time(t),
            Self::Text(t) => Cell::Text(t),
        }
    }
}

/// The output cells of one ungrouped row.
pub fn cells(compiled: &Compiled, row: &Value) -> Vec<Cell> {
    compiled
        .outputs
        .iter()
        .map(|output| match output.source {
            Source::Field { path } => {
                typed(output.kind, value_at(row, &compiled.paths[path])).cell(output.kind)
            }
            // Ungrouped reports have no aggregates.
            Source::Aggregate { .. } => Cell::Empty,
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Accumulator {
    Count(i64),
    Sum(Option<Decimal>),
    Avg(Decimal, i64),
    Min(Option<Key>),
    Max(Option<Key>),
}

impl Accumulator {
    fn new(function: Aggregate) -> Self {
        match function {
            Aggregate::Count => Self::Count(0),
            Aggregate::Sum => Self::Sum(None),
            Aggregate::Avg => Self::Avg(Decimal::ZERO, 0),
            Aggregate::Min => Self::Min(None),
            Aggregate::Max => Self::Max(None),
        }
    }

    fn add(&mut self, value: Option<Key>) -> ApiResult<()> {
        let overflow = || ApiError::invalid("input.query.aggregates", "a sum is too large");
        match (self, value) {
            (Self::Count(_), Some(Key::Null)) => {}
            (Self::Count(n), _) => *n += 1,
            (Self::Sum(total), Some(Key::Number(x))) => {
                *total = Some(
                    total
                        .unwrap_or_default()
                        .checked_add(x)
                        .ok_or_else(overflow)?,
                );
            }
            (Self::Avg(total, n), Some(Key::Number(x))) => {
                *total = total.checked_add(x).ok_or_else(overflow)?;
                *n += 1;
            }
            (Self::Min(least), Some(key))
                if key != Key::Null && least.as_ref().is_none_or(|l| key < *l) =>
            {
                *least = Some(key);
            }
            (Self::Max(most), Some(key))
                if key != Key::Null && most.as_ref().is_none_or(|m| key > *m) =>
            {
                *most = Some(key);
            }
            _ => {}
        }
        Ok(())
    }

    fn cell(self, kind: ValueKind) -> Cell {
        match self {
            Self::Count(n) => Cell::Integer(n),
            Self::Sum(total) => total.map_or(Cell::Empty, |t| Key::Number(t).cell(kind)),
            Self::Avg(_, 0) => Cell::Empty,
            Self::Avg(total, n) => {
                Cell::Decimal((total / Decimal::from(n)).round_dp(AVG_PLACES).normalize())
            }
            Self::Min(key) | Self::Max(key) => key.map_or(Cell::Empty, |k| k.cell(kind)),
        }
    }
}

/// Rows folded into groups (keyed by the `groupBy` values, in their order).
pub struct Groups<'c> {
    compiled: &'c Compiled,
    groups: BTreeMap<Vec<Key>, Vec<Accumulator>>,
}

impl<'c> Groups<'c> {
    /// No rows yet.
    pub fn new(compiled: &'c Compiled) -> Self {
        Self {
            compiled,
            groups: BTreeMap::new(),
        }
    }

    /// Adds a row. `BAD_USER_INPUT` past [`MAX_GROUPS`] groups or when a sum overflows.
    pub fn add(&mut self, row: &Value) -> ApiResult<()> {
        let compiled = self.compiled;
        let mut key = Vec::new();
        let mut functions = Vec::new();
        for output in &compiled.outputs {
            match output.source {
                Source::Field { path } => {
                    key.push(typed(output.kind, value_at(row, &compiled.paths[path])));
                }
                Source::Aggregate { function, path } => functions.push((function, path)),
            }
        }
        let full = self.groups.len() >= MAX_GROUPS;
        let accumulators = match self.groups.get_mut(&key) {
            Some(found) => found,
            None if full => {
                return Err(ApiError::invalid(
                    "input.query.groupBy",
                    format!("more than {MAX_GROUPS} groups: group by fewer or coarser fields"),
                ));
            }
            None => self.groups.entry(key).or_insert_with(|| {
                functions
                    .iter()
                    .map(|(function, _)| Accumulator::new(*function))
                    .collect()
            }),
        };
        for (accumulator, (_, path)) in accumulators.iter_mut().zip(&functions) {
            let path = *path;
            let value = path.map(|p| typed(compiled.kinds[p], value_at(row, &compiled.paths[p])));
            accumulator.add(value)?;
        }
        Ok(())
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The output rows, ordered by the group values. Without `groupBy` one row over all
    /// rows, even when there were none (a count of 0).
    pub fn finish(mut self) -> Vec<Vec<Cell>> {
        let compiled = self.compiled;
        if self.groups.is_empty()
            && !compiled
                .outputs
                .iter()
                .any(|o| matches!(o.source, Source::Field { .. }))
        {
            self.groups.insert(
                Vec::new(),
                compiled
                    .outputs
                    .iter()
                    .filter_map(|o| match o.source {
                        Source::Aggregate { function, .. } => Some(Accumulator::new(function)),
                        Source::Field { .. } => None,
                    })
                    .collect(),
            );
        }
        self.groups
            .into_iter()
            .map(|(key, accumulators)| {
                let mut keys = key.into_iter();
                let mut accumulators = accumulators.into_iter();
                compiled
                    .outputs
                    .iter()
                    .map(|output| match output.source {
                        Source::Field { .. } => {
                            keys.next().map_or(Cell::Empty, |k| k.cell(output.kind))
                        }
                        Source::Aggregate { .. } => accumulators
                            .next()
                            .map_or(Cell::Empty, |a| a.cell(output.kind)),
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::query::{ReportQuery, compile};
    use super::super::schema::SchemaView;
    use super::*;
    use serde_json::json;

    const SDL: &str = r#"
        scalar Decimal
        scalar DateTime
        type Query { entries(first: Int, after: String): EntryConnection! }
        type PageInfo { hasNextPage: Boolean! endCursor: String }
        type EntryConnection { edges: [EntryEdge!]! pageInfo: PageInfo! }
        type EntryEdge { node: Entry! }
        type Entry { currency: String! amount: Decimal! lines: Int! postedAt: DateTime! }
    "#;

    fn compiled(query: Value) -> Compiled {
        let schema = SchemaView::parse(SDL).unwrap_or_default();
        let query: ReportQuery = serde_json::from_value(query).unwrap_or_else(|e| panic!("{e}"));
        compile(&schema, &query).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn groups_sum_exactly_and_order_by_their_keys() -> ApiResult<()> {
        let compiled = compiled(json!({
            "dataset": [{ "field": "entries" }],
            "groupBy": [{ "path": "currency" }],
            "aggregates": [{ "function": "COUNT" }, { "function": "SUM", "path": "amount" },
                           { "function": "AVG", "path": "lines" }, { "function": "MIN", "path": "postedAt" },
                           { "function": "SUM", "path": "lines" }],
            "limit": 100
        }));
        let mut groups = Groups::new(&compiled);
        for (currency, amount, lines, at) in [
            ("USD", "0.1", 1, "2026-01-02T00:00:00Z"),
            ("EUR", "5", 2, "2026-01-01T00:00:00+01:00"),
            ("USD", "0.2", 2, "2026-01-01T00:00:00Z"),
        ] {
            groups.add(
                &json!({ "currency": currency, "amount": amount, "lines": lines, "postedAt": at }),
            )?;
        }
        let rows = groups.finish();
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(Cell::Time)
                .unwrap_or(Cell::Empty)
        };
        assert_eq!(
            rows,
            vec![
                vec![
                    Cell::Text("EUR".into()),
                    Cell::Integer(1),
                    Cell::Decimal(Decimal::new(5, 0)),
                    Cell::Decimal(Decimal::new(2, 0)),
                    at("2026-01-01T00:00:00+01:00"),
                    Cell::Integer(2)
                ],
                vec![
                    Cell::Text("USD".into()),
                    Cell::Integer(2),
                    Cell::Decimal(Decimal::new(3, 1)),
                    Cell::Decimal(Decimal::new(15, 1)),
                    at("2026-01-01T00:00:00Z"),
                    Cell::Integer(3)
                ],
            ]
        );
        Ok(())
    }

    #[test]
    fn totals_without_groups_are_one_row_even_over_no_rows() {
        let compiled = compiled(json!({
            "dataset": [{ "field": "entries" }],
            "aggregates": [{ "function": "COUNT" }, { "function": "SUM", "path": "amount" }],
            "limit": 100
        }));
        assert_eq!(
            Groups::new(&compiled).finish(),
            vec![vec![Cell::Integer(0), Cell::Empty]]
        );
    }

    #[test]
    fn plain_rows_become_typed_cells() {
        let compiled = compiled(json!({
            "dataset": [{ "field": "entries" }],
            "columns": [{ "path": "amount" }, { "path": "lines" }, { "path": "postedAt" }],
            "limit": 100
        }));
        let row = json!({ "amount": "12.50", "lines": 3, "postedAt": null });
        assert_eq!(
            cells(&compiled, &row),
            vec![
                Cell::Decimal(Decimal::new(125, 1)),
                Cell::Integer(3),
                Cell::Empty
            ]
        );
    }
}
