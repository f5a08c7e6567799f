//! Account data exports: the export rows, the rows they read (paged by keyset, so an
//! export of any length holds one page in memory; a dashboard KPI's few totals over the
//! requester's accounts), and the file they produce.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::accounts::{account, account_export, invoice, ledger_entry};
use portal_entities::platform::file;
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::export::{Cell, Format, TableWriter};
use portal_kit::input;
use portal_kit::jobs::{self, NewJob};
use portal_kit::pagination::sorted::{SortKind, SortValue, SortedPageRequest};
use portal_kit::storage::{FileStore, object_key};
use portal_kit::store::one_or_not_found;
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::export::{
    Dataset, ExportStatus, JOB_ATTEMPTS, JOB_KIND, Kpi, MAX_PENDING, SeriesRequest, file_name,
};
use crate::domain::ledger::{EntrySort, InvoiceSort, InvoiceStatus, order};
use crate::domain::series::{Bucket, buckets, this_and_last_month};
use crate::domain::{Viewer, amount_from_e4};

/// Rows read from the database per page while writing an export.
const PAGE: u64 = 1_000;

/// An export still waiting after this long was interrupted (its process stopped).
const STALE_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// The owner type of export files: downloads are re-checked through `Query.accountExport`.
pub const FILE_OWNER: &str = "AccountExport";

