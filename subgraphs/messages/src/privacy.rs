//! Messages' side of the privacy contract ([`portal_kit::privacy`]): the threads the person
//! takes part in, opened or is assigned (subject opened, their part and how far they
//! read), the messages they wrote with their earlier versions (opened), the attachments
//! they uploaded (name opened) and, for those still stored, the files themselves, their
//! notifications, notification preferences and quiet hours. Sealed text is opened with
//! the store's own readers ([`sealing`], [`attachments::name`]), as the API shows it.
//!
//! Left out: messages by others in the same threads, the other participants, who caused
//! a notification and who opened or was assigned a thread when it was not the person
//! (other people's words and ids); sealed bytes, key versions, search tokens, storage keys
//! and hashes (how the data is kept, not information about the person). A message deleted
//! (a tombstone) or text sealed under a destroyed tenant key is listed without it (`null`
//! and a `…Unavailable` reason) rather than failing the whole export.
//!
//! Erasure ([`erasure::erase_user`]): their messages become deleted-user tombstones, their
//! attachments, memberships, notifications and preferences go. Their ties are the threads
//! they are in and the accounts those threads are about; messages keeps the legal holds,
//! so it answers which holds cover the person (a `USER` hold), one of their threads, or an
//! account they are tied to by any domain.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::messages::{
    message, message_attachment, notification, notification_preference, notification_quiet_hours,
    thread, thread_participant,
};
use portal_kit::privacy::{
    DataSubject, DomainErasure, DomainExport, Erasure, Hold, PrivacyDomain, SubjectFile, Tie, tie,
};
use portal_kit::{ApiError, ApiResult};

use crate::domain::retention::HoldTarget;
use crate::store::{self, Store, attachments, erasure, retention, sealing};

/// Why a text is missing: the message was deleted (or erased).
const DELETED: &str = "deleted";
/// Why a text is missing: the tenant's key that sealed it was destroyed.
const KEY_DESTROYED: &str = "keyDestroyed";

/// Messages' export of a data subject.
pub struct Privacy {
    store: Store,
}

