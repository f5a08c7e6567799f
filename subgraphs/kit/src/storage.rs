//! Stored files: contents in object storage (the `object_store` crate — a local directory
//! by default, an S3-compatible bucket by configuration), one `files` row each (owning domain and entity, tenant, name, type, size,
//! SHA-256, row count, expiry), and short-lived signed download links.
//!
//! A link names the file and the principal it was issued to, and expires (five minutes by
//! default): `/files/<claims>.<signature>`, the signature an HMAC-SHA256 under a key
//! derived from the data key, so every process holding the data key can verify it and
//! nobody else can mint one. A valid link is not enough to download: the process serving
//! `/files/…` re-reads the principal's current roles and asks the owning entity's query
//! field, through the gateway as that principal, whether the file may still be read (see
//! the portal's `files` module).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use futures::stream::BoxStream;
use hmac::{Hmac, Mac};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use portal_entities::platform::file;

use crate::actor::{Actor, ActorKind};
use crate::error::{ApiError, ApiResult};
use crate::secret::DataKey;

/// Path prefix of download links.
pub const LINK_PREFIX: &str = "/files/";

/// Path prefix of upload links (`PUT /uploads/<token>`).
pub const UPLOAD_PREFIX: &str = "/uploads/";

/// Where one-click unsubscribe links point (`<prefix><token>`).
pub const UNSUBSCRIBE_PREFIX: &str = "/notifications/unsubscribe/";

/// Path prefix of delivery links (`/files/delivered/<token>`): a file delivered by email,
/// downloaded without signing in until the file expires.
pub const DELIVERY_PREFIX: &str = "/files/delivered/";

/// How long a download link is valid by default.
pub const DEFAULT_LINK_TTL: Duration = Duration::minutes(5);

/// How long a stored file is kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::days(7);

/// Size of the parts a file is uploaded in (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Where files are kept and how links to them are signed.
#[derive(Clone)]
pub struct FileStore {
    objects: Arc<dyn ObjectStore>,
    describe: String,
    link_key: [u8; 32],
    link_ttl: Duration,
    retention: Duration,
    base_url: Option<String>,
    scratch: PathBuf,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("objects", &self.describe)
            .field("link_ttl", &self.link_ttl)
            .field("retention", &self.retention)
            .finish()
    }
}

/// What uploading a file measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Its key in the object store.
    pub key: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// An S3-compatible bucket: `s3://<bucket>[/<prefix>]`, and how to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// Keys go under this prefix (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The region (`us-east-1` unless configured).
    pub region: String,
    /// An S3-compatible endpoint (`http(s)://host:port`); `None`: AWS.
    pub endpoint: Option<String>,
    /// Access key id, when not from the environment (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key, when not from the environment (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`; the rest defaults (region `us-east-1`, AWS, keys from
    /// the environment).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{url}` is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
            return Err(format!("`{bucket}` is not an S3 bucket name"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            region: "us-east-1".to_owned(),
            ..Self::default()
        })
    }
}

/// Who a link was issued to, as its claims say (checked again at download).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The file.
    #[serde(rename = "f")]
    pub file_id: Uuid,
    /// `user` or `service`.
    #[serde(rename = "k")]
    pub kind: String,
    /// The principal.
    #[serde(rename = "p")]
    pub principal: Uuid,
    /// The principal's tenant.
    #[serde(rename = "t")]
    pub tenant_id: Uuid,
    /// The principal's roles when the link was issued (service principals keep these:
    /// their roles belong to the key they called with).
    #[serde(rename = "r")]
    pub roles: Vec<String>,
    /// The session the link was issued in (users signed in with a token): the link dies
    /// with it (sign-out, revocation, timeout).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Uuid>,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Why a link was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a link this portal signed (or altered).
    #[error("invalid download link")]
    Invalid,
    /// Signed, but past its expiry (its claims, to say whose it was).
    #[error("expired download link")]
    Expired(Box<LinkClaims>),
    /// A delivery link past its expiry (the delivery it named).
    #[error("expired delivery link")]
    DeliveryExpired(Uuid),
}

/// Why an upload link was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UploadLinkError {
    /// Not a link this portal signed (or altered).
    #[error("invalid upload link")]
    Invalid,
    /// Signed, but past its expiry (what it named).
    #[error("expired upload link")]
    Expired(UploadClaims),
}

