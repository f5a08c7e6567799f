//! Accounts persistence. Every function takes the tenant and filters by it: a row of
//! another tenant is indistinguishable from a missing row.

pub mod dashboard;
pub mod erasure;
pub mod export;
pub mod layout;
pub mod ledger;
pub mod series;

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::accounts::{account, account_member};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::store::{one_or_not_found, rows_by_ids, rows_by_parent};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::{AccountStatus, Viewer};

/// Validated fields of a new account.
pub struct NewAccount {
    /// The owning user (identity's id).
    pub owner_id: Uuid,
    /// Account number, unique within the tenant.
    pub number: String,
    /// Display name.
    pub name: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Opening balance in 10^-4 units.
    pub balance_e4: i64,
    /// The client's idempotency key and the hash of its request, if it sent one.
    pub idempotency: Option<(String, String)>,
}

/// Validated changes to an account; `None` leaves a field as it is.
#[derive(Default)]
pub struct AccountChanges {
    /// New display name.
    pub name: Option<String>,
    /// New status.
    pub status: Option<AccountStatus>,
}

/// One account of the tenant.
pub async fn account(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<account::Model> {
    let scoped = account::Entity::find_by_id(id).filter(account::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "account").await
}

/// Accounts of the tenant among `ids`, in one query.
pub async fn accounts_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, account::Model>> {
    rows_by_ids(db, in_tenant(tenant_id), account::Column::Id, ids).await
}

/// The account `id` of the tenant, locked until the transaction `txn` ends (`SELECT … FOR
/// UPDATE` on PostgreSQL; SQLite's write transaction is exclusive anyway): the writes to
/// one account's ledger and usage are serialized.
pub(crate) async fn account_locked(
    txn: &sea_orm::DatabaseTransaction,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<account::Model> {
    let scoped = account::Entity::find_by_id(id)
        .filter(account::Column::TenantId.eq(tenant_id))
        .lock_exclusive();
    one_or_not_found(txn, scoped, "account").await
}

/// A page of the tenant's accounts `viewer` may see (see [`Viewer`]).
pub async fn list_accounts(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    viewer: Viewer,
    number: Option<&str>,
    page: PageRequest,
) -> ApiResult<Page<account::Model>> {
    match visible_accounts(tenant_id, viewer) {
        Some(scoped) => {
            let scoped = match number {
                Some(number) => scoped.filter(account::Column::Number.eq(number)),
                None => scoped,
            };
            page.fetch(db, scoped, account::Column::Id).await
        }
        None => Ok(page.page(Vec::new())),
    }
}

/// The tenant's accounts `viewer` may see, as a select to refine (`None`: no account).
pub fn visible_accounts(tenant_id: Uuid, viewer: Viewer) -> Option<Select<account::Entity>> {
    match viewer {
        Viewer::Everything => Some(in_tenant(tenant_id)),
        Viewer::Member(user_id) => {
            let memberships = account_member::Entity::find()
                .select_only()
                .column(account_member::Column::AccountId)
                .filter(account_member::Column::TenantId.eq(tenant_id))
                .filter(account_member::Column::UserId.eq(user_id))
                .into_query();
            Some(
                in_tenant(tenant_id).filter(
                    Condition::any()
                        .add(account::Column::OwnerId.eq(user_id))
                        .add(account::Column::Id.in_subquery(memberships)),
                ),
            )
        }
        Viewer::Nobody => None,
    }
}

/// The members (besides the owner) of each of `account_ids`, in the order they were added,
/// in one query.
pub async fn members_of_accounts(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    account_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<Uuid>>> {
    let rows = account_member::Entity::find()
        .filter(account_member::Column::TenantId.eq(tenant_id))
        .filter(account_member::Column::AccountId.is_in(account_ids))
        .order_by_asc(account_member::Column::CreatedAt)
        .order_by_asc(account_member::Column::UserId)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_account: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for row in rows {
        by_account
            .entry(row.account_id)
            .or_default()
            .push(row.user_id);
    }
    Ok(by_account)
}

/// Makes `user_id` a member of the account `account_id` of the actor's tenant (`CONFLICT`
/// when it already is one, or owns it); audited.
pub async fn add_member(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    account_id: Uuid,
    user_id: Uuid,
) -> ApiResult<account::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = account(&txn, tenant_id, account_id).await?;
    if found.owner_id == user_id {
        return Err(ApiError::Conflict("the user owns this account".into()));
    }
    account_member::ActiveModel {
        account_id: Set(account_id),
        user_id: Set(user_id),
        tenant_id: Set(tenant_id),
        added_by: Set(actor.principal()?),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("account.member.add", "account", account_id)
        .with_details(json!({ "userId": user_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(found)
}

/// Ends `user_id`'s membership of the account `account_id` of the actor's tenant
/// (`NOT_FOUND` when there is none); audited.
pub async fn remove_member(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    account_id: Uuid,
    user_id: Uuid,
) -> ApiResult<account::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = account(&txn, tenant_id, account_id).await?;
    let removed = account_member::Entity::delete_many()
        .filter(account_member::Column::TenantId.eq(tenant_id))
        .filter(account_member::Column::AccountId.eq(account_id))
        .filter(account_member::Column::UserId.eq(user_id))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if removed.rows_affected == 0 {
        return Err(ApiError::NotFound("account member"));
    }
    AuditEvent::success("account.member.remove", "account", account_id)
        .with_details(json!({ "userId": user_id }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(found)
}

/// The same page of accounts for each of `owner_ids`, in one query.
///
/// Reads every account of those owners after the cursor and cuts each owner's list to
/// the page size in memory: owners hold few accounts, and one query beats one per owner.
pub async fn pages_by_owner(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    owner_ids: &[Uuid],
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Page<account::Model>>> {
    let (owner, id) = (account::Column::OwnerId, account::Column::Id);
    let rows = rows_by_parent(db, in_tenant(tenant_id), owner, owner_ids, id, page).await?;
    Ok(page.pages(rows))
}

/// The tenant's accounts.
fn in_tenant(tenant_id: Uuid) -> Select<account::Entity> {
    account::Entity::find().filter(account::Column::TenantId.eq(tenant_id))
}

/// Opens an account in the actor's tenant.
pub async fn create_account(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewAccount,
) -> ApiResult<account::Model> {
    let tenant_id = actor.tenant()?;
    let Some((key, hash)) = new.idempotency.clone() else {
        return insert_account(db, actor, meta, new).await;
    };
    let by_key = || async {
        let found = account_by_key(db, tenant_id, &key).await?;
        Ok(found.map(|row| (row.request_hash.clone(), row)))
    };
    ledger::idempotent(&hash, by_key, insert_account(db, actor, meta, new)).await
}

/// Inserts an account and its opening balance, or answers a retry of the same key with
/// the account it created.
async fn insert_account(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    new: NewAccount,
) -> ApiResult<account::Model> {
    let tenant_id = actor.tenant()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    if let Some((key, hash)) = &new.idempotency
        && let Some(row) = account_by_key(&txn, tenant_id, key).await?
    {
        return ledger::replay(row.request_hash.as_deref(), hash).map(|()| row);
    }
    let (key, hash) = new.idempotency.unzip();
    let created = account::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        owner_id: Set(new.owner_id),
        number: Set(new.number),
        name: Set(new.name),
        status: Set(AccountStatus::Open.as_str().to_owned()),
        currency: Set(new.currency),
        balance_e4: Set(0),
        idempotency_key: Set(key),
        request_hash: Set(hash),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let opening = ledger::post_opening_balance(&txn, actor, &created, new.balance_e4).await?;
    AuditEvent::success("account.create", "account", created.id)
        .with_details(json!({ "openingEntryId": opening.as_ref().map(|entry| entry.id) }))
        .record(&txn, actor, meta)
        .await?;
    let created = account(&txn, tenant_id, created.id).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(created)
}

async fn account_by_key(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    key: &str,
) -> ApiResult<Option<account::Model>> {
    account::Entity::find()
        .filter(account::Column::TenantId.eq(tenant_id))
        .filter(account::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// Applies `changes` to an account of the actor's tenant.
pub async fn update_account(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    id: Uuid,
    changes: AccountChanges,
) -> ApiResult<account::Model> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let current = account(&txn, tenant_id, id).await?;
    let before = json!({ "name": current.name, "status": current.status });
    let mut active: account::ActiveModel = current.into();
    if let Some(name) = changes.name {
        active.name = Set(name);
    }
    if let Some(status) = changes.status {
        active.status = Set(status.as_str().to_owned());
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    let after = json!({ "name": updated.name, "status": updated.status });
    AuditEvent::success("account.update", "account", id)
        .with_details(json!({ "before": before, "after": after }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}
