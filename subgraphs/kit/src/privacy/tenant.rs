//! Tenant off-boarding's part of the privacy contract: every domain names the tables it
//! keeps a tenant's rows in ([`TenantTable`], children before parents), and the
//! off-boarding job exports them (one JSON document per domain, secrets left out) and then
//! deletes them, each domain in one transaction.
//!
//! Rows are written as JSON by column name from the entity's own types (ids as strings,
//! times as RFC 3339), so an export reads the same from SQLite and PostgreSQL.

use std::marker::PhantomData;

use base64::Engine;
use sea_orm::sea_query::Value as SqlValue;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, IdenStatic, Iterable,
    ModelTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{DomainErasure, TenantErasure};
use crate::audit::AuditEvent;
use crate::db::BeginWrite;
use crate::error::{ApiError, ApiResult};

/// Rows read per page while exporting.
const PAGE: u64 = 500;

/// One table holding a tenant's rows.
#[async_trait::async_trait]
pub trait TenantTable: Send + Sync {
    /// The table's name (the collection's name in the export).
    fn name(&self) -> String;

    /// Every row of `tenant`, as JSON objects by column name, without the columns that
    /// hold secrets (hashes, sealed keys, tokens).
    async fn export(&self, db: &DatabaseConnection, tenant: Uuid) -> ApiResult<Vec<Value>>;

    /// Deletes every row of `tenant`; how many.
    async fn delete(&self, db: &DatabaseTransaction, tenant: Uuid) -> ApiResult<u64>;

    /// How many rows `tenant` has here.
    async fn count(&self, db: &DatabaseConnection, tenant: Uuid) -> ApiResult<u64>;
}

/// The [`TenantTable`] of entity `E`, whose tenant is in column `tenant`.
pub struct Table<E: EntityTrait> {
    tenant: E::Column,
    omit: &'static [&'static str],
    entity: PhantomData<fn() -> E>,
}

/// `E`'s table, its tenant in `tenant`, exported without the columns `omit` (secrets).
pub fn table<E>(tenant: E::Column, omit: &'static [&'static str]) -> Box<dyn TenantTable>
where
    E: EntityTrait,
    E::Model: Sync,
    E::Column: Send + Sync,
{
    Box::new(Table::<E> {
        tenant,
        omit,
        entity: PhantomData,
    })
}

#[async_trait::async_trait]
impl<E> TenantTable for Table<E>
where
    E: EntityTrait,
    E::Model: Sync,
    E::Column: Send + Sync,
{
    fn name(&self) -> String {
        E::default().table_name().to_owned()
    }

    async fn export(&self, db: &DatabaseConnection, tenant: Uuid) -> ApiResult<Vec<Value>> {
        let mut select = E::find().filter(self.tenant.eq(tenant));
        for key in E::PrimaryKey::iter() {
            select = select.order_by_asc(sea_orm::PrimaryKeyToColumn::into_column(key));
        }
        let mut pages = select.paginate(db, PAGE);
        let mut rows = Vec::new();
        while let Some(page) = pages.fetch_and_next().await.map_err(ApiError::from_db)? {
            for model in page {
                rows.push(row_json(&model, self.omit));
            }
        }
        Ok(rows)
    }

    async fn delete(&self, db: &DatabaseTransaction, tenant: Uuid) -> ApiResult<u64> {
        Ok(E::delete_many()
            .filter(self.tenant.eq(tenant))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected)
    }

    async fn count(&self, db: &DatabaseConnection, tenant: Uuid) -> ApiResult<u64> {
        E::find()
            .filter(self.tenant.eq(tenant))
            .count(db)
            .await
            .map_err(ApiError::from_db)
    }
}

/// `model` as a JSON object by column name, without `omit`.
pub fn row_json<M: ModelTrait>(model: &M, omit: &[&str]) -> Value {
    let mut row = Map::new();
    for column in <<M::Entity as EntityTrait>::Column as Iterable>::iter() {
        let name = IdenStatic::as_str(&column);
        if omit.contains(&name) {
            continue;
        }
        row.insert(name.to_owned(), value_json(&model.get(column)));
    }
    Value::Object(row)
}

