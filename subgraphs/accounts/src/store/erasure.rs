//! Erasure of one person from the accounts domain (its side of a GDPR Art. 17 erasure,
//! driven by the privacy workflow).
//!
//! What is theirs goes: their memberships of accounts, their own dashboard layouts, the
//! exports they requested and the stored files of those exports. What belongs to the
//! tenant stays without naming them: the accounts they own are the tenant's customer
//! records, so they remain, owned by the deleted user (`Uuid::nil()`), and memberships
//! they granted others name the deleted user as who added them. The bookkeeping they
//! recorded — ledger entries, invoices, payments, usage events — stays unchanged, as
//! statutory retention requires; its recorder id now points to the anonymized deleted
//! user that identity leaves behind.
//!
//! Everything happens in one transaction with one audit event (`user_accounts.erase`,
//! counts only); the export files expire in it and are deleted from storage after the
//! commit (best effort: the scheduled purge deletes what is left). A second run finds
//! nothing left to erase.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::accounts::{
    account, account_export, account_member, dashboard_layout, invoice, ledger_entry, payment,
    usage_event,
};
use portal_entities::platform::file;
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::storage::FileStore;
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use super::export::FILE_OWNER;
use crate::SUBGRAPH_NAME;

/// What an erasure did, collection by collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Their memberships of accounts, deleted.
    pub memberships: u64,
    /// Accounts they owned, now owned by the deleted user.
    pub owned_accounts: u64,
    /// Memberships of others they had granted, now added by the deleted user.
    pub members_added: u64,
    /// Their own dashboard layouts, deleted.
    pub dashboard_layouts: u64,
    /// Exports they requested, deleted.
    pub exports: u64,
    /// Stored files of those exports, expired and handed to the purge.
    pub export_files: u64,
    /// Ledger entries they recorded, kept.
    pub ledger_entries: u64,
    /// Invoices they recorded, kept.
    pub invoices: u64,
    /// Payments they recorded, kept.
    pub payments: u64,
    /// Usage events they recorded, kept.
    pub usage_events: u64,
}

/// The accounts of `tenant_id` that `user` is a member of or owns, each once, in id order.
pub async fn accounts_of(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<Vec<Uuid>> {
    let mut ids: Vec<Uuid> = account_member::Entity::find()
        .select_only()
        .column(account_member::Column::AccountId)
        .filter(account_member::Column::TenantId.eq(tenant_id))
        .filter(account_member::Column::UserId.eq(user))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let owned: Vec<Uuid> = account::Entity::find()
        .select_only()
        .column(account::Column::Id)
        .filter(account::Column::TenantId.eq(tenant_id))
        .filter(account::Column::OwnerId.eq(user))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    ids.extend(owned);
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Erases `user` of `tenant_id` from the accounts domain at `now`, in one transaction
/// audited as `user_accounts.erase` by `actor`; the export files are deleted from storage
/// after the commit.
pub async fn erase_user(
    db: &DatabaseConnection,
    files: &FileStore,
    (tenant_id, user): (Uuid, Uuid),
    now: DateTime<Utc>,
    actor: &Actor,
    meta: &RequestMeta,
) -> ApiResult<Erased> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;

    // The files of their exports: those the rows name, and those left behind by an
    // earlier run whose purge did not finish (a file names its requester as creator).
    let named: Vec<Option<Uuid>> = account_export::Entity::find()
        .select_only()
        .column(account_export::Column::FileId)
        .filter(account_export::Column::TenantId.eq(tenant_id))
        .filter(account_export::Column::RequestedBy.eq(user))
        .into_tuple()
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let left: Vec<Uuid> = file::Entity::find()
        .select_only()
        .column(file::Column::Id)
        .filter(file::Column::TenantId.eq(tenant_id))
        .filter(file::Column::Domain.eq(SUBGRAPH_NAME))
        .filter(file::Column::OwnerType.eq(FILE_OWNER))
        .filter(file::Column::CreatedBy.eq(user))
        .into_tuple()
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let mut file_ids: Vec<Uuid> = named.into_iter().flatten().chain(left).collect();
    file_ids.sort_unstable();
    file_ids.dedup();

    let mut erased = Erased {
        export_files: portal_kit::storage::expire_now(&txn, tenant_id, &file_ids, now).await?,
        ..Erased::default()
    };
    erased.exports = account_export::Entity::delete_many()
        .filter(account_export::Column::TenantId.eq(tenant_id))
        .filter(account_export::Column::RequestedBy.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    // Their own layouts only: the tenant's role defaults have no owner.
    erased.dashboard_layouts = dashboard_layout::Entity::delete_many()
        .filter(dashboard_layout::Column::TenantId.eq(tenant_id))
        .filter(dashboard_layout::Column::OwnerId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    erased.memberships = account_member::Entity::delete_many()
        .filter(account_member::Column::TenantId.eq(tenant_id))
        .filter(account_member::Column::UserId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    // `added_by` is not nullable: the deleted user stands in.
    erased.members_added = account_member::Entity::update_many()
        .col_expr(account_member::Column::AddedBy, Expr::value(Uuid::nil()))
        .filter(account_member::Column::TenantId.eq(tenant_id))
        .filter(account_member::Column::AddedBy.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    erased.owned_accounts = account::Entity::update_many()
        .col_expr(account::Column::OwnerId, Expr::value(Uuid::nil()))
        .col_expr(account::Column::UpdatedAt, Expr::value(now))
        .filter(account::Column::TenantId.eq(tenant_id))
        .filter(account::Column::OwnerId.eq(user))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;

    // Kept as they are: counted for the report.
    erased.ledger_entries = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::TenantId.eq(tenant_id))
        .filter(ledger_entry::Column::CreatedBy.eq(user))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    erased.invoices = invoice::Entity::find()
        .filter(invoice::Column::TenantId.eq(tenant_id))
        .filter(invoice::Column::CreatedBy.eq(user))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    erased.payments = payment::Entity::find()
        .filter(payment::Column::TenantId.eq(tenant_id))
        .filter(payment::Column::CreatedBy.eq(user))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    erased.usage_events = usage_event::Entity::find()
        .filter(usage_event::Column::TenantId.eq(tenant_id))
        .filter(usage_event::Column::CreatedBy.eq(user))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;

    AuditEvent::success("user_accounts.erase", "user", user)
        .with_details(json!({
            "memberships": erased.memberships,
            "ownedAccounts": erased.owned_accounts,
            "membersAdded": erased.members_added,
            "dashboardLayouts": erased.dashboard_layouts,
            "exports": erased.exports,
            "exportFiles": erased.export_files,
            "keptLedgerEntries": erased.ledger_entries,
            "keptInvoices": erased.invoices,
            "keptPayments": erased.payments,
            "keptUsageEvents": erased.usage_events,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;

    if !file_ids.is_empty()
        && let Err(err) = portal_kit::storage::purge(db, files, tenant_id, &file_ids, now).await
    {
        // They have expired: nobody can download them, and the scheduled purge deletes them.
        tracing::warn!(
            ?err,
            files = file_ids.len(),
            "deleting erased export files failed"
        );
    }
    Ok(erased)
}
