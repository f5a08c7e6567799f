//! The accounts domain's side of data-subject requests (GDPR Articles 15, 17 and 20): what
//! it holds about one user of a tenant, as one JSON object of collections; the accounts
//! they are tied to (member or owner), which a legal hold may cover; and their erasure.
//!
//! Exported: the accounts they are a member of (the account's id, number and name and when
//! they joined), the accounts they own, their own dashboard layouts, the exports they
//! requested (and the files of those still downloadable), and the ledger entries,
//! invoices, payments and usage events they recorded (`created_by`).
//!
//! Left out, because they are not about the person: balances, the account's other
//! members, entries recorded by others, rollups and the tenant's role-default layouts
//! (no owner). Left out, because they are internals or not theirs to see: idempotency
//! keys and request hashes, client keys, an export's failure text, who added them to an
//! account (another user's id), storage keys. This domain holds no secrets or sealed text.
//!
//! Erased (see [`crate::store::erasure`]): their memberships, dashboard layouts, exports and
//! export files. Anonymized: the accounts they own (the tenant's customer records, now
//! owned by the deleted user) and the memberships they granted. Kept unchanged, as
//! bookkeeping and tax law require: the ledger entries, invoices, payments and usage events
//! they recorded.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::accounts::{
    account, account_export, account_member, dashboard_layout, invoice, ledger_entry, payment,
    usage_event,
};
use portal_kit::privacy::{
    DataSubject, DomainErasure, DomainExport, Erasure, PrivacyDomain, SubjectFile, Tie, tie,
};
use portal_kit::storage::FileStore;
use portal_kit::{ApiError, ApiResult};

use crate::SUBGRAPH_NAME;
use crate::domain::amount_from_e4;
use crate::domain::export::ExportStatus;
use crate::store::erasure::{accounts_of, erase_user};
use crate::store::export::FILE_OWNER;

/// What the accounts subgraph holds about a data subject.
pub struct Privacy {
    db: DatabaseConnection,
    files: FileStore,
}

impl Privacy {
    /// The accounts domain over `db`, its export files in `files`.
    pub fn new(db: DatabaseConnection, files: FileStore) -> Self {
        Self { db, files }
    }
}

/// Why the bookkeeping records `what` (they made) are kept: the legal basis.
fn retained(what: &str) -> String {
    format!(
        "{what} are kept unchanged: bookkeeping and tax law require the tenant to retain them \
         (GDPR Art. 17(3)(b) and Art. 6(1)(c)); who recorded them now reads as the deleted \
         user"
    )
}