/// A column's value as JSON: ids and times as strings, bytes as standard base64.
fn value_json(value: &SqlValue) -> Value {
    match value {
        SqlValue::Bool(v) => v.map_or(Value::Null, Value::Bool),
        SqlValue::TinyInt(v) => v.map_or(Value::Null, Value::from),
        SqlValue::SmallInt(v) => v.map_or(Value::Null, Value::from),
        SqlValue::Int(v) => v.map_or(Value::Null, Value::from),
        SqlValue::BigInt(v) => v.map_or(Value::Null, Value::from),
        SqlValue::TinyUnsigned(v) => v.map_or(Value::Null, Value::from),
        SqlValue::SmallUnsigned(v) => v.map_or(Value::Null, Value::from),
        SqlValue::Unsigned(v) => v.map_or(Value::Null, Value::from),
        SqlValue::BigUnsigned(v) => v.map_or(Value::Null, Value::from),
        SqlValue::Float(v) => v.map_or(Value::Null, Value::from),
        SqlValue::Double(v) => v.map_or(Value::Null, Value::from),
        SqlValue::String(v) => v.clone().map_or(Value::Null, Value::String),
        SqlValue::Char(v) => v.map_or(Value::Null, |c| Value::String(c.to_string())),
        SqlValue::Bytes(v) => v.as_ref().map_or(Value::Null, |bytes| {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }),
        SqlValue::Json(v) => v.as_deref().cloned().unwrap_or(Value::Null),
        SqlValue::Uuid(v) => v.map_or(Value::Null, |id| Value::String(id.to_string())),
        SqlValue::ChronoDateTimeUtc(v) => v.map_or(Value::Null, |at| {
            Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }),
        SqlValue::ChronoDate(v) => v.map_or(Value::Null, |d| Value::String(d.to_string())),
        other => Value::String(format!("{other:?}")),
    }
}

/// Every table of `tables` exported for `tenant`, as one JSON object (collections by table
/// name).
pub async fn export_tables(
    db: &DatabaseConnection,
    tenant: Uuid,
    tables: &[Box<dyn TenantTable>],
) -> ApiResult<Value> {
    let mut data = Map::new();
    for table in tables {
        data.insert(table.name(), Value::Array(table.export(db, tenant).await?));
    }
    Ok(Value::Object(data))
}

/// A domain's export of `tenant`: every table of `tables`, no files of its own (the
/// off-boarding job takes every stored file of the tenant once).
pub async fn export(
    db: &DatabaseConnection,
    tenant: Uuid,
    tables: &[Box<dyn TenantTable>],
) -> ApiResult<super::DomainExport> {
    Ok(super::DomainExport {
        data: export_tables(db, tenant, tables).await?,
        files: Vec::new(),
    })
}

/// Deletes `tenant`'s rows from every table of `tables`, in their order; rows per table
/// (tables left empty out).
pub async fn delete_tables(
    db: &DatabaseTransaction,
    tenant: Uuid,
    tables: &[Box<dyn TenantTable>],
) -> ApiResult<Vec<(String, u64)>> {
    let mut deleted = Vec::new();
    for table in tables {
        let count = table.delete(db, tenant).await?;
        if count > 0 {
            deleted.push((table.name(), count));
        }
    }
    Ok(deleted)
}

/// What every line of a tenant's erasure says.
pub const ERASED_REASON: &str = "the tenant was off-boarded: every row deleted";

/// Deletes `tenant`'s rows from `tables` in one transaction audited as `action` in the
/// tenant's log (see [`record`]); what went.
pub async fn erase_tables(
    db: &DatabaseConnection,
    (action, tenant): (&'static str, Uuid),
    tables: &[Box<dyn TenantTable>],
    by: &TenantErasure,
) -> ApiResult<DomainErasure> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let deleted = delete_tables(&txn, tenant, tables).await?;
    // Nothing left (a retry after it completed): nothing to say in a closed log.
    if !deleted.is_empty() {
        record(&txn, (action, tenant), &deleted, by).await?;
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(erasure_of(&deleted))
}

/// Audits a domain's deletion of `tenant`'s rows (`deleted`: rows by table) as `action`,
/// in the tenant's log, through `txn`. Recorded as an access — no domain event, which
/// would be a row of the tenant left behind.
pub async fn record(
    txn: &DatabaseTransaction,
    (action, tenant): (&'static str, Uuid),
    deleted: &[(String, u64)],
    by: &TenantErasure,
) -> ApiResult<()> {
    let rows: Map<String, Value> = deleted
        .iter()
        .map(|(table, count)| (table.clone(), Value::from(*count)))
        .collect();
    AuditEvent::access(action, "tenant", Some(tenant))
        .in_tenant(tenant)
        .with_details(serde_json::json!({
            "offboardingId": by.offboarding_id,
            "deleted": rows,
        }))
        .record(txn, &by.actor, &by.meta)
        .await
}

/// `deleted` (rows by table) as erasure lines.
pub fn erasure_of(deleted: &[(String, u64)]) -> DomainErasure {
    let mut erasure = DomainErasure::default();
    for (table, count) in deleted {
        erasure.erased(table, *count, ERASED_REASON);
    }
    erasure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_portable_json() {
        let id = Uuid::nil();
        assert_eq!(
            value_json(&SqlValue::Uuid(Some(id))),
            Value::String(id.to_string())
        );
        assert_eq!(value_json(&SqlValue::Int(None)), Value::Null);
        assert_eq!(
            value_json(&SqlValue::Bytes(Some(vec![0xff, 0x00]))),
            Value::String("/wA=".into())
        );
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .expect("a valid time")
            .to_utc();
        assert_eq!(
            value_json(&SqlValue::ChronoDateTimeUtc(Some(at))),
            Value::String("2026-12-07T10:00:00.000000Z".into())
        );
    }
}
