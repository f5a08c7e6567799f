//! `Query.previewReport`: a report's first rows, read now through the gateway as the
//! caller, within a time budget — what a report builder shows while a definition is being
//! written. Full runs are jobs (`requestReportRun`).

use std::time::Duration;

use async_graphql::{Context, Enum, ID, SimpleObject};
use serde_json::Value;

use portal_kit::context::{actor, meta};
use portal_kit::gateway_client::LateGateway;
use portal_kit::{ApiError, ApiResult, input};

use super::query_input::ReportQueryGql;
use super::visibility;
use crate::domain::ReportKind;
use crate::domain::query::{Compiled, ReportQuery, ValueKind};
use crate::domain::rows::{Groups, cells};
use crate::engine;

/// Most rows a preview shows.
pub const PREVIEW_ROWS: usize = 100;
/// Most rows a grouped preview reads to make its groups.
const PREVIEW_READ_FOR_GROUPS: u64 = 10_000;
/// How long a preview may read.
const BUDGET: Duration = Duration::from_secs(10);

/// What a column's values are.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ReportValueKind")]
pub enum ValueKindGql {
    /// Text (strings, ids, enums, booleans).
    Text,
    /// A whole number.
    Integer,
    /// A decimal, as an exact string.
    Decimal,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339.
    Time,
}

impl From<ValueKind> for ValueKindGql {
    fn from(kind: ValueKind) -> Self {
        match kind {
            ValueKind::Text => Self::Text,
            ValueKind::Integer => Self::Integer,
            ValueKind::Decimal => Self::Decimal,
            ValueKind::Date => Self::Date,
            ValueKind::Time => Self::Time,
        }
    }
}

/// A column of a preview.
#[derive(SimpleObject)]
pub struct ReportPreviewColumn {
    /// Header.
    pub label: String,
    /// What its values are.
    pub kind: ValueKindGql,
}

/// A report's first rows.
#[derive(SimpleObject)]
pub struct ReportPreview {
    /// The columns, in order.
    pub columns: Vec<ReportPreviewColumn>,
    /// Up to 100 rows, each a value per column as text (null when empty).
    pub rows: Vec<Vec<Option<String>>>,
    /// Whether the report has more than is shown (more rows or groups, or the preview
    /// stopped at its time budget).
    pub truncated: bool,
    /// Why it stopped early, when it did.
    pub note: Option<String>,
}

/// What to preview: a readable definition, or a query being written.
pub async fn preview(
    ctx: &Context<'_>,
    definition_id: Option<ID>,
    query: Option<ReportQueryGql>,
) -> ApiResult<ReportPreview> {
    let gateway = ctx
        .data::<LateGateway>()
        .map_err(|_| ApiError::internal("gateway client missing from schema data"))?;
    let mut previewed = None;
    let compiled = match (definition_id, query) {
        (Some(id), None) => {
            let id = input::id("definitionId", &id)?;
            previewed = Some(id);
            let definition = visibility::load_readable_definition(ctx, id)
                .await?
                .ok_or(ApiError::NotFound("report definition"))?;
            let saved: Option<ReportQuery> = definition
                .query
                .clone()
                .and_then(|q| serde_json::from_value(q).ok());
            engine::compile_now(
                gateway,
                ReportKind::from_db(&definition.kind),
                saved,
                definition.account_id,
                &definition.parameters,
            )
            .await?
        }
        (None, Some(query)) => {
            let query = query.to_domain()?;
            engine::compile_now(gateway, ReportKind::Custom, Some(query), None, &Value::Null)
                .await?
        }
        _ => {
            return Err(ApiError::invalid(
                "definitionId",
                "give either `definitionId` or `query`",
            ));
        }
    };
    let caller = actor(ctx).clone().delegated("reports", "report preview");
    let shown = read(gateway, &caller, meta(ctx), &compiled).await?;
    let details = serde_json::json!({ "rows": shown.rows.len(), "truncated": shown.truncated });
    super::access_log::record(
        ctx,
        "report.preview",
        ("report_definition", previewed),
        details,
    )
    .await?;
    Ok(shown)
}

async fn read(
    gateway: &LateGateway,
    caller: &portal_kit::Actor,
    meta: &portal_kit::RequestMeta,
    compiled: &Compiled,
) -> ApiResult<ReportPreview> {
    let columns = compiled
        .outputs
        .iter()
        .map(|o| ReportPreviewColumn {
            label: o.label.clone(),
            kind: o.kind.into(),
        })
        .collect();
    let text = |row: Vec<portal_kit::export::Cell>| row.iter().map(|c| c.text()).collect();
    let refused = |failure: engine::Failure| match failure.transient {
        true => ApiError::internal(failure.detail),
        false => ApiError::invalid("query", failure.shown.replace("the report's owner", "you")),
    };
    let mut note = None;
    let (rows, truncated) = if compiled.grouped {
        let limit = compiled.limit.min(PREVIEW_READ_FOR_GROUPS);
        let mut groups = Groups::new(compiled);
        let reading = engine::read_rows(gateway, caller, meta, compiled, limit, |row| {
            groups.add(row)
        });
        let read = match tokio::time::timeout(BUDGET, reading).await {
            Ok(read) => Some(read.map_err(refused)?),
            Err(_) => None,
        };
        let more_rows = read.is_none_or(|n| n >= limit && limit < compiled.limit);
        if read.is_none() {
            note = Some(format!(
                "stopped after {} s: run the report for every row",
                BUDGET.as_secs()
            ));
        } else if more_rows {
            note = Some(format!(
                "grouped the first {limit} rows only: run the report for all"
            ));
        }
        let all = groups.finish();
        let more_groups = all.len() > PREVIEW_ROWS;
        let shown = all.into_iter().take(PREVIEW_ROWS).map(text).collect();
        (shown, more_rows || more_groups)
    } else {
        let limit = compiled.limit.min(PREVIEW_ROWS as u64 + 1);
        let mut rows = Vec::new();
        let reading = engine::read_rows(gateway, caller, meta, compiled, limit, |row| {
            rows.push(cells(compiled, row));
            Ok(())
        });
        let finished = tokio::time::timeout(BUDGET, reading).await;
        let stopped = match finished {
            Ok(read) => {
                read.map_err(refused)?;
                false
            }
            Err(_) => true,
        };
        if stopped {
            note = Some(format!(
                "stopped after {} s: run the report for every row",
                BUDGET.as_secs()
            ));
        }
        let more = rows.len() > PREVIEW_ROWS || stopped;
        let shown = rows.into_iter().take(PREVIEW_ROWS).map(text).collect();
        (shown, more)
    };
    Ok(ReportPreview {
        columns,
        rows,
        truncated,
        note,
    })
}