/// What an upload link names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadClaims {
    /// The declared upload.
    pub upload_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Who declared it: a user or a service account.
    pub kind: crate::ActorKind,
    /// Their id.
    pub principal: Uuid,
}

impl FileStore {
    /// Files in the local directory `dir` (created 0700), links signed with a key derived
    /// from `data_key`.
    pub fn local(dir: &Path, data_key: &DataKey) -> ApiResult<Self> {
        crate::files::create_private_dir(dir)
            .map_err(|err| ApiError::internal(format!("creating the file directory: {err}")))?;
        let objects = LocalFileSystem::new_with_prefix(dir)
            .map_err(|err| ApiError::internal(format!("opening the file directory: {err}")))?;
        let scratch = dir.join(".scratch");
        crate::files::create_private_dir(&scratch)
            .map_err(|err| ApiError::internal(format!("creating the scratch directory: {err}")))?;
        Ok(Self {
            objects: Arc::new(objects),
            describe: format!("local directory {}", dir.display()),
            link_key: data_key.derive("portal file links v1"),
            link_ttl: DEFAULT_LINK_TTL,
            retention: DEFAULT_RETENTION,
            base_url: None,
            scratch,
        })
    }

    /// Files in an S3-compatible bucket (`location`: keys under its prefix, reached at its
    /// endpoint — AWS when none — in its region); credentials as configured, else from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    /// Scratch files are written under `scratch` (created 0700). Links signed with a key
    /// derived from `data_key`.
    pub fn s3(location: &S3Location, scratch: &Path, data_key: &DataKey) -> ApiResult<Self> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_region(&location.region);
        if let Some(key) = &location.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &location.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let bucket = builder
            .build()
            .map_err(|err| ApiError::internal(format!("configuring S3 storage: {err}")))?;
        let objects: Arc<dyn ObjectStore> = if location.prefix.is_empty() {
            Arc::new(bucket)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                bucket,
                location.prefix.as_str(),
            ))
        };
        crate::files::create_private_dir(scratch)
            .map_err(|err| ApiError::internal(format!("creating the scratch directory: {err}")))?;
        Ok(Self {
            objects,
            describe: format!("s3://{}/{}", location.bucket, location.prefix),
            link_key: data_key.derive("portal file links v1"),
            link_ttl: DEFAULT_LINK_TTL,
            retention: DEFAULT_RETENTION,
            base_url: None,
            scratch: scratch.to_owned(),
        })
    }

    /// Files in memory (lost with the process): for composition and tests that keep no
    /// files. Scratch files go to the system's temporary directory.
    pub fn in_memory(data_key: &DataKey) -> Self {
        Self {
            objects: Arc::new(object_store::memory::InMemory::new()),
            describe: "memory".to_owned(),
            link_key: data_key.derive("portal file links v1"),
            link_ttl: DEFAULT_LINK_TTL,
            retention: DEFAULT_RETENTION,
            base_url: None,
            scratch: std::env::temp_dir().join("portal-scratch"),
        }
    }

    /// Links live `ttl` instead of [`DEFAULT_LINK_TTL`].
    pub fn with_link_ttl(mut self, ttl: Duration) -> Self {
        self.link_ttl = ttl;
        self
    }

    /// Files are kept `retention` instead of [`DEFAULT_RETENTION`].
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Links are absolute URLs under `base` (the gateway's public URL) instead of paths.
    pub fn with_base_url(mut self, base: Option<String>) -> Self {
        self.base_url = base.map(|b| b.trim_end_matches('/').to_owned());
        self
    }

    /// How long a stored file is kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// A new private scratch file path for building a file before it is stored (removed
    /// by the caller; [`ScratchFile`] does it on drop).
    pub fn scratch(&self, extension: &str) -> ScratchFile {
        // Made at start-up for a directory store; here for the others (and if removed).
        let _ = crate::files::create_private_dir(&self.scratch);
        ScratchFile(
            self.scratch
                .join(format!("{}.{extension}", Uuid::now_v7().simple())),
        )
    }

    /// Uploads the local file at `path` as `key`, in parts (flat memory whatever its size),
    /// measuring its size and SHA-256 on the way.
    pub async fn put(&self, key: &str, path: &Path) -> ApiResult<Stored> {
        let failed = |what: &str, err: &dyn std::fmt::Display| {
            ApiError::internal(format!("storing a file ({what}): {err}"))
        };
        let location = ObjectPath::parse(key).map_err(|err| failed("key", &err))?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|err| failed("open", &err))?;
        let upload = self
            .objects
            .put_multipart(&location)
            .await
            .map_err(|err| failed("start", &err))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut hasher = Sha256::new();
        let mut size: i64 = 0;
        let mut buffer = vec![0_u8; 1024 * 1024];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) => {
                    writer.abort().await.ok();
                    return Err(failed("read", &err));
                }
            };
            hasher.update(&buffer[..read]);
            size += read as i64;
            if let Err(err) = writer.wait_for_capacity(2).await {
                writer.abort().await.ok();
                return Err(failed("upload", &err));
            }
            writer.write(&buffer[..read]);
        }
        writer
            .finish()
            .await
            .map_err(|err| failed("finish", &err))?;
        Ok(Stored {
            key: key.to_owned(),
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// The contents of a stored file, as a stream of chunks.
    pub async fn open(
        &self,
        file: &file::Model,
    ) -> ApiResult<BoxStream<'static, ApiResult<Bytes>>> {
        use futures::TryStreamExt;
        let location = ObjectPath::parse(&file.storage_key)
            .map_err(|err| ApiError::internal(format!("file key: {err}")))?;
        let found = self
            .objects
            .get(&location)
            .await
            .map_err(|err| ApiError::internal(format!("reading a stored file: {err}")))?;
        Ok(Box::pin(found.into_stream().map_err(|err| {
            ApiError::internal(format!("reading a stored file: {err}"))
        })))
    }

    /// Stores `bytes` as `key` in one request (small objects: sealed attachments).
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> ApiResult<()> {
        let location =
            ObjectPath::parse(key).map_err(|err| ApiError::internal(format!("file key: {err}")))?;
        self.objects
            .put(&location, bytes.into())
            .await
            .map_err(|err| ApiError::internal(format!("storing a file: {err}")))?;
        Ok(())
    }

    /// The whole object `key`, in memory (small objects: sealed attachments).
    pub async fn read_all(&self, key: &str) -> ApiResult<Bytes> {
        let location =
            ObjectPath::parse(key).map_err(|err| ApiError::internal(format!("file key: {err}")))?;
        let found = self
            .objects
            .get(&location)
            .await
            .map_err(|err| ApiError::internal(format!("reading a stored file: {err}")))?;
        found
            .bytes()
            .await
            .map_err(|err| ApiError::internal(format!("reading a stored file: {err}")))
    }

    /// The content of the sealed file `file_id` of `tenant_id`, stored as `key` under the
    /// tenant key `version` (see [`content_binding`]), opened.
    pub async fn read_sealed(
        &self,
        keys: &crate::envelope::TenantKeys,
        (tenant_id, file_id): (Uuid, Uuid),
        version: i32,
        key: &str,
    ) -> ApiResult<Vec<u8>> {
        let sealed = crate::envelope::Sealed {
            version,
            bytes: self.read_all(key).await?.to_vec(),
        };
        keys.open_blob(content_binding(tenant_id, file_id), &sealed)
            .await
    }

    /// A link to `PUT` the bytes of the upload `claims` names until `expires`. A service
    /// account's id is marked (`s` before it) so the upload is checked against service
    /// accounts; a user's is bare (as in links signed before services could upload).
    pub fn upload_link(&self, claims: UploadClaims, expires: DateTime<Utc>) -> String {
        let marker = match claims.kind {
            crate::ActorKind::Service => "s",
            _ => "",
        };
        let body = format!(
            "{}.{}.{marker}{}.{}",
            claims.upload_id.simple(),
            claims.tenant_id.simple(),
            claims.principal.simple(),
            expires.timestamp()
        );
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(&format!("upload:{body}")).finalize().into_bytes());
        let path = format!("{UPLOAD_PREFIX}{body}.{signature}");
        match &self.base_url {
            Some(base) => format!("{base}{path}"),
            None => path,
        }
    }

    /// What an upload link names, if this portal signed it and it has not expired at `now`
    /// (`Expired` says whose it was).
    pub fn verify_upload(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<UploadClaims, UploadLinkError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [id, tenant, principal, expires, signature] = parts[..] else {
            return Err(UploadLinkError::Invalid);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| UploadLinkError::Invalid)?;
        self.mac(&format!("upload:{id}.{tenant}.{principal}.{expires}"))
            .verify_slice(&signature)
            .map_err(|_| UploadLinkError::Invalid)?;
        let parse = |raw: &str| Uuid::try_parse(raw).map_err(|_| UploadLinkError::Invalid);
        let (kind, principal) = match principal.strip_prefix('s') {
            Some(service) => (crate::ActorKind::Service, service),
            None => (crate::ActorKind::User, principal),
        };
        let claims = UploadClaims {
            upload_id: parse(id)?,
            tenant_id: parse(tenant)?,
            kind,
            principal: parse(principal)?,
        };
        let expires: i64 = expires.parse().map_err(|_| UploadLinkError::Invalid)?;
        if expires <= now.timestamp() {
            return Err(UploadLinkError::Expired(claims));
        }
        Ok(claims)
    }

    /// A link that unsubscribes `user` of `tenant_id` from the emails of `topic` (a
    /// notification event) with one `POST` (RFC 8058). It does not expire: an unsubscribe
    /// link in an old email must still work.
    pub fn unsubscribe_link(&self, tenant_id: Uuid, user: Uuid, topic: &str) -> String {
        let body = format!("{}.{}.{topic}", tenant_id.simple(), user.simple());
        let signature = URL_SAFE_NO_PAD.encode(
            self.mac(&format!("unsubscribe:{body}"))
                .finalize()
                .into_bytes(),
        );
        let path = format!("{UNSUBSCRIBE_PREFIX}{body}.{signature}");
        match &self.base_url {
            Some(base) => format!("{base}{path}"),
            None => path,
        }
    }

    /// What an unsubscribe link names — `(tenant, user, topic)` — if this portal signed it.
    pub fn verify_unsubscribe(&self, token: &str) -> Option<(Uuid, Uuid, String)> {
        let parts: Vec<&str> = token.split('.').collect();
        let [tenant, user, topic, signature] = parts[..] else {
            return None;
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(&format!("unsubscribe:{tenant}.{user}.{topic}"))
            .verify_slice(&signature)
            .ok()?;
        Some((
            Uuid::try_parse(tenant).ok()?,
            Uuid::try_parse(user).ok()?,
            topic.to_owned(),
        ))
    }

    /// Removes a stored object (missing is fine).
    pub async fn remove(&self, key: &str) -> ApiResult<()> {
        let location =
            ObjectPath::parse(key).map_err(|err| ApiError::internal(format!("file key: {err}")))?;
        match self.objects.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(ApiError::internal(format!("deleting a stored file: {err}"))),
        }
    }

    /// A download link to `file` for `actor`, and when it expires.
    pub fn link(
        &self,
        file: &file::Model,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> ApiResult<(String, DateTime<Utc>)> {
        let kind = match actor.kind {
            ActorKind::User => "user",
            ActorKind::Service => "service",
            ActorKind::Anonymous => return Err(ApiError::Unauthenticated),
        };
        let expires =
            (now + self.link_ttl).min(file.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
        let claims = LinkClaims {
            file_id: file.id,
            kind: kind.to_owned(),
            principal: actor.principal()?,
            tenant_id: actor.tenant()?,
            roles: actor.roles.clone(),
            session: actor.session_id,
            expires: expires.timestamp(),
        };
        let body = serde_json::to_vec(&claims)
            .map_err(|err| ApiError::internal(format!("link claims: {err}")))?;
        let body = URL_SAFE_NO_PAD.encode(body);
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&body).finalize().into_bytes());
        let path = format!("{LINK_PREFIX}{body}.{signature}");
        let url = match &self.base_url {
            Some(base) => format!("{base}{path}"),
            None => path,
        };
        Ok((url, expires))
    }

    /// The claims of the link token (the part after [`LINK_PREFIX`]) if this portal signed
    /// it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<LinkClaims, LinkError> {
        let (body, signature) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Invalid)?;
        self.mac(body)
            .verify_slice(&signature)
            .map_err(|_| LinkError::Invalid)?;
        let claims: LinkClaims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or(LinkError::Invalid)?;
        if claims.expires <= now.timestamp() {
            return Err(LinkError::Expired(Box::new(claims)));
        }
        Ok(claims)
    }

    /// A link to the delivery `delivery_id` (a file sent to a recipient by email), good
    /// until `expires`: whoever holds it may download, as the email's recipient could. The
    /// server checks the delivery still stands at each download.
    pub fn delivery_link(&self, delivery_id: Uuid, expires: DateTime<Utc>) -> String {
        let body = format!("{}.{}", delivery_id.simple(), expires.timestamp());
        let signature = URL_SAFE_NO_PAD.encode(
            self.mac(&format!("delivery:{body}"))
                .finalize()
                .into_bytes(),
        );
        let path = format!("{DELIVERY_PREFIX}{body}.{signature}");
        match &self.base_url {
            Some(base) => format!("{base}{path}"),
            None => path,
        }
    }

    /// The delivery a delivery link names, if this portal signed it and it has not expired.
    pub fn verify_delivery(&self, token: &str, now: DateTime<Utc>) -> Result<Uuid, LinkError> {
        let mut parts = token.splitn(3, '.');
        let (Some(id), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Invalid);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Invalid)?;
        self.mac(&format!("delivery:{id}.{expires}"))
            .verify_slice(&signature)
            .map_err(|_| LinkError::Invalid)?;
        let id = Uuid::try_parse(id).map_err(|_| LinkError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
        if expires <= now.timestamp() {
            return Err(LinkError::DeliveryExpired(id));
        }
        Ok(id)
    }

    fn mac(&self, body: &str) -> Hmac<Sha256> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.link_key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(body.as_bytes());
        mac
    }
}