impl Privacy {
    /// Over the messages `store` (its database and tenant keys open the sealed text).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn threads(&self, subject: DataSubject) -> ApiResult<Vec<Value>> {
        let (db, person) = (&self.store.db, subject.user_id);
        let parts: HashMap<Uuid, thread_participant::Model> = thread_participant::Entity::find()
            .filter(thread_participant::Column::TenantId.eq(subject.tenant_id))
            .filter(thread_participant::Column::UserId.eq(person))
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|part| (part.thread_id, part))
            .collect();
        let theirs = Condition::any()
            .add(thread::Column::Id.is_in(parts.keys().copied()))
            .add(thread::Column::CreatedBy.eq(person))
            .add(thread::Column::AssigneeId.eq(person));
        let rows = thread::Entity::find()
            .filter(thread::Column::TenantId.eq(subject.tenant_id))
            .filter(theirs)
            .order_by_asc(thread::Column::CreatedAt)
            .order_by_asc(thread::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let opened = sealing::subject(&self.store.keys, &row).await.map(Some);
            let (text, why) = readable(opened, KEY_DESTROYED)?;
            let part = parts.get(&row.id);
            out.push(json!({
                "id": row.id.to_string(),
                "subject": text,
                "subjectUnavailable": why,
                "status": row.status,
                "accountId": row.account_id.map(|a| a.to_string()),
                "createdAt": row.created_at,
                "updatedAt": row.updated_at,
                "openedByThem": row.created_by == person,
                "assignedToThem": row.assignee_id == Some(person),
                "takesPart": part.is_some(),
                "participantKind": part.map(|p| p.kind.clone()),
                "joinedAt": part.map(|p| p.created_at),
                "lastReadAt": part.and_then(|p| p.last_read_at),
            }));
        }
        Ok(out)
    }

    async fn messages(&self, subject: DataSubject) -> ApiResult<Vec<Value>> {
        let (db, keys) = (&self.store.db, &self.store.keys);
        let rows = message::Entity::find()
            .filter(message::Column::TenantId.eq(subject.tenant_id))
            .filter(message::Column::AuthorId.eq(subject.user_id))
            .order_by_asc(message::Column::CreatedAt)
            .order_by_asc(message::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        // Only the author edits a message: its earlier versions are their own words.
        let ids = rows.iter().map(|row| row.id);
        let mut edits = store::edits_of_messages(db, subject.tenant_id, ids).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (body, why) = readable(sealing::body(keys, &row).await, DELETED)?;
            let mut earlier = Vec::new();
            for edit in edits.remove(&row.id).unwrap_or_default() {
                let opened = sealing::earlier_body(keys, &edit).await.map(Some);
                let (text, why) = readable(opened, KEY_DESTROYED)?;
                earlier.push(json!({
                    "id": edit.id.to_string(),
                    "body": text,
                    "bodyUnavailable": why,
                    "replacedAt": edit.replaced_at,
                }));
            }
            out.push(json!({
                "id": row.id.to_string(),
                "threadId": row.thread_id.to_string(),
                "replyToId": row.reply_to_id.map(|r| r.to_string()),
                "body": body,
                "bodyUnavailable": why,
                "createdAt": row.created_at,
                "editedAt": row.edited_at,
                "deletedAt": row.deleted_at,
                "earlierVersions": earlier,
            }));
        }
        Ok(out)
    }

    /// The attachments they uploaded, and the stored files among them.
    async fn attachments(&self, subject: DataSubject) -> ApiResult<(Vec<Value>, Vec<SubjectFile>)> {
        let db = &self.store.db;
        let rows = message_attachment::Entity::find()
            .filter(message_attachment::Column::TenantId.eq(subject.tenant_id))
            .filter(message_attachment::Column::UploadedBy.eq(subject.user_id))
            .order_by_asc(message_attachment::Column::CreatedAt)
            .order_by_asc(message_attachment::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let ids = rows.iter().map(|row| row.id);
        let stored = attachments::files_by_ids(db, subject.tenant_id, ids).await?;
        let (mut out, mut files) = (Vec::with_capacity(rows.len()), Vec::new());
        for row in rows {
            let opened = attachments::name(&self.store, &row).await.map(Some);
            let (name, why) = readable(opened, KEY_DESTROYED)?;
            // Its file is sealed under the same key: without the name it does not open either.
            let kept = stored
                .get(&row.id)
                .is_some_and(|file| file.domain == crate::SUBGRAPH_NAME);
            if let Some(name) = &name
                && kept
            {
                let about = match row.message_id {
                    Some(id) => format!("attachment of message {id}"),
                    None => format!("attachment uploaded to thread {}", row.thread_id),
                };
                files.push(SubjectFile {
                    file_id: row.id,
                    path: format!("{}-{}", row.id, path_safe(name)),
                    about,
                });
            }
            out.push(json!({
                "id": row.id.to_string(),
                "threadId": row.thread_id.to_string(),
                "messageId": row.message_id.map(|m| m.to_string()),
                "fileName": name,
                "fileNameUnavailable": why,
                "sizeBytes": row.size_bytes,
                "contentType": row.content_type,
                "scanStatus": row.state,
                "createdAt": row.created_at,
                "uploadedAt": row.uploaded_at,
                "scannedAt": row.scanned_at,
                "inArchive": name.is_some() && kept,
            }));
        }
        Ok((out, files))
    }

    /// Their notifications, preferences and quiet hours.
    async fn notifications(&self, subject: DataSubject) -> ApiResult<[Vec<Value>; 3]> {
        let (db, tenant, person) = (&self.store.db, subject.tenant_id, subject.user_id);
        let notes = notification::Entity::find()
            .filter(notification::Column::TenantId.eq(tenant))
            .filter(notification::Column::UserId.eq(person))
            .order_by_asc(notification::Column::CreatedAt)
            .order_by_asc(notification::Column::Id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let preferences = notification_preference::Entity::find()
            .filter(notification_preference::Column::TenantId.eq(tenant))
            .filter(notification_preference::Column::UserId.eq(person))
            .order_by_asc(notification_preference::Column::Event)
            .order_by_asc(notification_preference::Column::Channel)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let quiet = notification_quiet_hours::Entity::find()
            .filter(notification_quiet_hours::Column::TenantId.eq(tenant))
            .filter(notification_quiet_hours::Column::UserId.eq(person))
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let notes = notes.into_iter().map(|n| {
            json!({
                "id": n.id.to_string(),
                "event": n.event,
                "threadId": n.thread_id.to_string(),
                "messageId": n.message_id.map(|m| m.to_string()),
                "createdAt": n.created_at,
                "inApp": n.in_app,
                "read": n.read_at.is_some(),
                "readAt": n.read_at,
                "emailDueAt": n.email_due_at,
                "emailedAt": n.emailed_at,
            })
        });
        let preferences = preferences.into_iter().map(|p| {
            json!({
                "event": p.event,
                "channel": p.channel,
                "frequency": p.frequency,
                "updatedAt": p.updated_at,
            })
        });
        let quiet = quiet.into_iter().map(|q| {
            json!({
                "starts": q.starts,
                "ends": q.ends,
                "updatedAt": q.updated_at,
            })
        });
        Ok([
            notes.collect::<Vec<_>>(),
            preferences.collect::<Vec<_>>(),
            quiet.collect::<Vec<_>>(),
        ])
    }
}

#[async_trait::async_trait]
impl PrivacyDomain for Privacy {
    fn name(&self) -> &'static str {
        crate::SUBGRAPH_NAME
    }

    async fn export_tenant(&self, tenant: Uuid) -> ApiResult<DomainExport> {
        let db = &self.store.db;
        let mut data =
            portal_kit::privacy::tenant::export_tables(db, tenant, &plain_tenant_tables()).await?;
        if let Value::Object(collections) = &mut data {
            collections.insert(
                "threads".into(),
                Value::Array(self.tenant_threads(tenant).await?),
            );
            collections.insert(
                "messages".into(),
                Value::Array(self.tenant_messages(tenant).await?),
            );
            collections.insert(
                "message_edits".into(),
                Value::Array(self.tenant_edits(tenant).await?),
            );
            collections.insert(
                "message_attachments".into(),
                Value::Array(self.tenant_attachments(tenant).await?),
            );
        }
        Ok(DomainExport {
            data,
            files: Vec::new(),
        })
    }

    async fn tenant_holds(&self, tenant: Uuid) -> ApiResult<Vec<Hold>> {
        Ok(retention::active_holds(&self.store.db, tenant)
            .await?
            .into_iter()
            .map(|hold| Hold {
                id: hold.id,
                target_type: hold.target_type,
                target_id: hold.target_id,
            })
            .collect())
    }

    async fn erase_tenant(
        &self,
        tenant: Uuid,
        by: &portal_kit::privacy::TenantErasure,
    ) -> ApiResult<DomainErasure> {
        use portal_kit::db::BeginWrite;
        use portal_kit::privacy::tenant;
        use sea_orm::ConnectionTrait;
        let db = &self.store.db;
        let txn = db.begin_write().await.map_err(ApiError::from_db)?;
        // The blind indexes first (they point at messages and threads); PostgreSQL keeps
        // message hashes in an array table of its own, SQLite one row per hash.
        let backend = txn.get_database_backend();
        let mut deleted = Vec::new();
        let mut index_tables = vec!["thread_search_tokens"];
        if backend == sea_orm::DbBackend::Postgres {
            index_tables.push("message_search_index");
        }
        for table in index_tables {
            let sql = match backend {
                sea_orm::DbBackend::Postgres => format!("DELETE FROM {table} WHERE tenant_id = $1"),
                _ => format!("DELETE FROM {table} WHERE tenant_id = ?"),
            };
            let count = txn
                .execute_raw(sea_orm::Statement::from_sql_and_values(
                    backend,
                    sql,
                    [tenant.into()],
                ))
                .await
                .map_err(ApiError::from_db)?
                .rows_affected();
            if count > 0 {
                deleted.push((table.to_owned(), count));
            }
        }
        let mut tables = Vec::new();
        if backend != sea_orm::DbBackend::Postgres {
            use portal_entities::messages::message_search_token;
            tables.push(tenant::table::<message_search_token::Entity>(
                message_search_token::Column::TenantId,
                &[],
            ));
        }
        tables.extend(plain_tenant_tables());
        tables.extend(sealed_tenant_tables());
        // Attachments' objects: those never scanned clean have no file row for the
        // platform's purge to find.
        let objects: Vec<String> = message_attachment::Entity::find()
            .filter(message_attachment::Column::TenantId.eq(tenant))
            .all(&txn)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .filter_map(|row| row.storage_key)
            .collect();
        deleted.extend(tenant::delete_tables(&txn, tenant, &tables).await?);
        if !deleted.is_empty() {
            tenant::record(&txn, ("messages.tenant_erase", tenant), &deleted, by).await?;
        }
        txn.commit().await.map_err(ApiError::from_db)?;
        self.store.remove_objects(objects).await;
        Ok(tenant::erasure_of(&deleted))
    }

    async fn export(&self, subject: DataSubject) -> ApiResult<DomainExport> {
        let (attachments, files) = self.attachments(subject).await?;
        let [notifications, preferences, quiet_hours] = self.notifications(subject).await?;
        let data = json!({
            "threads": self.threads(subject).await?,
            "messages": self.messages(subject).await?,
            "attachments": attachments,
            "notificationPreferences": preferences,
            "quietHours": quiet_hours,
            "notifications": notifications,
        });
        Ok(DomainExport { data, files })
    }

    async fn ties(&self, subject: DataSubject) -> ApiResult<Vec<Tie>> {
        let threads =
            erasure::threads_of(&self.store.db, subject.tenant_id, subject.user_id).await?;
        let mut ties: Vec<Tie> = threads
            .iter()
            .map(|(id, _)| Tie {
                kind: tie::THREAD,
                id: *id,
            })
            .chain(threads.iter().filter_map(|(_, account)| {
                account.map(|id| Tie {
                    kind: tie::ACCOUNT,
                    id,
                })
            }))
            .collect();
        ties.sort();
        ties.dedup();
        Ok(ties)
    }

    async fn holds(&self, subject: DataSubject, ties: &[Tie]) -> ApiResult<Vec<Hold>> {
        let tied = |kind: &str, id: Uuid| ties.iter().any(|t| t.kind == kind && t.id == id);
        let active = retention::active_holds(&self.store.db, subject.tenant_id).await?;
        Ok(active
            .into_iter()
            .filter(|hold| match HoldTarget::from_db(&hold.target_type) {
                Some(HoldTarget::User) => hold.target_id == subject.user_id,
                Some(HoldTarget::Account) => tied(tie::ACCOUNT, hold.target_id),
                Some(HoldTarget::Thread) => tied(tie::THREAD, hold.target_id),
                None => false,
            })
            .map(|hold| Hold {
                id: hold.id,
                target_type: hold.target_type,
                target_id: hold.target_id,
            })
            .collect())
    }

    async fn erase(&self, subject: DataSubject, erasure: &Erasure) -> ApiResult<DomainErasure> {
        let done = erasure::erase_user(
            &self.store,
            (subject.tenant_id, subject.user_id),
            chrono::Utc::now(),
            (&erasure.actor, &erasure.meta),
        )
        .await?;
        let mut out = DomainErasure::default();
        out.anonymized(
            "messages",
            done.messages as u64,
            "the messages they wrote: text, earlier versions and search entries deleted; \
             each stays in its thread as a message by a deleted user, so the conversation \
             keeps its shape",
        )
        .erased(
            "attachments",
            done.attachments as u64,
            "the files they uploaded, with their stored content",
        )
        .erased(
            "threadMemberships",
            done.threads_left as u64,
            "they left every thread",
        )
        .anonymized(
            "threads",
            done.threads_untied as u64,
            "threads they opened lose the subject they wrote; those they opened or were \
             assigned, and notifications they caused, no longer name them",
        )
        .erased(
            "notifications",
            done.notifications as u64,
            "their notifications, notification preferences and quiet hours",
        );
        Ok(out)
    }
}