/// A timestamp as RFC 3339, UTC.
fn at(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An amount stored as 10^-4 units, as an exact decimal string.
fn money(units: i64) -> String {
    amount_from_e4(units).to_string()
}

/// An optional id as a string (or null).
fn id_of(id: Option<Uuid>) -> Option<String> {
    id.map(|id| id.to_string())
}

#[async_trait::async_trait]
impl PrivacyDomain for Privacy {
    fn name(&self) -> &'static str {
        SUBGRAPH_NAME
    }

    async fn export_tenant(&self, tenant: Uuid) -> ApiResult<DomainExport> {
        portal_kit::privacy::tenant::export(&self.db, tenant, &tenant_tables()).await
    }

    async fn erase_tenant(
        &self,
        tenant: Uuid,
        by: &portal_kit::privacy::TenantErasure,
    ) -> ApiResult<DomainErasure> {
        portal_kit::privacy::tenant::erase_tables(
            &self.db,
            ("accounts.tenant_erase", tenant),
            &tenant_tables(),
            by,
        )
        .await
    }

    async fn export(&self, subject: DataSubject) -> ApiResult<DomainExport> {
        let db = &self.db;
        let (tenant, user) = (subject.tenant_id, subject.user_id);

        let members = account_member::Entity::find()
            .filter(account_member::Column::TenantId.eq(tenant))
            .filter(account_member::Column::UserId.eq(user))
            .order_by_asc(account_member::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let ids: Vec<Uuid> = members.iter().map(|m| m.account_id).collect();
        let joined: HashMap<Uuid, account::Model> = if ids.is_empty() {
            HashMap::new()
        } else {
            account::Entity::find()
                .filter(account::Column::TenantId.eq(tenant))
                .filter(account::Column::Id.is_in(ids))
                .all(db)
                .await
                .map_err(ApiError::from_db)?
                .into_iter()
                .map(|a| (a.id, a))
                .collect()
        };
        let memberships: Vec<Value> = members
            .iter()
            .map(|m| {
                let account = joined.get(&m.account_id);
                json!({
                    "accountId": m.account_id.to_string(),
                    "accountNumber": account.map(|a| a.number.clone()),
                    "accountName": account.map(|a| a.name.clone()),
                    "memberSince": at(m.created_at),
                })
            })
            .collect();

        let owned: Vec<Value> = account::Entity::find()
            .filter(account::Column::TenantId.eq(tenant))
            .filter(account::Column::OwnerId.eq(user))
            .order_by_asc(account::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|a| {
                json!({
                    "id": a.id.to_string(),
                    "number": a.number,
                    "name": a.name,
                    "status": a.status,
                    "currency": a.currency,
                    "createdAt": at(a.created_at),
                })
            })
            .collect();

        // Only the user's own layouts: the tenant's role defaults have no owner.
        let layouts: Vec<Value> = dashboard_layout::Entity::find()
            .filter(dashboard_layout::Column::TenantId.eq(tenant))
            .filter(dashboard_layout::Column::OwnerId.eq(user))
            .order_by_asc(dashboard_layout::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|l| {
                json!({
                    "id": l.id.to_string(),
                    "name": l.name,
                    "widgets": l.widgets,
                    "createdAt": at(l.created_at),
                    "updatedAt": at(l.updated_at),
                })
            })
            .collect();

        let requested = account_export::Entity::find()
            .filter(account_export::Column::TenantId.eq(tenant))
            .filter(account_export::Column::RequestedBy.eq(user))
            .order_by_asc(account_export::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let ready = ExportStatus::Ready.as_str();
        let file_ids = requested
            .iter()
            .filter(|e| e.status == ready)
            .filter_map(|e| e.file_id);
        let stored = portal_kit::storage::find_many(db, tenant, file_ids, Utc::now()).await?;
        let mut files = Vec::new();
        let mut exports = Vec::with_capacity(requested.len());
        for e in requested {
            // Only a live file this export produced (the row names its owner).
            let file = e.file_id.and_then(|id| stored.get(&id)).filter(|f| {
                f.domain == SUBGRAPH_NAME && f.owner_type == FILE_OWNER && f.owner_id == e.id
            });
            if let Some(f) = file {
                files.push(SubjectFile {
                    file_id: f.id,
                    path: format!("exports/{}-{}", e.id, f.name),
                    about: format!("export {}", e.id),
                });
            }
            exports.push(json!({
                "id": e.id.to_string(),
                "accountId": id_of(e.account_id),
                "dataset": e.dataset,
                "format": e.format,
                "parameters": e.parameters,
                "status": ExportStatus::of(&e.status, file.is_some()).as_str(),
                "rowCount": e.row_count,
                "fileName": file.map(|f| f.name.clone()),
                "requestedAt": at(e.created_at),
                "finishedAt": e.finished_at.map(at),
            }));
        }

        // Ledger rows name who recorded them (`created_by`); only the subject's are theirs.
        let entries: Vec<Value> = ledger_entry::Entity::find()
            .filter(ledger_entry::Column::TenantId.eq(tenant))
            .filter(ledger_entry::Column::CreatedBy.eq(user))
            .order_by_asc(ledger_entry::Column::PostedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "accountId": r.account_id.to_string(),
                    "kind": r.kind,
                    "source": r.source,
                    "amount": money(r.amount_e4),
                    "currency": r.currency,
                    "postedAt": at(r.posted_at),
                    "reference": r.reference,
                    "description": r.description,
                    "invoiceId": id_of(r.invoice_id),
                    "paymentId": id_of(r.payment_id),
                    "createdAt": at(r.created_at),
                })
            })
            .collect();

        let invoices: Vec<Value> = invoice::Entity::find()
            .filter(invoice::Column::TenantId.eq(tenant))
            .filter(invoice::Column::CreatedBy.eq(user))
            .order_by_asc(invoice::Column::IssuedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "accountId": r.account_id.to_string(),
                    "number": r.number,
                    "status": r.status,
                    "source": r.source,
                    "currency": r.currency,
                    "amount": money(r.amount_e4),
                    "amountPaid": money(r.paid_e4),
                    "periodStart": r.period_start.to_string(),
                    "periodEnd": r.period_end.to_string(),
                    "dueDate": r.due_date.to_string(),
                    "issuedAt": at(r.issued_at),
                    "settledAt": r.settled_at.map(at),
                    "voidedAt": r.voided_at.map(at),
                    "voidReason": r.void_reason,
                    "createdAt": at(r.created_at),
                })
            })
            .collect();

        let payments: Vec<Value> = payment::Entity::find()
            .filter(payment::Column::TenantId.eq(tenant))
            .filter(payment::Column::CreatedBy.eq(user))
            .order_by_asc(payment::Column::ReceivedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "accountId": r.account_id.to_string(),
                    "invoiceId": id_of(r.invoice_id),
                    "ledgerEntryId": r.ledger_entry_id.to_string(),
                    "source": r.source,
                    "currency": r.currency,
                    "amount": money(r.amount_e4),
                    "receivedAt": at(r.received_at),
                    "reference": r.reference,
                    "createdAt": at(r.created_at),
                })
            })
            .collect();

        let usage: Vec<Value> = usage_event::Entity::find()
            .filter(usage_event::Column::TenantId.eq(tenant))
            .filter(usage_event::Column::CreatedBy.eq(user))
            .order_by_asc(usage_event::Column::OccurredAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|r| {
                json!({
                    "id": r.id.to_string(),
                    "accountId": r.account_id.to_string(),
                    "metric": r.metric,
                    "quantity": money(r.quantity_e4),
                    "occurredAt": at(r.occurred_at),
                    "createdAt": at(r.created_at),
                })
            })
            .collect();

        Ok(DomainExport {
            data: json!({
                "memberships": memberships,
                "ownedAccounts": owned,
                "dashboardLayouts": layouts,
                "exports": exports,
                "ledgerEntries": entries,
                "invoices": invoices,
                "payments": payments,
                "usageEvents": usage,
            }),
            files,
        })
    }

    async fn ties(&self, subject: DataSubject) -> ApiResult<Vec<Tie>> {
        let ids = accounts_of(&self.db, subject.tenant_id, subject.user_id).await?;
        Ok(ids
            .into_iter()
            .map(|id| Tie {
                kind: tie::ACCOUNT,
                id,
            })
            .collect())
    }

    async fn erase(&self, subject: DataSubject, erasure: &Erasure) -> ApiResult<DomainErasure> {
        let done = erase_user(
            &self.db,
            &self.files,
            (subject.tenant_id, subject.user_id),
            Utc::now(),
            &erasure.actor,
            &erasure.meta,
        )
        .await?;
        let mut result = DomainErasure::default();
        result
            .erased(
                "memberships",
                done.memberships,
                "Their access to these accounts was removed; the accounts remain",
            )
            .anonymized(
                "ownedAccounts",
                done.owned_accounts,
                "The accounts are the tenant's customer records and remain; their owner is now \
                 the deleted user",
            )
            .anonymized(
                "membersAdded",
                done.members_added,
                "Memberships they granted to others remain; who granted them now reads as the \
                 deleted user",
            )
            .erased(
                "dashboardLayouts",
                done.dashboard_layouts,
                "Their saved dashboard layouts were deleted",
            )
            .erased(
                "exports",
                done.exports,
                "The exports they requested were deleted",
            )
            .erased(
                "exportFiles",
                done.export_files,
                "The files of their exports were deleted from storage",
            )
            .kept(
                "ledgerEntries",
                done.ledger_entries,
                &retained("Ledger entries they recorded"),
            )
            .kept(
                "invoices",
                done.invoices,
                &retained("Invoices they recorded"),
            )
            .kept(
                "payments",
                done.payments,
                &retained("Payments they recorded"),
            )
            .kept(
                "usageEvents",
                done.usage_events,
                &retained("Usage events they recorded (what invoices are billed from)"),
            );
        Ok(result)
    }
}

/// Accounts' tables of a tenant, children before parents.
fn tenant_tables() -> Vec<Box<dyn portal_kit::privacy::tenant::TenantTable>> {
    use portal_entities::accounts::{ledger_rollup, usage_daily_rollup, usage_rollup};
    use portal_kit::privacy::tenant::table;
    vec![
        table::<account_member::Entity>(account_member::Column::TenantId, &[]),
        table::<dashboard_layout::Entity>(dashboard_layout::Column::TenantId, &[]),
        table::<account_export::Entity>(account_export::Column::TenantId, &[]),
        table::<usage_event::Entity>(usage_event::Column::TenantId, &[]),
        table::<usage_rollup::Entity>(usage_rollup::Column::TenantId, &[]),
        table::<usage_daily_rollup::Entity>(usage_daily_rollup::Column::TenantId, &[]),
        table::<ledger_rollup::Entity>(ledger_rollup::Column::TenantId, &[]),
        table::<ledger_entry::Entity>(ledger_entry::Column::TenantId, &[]),
        table::<invoice::Entity>(invoice::Column::TenantId, &[]),
        table::<payment::Entity>(payment::Column::TenantId, &[]),
        table::<account::Entity>(account::Column::TenantId, &[]),
    ]
}