/// A scratch file, removed when dropped.
#[derive(Debug)]
pub struct ScratchFile(PathBuf);

impl ScratchFile {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where a sealed file's content is bound (its chunks, under the tenant key; see
/// [`crate::envelope::TenantKeys::seal_blob`]).
pub fn content_binding(tenant_id: Uuid, file_id: Uuid) -> crate::envelope::Binding<'static> {
    crate::envelope::Binding {
        purpose: "file.content",
        tenant_id,
        object_id: file_id,
    }
}

/// Where a sealed file's name is bound.
pub fn name_binding(tenant_id: Uuid, file_id: Uuid) -> crate::envelope::Binding<'static> {
    crate::envelope::Binding {
        purpose: "file.name",
        tenant_id,
        object_id: file_id,
    }
}

/// The object key of a file: `<domain>/<tenant>/<file id>`.
pub fn object_key(domain: &str, tenant_id: Uuid, file_id: Uuid) -> String {
    format!("{domain}/{tenant_id}/{file_id}")
}

/// The file `id` of `tenant_id`, unless it has expired at `now`.
pub async fn find(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<Option<file::Model>> {
    let found = file::Entity::find_by_id(id)
        .filter(file::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(found.filter(|f| f.expires_at.is_none_or(|at| at > now)))
}

/// Files of the tenant among `ids` that have not expired at `now`, by id (one query).
pub async fn find_many(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
    now: DateTime<Utc>,
) -> ApiResult<std::collections::HashMap<Uuid, file::Model>> {
    let ids: Vec<Uuid> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let found = file::Entity::find()
        .filter(file::Column::TenantId.eq(tenant_id))
        .filter(file::Column::Id.is_in(ids))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(found
        .into_iter()
        .filter(|f| f.expires_at.is_none_or(|at| at > now))
        .map(|f| (f.id, f))
        .collect())
}

/// Deletes the files that expired before `now` — objects first, then rows — at most
/// `limit` per call; returns how many went (a file whose object cannot be removed stays
/// for the next call).
pub async fn purge_expired(
    db: &impl ConnectionTrait,
    store: &FileStore,
    now: DateTime<Utc>,
    limit: u64,
) -> ApiResult<usize> {
    purge_where(db, store, now, limit, sea_orm::Condition::all()).await
}

/// Makes the tenant's files among `ids` unreachable at once, in the caller's transaction:
/// they expire at `now` (no link or download works any more), and [`purge`] — or, should
/// that fail, the scheduled purge — deletes them. How many there were.
pub async fn expire_now(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    let mut count = 0;
    for chunk in ids.chunks(500) {
        count += file::Entity::update_many()
            .col_expr(
                file::Column::ExpiresAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(file::Column::TenantId.eq(tenant_id))
            .filter(file::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    Ok(count)
}

/// Deletes the tenant's files among `ids` that have expired by `now` (after
/// [`expire_now`] committed) — objects first, then rows; how many went. What cannot be
/// removed now is left to the scheduled purge.
pub async fn purge(
    db: &impl ConnectionTrait,
    store: &FileStore,
    tenant_id: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> ApiResult<usize> {
    let mut count = 0;
    for chunk in ids.chunks(500) {
        let only = sea_orm::Condition::all()
            .add(file::Column::TenantId.eq(tenant_id))
            .add(file::Column::Id.is_in(chunk.iter().copied()));
        count += purge_where(db, store, now, chunk.len() as u64, only).await?;
    }
    Ok(count)
}

/// Deletes every stored file of `tenant` — objects first, then rows — whatever its expiry
/// (the tenant is being off-boarded); how many. A file whose object cannot be removed
/// fails the call, so a retry finds it again.
pub async fn purge_tenant(
    db: &impl ConnectionTrait,
    store: &FileStore,
    tenant_id: Uuid,
) -> ApiResult<u64> {
    use sea_orm::{QueryOrder, QuerySelect};
    let mut count = 0;
    loop {
        let rows = file::Entity::find()
            .filter(file::Column::TenantId.eq(tenant_id))
            .order_by_asc(file::Column::Id)
            .limit(PURGE_BATCH)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        if rows.is_empty() {
            return Ok(count);
        }
        for row in &rows {
            store.remove(&row.storage_key).await?;
        }
        count += file::Entity::delete_many()
            .filter(file::Column::Id.is_in(rows.iter().map(|row| row.id)))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
}

/// Deletes at most `limit` files expired by `now` that match `only`.
async fn purge_where(
    db: &impl ConnectionTrait,
    store: &FileStore,
    now: DateTime<Utc>,
    limit: u64,
    only: sea_orm::Condition,
) -> ApiResult<usize> {
    use sea_orm::{QueryOrder, QuerySelect};
    let expired = file::Entity::find()
        .filter(file::Column::ExpiresAt.lte(now))
        .filter(only)
        .order_by_asc(file::Column::ExpiresAt)
        .limit(limit)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut removed = Vec::with_capacity(expired.len());
    for row in &expired {
        // One object that cannot be removed now must not hold up the others: its row stays
        // and the next run tries again.
        match store.remove(&row.storage_key).await {
            Ok(()) => removed.push(row.id),
            Err(err) => tracing::warn!(file = %row.id, ?err, "deleting an expired file failed"),
        }
    }
    let count = removed.len();
    if !removed.is_empty() {
        file::Entity::delete_many()
            .filter(file::Column::Id.is_in(removed))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?;
    }
    Ok(count)
}

/// The job kind that deletes expired files.
pub const PURGE_KIND: &str = "files.purge";

/// Files deleted per purge run at most (the next run takes the rest).
const PURGE_BATCH: u64 = 500;

/// Deletes expired files (objects and rows), scheduled every quarter hour by
/// [`schedule_purge`].
pub struct PurgeExpired {
    db: sea_orm::DatabaseConnection,
    store: FileStore,
}

impl PurgeExpired {
    /// The handler over `db` and `store`.
    pub fn new(db: sea_orm::DatabaseConnection, store: FileStore) -> Arc<Self> {
        Arc::new(Self { db, store })
    }
}

#[async_trait::async_trait]
impl crate::jobs::runner::JobHandler for PurgeExpired {
    async fn run(
        &self,
        _job: &crate::jobs::runner::JobContext,
    ) -> Result<(), crate::jobs::runner::JobError> {
        let removed = purge_expired(&self.db, &self.store, Utc::now(), PURGE_BATCH)
            .await
            .map_err(|err| crate::jobs::runner::JobError::Retry(format!("{err:?}")))?;
        if removed > 0 {
            tracing::info!(removed, "expired files deleted");
        }
        Ok(())
    }
}

/// Makes sure the purge of expired files runs every quarter hour (one schedule for the
/// deployment, whichever worker starts first).
pub async fn schedule_purge(db: &impl ConnectionTrait) -> ApiResult<()> {
    crate::jobs::schedule::upsert(
        db,
        Utc::now(),
        "files.purge",
        crate::jobs::schedule::NewSchedule {
            name: PURGE_KIND.to_owned(),
            kind: PURGE_KIND.to_owned(),
            payload: serde_json::json!({}),
            tenant_id: None,
            principal: None,
            cron: "*/15 * * * *".to_owned(),
            time_zone: "UTC".to_owned(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> ApiResult<(FileStore, PathBuf)> {
        let dir = std::env::temp_dir().join(format!("portal-store-{}", Uuid::now_v7()));
        let store = FileStore::local(
            &dir,
            &DataKey::from_secret(b"a-test-data-key-a-test-data-key!"),
        )?;
        Ok((store, dir))
    }

    fn row(id: Uuid) -> file::Model {
        file::Model {
            id,
            tenant_id: Uuid::now_v7(),
            domain: "accounts".into(),
            owner_type: "AccountExport".into(),
            owner_id: Uuid::now_v7(),
            name: "x.csv".into(),
            content_type: "text/csv".into(),
            size_bytes: 0,
            sha256: String::new(),
            row_count: None,
            storage_key: "k".into(),
            access_selection: None,
            created_by: None,
            created_at: Utc::now(),
            expires_at: None,
            key_version: None,
            name_sealed: None,
        }
    }

    #[tokio::test]
    async fn files_upload_in_parts_and_read_back_with_their_digest() -> ApiResult<()> {
        use futures::TryStreamExt;
        let (store, dir) = store()?;
        let scratch = store.scratch("bin");
        let contents: Vec<u8> = (0..(PART_SIZE * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(scratch.path(), &contents).map_err(|e| ApiError::internal(e.to_string()))?;
        let stored = store.put("accounts/t/f", scratch.path()).await?;
        assert_eq!(stored.size, contents.len() as i64);
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&contents)));
        let mut model = row(Uuid::now_v7());
        model.storage_key = stored.key.clone();
        let chunks: Vec<Bytes> = store.open(&model).await?.try_collect().await?;
        assert_eq!(chunks.concat(), contents);
        store.remove(&stored.key).await?;
        store.remove(&stored.key).await?;
        drop(scratch);
        std::fs::remove_dir_all(dir).map_err(|e| ApiError::internal(e.to_string()))
    }

    #[test]
    fn upload_links_name_who_declared_them_users_and_service_accounts() -> ApiResult<()> {
        let (store, dir) = store()?;
        let now = Utc::now();
        let token = |link: String| link.trim_start_matches(UPLOAD_PREFIX).to_owned();
        for kind in [crate::ActorKind::User, crate::ActorKind::Service] {
            let claims = UploadClaims {
                upload_id: Uuid::now_v7(),
                tenant_id: Uuid::now_v7(),
                kind,
                principal: Uuid::now_v7(),
            };
            let link = token(store.upload_link(claims, now + Duration::minutes(10)));
            assert_eq!(store.verify_upload(&link, now), Ok(claims));
            assert_eq!(
                store.verify_upload(&link, now + Duration::minutes(11)),
                Err(UploadLinkError::Expired(claims))
            );
            // The kind is signed: a user's link cannot be passed off as a service's, nor
            // the reverse.
            let mut parts: Vec<String> = link.split('.').map(str::to_owned).collect();
            parts[2] = match kind {
                crate::ActorKind::Service => parts[2].trim_start_matches('s').to_owned(),
                _ => format!("s{}", parts[2]),
            };
            assert_eq!(
                store.verify_upload(&parts.join("."), now),
                Err(UploadLinkError::Invalid)
            );
        }
        std::fs::remove_dir_all(dir).ok();
        Ok(())
    }

    #[test]
    fn links_are_signed_bound_and_short_lived() -> ApiResult<()> {
        let (store, dir) = store()?;
        let file = row(Uuid::now_v7());
        let actor = Actor::user(Uuid::now_v7(), file.tenant_id, vec!["customer_user".into()]);
        let now = Utc::now();
        let (url, expires) = store.link(&file, &actor, now)?;
        assert_eq!(expires.timestamp(), (now + DEFAULT_LINK_TTL).timestamp());
        let token = url.strip_prefix(LINK_PREFIX).unwrap_or_default();
        let claims = store
            .verify(token, now)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        assert_eq!(claims.file_id, file.id);
        assert_eq!(Some(claims.principal), actor.id);
        assert!(matches!(
            store.verify(token, now + DEFAULT_LINK_TTL),
            Err(LinkError::Expired(expired)) if expired.file_id == file.id
        ));
        // Another file id in the claims, same signature: refused.
        let (body, signature) = token.split_once('.').unwrap_or_default();
        let mut altered: LinkClaims = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        )
        .map_err(|e| ApiError::internal(e.to_string()))?;
        altered.file_id = Uuid::now_v7();
        let forged = format!(
            "{}.{signature}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&altered).unwrap_or_default())
        );
        assert_eq!(store.verify(&forged, now), Err(LinkError::Invalid));
        assert_eq!(store.verify("garbage", now), Err(LinkError::Invalid));
        // A store with another data key cannot verify it.
        let other = FileStore::local(
            &dir,
            &DataKey::from_secret(b"another-data-key-another-data-key"),
        )?;
        assert_eq!(other.verify(token, now), Err(LinkError::Invalid));
        assert!(store.link(&file, &Actor::anonymous(), now).is_err());
        std::fs::remove_dir_all(dir).map_err(|e| ApiError::internal(e.to_string()))
    }
}

/// A link that downloads a file for the caller; it expires within minutes, and access is
/// checked again when it is used. Shared by every subgraph that serves files.
#[derive(async_graphql::SimpleObject, Clone, Debug)]
#[graphql(shareable)]
pub struct FileDownload {
    /// `GET` it (no other credentials needed); absolute when the portal knows its public
    /// URL, else a path on the gateway.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A fresh download link to `file` for the caller of `ctx` (the schema holds the
/// [`FileStore`]).
pub fn download_link(
    ctx: &async_graphql::Context<'_>,
    file: &file::Model,
) -> ApiResult<FileDownload> {
    let files = ctx
        .data::<FileStore>()
        .map_err(|_| ApiError::internal("file store missing from schema data"))?;
    let (url, expires_at) = files.link(file, crate::context::actor(ctx), Utc::now())?;
    Ok(FileDownload { url, expires_at })
}

/// Declares a GraphQL object type `$name` over a stored file row (`row`): its name, media
/// type, size, SHA-256, row count (described by `$rows`), expiry and a download link. Each
/// subgraph that serves files names its own type (`ExportFile`, `ReportFile`).
#[macro_export]
macro_rules! file_object {
    ($(#[$doc:meta])* $name:ident, rows: $rows:literal) => {
        $(#[$doc])*
        pub struct $name {
            row: ::portal_entities::platform::file::Model,
        }

        #[::async_graphql::Object]
        impl $name {
            /// The name it downloads as.
            async fn name(&self) -> &str {
                &self.row.name
            }

            /// Its media type.
            async fn content_type(&self) -> &str {
                &self.row.content_type
            }

            /// Its size in bytes.
            async fn size_bytes(&self) -> i64 {
                self.row.size_bytes
            }

            /// SHA-256 of its contents, lowercase hex (also sent as `Repr-Digest` on
            /// download).
            async fn sha256(&self) -> &str {
                &self.row.sha256
            }

            #[doc = $rows]
            async fn row_count(&self) -> Option<i64> {
                self.row.row_count
            }

            /// When it is deleted.
            async fn expires_at(&self) -> Option<::chrono::DateTime<::chrono::Utc>> {
                self.row.expires_at
            }

            /// A fresh download link for the caller (who must still be allowed to read
            /// what the file holds when it is used).
            async fn download(
                &self,
                ctx: &::async_graphql::Context<'_>,
            ) -> $crate::ApiResult<$crate::storage::FileDownload> {
                $crate::storage::download_link(ctx, &self.row)
            }
        }
    };
}