/// An opened text, or why it is missing: `missing` when there is none, [`KEY_DESTROYED`]
/// when its key version was destroyed (`CONFLICT` from the envelope). Any other failure
/// (altered or misplaced bytes) fails the export.
fn readable(
    opened: ApiResult<Option<String>>,
    missing: &'static str,
) -> ApiResult<(Option<String>, Option<&'static str>)> {
    match opened {
        Ok(Some(text)) => Ok((Some(text), None)),
        Ok(None) => Ok((None, Some(missing))),
        Err(ApiError::Conflict(_)) => Ok((None, Some(KEY_DESTROYED))),
        Err(err) => Err(err),
    }
}

/// `name` as one archive path segment: `[A-Za-z0-9._-]` kept, anything else `_`.
fn path_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Privacy {
    /// The tenant's threads, subjects opened.
    async fn tenant_threads(&self, tenant: Uuid) -> ApiResult<Vec<Value>> {
        let rows = thread::Entity::find()
            .filter(thread::Column::TenantId.eq(tenant))
            .order_by_asc(thread::Column::Id)
            .all(&self.store.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let opened = sealing::subject(&self.store.keys, &row).await.map(Some);
            let (text, why) = readable(opened, KEY_DESTROYED)?;
            out.push(opened_row(&row, SEALED_COLUMNS, [("subject", text, why)]));
        }
        Ok(out)
    }

    /// The tenant's messages, bodies opened.
    async fn tenant_messages(&self, tenant: Uuid) -> ApiResult<Vec<Value>> {
        let rows = message::Entity::find()
            .filter(message::Column::TenantId.eq(tenant))
            .order_by_asc(message::Column::Id)
            .all(&self.store.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (body, why) = readable(sealing::body(&self.store.keys, &row).await, DELETED)?;
            out.push(opened_row(&row, SEALED_COLUMNS, [("body", body, why)]));
        }
        Ok(out)
    }

    /// The earlier versions of the tenant's messages, opened.
    async fn tenant_edits(&self, tenant: Uuid) -> ApiResult<Vec<Value>> {
        use portal_entities::messages::message_edit;
        let rows = message_edit::Entity::find()
            .filter(message_edit::Column::TenantId.eq(tenant))
            .order_by_asc(message_edit::Column::Id)
            .all(&self.store.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let opened = sealing::earlier_body(&self.store.keys, &row)
                .await
                .map(Some);
            let (body, why) = readable(opened, KEY_DESTROYED)?;
            out.push(opened_row(&row, SEALED_COLUMNS, [("body", body, why)]));
        }
        Ok(out)
    }

    /// The tenant's attachments, names opened (their files are in the archive's files).
    async fn tenant_attachments(&self, tenant: Uuid) -> ApiResult<Vec<Value>> {
        let rows = message_attachment::Entity::find()
            .filter(message_attachment::Column::TenantId.eq(tenant))
            .order_by_asc(message_attachment::Column::Id)
            .all(&self.store.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let opened = attachments::name(&self.store, &row).await.map(Some);
            let (name, why) = readable(opened, KEY_DESTROYED)?;
            out.push(opened_row(&row, SEALED_COLUMNS, [("name", name, why)]));
        }
        Ok(out)
    }
}

