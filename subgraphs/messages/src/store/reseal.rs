//! Re-sealing: after a key rotation, rows sealed with an older key version are sealed
//! again under the tenant's active one; rows written before encryption (`legacy_*`
//! plaintext) are sealed and their plaintext cleared. A job ([`crate::jobs::Reseal`]) does
//! it in batches, after each rotation and hourly as a sweep.
//!
//! Each row is rewritten only if it is still what was read (same key version and same
//! stored bytes): a concurrent edit wins, and the next batch looks at the row again.

use std::collections::BTreeSet;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};

use portal_kit::db::BeginWrite;
use uuid::Uuid;

use portal_entities::messages::{message, message_edit, thread};
use portal_kit::envelope::Binding;
use portal_kit::{ApiError, ApiResult};

use super::{Store, sealing};

/// What one pass re-sealed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Thread subjects.
    pub subjects: u64,
    /// Message bodies.
    pub bodies: u64,
    /// Earlier bodies of edited messages.
    pub earlier_bodies: u64,
    /// Attachments (name and content).
    pub attachments: u64,
}

impl Resealed {
    /// Rows rewritten in all.
    pub fn total(&self) -> u64 {
        self.subjects + self.bodies + self.earlier_bodies + self.attachments
    }
}

/// Rows that need sealing under `active`: plaintext, or sealed under an older version.
fn stale(version: impl ColumnTrait, legacy: Option<impl ColumnTrait>, active: i32) -> Condition {
    let older = Condition::all()
        .add(version.is_not_null())
        .add(version.lt(active));
    match legacy {
        Some(legacy) => Condition::any().add(older).add(
            Condition::all()
                .add(version.is_null())
                .add(legacy.is_not_null()),
        ),
        None => Condition::any().add(older),
    }
}

/// Tenants with plaintext rows left from before encryption.
pub async fn tenants_with_plaintext(store: &Store) -> ApiResult<BTreeSet<Uuid>> {
    let mut tenants: BTreeSet<Uuid> = thread::Entity::find()
        .select_only()
        .column(thread::Column::TenantId)
        .distinct()
        .filter(thread::Column::LegacySubject.is_not_null())
        .into_tuple::<Uuid>()
        .all(&store.db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .collect();
    let bodies: Vec<Uuid> = message::Entity::find()
        .select_only()
        .column(message::Column::TenantId)
        .distinct()
        .filter(message::Column::LegacyBody.is_not_null())
        .into_tuple()
        .all(&store.db)
        .await
        .map_err(ApiError::from_db)?;
    tenants.extend(bodies);
    Ok(tenants)
}

/// Re-seals at most `batch` rows of each kind of the tenant under its active key version.
/// Nothing re-sealed means nothing is left.
pub async fn reseal_batch(store: &Store, tenant_id: Uuid, batch: u64) -> ApiResult<Resealed> {
    let active = store.keys.active_version(tenant_id).await?;
    let mut done = Resealed::default();

    let threads = thread::Entity::find()
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(stale(
            thread::Column::KeyVersion,
            Some(thread::Column::LegacySubject),
            active,
        ))
        .limit(batch)
        .all(&store.db)
        .await
        .map_err(ApiError::from_db)?;
    for row in threads {
        let plain = sealing::subject(&store.keys, &row).await?;
        let binding = sealing::subject_binding(tenant_id, row.id);
        let sealed = store
            .keys
            .seal_with(binding, active, plain.as_bytes())
            .await?;
        let rewritten = thread::Entity::update_many()
            .col_expr(thread::Column::SubjectSealed, Expr::value(sealed.bytes))
            .col_expr(thread::Column::KeyVersion, Expr::value(active))
            .col_expr(
                thread::Column::LegacySubject,
                Expr::value(Option::<String>::None),
            )
            .filter(thread::Column::Id.eq(row.id))
            .filter(unchanged(
                thread::Column::KeyVersion,
                row.key_version,
                thread::Column::SubjectSealed,
                row.subject_sealed,
            ))
            .exec(&store.db)
            .await
            .map_err(ApiError::from_db)?;
        done.subjects += rewritten.rows_affected;
    }

    let messages = message::Entity::find()
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::DeletedAt.is_null())
        .filter(stale(
            message::Column::KeyVersion,
            Some(message::Column::LegacyBody),
            active,
        ))
        .limit(batch)
        .all(&store.db)
        .await
        .map_err(ApiError::from_db)?;
    for row in messages {
        let Some(plain) = sealing::body(&store.keys, &row).await? else {
            continue;
        };
        let binding = sealing::body_binding(tenant_id, row.id);
        let sealed = store
            .keys
            .seal_with(binding, active, plain.as_bytes())
            .await?;
        let rewritten = message::Entity::update_many()
            .col_expr(message::Column::BodySealed, Expr::value(sealed.bytes))
            .col_expr(message::Column::KeyVersion, Expr::value(active))
            .col_expr(
                message::Column::LegacyBody,
                Expr::value(Option::<String>::None),
            )
            .filter(message::Column::Id.eq(row.id))
            .filter(message::Column::DeletedAt.is_null())
            .filter(unchanged(
                message::Column::KeyVersion,
                row.key_version,
                message::Column::BodySealed,
                row.body_sealed,
            ))
            .exec(&store.db)
            .await
            .map_err(ApiError::from_db)?;
        done.bodies += rewritten.rows_affected;
        // Plaintext from before encryption was never indexed for search: now it is.
        if rewritten.rows_affected > 0 && row.key_version.is_none() {
            let tokens = super::search::text_tokens(&store.keys, tenant_id, &plain).await?;
            let at = (row.id, row.thread_id, row.created_at);
            super::search::index(&store.db, tenant_id, at, &tokens).await?;
        }
    }

    let edits = message_edit::Entity::find()
        .filter(message_edit::Column::TenantId.eq(tenant_id))
        .filter(stale(
            message_edit::Column::KeyVersion,
            None::<message_edit::Column>,
            active,
        ))
        .limit(batch)
        .all(&store.db)
        .await
        .map_err(ApiError::from_db)?;
    for row in edits {
        let plain = sealing::earlier_body(&store.keys, &row).await?;
        let binding: Binding<'_> = sealing::earlier_body_binding(tenant_id, row.id);
        let sealed = store
            .keys
            .seal_with(binding, active, plain.as_bytes())
            .await?;
        let rewritten = message_edit::Entity::update_many()
            .col_expr(message_edit::Column::BodySealed, Expr::value(sealed.bytes))
            .col_expr(message_edit::Column::KeyVersion, Expr::value(active))
            .filter(message_edit::Column::Id.eq(row.id))
            .filter(unchanged(
                message_edit::Column::KeyVersion,
                row.key_version,
                message_edit::Column::BodySealed,
                row.body_sealed,
            ))
            .exec(&store.db)
            .await
            .map_err(ApiError::from_db)?;
        done.earlier_bodies += rewritten.rows_affected;
    }
    done.attachments = reseal_attachments(store, tenant_id, active, batch).await?;
    Ok(done)
}

