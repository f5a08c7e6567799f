//! `PUT /uploads/<link>`: the bytes of a declared message attachment, sent as the request
//! body (no GraphQL, no multipart), served by the gateway process in every deployment
//! mode.
//!
//! The link (from `createAttachmentUpload`) is signed for one attachment, its tenant and
//! the user or service account who declared it, and expires after ten minutes. Before a
//! byte is stored their current standing is read again (a disabled user, a disabled
//! service account or a suspended tenant uploads nothing), the size is held to the limit the attachment was declared with, and the type
//! is judged from the content (see `portal_messages::domain::attachments`). Answers:
//! `201` with the attachment (`SCANNING`), `413` too large, `415` a type not accepted or
//! not what the name says, `409` already uploaded, `403` an expired or foreign link.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use chrono::Utc;
use serde_json::json;

use portal_kit::storage::UploadLinkError;
use portal_messages::store::Store;
use portal_messages::store::attachments::{self, UploadRefusal};

use crate::files::{refuse, request_meta};

struct Uploads {
    messages: Store,
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// The `/uploads/{link}` route over messages' store.
pub fn router(messages: Store, trusted_proxies: Vec<ipnet::IpNet>) -> Router {
    let state = Arc::new(Uploads {
        messages,
        trusted_proxies,
    });
    Router::new()
        .route("/uploads/{link}", put(upload))
        .with_state(state)
}

async fn upload(
    State(state): State<Arc<Uploads>>,
    Path(link): Path<String>,
    parts: Parts,
    body: Body,
) -> Response {
    let meta = request_meta(&parts, &state.trusted_proxies);
    let store = &state.messages;
    let claims = match store.files.verify_upload(&link, Utc::now()) {
        Ok(claims) => claims,
        Err(UploadLinkError::Expired(_)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "LINK_EXPIRED",
                "this upload link has expired: declare the upload again",
            );
        }
        Err(UploadLinkError::Invalid) => {
            tracing::warn!(source = ?meta.source_ip, "an upload link that this portal did not sign");
            return refuse(StatusCode::FORBIDDEN, "FORBIDDEN", "invalid upload link");
        }
    };
    let (id, tenant_id) = (claims.upload_id, claims.tenant_id);
    // A service account's roles come from the key it calls with; storing bytes it
    // declared needs none (what may be declared and posted is decided through the API).
    let who = portal_kit::principal::Principal {
        kind: claims.kind,
        tenant_id,
        id: claims.principal,
        session: None,
        key_roles: &[],
    };
    let actor = match portal_identity::principals::current(&store.db, who).await {
        Ok(Some(actor)) => actor,
        Ok(None) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "you may no longer upload here",
            );
        }
        Err(err) => return failed(&err),
    };
    let row = match attachments::attachment(&store.db, tenant_id, id).await {
        Ok(row) => row,
        Err(err) => return failed(&err),
    };
    let limit = usize::try_from(row.max_bytes).unwrap_or(usize::MAX);
    let content = match axum::body::to_bytes(body, limit).await {
        Ok(content) => content,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!(
                    "the file is larger than the {} bytes allowed",
                    row.max_bytes
                ),
            );
        }
    };
    match attachments::receive(store, (id, tenant_id), &actor, &meta, &content).await {
        Ok(row) => (
            StatusCode::CREATED,
            axum::Json(json!({
                "id": row.id,
                "state": row.state,
                "sizeBytes": row.size_bytes,
                "contentType": row.content_type,
                "sha256": row.sha256,
            })),
        )
            .into_response(),
        Err(UploadRefusal::TooLarge(limit)) => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            &format!("the file is larger than the {limit} bytes allowed"),
        ),
        Err(UploadRefusal::Type(refusal)) => refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            &refusal.to_string(),
        ),
        Err(UploadRefusal::Api(err)) => failed(&err),
    }
}

fn failed(err: &portal_kit::ApiError) -> Response {
    use portal_kit::ErrorCode;
    let status = match err.code() {
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Internal => {
            tracing::error!(?err, "receiving an upload failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
        "the upload could not be stored".to_owned()
    } else {
        err.message()
    };
    refuse(status, err.code().as_str(), &message)
}
