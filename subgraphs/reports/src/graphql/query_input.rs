//! The wire form of a report's query (`ReportQueryInput`, `ReportQuery`) and its check at
//! save: compiled against the supergraph the gateway serves, then read once (one row) as
//! the caller, so a definition naming fields its owner may not read is refused now rather
//! than failing at its first run.

use async_graphql::{Context, Enum, InputObject, Json, SimpleObject};
use serde_json::{Map, Value};
use uuid::Uuid;

use portal_kit::context::{actor, meta};
use portal_kit::gateway_client::LateGateway;
use portal_kit::{ApiError, ApiResult};

use crate::domain::ReportKind;
use crate::domain::query::{Aggregate, AggregateSpec, ColumnSpec, ReportQuery, Step};
use crate::engine;

/// An aggregate function.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ReportAggregateFunction")]
pub enum AggregateFunction {
    /// Rows (without a path), or rows where the path has a value.
    Count,
    /// Sum of a number (exact).
    Sum,
    /// Mean of a number (10 decimal places).
    Avg,
    /// Least number, date or time.
    Min,
    /// Greatest number, date or time.
    Max,
}

impl From<AggregateFunction> for Aggregate {
    fn from(function: AggregateFunction) -> Self {
        match function {
            AggregateFunction::Count => Self::Count,
            AggregateFunction::Sum => Self::Sum,
            AggregateFunction::Avg => Self::Avg,
            AggregateFunction::Min => Self::Min,
            AggregateFunction::Max => Self::Max,
        }
    }
}

impl From<Aggregate> for AggregateFunction {
    fn from(function: Aggregate) -> Self {
        match function {
            Aggregate::Count => Self::Count,
            Aggregate::Sum => Self::Sum,
            Aggregate::Avg => Self::Avg,
            Aggregate::Min => Self::Min,
            Aggregate::Max => Self::Max,
        }
    }
}

/// One field on the way from `Query` to the report's list, with its arguments.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "ReportDatasetStepInput", name = "ReportDatasetStep")]
pub struct DatasetStep {
    /// The field (`accounts`, `account`, `ledgerEntries`, …).
    pub field: String,
    /// Its arguments as a JSON object (the list's filters and `orderBy` among them;
    /// `first` and `after` are the runner's).
    pub arguments: Option<Json<Map<String, Value>>>,
}

/// One column: a field path from each row, and its header.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "ReportColumnInput", name = "ReportColumn")]
pub struct ReportColumn {
    /// Dotted field path from the row, possibly across subgraphs (`owner.displayName`).
    pub path: String,
    /// Header (the path when omitted).
    pub label: Option<String>,
}

/// One aggregate column.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "ReportAggregateInput", name = "ReportAggregate")]
pub struct ReportAggregate {
    /// What it computes.
    pub function: AggregateFunction,
    /// Over which field (none: `COUNT` of rows).
    pub path: Option<String>,
    /// Header (`SUM(amount)` when omitted).
    pub label: Option<String>,
}

/// What a report reads.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "ReportQueryInput", name = "ReportQuery")]
pub struct ReportQueryGql {
    /// From `Query` to a paginated list field (a connection), e.g.
    /// `[{ field: "accounts" }]` or `[{ field: "account", arguments: { id: … } },
    /// { field: "ledgerEntries", arguments: { filter: … } }]`.
    pub dataset: Vec<DatasetStep>,
    /// The columns of each row (without aggregates).
    #[graphql(default)]
    pub columns: Vec<ReportColumn>,
    /// The columns rows are grouped by (with aggregates).
    #[graphql(default)]
    pub group_by: Vec<ReportColumn>,
    /// Aggregates per group (or over all rows without `groupBy`).
    #[graphql(default)]
    pub aggregates: Vec<ReportAggregate>,
    /// Most rows read from the list (1 to 1 000 000).
    pub limit: i32,
}

impl ReportQueryGql {
    /// The domain form.
    pub fn to_domain(&self) -> ApiResult<ReportQuery> {
        let column = |c: &ReportColumn| ColumnSpec {
            path: c.path.clone(),
            label: c.label.clone(),
        };
        Ok(ReportQuery {
            dataset: self
                .dataset
                .iter()
                .map(|step| Step {
                    field: step.field.clone(),
                    arguments: step.arguments.clone().map(|a| a.0).unwrap_or_default(),
                })
                .collect(),
            columns: self.columns.iter().map(column).collect(),
            group_by: self.group_by.iter().map(column).collect(),
            aggregates: self
                .aggregates
                .iter()
                .map(|a| AggregateSpec {
                    function: a.function.into(),
                    path: a.path.clone(),
                    label: a.label.clone(),
                })
                .collect(),
            limit: u64::try_from(self.limit)
                .map_err(|_| ApiError::invalid("input.query.limit", "must be 1 to 1000000"))?,
        })
    }

    /// The wire form of a saved query.
    pub fn of(query: &ReportQuery) -> Self {
        let column = |c: &ColumnSpec| ReportColumn {
            path: c.path.clone(),
            label: c.label.clone(),
        };
        Self {
            dataset: query
                .dataset
                .iter()
                .map(|step| DatasetStep {
                    field: step.field.clone(),
                    arguments: Some(Json(step.arguments.clone())),
                })
                .collect(),
            columns: query.columns.iter().map(column).collect(),
            group_by: query.group_by.iter().map(column).collect(),
            aggregates: query
                .aggregates
                .iter()
                .map(|a| ReportAggregate {
                    function: a.function.into(),
                    path: a.path.clone(),
                    label: a.label.clone(),
                })
                .collect(),
            limit: i32::try_from(query.limit).unwrap_or(i32::MAX),
        }
    }
}

/// Checks what a definition of `kind` will read: its query compiled against the supergraph
/// (`BAD_USER_INPUT` naming the offending part), then one row read as the caller
/// (`BAD_USER_INPUT` naming the fields the caller may not read). The query to save (custom
/// reports only) as JSON.
pub async fn check(
    ctx: &Context<'_>,
    kind: ReportKind,
    query: Option<ReportQuery>,
    account: Option<Uuid>,
    parameters: &Value,
) -> ApiResult<Option<Value>> {
    if kind.is_monthly() {
        // Monthly documents read what they read (see `monthly`): nothing to check.
        return Ok(None);
    }
    let gateway = ctx
        .data::<LateGateway>()
        .map_err(|_| ApiError::internal("gateway client missing from schema data"))?;
    let saved = query
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|err| ApiError::internal(format!("saving a report query: {err}")))?;
    let compiled = engine::compile_now(gateway, kind, query, account, parameters).await?;
    let caller = actor(ctx)
        .clone()
        .delegated("reports", "checking a report definition");
    engine::read_rows(gateway, &caller, meta(ctx), &compiled, 1, |_| Ok(()))
        .await
        .map_err(|failure| failure.for_caller("input.query"))?;
    Ok(saved)
}
