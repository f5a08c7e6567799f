//! `GET /files/<link>`: downloads of stored files (exports, report runs), served by the gateway
//! process in every deployment mode.
//!
//! A link is signed for one file and one principal and expires within minutes (see
//! [`portal_kit::storage`]). Holding it is not enough: before a byte is sent, the
//! principal's *current* standing is read from identity (a disabled user, a disabled
//! service account or a suspended tenant gets nothing; a user acts with the roles held
//! now, not when the link was issued), and the file's owning entity is asked through the
//! gateway — as that principal, with field-level policies and the subgraph's row rules —
//! whether it may still be read: its owner's query field (for an `AccountExport`,
//! `accountExport(id)`) must return it, and the file's access selection (the fields its
//! data came from, e.g. `accountExport(id: $id) { account { ledgerEntries … } }` or
//! `dashboard { balances … }`) must resolve without an error. Every download and every refusal after a valid link is audited (`file.download`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use portal_entities::platform::file;
use portal_gateway::gateway::{AllowedOperations, Gateway};
use portal_gateway::response::Request;
use portal_gateway::subgraph::Caller;
use portal_kit::audit::AuditEvent;
use portal_kit::storage::{FileStore, LinkClaims, LinkError};
use portal_kit::{Actor, ActorKind, ApiResult, RequestMeta};

/// What serving downloads needs: where files are and the database their rows are in.
#[derive(Clone, Debug)]
pub struct FileService {
    /// The object store and link keys.
    pub store: FileStore,
    /// The database (file rows, principals, audit).
    pub db: DatabaseConnection,
    /// The tenants' data keys: files sealed with them (attachments) are opened to send.
    pub keys: portal_kit::envelope::TenantKeys,
}

struct Downloads {
    files: FileService,
    gateway: Arc<Gateway>,
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// The `/files/{link}` route, re-checking access through `gateway`.
pub fn router(
    files: FileService,
    gateway: Arc<Gateway>,
    trusted_proxies: Vec<ipnet::IpNet>,
) -> Router {
    let state = Arc::new(Downloads {
        files,
        gateway,
        trusted_proxies,
    });
    Router::new()
        .route("/files/{link}", get(download))
        .route("/files/delivered/{link}", get(delivered))
        .with_state(state)
}

pub(crate) fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn request_meta(parts: &Parts, trusted_proxies: &[ipnet::IpNet]) -> RequestMeta {
    let headers = &parts.headers;
    let connect = parts.extensions.get::<ConnectInfo<SocketAddr>>();
    let context = portal_kit::telemetry::RequestContext::of(&parts.extensions, headers);
    RequestMeta {
        request_id: Some(context.request_id),
        source_ip: portal_gateway::transport::client_ip(
            connect.map(|c| c.0.ip()),
            headers,
            trusted_proxies,
        )
        .map(|ip| ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        traceparent: Some(context.trace.header()),
    }
}

/// `GET /files/delivered/<link>`: a report file delivered by email, for whoever holds the
/// email's link, until the file expires — as long as the delivery stands: its recipient
/// is still a recipient, a user recipient is still active and may still read the run and
/// every field in the file (an external one: the owner who vouched for it may), and
/// external delivery is still allowed for an external address.
async fn delivered(
    State(state): State<Arc<Downloads>>,
    Path(link): Path<String>,
    parts: Parts,
) -> Response {
    let meta = request_meta(&parts, &state.trusted_proxies);
    let id = match state.files.store.verify_delivery(&link, Utc::now()) {
        Ok(id) => id,
        Err(LinkError::DeliveryExpired(_)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "LINK_EXPIRED",
                "this download link has expired",
            );
        }
        Err(_) => {
            tracing::warn!(source = ?meta.source_ip, "a delivery link that this portal did not sign");
            return refuse(StatusCode::FORBIDDEN, "FORBIDDEN", "invalid download link");
        }
    };
    match state.serve_delivery(id, &meta).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(?err, delivery = %id, "serving a delivered file failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "the file could not be read",
            )
        }
    }
}

async fn download(
    State(state): State<Arc<Downloads>>,
    Path(link): Path<String>,
    parts: Parts,
) -> Response {
    let meta = request_meta(&parts, &state.trusted_proxies);
    let claims = match state.files.store.verify(&link, Utc::now()) {
        Ok(claims) => claims,
        Err(LinkError::Expired(claims)) => {
            state.refused(&claims, &meta, "the link had expired").await;
            return refuse(
                StatusCode::FORBIDDEN,
                "LINK_EXPIRED",
                "this download link has expired: ask for a new one",
            );
        }
        Err(LinkError::Invalid | LinkError::DeliveryExpired(_)) => {
            // Nobody to attribute it to: a log line, not an audit event.
            tracing::warn!(source = ?meta.source_ip, "a download link that this portal did not sign");
            return refuse(StatusCode::FORBIDDEN, "FORBIDDEN", "invalid download link");
        }
    };
    match state.serve(&claims, &meta).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(?err, file = %claims.file_id, "serving a download failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "the file could not be read",
            )
        }
    }
}

