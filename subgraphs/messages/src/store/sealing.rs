//! How messages' text is kept: thread subjects, message bodies and their earlier versions
//! sealed with the tenant's data key ([`portal_kit::envelope`]), each bound to its
//! purpose, tenant, row and key version. Rows written before encryption keep plaintext in
//! `legacy_*` columns until the reseal job ([`super::reseal`]) seals them; they read the
//! same meanwhile.

use uuid::Uuid;

use portal_entities::messages::{message, message_edit, thread};
use portal_kit::envelope::{Binding, Sealed, TenantKeys, stored};
use portal_kit::{ApiError, ApiResult};

/// Purpose of a sealed thread subject.
pub const SUBJECT: &str = "thread.subject";
/// Purpose of a sealed message body.
pub const BODY: &str = "message.body";
/// Purpose of a sealed earlier body of an edited message.
pub const EARLIER_BODY: &str = "message.edit";

/// Where a thread's subject is bound.
pub fn subject_binding(tenant_id: Uuid, thread_id: Uuid) -> Binding<'static> {
    Binding {
        purpose: SUBJECT,
        tenant_id,
        object_id: thread_id,
    }
}

/// Where a message's body is bound.
pub fn body_binding(tenant_id: Uuid, message_id: Uuid) -> Binding<'static> {
    Binding {
        purpose: BODY,
        tenant_id,
        object_id: message_id,
    }
}

/// Where an earlier body (one row of `message_edits`) is bound.
pub fn earlier_body_binding(tenant_id: Uuid, edit_id: Uuid) -> Binding<'static> {
    Binding {
        purpose: EARLIER_BODY,
        tenant_id,
        object_id: edit_id,
    }
}

/// Reads a sealed (or legacy plaintext) text; `None` when the row holds neither.
async fn text(
    keys: &TenantKeys,
    binding: Binding<'_>,
    sealed: Option<Sealed>,
    legacy: Option<&String>,
) -> ApiResult<Option<String>> {
    match (sealed, legacy) {
        (Some(sealed), _) => keys.open_text(binding, &sealed).await.map(Some),
        (None, Some(plain)) => Ok(Some(plain.clone())),
        (None, None) => Ok(None),
    }
}

/// A thread's subject.
pub async fn subject(keys: &TenantKeys, row: &thread::Model) -> ApiResult<String> {
    let sealed = stored(row.subject_sealed.as_ref(), row.key_version);
    let binding = subject_binding(row.tenant_id, row.id);
    text(keys, binding, sealed, row.legacy_subject.as_ref())
        .await?
        .ok_or_else(|| ApiError::internal("a thread has no subject"))
}

/// A message's body; `None` once deleted (or erased with its author).
pub async fn body(keys: &TenantKeys, row: &message::Model) -> ApiResult<Option<String>> {
    if row.deleted_at.is_some() {
        return Ok(None);
    }
    let sealed = stored(row.body_sealed.as_ref(), row.key_version);
    let binding = body_binding(row.tenant_id, row.id);
    text(keys, binding, sealed, row.legacy_body.as_ref()).await
}

/// An earlier body of an edited message.
pub async fn earlier_body(keys: &TenantKeys, row: &message_edit::Model) -> ApiResult<String> {
    let sealed = stored(row.body_sealed.as_ref(), row.key_version);
    let binding = earlier_body_binding(row.tenant_id, row.id);
    text(keys, binding, sealed, None)
        .await?
        .ok_or_else(|| ApiError::internal("an earlier body was removed"))
}
