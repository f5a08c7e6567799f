//! Attachments: declared for a thread with a sealed name, received through an upload link
//! (type judged from the content, SHA-256 recorded, content sealed in chunks and kept in
//! object storage), judged by the malware scan, then attached to a message by its
//! author. A clean attachment gets a `files` row with its own id (owner type
//! `Attachment`): downloads go through the portal's signed, re-checked file links.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::messages::{message_attachment, messaging_setting};
use portal_entities::platform::file;
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::envelope::Sealed;
use portal_kit::jobs::{self, NewJob};
use portal_kit::scan::Verdict;
use portal_kit::store::{one_or_not_found, rows_by_ids};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use super::{Store, participation, thread};
use crate::domain::attachments::{self as rules, AttachmentState, TypeRefusal};
use crate::domain::{self, ParticipantKind, ThreadStatus};

/// Job kind of the malware scan of one received attachment.
pub const SCAN_KIND: &str = "messages.scan_attachment";

// An attachment's id is its file's: name and content are bound as the file's.
use portal_kit::storage::{content_binding, name_binding};

/// The tenant's attachment size limit.
pub async fn max_bytes(db: &impl ConnectionTrait, tenant_id: Uuid) -> ApiResult<i64> {
    Ok(messaging_setting::Entity::find_by_id(tenant_id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .map_or(rules::DEFAULT_MAX_BYTES, |s| s.attachment_max_bytes))
}

/// Sets the actor's tenant's attachment size limit (validated); audited.
pub async fn set_max_bytes(
    db: &DatabaseConnection,
    actor: &Actor,
    meta: &RequestMeta,
    limit: i64,
) -> ApiResult<i64> {
    let tenant_id = actor.tenant()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let before = max_bytes(&txn, tenant_id).await?;
    let row = messaging_setting::ActiveModel {
        tenant_id: Set(tenant_id),
        attachment_max_bytes: Set(limit),
        updated_by: Set(actor.id),
        updated_at: Set(Utc::now()),
    };
    messaging_setting::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(messaging_setting::Column::TenantId)
                .update_columns([
                    messaging_setting::Column::AttachmentMaxBytes,
                    messaging_setting::Column::UpdatedBy,
                    messaging_setting::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(ApiError::from_db)?;
    AuditEvent::success("messaging_settings.update", "tenant", tenant_id)
        .with_details(json!({
            "before": { "attachmentMaxBytes": before },
            "after": { "attachmentMaxBytes": limit },
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(limit)
}

/// One attachment of the tenant.
pub async fn attachment(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> ApiResult<message_attachment::Model> {
    let scoped = message_attachment::Entity::find_by_id(id)
        .filter(message_attachment::Column::TenantId.eq(tenant_id));
    one_or_not_found(db, scoped, "attachment").await
}

/// Attachments of the tenant among `ids`, in one query.
pub async fn attachments_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, message_attachment::Model>> {
    let scoped = message_attachment::Entity::find()
        .filter(message_attachment::Column::TenantId.eq(tenant_id));
    rows_by_ids(db, scoped, message_attachment::Column::Id, ids).await
}

/// The attachments of each of `message_ids`, in the order they were declared.
pub async fn attachments_of_messages(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    message_ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Vec<message_attachment::Model>>> {
    let rows = message_attachment::Entity::find()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::MessageId.is_in(message_ids))
        .order_by_asc(message_attachment::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut by_message: HashMap<Uuid, Vec<message_attachment::Model>> = HashMap::new();
    for row in rows {
        if let Some(message) = row.message_id {
            by_message.entry(message).or_default().push(row);
        }
    }
    Ok(by_message)
}

/// The file rows (downloadable, clean attachments) of those of `ids` that have one.
pub async fn files_by_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, file::Model>> {
    portal_kit::storage::find_many(db, tenant_id, ids, Utc::now()).await
}

/// An attachment's file name.
pub async fn name(store: &Store, row: &message_attachment::Model) -> ApiResult<String> {
    let sealed = Sealed {
        version: row.key_version,
        bytes: row.name_sealed.clone(),
    };
    store
        .keys
        .open_text(name_binding(row.tenant_id, row.id), &sealed)
        .await
}

/// A declared upload: the attachment and the link its bytes go to.
pub struct Declared {
    /// The attachment, `AWAITING_UPLOAD`.
    pub row: message_attachment::Model,
    /// Where to `PUT` the bytes.
    pub upload_url: String,
}

/// Declares an attachment named `name` for the thread `thread_id` (which the actor must be
/// able to post to), valid for [`rules::UPLOAD_WINDOW`]; audited as `attachment.declare`.
pub async fn declare(
    store: &Store,
    actor: &Actor,
    meta: &RequestMeta,
    thread_id: Uuid,
    name: &str,
    author_kind: ParticipantKind,
) -> ApiResult<Declared> {
    let tenant_id = actor.tenant()?;
    let uploader = actor.principal()?;
    let id = Uuid::now_v7();
    let sealed = store
        .keys
        .seal(name_binding(tenant_id, id), name.as_bytes())
        .await?;
    let now = Utc::now();
    let expires = now + rules::UPLOAD_WINDOW;
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let current = thread(&txn, tenant_id, thread_id).await?;
    let part = participation(&txn, tenant_id, thread_id, uploader).await?;
    domain::may_post(
        part.is_some() || author_kind == ParticipantKind::Staff,
        ThreadStatus::from_db(&current.status),
    )?;
    let limit = max_bytes(&txn, tenant_id).await?;
    let row = message_attachment::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        thread_id: Set(thread_id),
        message_id: Set(None),
        uploaded_by: Set(uploader),
        name_sealed: Set(sealed.bytes),
        key_version: Set(sealed.version),
        max_bytes: Set(limit),
        state: Set(AttachmentState::AwaitingUpload.as_str().to_owned()),
        content_type: Set(None),
        size_bytes: Set(None),
        sha256: Set(None),
        storage_key: Set(None),
        scan_detail: Set(None),
        created_at: Set(now),
        upload_expires_at: Set(expires),
        uploaded_at: Set(None),
        scanned_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("attachment.declare", "attachment", id)
        .with_details(json!({ "threadId": thread_id, "maxBytes": limit }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    let claims = portal_kit::storage::UploadClaims {
        upload_id: id,
        tenant_id,
        kind: actor.kind,
        principal: uploader,
    };
    let upload_url = store.files.upload_link(claims, expires);
    Ok(Declared { row, upload_url })
}

impl From<ApiError> for UploadRefusal {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

/// Why an upload was not taken.
#[derive(Debug, thiserror::Error)]
pub enum UploadRefusal {
    /// More bytes than the limit.
    #[error("the file is larger than the {0} bytes allowed")]
    TooLarge(i64),
    /// The content is not an accepted type, or not what its name says.
    #[error(transparent)]
    Type(#[from] TypeRefusal),
    /// Already uploaded, or no longer awaiting one (`CONFLICT`), or an API error.
    #[error("{}", .0.message())]
    Api(ApiError),
}

/// Takes the bytes of the declared attachment `id` of `tenant_id`, sent by `principal`
/// (who declared it): checks size and type, records the SHA-256, seals and stores the
/// content, and queues the malware scan. Audited as `attachment.upload` (a refusal as a
/// failure).
pub async fn receive(
    store: &Store,
    (id, tenant_id): (Uuid, Uuid),
    actor: &Actor,
    meta: &RequestMeta,
    content: &[u8],
) -> Result<message_attachment::Model, UploadRefusal> {
    let row = attachment(&store.db, tenant_id, id).await?;
    if row.uploaded_by != actor.principal()?
        || AttachmentState::from_db(&row.state) != AttachmentState::AwaitingUpload
    {
        return Err(ApiError::Conflict("this upload was already received".into()).into());
    }
    let refuse = |reason: String| async move {
        AuditEvent::failure("attachment.upload", "attachment", Some(id))
            .with_details(json!({ "reason": reason }))
            .record(&store.db, actor, meta)
            .await
    };
    if content.len() as i64 > row.max_bytes {
        refuse(format!("larger than {} bytes", row.max_bytes)).await?;
        return Err(UploadRefusal::TooLarge(row.max_bytes));
    }
    let file_name = name(store, &row).await?;
    let content_type = match rules::content_type(&file_name, content) {
        Ok(found) => found,
        Err(refusal) => {
            refuse(refusal.to_string()).await?;
            return Err(refusal.into());
        }
    };
    let sha256 = hex::encode(Sha256::digest(content));
    let sealed = store
        .keys
        .seal_blob_with(content_binding(tenant_id, id), row.key_version, content)
        .await?;
    let key = portal_kit::storage::object_key("messages", tenant_id, id);
    store.files.put_bytes(&key, sealed.bytes).await?;
    let now = Utc::now();
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let updated = message_attachment::Entity::update_many()
        .col_expr(
            message_attachment::Column::State,
            Expr::value(AttachmentState::Scanning.as_str()),
        )
        .col_expr(
            message_attachment::Column::ContentType,
            Expr::value(content_type),
        )
        .col_expr(
            message_attachment::Column::SizeBytes,
            Expr::value(content.len() as i64),
        )
        .col_expr(
            message_attachment::Column::Sha256,
            Expr::value(sha256.clone()),
        )
        .col_expr(message_attachment::Column::StorageKey, Expr::value(key))
        .col_expr(message_attachment::Column::UploadedAt, Expr::value(now))
        .filter(message_attachment::Column::Id.eq(id))
        .filter(message_attachment::Column::State.eq(AttachmentState::AwaitingUpload.as_str()))
        // Sealed under the version read above: a re-seal meanwhile makes it try again.
        .filter(message_attachment::Column::KeyVersion.eq(row.key_version))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if updated.rows_affected == 0 {
        return Err(ApiError::Conflict("this upload was already received".into()).into());
    }
    let mut scan =
        NewJob::new(SCAN_KIND, json!({ "attachmentId": id })).idempotency_key(format!("scan:{id}"));
    scan.tenant_id = Some(tenant_id);
    jobs::enqueue(&txn, now, scan).await?;
    AuditEvent::success("attachment.upload", "attachment", id)
        .with_details(json!({
            "threadId": row.thread_id,
            "bytes": content.len(),
            "contentType": content_type,
            "sha256": sha256,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(attachment(&store.db, tenant_id, id).await?)
}

/// The sealed content of a received attachment, opened.
pub async fn content(store: &Store, row: &message_attachment::Model) -> ApiResult<Vec<u8>> {
    let key = row
        .storage_key
        .as_deref()
        .ok_or_else(|| ApiError::Conflict("the attachment has not been uploaded".into()))?;
    store
        .files
        .read_sealed(&store.keys, (row.tenant_id, row.id), row.key_version, key)
        .await
}

/// Records the scan's `verdict` on a `SCANNING` attachment: clean ones become
/// downloadable (their `files` row), infected ones quarantined for good. Audited as
/// `attachment.scan` (by the platform). A verdict on an attachment no longer scanning
/// changes nothing.
pub async fn record_scan(
    store: &Store,
    row: &message_attachment::Model,
    verdict: &Verdict,
    meta: &RequestMeta,
) -> ApiResult<()> {
    let now = Utc::now();
    let (state, detail) = match verdict {
        Verdict::Clean(by) => (AttachmentState::Clean, by.clone()),
        Verdict::Infected(signature) => (AttachmentState::Quarantined, signature.clone()),
    };
    let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
    let updated = message_attachment::Entity::update_many()
        .col_expr(
            message_attachment::Column::State,
            Expr::value(state.as_str()),
        )
        .col_expr(
            message_attachment::Column::ScanDetail,
            Expr::value(detail.clone()),
        )
        .col_expr(message_attachment::Column::ScannedAt, Expr::value(now))
        .filter(message_attachment::Column::Id.eq(row.id))
        .filter(message_attachment::Column::State.eq(AttachmentState::Scanning.as_str()))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if updated.rows_affected == 0 {
        return Ok(());
    }
    // As it is now (a re-seal may have moved its object and key version since it was read).
    let row = &attachment(&txn, row.tenant_id, row.id).await?;
    if state == AttachmentState::Clean {
        file::ActiveModel {
            id: Set(row.id),
            tenant_id: Set(row.tenant_id),
            domain: Set(crate::SUBGRAPH_NAME.to_owned()),
            owner_type: Set("Attachment".to_owned()),
            owner_id: Set(row.id),
            // The real name is sealed (`name_sealed`); this one is what a download falls
            // back to.
            name: Set("attachment".to_owned()),
            content_type: Set(row.content_type.clone().unwrap_or_default()),
            size_bytes: Set(row.size_bytes.unwrap_or_default()),
            sha256: Set(row.sha256.clone().unwrap_or_default()),
            row_count: Set(None),
            storage_key: Set(row.storage_key.clone().unwrap_or_default()),
            access_selection: Set(None),
            created_by: Set(Some(row.uploaded_by)),
            created_at: Set(now),
            expires_at: Set(None),
            key_version: Set(Some(row.key_version)),
            name_sealed: Set(Some(row.name_sealed.clone())),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
    }
    let platform = Actor {
        tenant_id: Some(row.tenant_id),
        ..Actor::anonymous()
    };
    AuditEvent::success("attachment.scan", "attachment", row.id)
        .with_details(json!({ "verdict": state.as_str(), "detail": detail }))
        .record(&txn, &platform, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(())
}

/// Attaches `ids` to the new message `message_id` by `author` in `thread_id`: each must
/// have been declared by the author for that thread, received, not quarantined and not
/// attached yet (`BAD_USER_INPUT` on `field` otherwise).
pub async fn attach(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    (thread_id, message_id, author): (Uuid, Uuid, Uuid),
    ids: &[Uuid],
    field: &'static str,
) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    if ids.len() > rules::PER_MESSAGE_MAX {
        return Err(ApiError::invalid(
            field,
            format!("at most {} attachments per message", rules::PER_MESSAGE_MAX),
        ));
    }
    let rows = message_attachment::Entity::find()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::Id.is_in(ids.iter().copied()))
        .all(txn)
        .await
        .map_err(ApiError::from_db)?;
    let usable = |row: &message_attachment::Model| {
        row.uploaded_by == author
            && row.thread_id == thread_id
            && row.message_id.is_none()
            && AttachmentState::from_db(&row.state).attachable()
    };
    let distinct: std::collections::BTreeSet<Uuid> = ids.iter().copied().collect();
    if rows.len() != distinct.len() || !rows.iter().all(usable) {
        return Err(ApiError::invalid(
            field,
            "attachments you uploaded to this thread, received and not attached yet",
        ));
    }
    message_attachment::Entity::update_many()
        .col_expr(
            message_attachment::Column::MessageId,
            Expr::value(message_id),
        )
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::Id.is_in(distinct))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Removes the attachments of deleted messages `message_ids` (rows and file rows; their
/// objects are returned to be removed once the deletion commits).
pub async fn remove_of_messages(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    message_ids: &[Uuid],
) -> ApiResult<Vec<String>> {
    let rows = message_attachment::Entity::find()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::MessageId.is_in(message_ids.iter().copied()))
        .all(txn)
        .await
        .map_err(ApiError::from_db)?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    file::Entity::delete_many()
        .filter(file::Column::TenantId.eq(tenant_id))
        .filter(file::Column::Id.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    message_attachment::Entity::delete_many()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::Id.is_in(ids))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows.into_iter().filter_map(|row| row.storage_key).collect())
}