impl Downloads {
    async fn serve(&self, claims: &LinkClaims, meta: &RequestMeta) -> ApiResult<Response> {
        let db = &self.files.db;
        let now = Utc::now();
        let Some(row) =
            portal_kit::storage::find(db, claims.tenant_id, claims.file_id, now).await?
        else {
            self.refused(claims, meta, "the file does not exist or has expired")
                .await;
            return Ok(refuse(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "the file does not exist or has expired",
            ));
        };
        let actor = current_actor(db, claims).await?;
        let allowed = match &actor {
            Some(actor) => self.may_read(actor, meta, &row).await,
            None => false,
        };
        let Some(actor) = actor.filter(|_| allowed) else {
            self.refused(claims, meta, "the principal may no longer read it")
                .await;
            return Ok(refuse(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "you may no longer read this file",
            ));
        };
        let details = json!({
            "ownerType": row.owner_type,
            "ownerId": row.owner_id,
            "name": row.name,
            "bytes": row.size_bytes,
        });
        self.send(&row, (&actor, meta), details).await
    }

    /// Serves the file of delivery `id` if the delivery still stands (see [`delivered`]).
    async fn serve_delivery(&self, id: Uuid, meta: &RequestMeta) -> ApiResult<Response> {
        let db = &self.files.db;
        let gone = || {
            refuse(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "the file does not exist, has expired, or is no longer delivered to you",
            )
        };
        let Some((delivery, recipient, definition)) =
            portal_reports::store::delivery::standing_delivery(db, id).await?
        else {
            return Ok(gone());
        };
        // A user downloads as themselves; an external address on the owner's word.
        let vouching = recipient.user_id.unwrap_or(definition.owner_id);
        let who = portal_kit::principal::Principal {
            kind: ActorKind::User,
            tenant_id: delivery.tenant_id,
            id: vouching,
            session: None,
            key_roles: &[],
        };
        let standing = portal_identity::principals::current(db, who).await?;
        let now = Utc::now();
        let row = portal_kit::storage::find(db, delivery.tenant_id, delivery.file_id, now).await?;
        // The reader the file was made for must still be able to read what is in it.
        let allowed = match (&standing, &row) {
            (Some(actor), Some(row)) => self.may_read(actor, meta, row).await,
            _ => false,
        };
        let (Some(actor), Some(row)) = (standing.filter(|_| allowed), row) else {
            let anonymous = Actor {
                tenant_id: Some(delivery.tenant_id),
                ..Actor::anonymous()
            };
            AuditEvent::failure("file.download", "file", Some(delivery.file_id))
                .with_details(
                    json!({ "deliveryId": id, "reason": "the delivery no longer stands" }),
                )
                .record(db, &anonymous, meta)
                .await?;
            return Ok(gone());
        };
        // External recipients act for nobody: recorded as anonymous in the tenant, naming
        // the delivery (and so the address).
        let actor = if recipient.email.is_some() {
            Actor {
                tenant_id: Some(delivery.tenant_id),
                ..Actor::anonymous()
            }
        } else {
            actor
        };
        let details = json!({
            "ownerType": row.owner_type,
            "ownerId": row.owner_id,
            "name": row.name,
            "bytes": row.size_bytes,
            "deliveryId": id,
            "external": recipient.email.is_some(),
        });
        self.send(&row, (&actor, meta), details).await
    }

    /// The file's contents as a download, audited as `file.download` for `actor`.
    async fn send(
        &self,
        row: &file::Model,
        (actor, meta): (&Actor, &RequestMeta),
        details: Value,
    ) -> ApiResult<Response> {
        // Opened before the download is recorded: a file that cannot be read is not one
        // that was downloaded.
        let (body, name) = match row.key_version {
            // Sealed with the tenant's key (attachments): opened whole (they are small).
            Some(version) => {
                let (content, name) = self.open_sealed(row, version).await?;
                (Body::from(content), name)
            }
            None => {
                let stream =
                    futures::TryStreamExt::map_err(self.files.store.open(row).await?, |err| {
                        std::io::Error::other(format!("{err:?}"))
                    });
                (Body::from_stream(stream), row.name.clone())
            }
        };
        AuditEvent::success("file.download", "file", row.id)
            .with_details(details)
            .record(&self.files.db, actor, meta)
            .await?;
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        let value = |v: &str| HeaderValue::from_str(v).ok();
        if let Some(v) = value(&row.content_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(row.size_bytes));
        if let Some(v) = value(&content_disposition(&name)) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(v) = hex::decode(&row.sha256)
            .ok()
            .map(|raw| base64::engine::general_purpose::STANDARD.encode(raw))
            .and_then(|b64| value(&format!("sha-256=:{b64}:")))
        {
            headers.insert("repr-digest", v);
        }
        if let Some(rows) = row.row_count {
            headers.insert("x-row-count", HeaderValue::from(rows));
        }
        Ok(response)
    }