/// Re-seals attachments (name, and content into a new object) under `active`; their
/// file rows follow. The old object is removed once no row refers to it.
async fn reseal_attachments(
    store: &Store,
    tenant_id: Uuid,
    active: i32,
    batch: u64,
) -> ApiResult<u64> {
    use portal_entities::messages::message_attachment;
    use portal_entities::platform::file;
    use portal_kit::storage::{content_binding, name_binding};
    let rows = message_attachment::Entity::find()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::KeyVersion.lt(active))
        .limit(batch)
        .all(&store.db)
        .await
        .map_err(ApiError::from_db)?;
    let mut done = 0;
    for row in rows {
        let name = super::attachments::name(store, &row).await?;
        let name_sealed = store
            .keys
            .seal_with(name_binding(tenant_id, row.id), active, name.as_bytes())
            .await?;
        let new_key = match &row.storage_key {
            Some(_) => {
                let content = match super::attachments::content(store, &row).await {
                    Ok(content) => content,
                    Err(err) => {
                        // Another re-sealer may have moved it meanwhile, and removed the
                        // object this row pointed to: then it is done, not failed.
                        let current = message_attachment::Entity::find_by_id(row.id)
                            .one(&store.db)
                            .await
                            .map_err(ApiError::from_db)?;
                        if current.is_none_or(|c| {
                            c.key_version != row.key_version || c.storage_key != row.storage_key
                        }) {
                            continue;
                        }
                        return Err(err);
                    }
                };
                let sealed = store
                    .keys
                    .seal_blob_with(content_binding(tenant_id, row.id), active, &content)
                    .await?;
                // A key of its own: two re-sealers of one row never touch each other's object.
                let key = format!(
                    "{}.v{active}.{}",
                    portal_kit::storage::object_key("messages", tenant_id, row.id),
                    Uuid::now_v7().simple()
                );
                store.files.put_bytes(&key, sealed.bytes).await?;
                Some(key)
            }
            None => None,
        };
        let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
        let rewritten = message_attachment::Entity::update_many()
            .col_expr(
                message_attachment::Column::NameSealed,
                Expr::value(name_sealed.bytes.clone()),
            )
            .col_expr(message_attachment::Column::KeyVersion, Expr::value(active))
            .col_expr(
                message_attachment::Column::StorageKey,
                Expr::value(new_key.clone().or(row.storage_key.clone())),
            )
            .filter(message_attachment::Column::Id.eq(row.id))
            .filter(message_attachment::Column::KeyVersion.eq(row.key_version))
            .filter(unchanged_key(row.storage_key.clone()))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if rewritten.rows_affected == 0 {
            // Changed meanwhile (uploaded, deleted): the next batch looks again.
            drop(txn);
            if let Some(key) = new_key {
                store.files.remove(&key).await?;
            }
            continue;
        }
        if let Some(key) = &new_key {
            file::Entity::update_many()
                .col_expr(file::Column::StorageKey, Expr::value(key.clone()))
                .col_expr(file::Column::KeyVersion, Expr::value(active))
                .col_expr(file::Column::NameSealed, Expr::value(name_sealed.bytes))
                .filter(file::Column::Id.eq(row.id))
                .filter(file::Column::TenantId.eq(tenant_id))
                .exec(&txn)
                .await
                .map_err(ApiError::from_db)?;
        }
        txn.commit().await.map_err(ApiError::from_db)?;
        if let (Some(_), Some(old)) = (&new_key, &row.storage_key) {
            store.files.remove(old).await?;
        }
        done += 1;
    }
    Ok(done)
}

fn unchanged_key(key: Option<String>) -> Condition {
    use portal_entities::messages::message_attachment::Column;
    match key {
        Some(key) => Condition::all().add(Column::StorageKey.eq(key)),
        None => Condition::all().add(Column::StorageKey.is_null()),
    }
}

/// The row still holds `version` and `bytes` (both possibly `NULL`).
fn unchanged(
    version_column: impl ColumnTrait,
    version: Option<i32>,
    bytes_column: impl ColumnTrait,
    bytes: Option<Vec<u8>>,
) -> Condition {
    let version = match version {
        Some(v) => version_column.eq(v),
        None => version_column.is_null(),
    };
    let bytes = match bytes {
        Some(b) => bytes_column.eq(b),
        None => bytes_column.is_null(),
    };
    Condition::all().add(version).add(bytes)
}