/// Columns of sealed text, left out of tenant exports (the opened text is there instead).
const SEALED_COLUMNS: &[&str] = &["subject_sealed", "body_sealed", "name_sealed"];

/// `row` as exported (without `omit`), with each opened text under its name and, when it
/// could not be opened, why under `<name>_unavailable`.
fn opened_row<M: sea_orm::ModelTrait, const N: usize>(
    row: &M,
    omit: &[&str],
    opened: [(&str, Option<String>, Option<&'static str>); N],
) -> Value {
    let mut value = portal_kit::privacy::tenant::row_json(row, omit);
    if let Value::Object(members) = &mut value {
        for (name, text, why) in opened {
            members.insert(name.to_owned(), text.map_or(Value::Null, Value::String));
            if let Some(why) = why {
                members.insert(format!("{name}_unavailable"), Value::String(why.to_owned()));
            }
        }
    }
    value
}

/// Messages' tables of a tenant holding no sealed text, children before parents.
fn plain_tenant_tables() -> Vec<Box<dyn portal_kit::privacy::tenant::TenantTable>> {
    use portal_entities::messages::{
        legal_hold, message_retention_rule, messaging_setting, notification_default,
    };
    use portal_kit::privacy::tenant::table;
    vec![
        table::<notification::Entity>(notification::Column::TenantId, &[]),
        table::<notification_preference::Entity>(notification_preference::Column::TenantId, &[]),
        table::<notification_quiet_hours::Entity>(notification_quiet_hours::Column::TenantId, &[]),
        table::<notification_default::Entity>(notification_default::Column::TenantId, &[]),
        table::<messaging_setting::Entity>(messaging_setting::Column::TenantId, &[]),
        table::<message_retention_rule::Entity>(message_retention_rule::Column::TenantId, &[]),
        table::<legal_hold::Entity>(legal_hold::Column::TenantId, &[]),
        table::<thread_participant::Entity>(thread_participant::Column::TenantId, &[]),
    ]
}

/// Messages' tables of a tenant holding sealed text (exported opened, by hand), children
/// before parents.
fn sealed_tenant_tables() -> Vec<Box<dyn portal_kit::privacy::tenant::TenantTable>> {
    use portal_entities::messages::message_edit;
    use portal_kit::privacy::tenant::table;
    vec![
        table::<message_edit::Entity>(message_edit::Column::TenantId, &[]),
        table::<message_attachment::Entity>(message_attachment::Column::TenantId, &[]),
        table::<message::Entity>(message::Column::TenantId, &[]),
        table::<thread::Entity>(thread::Column::TenantId, &[]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_safe_keeps_only_portable_characters() {
        assert_eq!(path_safe("Q3 report (final).pdf"), "Q3_report__final_.pdf");
        assert_eq!(path_safe("../é.txt"), "..__.txt");
    }

    #[test]
    fn a_destroyed_key_is_a_reason_not_a_failure() {
        let gone = Err(ApiError::Conflict("destroyed".into()));
        assert_eq!(
            readable(gone, DELETED).ok(),
            Some((None, Some(KEY_DESTROYED)))
        );
        assert_eq!(
            readable(Ok(None), DELETED).ok(),
            Some((None, Some(DELETED)))
        );
        assert!(readable(Err(ApiError::internal("altered")), DELETED).is_err());
    }
}
