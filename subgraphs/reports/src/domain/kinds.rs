//! The built-in report kinds as queries: what an account statement, a balance summary or
//! an activity report reads, through the same engine as a custom report.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use portal_kit::{ApiError, ApiResult};

use super::ReportKind;
use super::query::{Aggregate, AggregateSpec, ColumnSpec, ReportQuery, Step};

/// Rows a built-in report reads at most.
pub const BUILT_IN_LIMIT: u64 = 100_000;

fn column(path: &str) -> ColumnSpec {
    ColumnSpec {
        path: path.to_owned(),
        label: None,
    }
}

/// The ledger of `account`, filtered by `parameters.filter` (a `LedgerEntryFilter`) when
/// given, oldest first.
fn ledger(account: Uuid, parameters: &Value) -> Vec<Step> {
    let mut arguments = Map::new();
    arguments.insert("orderBy".into(), json!("POSTED_AT_ASC"));
    if let Some(filter) = parameters.get("filter").filter(|f| f.is_object()) {
        arguments.insert("filter".into(), filter.clone());
    }
    vec![
        Step {
            field: "account".into(),
            arguments: [("id".to_owned(), json!(account.to_string()))]
                .into_iter()
                .collect(),
        },
        Step {
            field: "ledgerEntries".into(),
            arguments,
        },
    ]
}

/// The query a report of `kind` runs: the saved one for `CUSTOM`, else the kind's own.
/// `BAD_USER_INPUT` when a custom report has none or an account report names no account.
pub fn query_of(
    kind: ReportKind,
    saved: Option<ReportQuery>,
    account: Option<Uuid>,
    parameters: &Value,
) -> ApiResult<ReportQuery> {
    let account = || {
        account.ok_or_else(|| {
            ApiError::invalid(
                "input.accountId",
                "this kind of report is about an account: name it",
            )
        })
    };
    Ok(match kind {
        ReportKind::MonthlyStatements | ReportKind::UsageSummary => {
            return Err(ApiError::invalid(
                "definitionId",
                "a monthly document reads no query and has no preview: run it",
            ));
        }
        ReportKind::Custom => saved
            .ok_or_else(|| ApiError::invalid("input.query", "a custom report needs a query"))?,
        ReportKind::AccountStatement => ReportQuery {
            dataset: ledger(account()?, parameters),
            columns: [
                "postedAt",
                "kind",
                "reference",
                "description",
                "amount",
                "currency",
                "balanceAfter",
            ]
            .into_iter()
            .map(column)
            .collect(),
            group_by: Vec::new(),
            aggregates: Vec::new(),
            limit: BUILT_IN_LIMIT,
        },
        ReportKind::BalanceSummary => ReportQuery {
            dataset: vec![Step {
                field: "accounts".into(),
                arguments: Map::new(),
            }],
            columns: [
                "number",
                "name",
                "status",
                "currency",
                "balance",
                "owner.displayName",
            ]
            .into_iter()
            .map(column)
            .collect(),
            group_by: Vec::new(),
            aggregates: Vec::new(),
            limit: BUILT_IN_LIMIT,
        },
        ReportKind::Activity => ReportQuery {
            dataset: ledger(account()?, parameters),
            columns: Vec::new(),
            group_by: vec![column("kind"), column("currency")],
            aggregates: vec![
                AggregateSpec {
                    function: Aggregate::Count,
                    path: None,
                    label: Some("entries".into()),
                },
                AggregateSpec {
                    function: Aggregate::Sum,
                    path: Some("amount".into()),
                    label: Some("total".into()),
                },
            ],
            limit: BUILT_IN_LIMIT,
        },
    })
}