    /// The content and name of a file sealed under the tenant key `version`.
    async fn open_sealed(&self, row: &file::Model, version: i32) -> ApiResult<(Vec<u8>, String)> {
        opened(&self.files.store, &self.files.keys, row, version).await
    }

    /// Audits a refused download of the link's file (`file.download`, failure) for the
    /// link's principal; a failure to record it is logged.
    async fn refused(&self, claims: &LinkClaims, meta: &RequestMeta, reason: &str) {
        let who = Actor {
            kind: if claims.kind == "service" {
                ActorKind::Service
            } else {
                ActorKind::User
            },
            id: Some(claims.principal),
            tenant_id: Some(claims.tenant_id),
            roles: Vec::new(),
            session_id: claims.session,
            grants: Vec::new(),
            delegation: None,
        };
        let recorded = AuditEvent::failure("file.download", "file", Some(claims.file_id))
            .with_details(json!({ "reason": reason }))
            .record(&self.files.db, &who, meta)
            .await;
        if let Err(err) = recorded {
            tracing::error!(?err, "recording a refused download failed");
        }
    }

    /// Whether `actor` may read `row` now: the owning entity's query field (the owner type
    /// in lower camel case, e.g. `accountExport`) returns it, and the file's access
    /// selection (a root selection, `$id` being the owner's id) resolves, through the
    /// gateway, without an error.
    async fn may_read(&self, actor: &Actor, meta: &RequestMeta, row: &file::Model) -> bool {
        let field = lower_camel(&row.owner_type);
        let mut variables = Map::new();
        variables.insert("id".into(), Value::String(row.owner_id.to_string()));
        let request = Request {
            query: format!(
                "query FileAccess($id: ID!) {{ owner: {field}(id: $id) {{ id }} {} }}",
                row.access_selection.as_deref().unwrap_or_default()
            ),
            operation_name: None,
            variables: Some(variables),
            extensions: None,
        };
        let caller = Caller {
            actor: actor.clone(),
            meta: meta.clone(),
        };
        let response = self
            .gateway
            .execute(request, &caller, AllowedOperations::QueriesOnly)
            .await;
        let owner = row.owner_id.to_string();
        response.errors.is_empty()
            && response
                .data
                .as_ref()
                .and_then(|data| data.get("owner"))
                .and_then(|found| found.get("id"))
                .and_then(Value::as_str)
                == Some(owner.as_str())
    }
}

/// The whole content and the name of the stored file `row`, opened when it is sealed
/// under its tenant's key (attachments, archives), in memory.
pub async fn contents(
    store: &FileStore,
    keys: &portal_kit::envelope::TenantKeys,
    row: &file::Model,
) -> ApiResult<(Vec<u8>, String)> {
    match row.key_version {
        Some(version) => opened(store, keys, row, version).await,
        None => Ok((
            store.read_all(&row.storage_key).await?.to_vec(),
            row.name.clone(),
        )),
    }
}

/// The content and name of `row`, sealed under its tenant's key `version`.
async fn opened(
    store: &FileStore,
    keys: &portal_kit::envelope::TenantKeys,
    row: &file::Model,
    version: i32,
) -> ApiResult<(Vec<u8>, String)> {
    use portal_kit::envelope::Sealed;
    use portal_kit::storage::name_binding;
    let content = store
        .read_sealed(keys, (row.tenant_id, row.id), version, &row.storage_key)
        .await?;
    let name = match &row.name_sealed {
        Some(bytes) => {
            let sealed = Sealed {
                version,
                bytes: bytes.clone(),
            };
            keys.open_text(name_binding(row.tenant_id, row.id), &sealed)
                .await?
        }
        None => row.name.clone(),
    };
    Ok((content, name))
}

/// The link's principal as it stands now: an active user of an active tenant with the
/// roles held now (and, for a link made in a session, that session still live), or an
/// active service account (with the roles of the key it called with, which the link
/// carries); `None` otherwise.
async fn current_actor(db: &DatabaseConnection, claims: &LinkClaims) -> ApiResult<Option<Actor>> {
    let kind = match claims.kind.as_str() {
        "user" => ActorKind::User,
        "service" => ActorKind::Service,
        _ => return Ok(None),
    };
    let who = portal_kit::principal::Principal {
        kind,
        tenant_id: claims.tenant_id,
        id: claims.principal,
        session: claims.session,
        key_roles: &claims.roles,
    };
    portal_identity::principals::current(db, who).await
}

fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `attachment` with an ASCII fallback name and the exact name in RFC 5987 form.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_types_name_their_query_field() {
        assert_eq!(lower_camel("AccountExport"), "accountExport");
    }

    #[test]
    fn download_names_are_safe_in_the_header() {
        assert_eq!(
            content_disposition("a b\"c.csv"),
            "attachment; filename=\"a_b_c.csv\"; filename*=UTF-8''a%20b%22c.csv"
        );
    }
}