/// One export of the tenant.
pub async fn export_in(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<account_export::Model> {
    let scoped = account_export::Entity::find_by_id(id)
        .filter(account_export::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "export").await
}

/// The exports `user` asked for of `account_id`, newest first, at most `limit`.
pub async fn exports_of(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_id: Uuid,
    user: Uuid,
    limit: u64,
) -> ApiResult<Vec<account_export::Model>> {
    account_export::Entity::find()
        .filter(account_export::Column::TenantId.eq(tenant_id))
        .filter(account_export::Column::AccountId.eq(account_id))
        .filter(account_export::Column::RequestedBy.eq(user))
        .order_by_desc(account_export::Column::CreatedAt)
        .order_by_desc(account_export::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// The file of an export, unless it has expired at `now`.
pub async fn file_of(
    db: &impl ConnectionTrait,
    export: &account_export::Model,
    now: DateTime<Utc>,
) -> ApiResult<Option<file::Model>> {
    match export.file_id {
        Some(id) => portal_kit::storage::find(db, export.tenant_id, id, now).await,
        None => Ok(None),
    }
}

/// How many rows `dataset` of `account` has, counting no further than `cap`.
pub async fn count_up_to(
    db: &DatabaseConnection,
    account: &account::Model,
    dataset: &Dataset,
    cap: u64,
) -> ApiResult<u64> {
    let today = Utc::now().date_naive();
    let (tenant, id) = (account.tenant_id, account.id);
    let count = |latest: &Option<u64>| latest.map_or(cap, |n| n.min(cap));
    let found = match dataset {
        Dataset::LedgerEntries { filter, latest } => {
            super::ledger::entries_matching(tenant, id, filter)
                .limit(count(latest))
                .count(db)
                .await
        }
        Dataset::Invoices { filter, latest } => {
            super::ledger::invoices_matching(tenant, id, filter, today)
                .limit(count(latest))
                .count(db)
                .await
        }
        // Series: at most 1 000 buckets (checked when the buckets are cut).
        _ => return Ok(0),
    };
    found.map_err(ApiError::from_db)
}

/// Records a requested export of `account` (none: a dashboard KPI) by `actor` — `RUNNING` when the request
/// writes it now, else `QUEUED` with its job enqueued in the same transaction — and
/// audits the request (`account.export.request`). `CONFLICT` when the user already has
/// [`MAX_PENDING`] exports waiting.
pub async fn request(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    account: Option<&account::Model>,
    dataset: &Dataset,
    format: Format,
    in_request: bool,
) -> ApiResult<account_export::Model> {
    let (tenant_id, user) = (actor.tenant()?, actor.principal()?);
    let parameters = serde_json::to_value(dataset)
        .map_err(|err| ApiError::internal(format!("export parameters: {err}")))?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let now = Utc::now();
    // An export whose process stopped mid-way never finishes: after a while it fails, so
    // it neither counts as waiting nor reads as running for ever.
    account_export::Entity::update_many()
        .col_expr(account_export::Column::Status, Expr::value("FAILED"))
        .col_expr(
            account_export::Column::Error,
            Expr::value("interrupted before it was ready: ask again"),
        )
        .col_expr(account_export::Column::FinishedAt, Expr::value(now))
        .filter(account_export::Column::TenantId.eq(tenant_id))
        .filter(account_export::Column::RequestedBy.eq(user))
        .filter(account_export::Column::Status.is_in(["QUEUED", "RUNNING"]))
        .filter(account_export::Column::CreatedAt.lt(now - STALE_AFTER))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let waiting = account_export::Entity::find()
        .filter(account_export::Column::TenantId.eq(tenant_id))
        .filter(account_export::Column::RequestedBy.eq(user))
        .filter(account_export::Column::Status.is_in(["QUEUED", "RUNNING"]))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if waiting >= MAX_PENDING {
        return Err(ApiError::Conflict(format!(
            "{MAX_PENDING} exports are already waiting: try again when one is ready"
        )));
    }
    let status = if in_request {
        ExportStatus::Running
    } else {
        ExportStatus::Queued
    };
    let row = account_export::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        account_id: Set(account.map(|a| a.id)),
        requested_by: Set(user),
        dataset: Set(dataset.name().to_owned()),
        format: Set(format.as_str().to_owned()),
        parameters: Set(parameters),
        status: Set(status.as_str().to_owned()),
        row_count: Set(None),
        file_id: Set(None),
        error: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    if !in_request {
        let job = NewJob::new(JOB_KIND, json!({ "exportId": row.id }))
            .acting_for(actor)
            .max_attempts(JOB_ATTEMPTS);
        jobs::enqueue(&txn, now, job).await?;
    }
    AuditEvent::success("account.export.request", "account_export", row.id)
        .with_details(json!({
            "accountId": row.account_id,
            "dataset": row.dataset,
            "format": row.format,
            "inRequest": in_request,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(row)
}

/// Marks a queued export `RUNNING` (a job picked it up); `false` when it is no longer
/// waiting (done or failed by an earlier run).
pub async fn start(db: &DatabaseConnection, export: &account_export::Model) -> ApiResult<bool> {
    let updated = account_export::Entity::update_many()
        .col_expr(account_export::Column::Status, Expr::value("RUNNING"))
        .filter(account_export::Column::Id.eq(export.id))
        .filter(account_export::Column::Status.is_in(["QUEUED", "RUNNING"]))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(updated.rows_affected == 1)
}

/// Writes the export's file (rows paged from the database into a scratch file, then
/// uploaded in parts), records it (`files` row: name, type, size, SHA-256, row count,
/// expiry) and marks the export `READY`, audited as `account.export.complete` for
/// `actor`. `account` is the exported account, none for a dashboard KPI (which covers
/// the accounts `actor` sees).
pub async fn produce(
    db: &DatabaseConnection,
    files: &FileStore,
    actor: &Actor,
    meta: &RequestMeta,
    export: &account_export::Model,
    account: Option<&account::Model>,
) -> ApiResult<account_export::Model> {
    let dataset: Dataset = serde_json::from_value(export.parameters.clone())
        .map_err(|err| ApiError::internal(format!("stored export parameters: {err}")))?;
    let format = Format::from_db(&export.format)
        .ok_or_else(|| ApiError::internal("stored export format"))?;
    let scratch = files.scratch(format.extension());
    let mut table = TableWriter::create(format, scratch.path(), dataset.columns())
        .map_err(|err| ApiError::internal(format!("starting an export file: {err}")))?;
    match (&dataset, account) {
        (Dataset::Kpi { kpi, time_zone }, None) => {
            let (tenant, viewer) = (export.tenant_id, Viewer::of(actor));
            write_kpi(db, tenant, viewer, *kpi, time_zone, &mut table).await?;
        }
        (_, Some(account)) if dataset.is_of_account() => {
            write_rows(db, account, &dataset, &mut table).await?;
        }
        _ => {
            return Err(ApiError::internal(
                "an export's dataset does not fit its scope",
            ));
        }
    }
    let rows = tokio::task::spawn_blocking(move || table.finish())
        .await
        .map_err(|err| ApiError::internal(format!("finishing an export file: {err}")))?
        .map_err(|err| ApiError::internal(format!("finishing an export file: {err}")))?;
    let file_id = Uuid::now_v7();
    let stored = files
        .put(
            &object_key("accounts", export.tenant_id, file_id),
            scratch.path(),
        )
        .await?;
    drop(scratch);
    let now = Utc::now();
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    let number = account.map(|a| a.number.as_str());
    let name = file_name(number, &dataset, format.extension(), now);
    match record_ready(
        db, files, actor, meta, export, &dataset, format, &stored, file_id, rows, name,
    )
    .await
    {
        Ok(Some(ready)) => Ok(ready),
        outcome => {
            // Not recorded (another run finished it, or the database failed): the object
            // would have no row, so nothing would ever delete it.
            files.remove(&stored.key).await.ok();
            match outcome {
                Err(err) => Err(err),
                _ => export_in(db, export.tenant_id, export.id).await,
            }
        }
    }
}

/// Records the stored file and marks the export `READY` — only if it is still `RUNNING`
/// (`None` otherwise: a concurrent run or the stale sweep decided first).
#[allow(clippy::too_many_arguments)]
async fn record_ready(
    db: &DatabaseConnection,
    files: &FileStore,
    actor: &Actor,
    meta: &RequestMeta,
    export: &account_export::Model,
    dataset: &Dataset,
    format: Format,
    stored: &portal_kit::storage::Stored,
    file_id: Uuid,
    rows: i64,
    name: String,
) -> ApiResult<Option<account_export::Model>> {
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let claimed = account_export::Entity::update_many()
        .col_expr(account_export::Column::Status, Expr::value("READY"))
        .col_expr(account_export::Column::RowCount, Expr::value(rows))
        .col_expr(account_export::Column::FileId, Expr::value(file_id))
        .col_expr(account_export::Column::FinishedAt, Expr::value(now))
        .filter(account_export::Column::Id.eq(export.id))
        .filter(account_export::Column::Status.eq("RUNNING"))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if claimed.rows_affected != 1 {
        return Ok(None);
    }
    file::ActiveModel {
        id: Set(file_id),
        tenant_id: Set(export.tenant_id),
        domain: Set("accounts".to_owned()),
        owner_type: Set(FILE_OWNER.to_owned()),
        owner_id: Set(export.id),
        name: Set(name),
        content_type: Set(format.content_type().to_owned()),
        size_bytes: Set(stored.size),
        sha256: Set(stored.sha256.clone()),
        row_count: Set(Some(rows)),
        storage_key: Set(stored.key.clone()),
        access_selection: Set(Some(dataset.access_selection())),
        created_by: Set(Some(export.requested_by)),
        created_at: Set(now),
        expires_at: Set(Some(now + files.retention())),
        key_version: Set(None),
        name_sealed: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("account.export.complete", "account_export", export.id)
        .with_details(json!({
            "accountId": export.account_id,
            "fileId": file_id,
            "rows": rows,
            "bytes": stored.size,
            "sha256": stored.sha256,
        }))
        .record(&txn, actor, meta)
        .await?;
    let ready = export_in(&txn, export.tenant_id, export.id).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(Some(ready))
}

/// Marks the export `FAILED` with `reason` (shown to its requester), audited as
/// `account.export.fail` — unless it is no longer waiting.
pub async fn fail(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    export: &account_export::Model,
    reason: &str,
) -> ApiResult<()> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let failed = account_export::Entity::update_many()
        .col_expr(account_export::Column::Status, Expr::value("FAILED"))
        .col_expr(account_export::Column::Error, Expr::value(reason))
        .col_expr(account_export::Column::FinishedAt, Expr::value(Utc::now()))
        .filter(account_export::Column::Id.eq(export.id))
        .filter(account_export::Column::Status.is_in(["QUEUED", "RUNNING"]))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if failed.rows_affected != 1 {
        // Finished (or failed) already: nothing to record.
        return Ok(());
    }
    AuditEvent::success("account.export.fail", "account_export", export.id)
        .with_details(json!({ "accountId": export.account_id, "reason": reason }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

fn write(table: &mut TableWriter, cells: &[Cell]) -> ApiResult<()> {
    table
        .row(cells)
        .map_err(|err| ApiError::internal(format!("writing an export row: {err}")))
}

/// Writes a dashboard KPI over the accounts `viewer` sees into `table`: one row per
/// currency (balances, invoices) or metric (usage, this month and the last in
/// `time_zone`) — the totals `dashboard` shows.
async fn write_kpi(
    db: &DatabaseConnection,
    tenant: Uuid,
    viewer: Viewer,
    kpi: Kpi,
    time_zone: &str,
    table: &mut TableWriter,
) -> ApiResult<()> {
    use super::dashboard as kpis;
    let totals = match kpi {
        Kpi::Balances => kpis::balances(db, tenant, viewer).await?,
        Kpi::OpenInvoices | Kpi::OverdueInvoices => {
            let (today, overdue) = (Utc::now().date_naive(), kpi == Kpi::OverdueInvoices);
            kpis::open_invoices(db, tenant, viewer, today, overdue).await?
        }
        Kpi::Usage => {
            let zone = input::zone("input.timeZone", time_zone)?;
            let (current, previous) = this_and_last_month(Utc::now(), zone);
            let start = |bucket: Bucket| Cell::Time(bucket.0.with_timezone(&zone).fixed_offset());
            let compared = kpis::usage_compared(db, tenant, viewer, current, previous).await?;
            for (metric, now, before) in compared {
                let cells = [
                    Cell::Text(metric),
                    start(current),
                    Cell::Decimal(amount_from_e4(now)),
                    start(previous),
                    Cell::Decimal(amount_from_e4(before)),
                ];
                write(table, &cells)?;
            }
            return Ok(());
        }
    };
    for total in totals {
        let cells = [
            Cell::Text(total.currency),
            Cell::Decimal(amount_from_e4(total.amount_e4)),
            Cell::Integer(total.count),
        ];
        write(table, &cells)?;
    }
    Ok(())
}

/// Writes every row of `dataset` of `account` into `table`.
async fn write_rows(
    db: &DatabaseConnection,
    account: &account::Model,
    dataset: &Dataset,
    table: &mut TableWriter,
) -> ApiResult<()> {
    let (tenant, id) = (account.tenant_id, account.id);
    match dataset {
        Dataset::LedgerEntries { filter, latest } => {
            let mut page = keyset(*latest, ("POSTED_AT_ASC", "POSTED_AT_DESC"));
            loop {
                let rows =
                    super::ledger::entries_page(db, tenant, id, filter, EntrySort::PostedAt, &page)
                        .await?;
                for (_, row) in &rows.items {
                    write(table, &ledger_cells(row))?;
                }
                match rows.items.last() {
                    Some((_, last)) if rows.has_next_page && latest.is_none() => {
                        page.after = Some((SortValue::Time(last.posted_at), last.id));
                    }
                    _ => break,
                }
            }
        }
        Dataset::Invoices { filter, latest } => {
            let today = Utc::now().date_naive();
            let mut page = keyset(*latest, ("ISSUED_AT_ASC", "ISSUED_AT_DESC"));
            loop {
                let rows = super::ledger::invoices_page(
                    db,
                    tenant,
                    id,
                    filter,
                    today,
                    InvoiceSort::IssuedAt,
                    &page,
                )
                .await?;
                for (_, row) in &rows.items {
                    write(table, &invoice_cells(row, today))?;
                }
                match rows.items.last() {
                    Some((_, last)) if rows.has_next_page && latest.is_none() => {
                        page.after = Some((SortValue::Time(last.issued_at), last.id));
                    }
                    _ => break,
                }
            }
        }
        Dataset::Balance => {
            let now = Utc::now();
            write(
                table,
                &[
                    Cell::Text(account.number.clone()),
                    Cell::Time(now.fixed_offset()),
                    Cell::Decimal(amount_from_e4(account.balance_e4)),
                    Cell::Text(account.currency.clone()),
                ],
            )?;
        }
        Dataset::BalanceHistory(series) => {
            let (cut, zone) = cut(series)?;
            let values = super::series::balance_per_bucket(db, tenant, id, &cut).await?;
            for ((start, end), value) in cut.into_iter().zip(values) {
                write(
                    table,
                    &series_cells(start, end, zone, Cell::Decimal(amount_from_e4(value))),
                )?;
            }
        }
        Dataset::Usage { metric, series } => {
            let (cut, zone) = cut(series)?;
            let values = super::series::usage_per_bucket(db, tenant, id, metric, &cut).await?;
            for ((start, end), value) in cut.into_iter().zip(values) {
                write(
                    table,
                    &series_cells(start, end, zone, Cell::Decimal(amount_from_e4(value))),
                )?;
            }
        }
        Dataset::Activity(series) => {
            let (cut, zone) = cut(series)?;
            let values = super::series::entries_per_bucket(db, tenant, id, &cut).await?;
            for ((start, end), value) in cut.into_iter().zip(values) {
                write(table, &series_cells(start, end, zone, Cell::Integer(value)))?;
            }
        }
        // Not of one account: see `write_kpi`.
        Dataset::Kpi { .. } => {}
    }
    Ok(())
}

/// The first page of an export's keyset walk over a time column (its `asc` and `desc`
/// order names): oldest first in pages of [`PAGE`], or the newest `latest` in one page.
fn keyset(latest: Option<u64>, (asc, desc): (&'static str, &'static str)) -> SortedPageRequest {
    let (name, descending, first) = match latest {
        Some(n) => (desc, true, n),
        None => (asc, false, PAGE),
    };
    SortedPageRequest {
        first,
        order: order(name, SortKind::Time, descending),
        after: None,
    }
}

fn cut(series: &SeriesRequest) -> ApiResult<(Vec<Bucket>, chrono_tz::Tz)> {
    let zone = input::zone("input.timeZone", &series.time_zone)?;
    Ok((
        buckets(series.from, series.to, series.interval, zone)?,
        zone,
    ))
}

fn series_cells(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    zone: chrono_tz::Tz,
    value: Cell,
) -> [Cell; 3] {
    [
        Cell::Time(start.with_timezone(&zone).fixed_offset()),
        Cell::Time(end.with_timezone(&zone).fixed_offset()),
        value,
    ]
}

fn ledger_cells(row: &ledger_entry::Model) -> [Cell; 10] {
    [
        Cell::Text(row.id.to_string()),
        Cell::Time(row.posted_at.fixed_offset()),
        Cell::Text(row.kind.clone()),
        Cell::Text(row.source.clone()),
        Cell::Decimal(amount_from_e4(row.amount_e4)),
        Cell::Text(row.currency.clone()),
        Cell::Decimal(amount_from_e4(row.balance_after_e4)),
        row.reference.clone().into(),
        row.description.clone().into(),
        row.invoice_id.map(|id| id.to_string()).into(),
    ]
}

fn invoice_cells(row: &invoice::Model, today: chrono::NaiveDate) -> [Cell; 11] {
    let status = match InvoiceStatus::of(&row.status, row.due_date, today) {
        InvoiceStatus::Open => "OPEN",
        InvoiceStatus::Overdue => "OVERDUE",
        InvoiceStatus::Paid => "PAID",
        InvoiceStatus::Void => "VOID",
    };
    let due = match status {
        "VOID" | "PAID" => 0,
        _ => row.amount_e4 - row.paid_e4,
    };
    [
        Cell::Text(row.id.to_string()),
        Cell::Text(row.number.clone()),
        Cell::Text(status.to_owned()),
        Cell::Date(row.period_start),
        Cell::Date(row.period_end),
        Cell::Date(row.due_date),
        Cell::Time(row.issued_at.fixed_offset()),
        Cell::Text(row.currency.clone()),
        Cell::Decimal(amount_from_e4(row.amount_e4)),
        Cell::Decimal(amount_from_e4(row.paid_e4)),
        Cell::Decimal(amount_from_e4(due)),
    ]
}
