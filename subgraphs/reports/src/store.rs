//! Reports persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.

use portal_kit::db::BeginWrite;
use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Select, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_run};
use portal_kit::audit::AuditEvent;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::store::{one_or_not_found, ranked_rows_by_parent, rows_by_ids, rows_by_parent};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::{ReportFormat, ReportKind, ReportRunStatus};

/// Validated fields of a new report definition.
pub struct NewDefinition {
    /// Display name.
    pub name: String,
    /// What the report is about.
    pub kind: ReportKind,
    /// Output format.
    pub format: ReportFormat,
    /// Normalized cron schedule, if the report runs on a schedule.
    pub schedule: Option<String>,
    /// Parameters object.
    pub parameters: Value,
    /// The account the report is about (accounts' id), if any.
    pub account_id: Option<Uuid>,
}

/// Validated changes to a report definition; `None` leaves a field as it is.
#[derive(Default)]
pub struct DefinitionChanges {
    /// New display name.
    pub name: Option<String>,
    /// New output format.
    pub format: Option<ReportFormat>,
    /// New schedule: `Some(None)` removes it.
    pub schedule: Option<Option<String>>,
    /// New parameters object.
    pub parameters: Option<Value>,
}

/// One report definition of the tenant.
pub async fn definition(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<report_definition::Model> {
    let scoped = report_definition::Entity::find_by_id(id)
        .filter(report_definition::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "report definition").await
}

/// Report definitions of the tenant among `ids`, in one query.
pub async fn definitions_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, report_definition::Model>> {
    rows_by_ids(
        db,
        definitions_in(tenant_id),
        report_definition::Column::Id,
        ids,
    )
    .await
}

/// A page of the tenant's report definitions, only those `owner` owns when given.
pub async fn list_definitions(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    owner: Option<Uuid>,
    page: PageRequest,
) -> ApiResult<Page<report_definition::Model>> {
    let mut scoped = definitions_in(tenant_id);
    if let Some(owner) = owner {
        scoped = scoped.filter(report_definition::Column::OwnerId.eq(owner));
    }
    page.fetch(db, scoped, report_definition::Column::Id).await
}

/// The same page of report definitions for each of `account_ids`, in one query.
///
/// Reads every definition of those accounts after the cursor and cuts each account's
/// list to the page size in memory: accounts have few report definitions, and one query
/// beats one per account.
pub async fn pages_by_account(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<report_definition::Model>>> {
    let (account, id) = (
        report_definition::Column::AccountId,
        report_definition::Column::Id,
    );
    let scoped = definitions_in(tenant_id);
    let rows = rows_by_parent(db, scoped, account, account_ids, id, page).await?;
    Ok(page.pages(rows))
}

/// The tenant's report definitions.
fn definitions_in(tenant_id: Uuid) -> Select<report_definition::Entity> {
    report_definition::Entity::find().filter(report_definition::Column::TenantId.eq(tenant_id))
}

/// Creates a report definition in the actor's tenant, owned by the actor.
pub async fn create_definition(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewDefinition,
) -> ApiResult<report_definition::Model> {
    let tenant_id = actor.tenant()?;
    let owner_id = actor.principal()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let created = report_definition::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        account_id: Set(new.account_id),
        owner_id: Set(owner_id),
        name: Set(new.name),
        kind: Set(new.kind.as_str().to_owned()),
        format: Set(new.format.as_str().to_owned()),
        schedule: Set(new.schedule),
        parameters: Set(new.parameters),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("report_definition.create", "report_definition", created.id)
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

/// Applies `changes` to a report definition of the actor's tenant.
///
/// The audit event names the changed fields; parameter values are not copied into it.
pub async fn update_definition(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: DefinitionChanges,
) -> ApiResult<report_definition::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = definition(&txn, tenant_id, id).await?;
    let before = json!({
        "name": current.name,
        "format": current.format,
        "schedule": current.schedule,
    });
    let parameters_changed = changes.parameters.is_some();
    let mut active: report_definition::ActiveModel = current.into();
    if let Some(name) = changes.name {
        active.name = Set(name);
    }
    if let Some(format) = changes.format {
        active.format = Set(format.as_str().to_owned());
    }
    if let Some(schedule) = changes.schedule {
        active.schedule = Set(schedule);
    }
    if let Some(parameters) = changes.parameters {
        active.parameters = Set(parameters);
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    let after = json!({
        "name": updated.name,
        "format": updated.format,
        "schedule": updated.schedule,
    });
    AuditEvent::success("report_definition.update", "report_definition", id)
        .with_details(json!({
            "before": before,
            "after": after,
            "parametersChanged": parameters_changed,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}

/// Report runs of the tenant among `ids`, in one query.
pub async fn runs_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, report_run::Model>> {
    rows_by_ids(db, runs_in(tenant_id), report_run::Column::Id, ids).await
}

/// The same page of runs for each of `definition_ids`, oldest first, in one query.
///
/// A definition on a schedule gathers runs without bound, so unlike [`pages_by_account`]
/// this does not read every run after the cursor: the database keeps at most `first + 1`
/// runs per definition (see [`ranked_rows_by_parent`]). Every id in `definition_ids` gets
/// a page, empty when it has no runs.
pub async fn pages_by_definition(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    definition_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<report_run::Model>>> {
    let (definition, id) = (report_run::Column::DefinitionId, report_run::Column::Id);
    let scoped = runs_in(tenant_id);
    let rows = ranked_rows_by_parent(db, scoped, definition, definition_ids, id, page).await?;
    Ok(page.pages(rows))
}

/// The tenant's report runs.
fn runs_in(tenant_id: Uuid) -> Select<report_run::Entity> {
    report_run::Entity::find().filter(report_run::Column::TenantId.eq(tenant_id))
}

/// Queues a run of a report definition of the actor's tenant, requested by the actor.
pub async fn request_run(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    definition_id: Uuid,
) -> ApiResult<report_run::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    definition(&txn, tenant_id, definition_id).await?;
    let created = report_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        definition_id: Set(definition_id),
        requested_by: Set(actor.id),
        status: Set(ReportRunStatus::Queued.as_str().to_owned()),
        row_count: Set(None),
        error: Set(None),
        created_at: Set(Utc::now()),
        started_at: Set(None),
        finished_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("report_run.request", "report_run", created.id)
        .with_details(json!({ "definitionId": definition_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use portal_kit::pagination::encode_cursor;
    use sea_orm::{Database, DbBackend, Schema};

    use super::*;

    async fn runs_table() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        let table = Schema::new(DbBackend::Sqlite).create_table_from_entity(report_run::Entity);
        db.execute(&table).await.expect("create table");
        db
    }

    async fn add_run(db: &DatabaseConnection, tenant_id: Uuid, definition_id: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        report_run::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id),
            definition_id: Set(definition_id),
            requested_by: Set(None),
            status: Set(ReportRunStatus::Queued.as_str().to_owned()),
            row_count: Set(None),
            error: Set(None),
            created_at: Set(Utc::now()),
            started_at: Set(None),
            finished_at: Set(None),
        }
        .insert(db)
        .await
        .expect("insert run");
        id
    }

    fn ids(page: &Page<report_run::Model>) -> Vec<Uuid> {
        page.items.iter().map(|row| row.id).collect()
    }

    #[tokio::test]
    async fn pages_by_definition_cuts_each_definition_to_its_own_page() {
        let db = runs_table().await;
        let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let (busy, quiet, idle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut busy_runs = Vec::new();
        for _ in 0..5 {
            busy_runs.push(add_run(&db, tenant, busy).await);
        }
        let quiet_run = add_run(&db, tenant, quiet).await;
        add_run(&db, other_tenant, idle).await;

        let first_two = PageRequest::parse(Some(2), None).expect("page");
        let pages = pages_by_definition(&db, tenant, &[busy, quiet, idle], first_two)
            .await
            .expect("pages");
        assert_eq!(pages.len(), 3);
        assert_eq!(ids(&pages[&busy]), busy_runs[..2]);
        assert!(pages[&busy].has_next_page);
        assert_eq!(ids(&pages[&quiet]), [quiet_run]);
        assert!(!pages[&quiet].has_next_page);
        // Another tenant's runs are invisible.
        assert!(pages[&idle].items.is_empty());

        let cursor = encode_cursor(busy_runs[2]);
        let rest = PageRequest::parse(Some(2), Some(&cursor)).expect("page");
        let pages = pages_by_definition(&db, tenant, &[busy], rest)
            .await
            .expect("pages");
        assert_eq!(ids(&pages[&busy]), busy_runs[3..]);
        assert!(!pages[&busy].has_next_page);
    }
}
