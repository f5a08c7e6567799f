//! Envelope encryption of tenant data: each tenant has its own data keys (one per key
//! version, random 256-bit AES keys), stored only wrapped by the master key through a
//! [`KeyProvider`] — [`LocalKeyProvider`] wraps with the configured data key; an external
//! KMS implements the same two calls. Values are sealed with AES-256-GCM under the
//! tenant's active version, the associated data binding each ciphertext to its purpose,
//! tenant, object id and key version: a ciphertext copied to another row, field or tenant
//! does not open.
//!
//! Rotation starts a new version for new writes; older versions stay readable until the
//! owning domain has re-sealed its rows (a job) and nothing refers to them. Destroying a
//! tenant's keys (off-boarding) deletes every wrapped version: from then on nothing of the
//! tenant's sealed data opens, in any process, once their caches of unwrapped keys expire
//! ([`DEFAULT_CACHE_TTL`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::Utc;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use portal_entities::platform::tenant_key;

use crate::actor::{Actor, RequestMeta};
use crate::audit::AuditEvent;
use crate::db::BeginWrite;
use crate::error::{ApiError, ApiResult};
use crate::secret::{DataKey, random_bytes};

/// How long a process keeps an unwrapped tenant key (and which version is active) before
/// reading it again: the bound on how long a destroyed or rotated key is still used here.
pub const DEFAULT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Storage form of a key version's state.
pub mod state {
    /// New writes use it.
    pub const ACTIVE: &str = "active";
    /// Reads only; rows sealed with it are being re-sealed.
    pub const RETIRED: &str = "retired";
    /// Its wrapped key is gone: what it sealed no longer opens.
    pub const DESTROYED: &str = "destroyed";
}

/// Wraps and unwraps tenant data keys with a master key held elsewhere (the configured
/// data key, or a KMS). `context` names the tenant and version a key belongs to and must
/// be bound to the wrapped form, so a wrapped key moved to another row does not unwrap.
#[async_trait::async_trait]
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// Recorded with every key it wraps (`local`, `aws-kms`, …).
    fn name(&self) -> &'static str;

    /// `key` wrapped for `context`.
    async fn wrap(&self, context: &str, key: &[u8]) -> ApiResult<String>;

    /// What [`KeyProvider::wrap`] wrapped for the same `context`.
    async fn unwrap(&self, context: &str, wrapped: &str) -> ApiResult<Vec<u8>>;
}

/// Wraps tenant keys with the portal's configured data key (AES-256-GCM, the context as
/// associated data).
#[derive(Debug, Clone)]
pub struct LocalKeyProvider {
    data_key: DataKey,
}

impl LocalKeyProvider {
    /// A provider wrapping with `data_key`.
    pub fn new(data_key: DataKey) -> Self {
        Self { data_key }
    }
}

#[async_trait::async_trait]
impl KeyProvider for LocalKeyProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn wrap(&self, context: &str, key: &[u8]) -> ApiResult<String> {
        self.data_key.seal(context, key)
    }

    async fn unwrap(&self, context: &str, wrapped: &str) -> ApiResult<Vec<u8>> {
        self.data_key
            .open(context, wrapped)
            .map_err(|_| ApiError::internal("a tenant key cannot be unwrapped with this data key"))
    }
}

/// A sealed value: the key version it was sealed with and `nonce ‖ ciphertext ‖ tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The tenant key version.
    pub version: i32,
    /// What is stored.
    pub bytes: Vec<u8>,
}

/// Where a sealed value belongs: bound into its associated data.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// What the value is (`message.body`, `thread.subject`, …): a value sealed as one
    /// thing does not open as another.
    pub purpose: &'a str,
    /// The tenant whose key seals it.
    pub tenant_id: Uuid,
    /// The row (or object) it belongs to.
    pub object_id: Uuid,
}

impl Binding<'_> {
    fn associated_data(&self, version: i32) -> String {
        format!(
            "portal/{}/{}/{}/v{version}",
            self.purpose, self.tenant_id, self.object_id
        )
    }
}

/// One version of a tenant's key, as operators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersion {
    /// Its number (1, 2, …).
    pub version: i32,
    /// `active`, `retired` or `destroyed` (see [`state`]).
    pub state: String,
    /// The provider that wrapped it.
    pub provider: String,
    /// When it was created.
    pub created_at: chrono::DateTime<Utc>,
    /// When new writes stopped using it.
    pub retired_at: Option<chrono::DateTime<Utc>>,
    /// When its wrapped key was deleted.
    pub destroyed_at: Option<chrono::DateTime<Utc>>,
}

struct Cached<T> {
    value: T,
    loaded: Instant,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<(Uuid, i32), Cached<Arc<LessSafeKey>>>,
    active: HashMap<Uuid, Cached<i32>>,
    index: HashMap<Uuid, Cached<[u8; 32]>>,
}

/// The tenants' data keys: seals and opens tenant data, rotates and destroys keys.
#[derive(Clone)]
pub struct TenantKeys {
    db: sea_orm::DatabaseConnection,
    provider: Arc<dyn KeyProvider>,
    cache: Arc<RwLock<Cache>>,
    ttl: std::time::Duration,
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKeys")
            .field("provider", &self.provider)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn cipher(raw: &[u8]) -> ApiResult<LessSafeKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, raw)
        .map_err(|_| ApiError::internal("a tenant key is not 32 bytes"))?;
    Ok(LessSafeKey::new(unbound))
}

fn wrap_context(tenant_id: Uuid, version: i32) -> String {
    format!("portal tenant key/{tenant_id}/v{version}")
}

fn destroyed() -> ApiError {
    ApiError::Conflict("the tenant's data keys were destroyed: its sealed data is gone".into())
}

impl TenantKeys {
    /// Keys in `db`, wrapped by `provider`.
    pub fn new(db: sea_orm::DatabaseConnection, provider: Arc<dyn KeyProvider>) -> Self {
        Self {
            db,
            provider,
            cache: Arc::default(),
            ttl: DEFAULT_CACHE_TTL,
        }
    }

    /// Keys in `db` wrapped with the configured data key.
    pub fn local(db: sea_orm::DatabaseConnection, data_key: DataKey) -> Self {
        Self::new(db, Arc::new(LocalKeyProvider::new(data_key)))
    }

    /// The master key's provider that wraps these keys (and the audit escrow key).
    pub fn provider(&self) -> Arc<dyn KeyProvider> {
        self.provider.clone()
    }

    /// How long unwrapped keys stay cached in this process (zero: not at all).
    pub fn with_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn cached<T: Clone>(&self, pick: impl Fn(&Cache) -> Option<&Cached<T>>) -> Option<T> {
        let cache = self.cache.read().ok()?;
        pick(&cache)
            .filter(|entry| entry.loaded.elapsed() < self.ttl)
            .map(|entry| entry.value.clone())
    }

    fn forget(&self, tenant_id: Uuid) {
        if let Ok(mut cache) = self.cache.write() {
            cache.keys.retain(|(tenant, _), _| *tenant != tenant_id);
            cache.active.remove(&tenant_id);
            cache.index.remove(&tenant_id);
        }
    }

    /// Seals `plaintext` for `binding` under the tenant's active key version (creating
    /// the tenant's first key when it has none). `CONFLICT` once its keys were destroyed.
    pub async fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> ApiResult<Sealed> {
        let version = self.active_version(binding.tenant_id).await?;
        self.seal_with(binding, version, plaintext).await
    }

    /// [`TenantKeys::seal`] under the key version `version`.
    pub async fn seal_with(
        &self,
        binding: Binding<'_>,
        version: i32,
        plaintext: &[u8],
    ) -> ApiResult<Sealed> {
        let key = self.key(binding.tenant_id, version).await?;
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(binding.associated_data(version).as_bytes()),
            &mut in_out,
        )
        .map_err(|_| ApiError::internal("sealing failed"))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + in_out.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&in_out);
        Ok(Sealed { version, bytes })
    }

    /// Opens what [`TenantKeys::seal`] sealed for the same `binding`. `CONFLICT` when the
    /// key version was destroyed; an internal error when the bytes were altered or belong
    /// elsewhere.
    pub async fn open(&self, binding: Binding<'_>, sealed: &Sealed) -> ApiResult<Vec<u8>> {
        let key = self.key(binding.tenant_id, sealed.version).await?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(ApiError::internal("a sealed value is truncated"));
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| ApiError::internal("a sealed value is malformed"))?;
        let mut in_out = ciphertext.to_vec();
        let plain = key
            .open_in_place(
                nonce,
                Aad::from(binding.associated_data(sealed.version).as_bytes()),
                &mut in_out,
            )
            .map_err(|_| {
                ApiError::internal(format!(
                    "a sealed {} does not open: altered, or not this row's",
                    binding.purpose
                ))
            })?;
        let length = plain.len();
        in_out.truncate(length);
        Ok(in_out)
    }

    /// [`TenantKeys::open`] of UTF-8 text.
    pub async fn open_text(&self, binding: Binding<'_>, sealed: &Sealed) -> ApiResult<String> {
        String::from_utf8(self.open(binding, sealed).await?)
            .map_err(|_| ApiError::internal("a sealed text is not UTF-8"))
    }

    /// The tenant's active key version, creating version 1 when it has none yet.
    pub async fn active_version(&self, tenant_id: Uuid) -> ApiResult<i32> {
        if let Some(version) = self.cached(|cache| cache.active.get(&tenant_id)) {
            return Ok(version);
        }
        let rows = self.rows(tenant_id).await?;
        let version = match rows.iter().find(|row| row.state == state::ACTIVE) {
            Some(row) => row.version,
            None if rows.is_empty() => self.create_first(tenant_id).await?,
            None => return Err(destroyed()),
        };
        if let Ok(mut cache) = self.cache.write() {
            cache.active.insert(
                tenant_id,
                Cached {
                    value: version,
                    loaded: Instant::now(),
                },
            );
        }
        Ok(version)
    }

    async fn rows(&self, tenant_id: Uuid) -> ApiResult<Vec<tenant_key::Model>> {
        tenant_key::Entity::find()
            .filter(tenant_key::Column::TenantId.eq(tenant_id))
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)
    }

    /// Version 1 for a tenant without keys; concurrent first writers agree on one key.
    async fn create_first(&self, tenant_id: Uuid) -> ApiResult<i32> {
        let row = self.new_row(tenant_id, 1).await?;
        tenant_key::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([tenant_key::Column::TenantId, tenant_key::Column::Version])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        Ok(1)
    }

    async fn new_row(&self, tenant_id: Uuid, version: i32) -> ApiResult<tenant_key::ActiveModel> {
        let raw = random_bytes::<32>()?;
        let wrapped = self
            .provider
            .wrap(&wrap_context(tenant_id, version), &raw)
            .await?;
        Ok(tenant_key::ActiveModel {
            tenant_id: Set(tenant_id),
            version: Set(version),
            provider: Set(self.provider.name().to_owned()),
            wrapped: Set(Some(wrapped)),
            state: Set(state::ACTIVE.to_owned()),
            created_at: Set(Utc::now()),
            retired_at: Set(None),
            destroyed_at: Set(None),
        })
    }

    async fn key(&self, tenant_id: Uuid, version: i32) -> ApiResult<Arc<LessSafeKey>> {
        if let Some(key) = self.cached(|cache| cache.keys.get(&(tenant_id, version))) {
            return Ok(key);
        }
        let row = tenant_key::Entity::find_by_id((tenant_id, version))
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .ok_or_else(|| ApiError::internal("a sealed value names an unknown key version"))?;
        let Some(wrapped) = row.wrapped else {
            return Err(destroyed());
        };
        let raw = self
            .provider
            .unwrap(&wrap_context(tenant_id, version), &wrapped)
            .await?;
        let key = Arc::new(cipher(&raw)?);
        if let Ok(mut cache) = self.cache.write() {
            cache.keys.insert(
                (tenant_id, version),
                Cached {
                    value: key.clone(),
                    loaded: Instant::now(),
                },
            );
        }
        Ok(key)
    }

    /// The tenant's blind-index key (see [`crate::blind_index`]): derived from its first
    /// key version, so it outlives rotations (the index keeps working) and dies with the
    /// tenant's keys. Creates the first key when the tenant has none.
    pub async fn index_key(&self, tenant_id: Uuid) -> ApiResult<[u8; 32]> {
        if let Some(key) = self.cached(|cache| cache.index.get(&tenant_id)) {
            return Ok(key);
        }
        self.active_version(tenant_id).await?;
        let mut rows = self.rows(tenant_id).await?;
        rows.sort_by_key(|row| row.version);
        let first = rows
            .into_iter()
            .find(|row| row.version >= 1)
            .ok_or_else(destroyed)?;
        let Some(wrapped) = first.wrapped else {
            return Err(destroyed());
        };
        let raw = self
            .provider
            .unwrap(&wrap_context(tenant_id, first.version), &wrapped)
            .await?;
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &raw),
            b"portal blind index v1",
        );
        let mut key = [0_u8; 32];
        key.copy_from_slice(mac.as_ref());
        if let Ok(mut cache) = self.cache.write() {
            cache.index.insert(
                tenant_id,
                Cached {
                    value: key,
                    loaded: Instant::now(),
                },
            );
        }
        Ok(key)
    }

    /// The tenant's key versions, oldest first.
    pub async fn versions(&self, tenant_id: Uuid) -> ApiResult<Vec<KeyVersion>> {
        let mut rows = self.rows(tenant_id).await?;
        rows.sort_by_key(|row| row.version);
        Ok(rows
            .into_iter()
            .map(|row| KeyVersion {
                version: row.version,
                state: row.state,
                provider: row.provider,
                created_at: row.created_at,
                retired_at: row.retired_at,
                destroyed_at: row.destroyed_at,
            })
            .collect())
    }

    /// Starts a new key version for the tenant's new writes and retires the active one
    /// (still readable); audited as `tenant_key.rotate`. The new version's number.
    pub async fn rotate(
        &self,
        tenant_id: Uuid,
        actor: &Actor,
        meta: &RequestMeta,
    ) -> ApiResult<i32> {
        // The first key exists before it is rotated away.
        self.active_version(tenant_id).await?;
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let rows = tenant_key::Entity::find()
            .filter(tenant_key::Column::TenantId.eq(tenant_id))
            .all(&txn)
            .await
            .map_err(ApiError::from_db)?;
        let Some(active) = rows.iter().find(|row| row.state == state::ACTIVE) else {
            return Err(destroyed());
        };
        let retired = active.version;
        let next = rows.iter().map(|row| row.version).max().unwrap_or(0) + 1;
        tenant_key::Entity::update_many()
            .col_expr(tenant_key::Column::State, Expr::value(state::RETIRED))
            .col_expr(tenant_key::Column::RetiredAt, Expr::value(Utc::now()))
            .filter(tenant_key::Column::TenantId.eq(tenant_id))
            .filter(tenant_key::Column::State.eq(state::ACTIVE))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        self.new_row(tenant_id, next)
            .await?
            .insert(&txn)
            .await
            .map_err(ApiError::from_db)?;
        AuditEvent::success("tenant_key.rotate", "tenant", tenant_id)
            .in_tenant(tenant_id)
            .with_details(json!({ "retiredVersion": retired, "activeVersion": next }))
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        self.forget(tenant_id);
        Ok(next)
    }

    /// Deletes every wrapped key of the tenant (crypto-shredding): nothing it sealed opens
    /// again, and it cannot seal anything new. Audited as `tenant_key.destroy`; the number
    /// of versions destroyed.
    pub async fn destroy(
        &self,
        tenant_id: Uuid,
        actor: &Actor,
        meta: &RequestMeta,
    ) -> ApiResult<u64> {
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let now = Utc::now();
        let done = tenant_key::Entity::update_many()
            .col_expr(
                tenant_key::Column::Wrapped,
                Expr::value(Option::<String>::None),
            )
            .col_expr(tenant_key::Column::State, Expr::value(state::DESTROYED))
            .col_expr(tenant_key::Column::DestroyedAt, Expr::value(now))
            .filter(tenant_key::Column::TenantId.eq(tenant_id))
            .filter(tenant_key::Column::State.ne(state::DESTROYED))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
        if done == 0 {
            // A tenant that never sealed anything still may not start afterwards.
            let marker = tenant_key::ActiveModel {
                tenant_id: Set(tenant_id),
                version: Set(0),
                provider: Set(self.provider.name().to_owned()),
                wrapped: Set(None),
                state: Set(state::DESTROYED.to_owned()),
                created_at: Set(now),
                retired_at: Set(Some(now)),
                destroyed_at: Set(Some(now)),
            };
            tenant_key::Entity::insert(marker)
                .on_conflict(
                    OnConflict::columns([
                        tenant_key::Column::TenantId,
                        tenant_key::Column::Version,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(ApiError::from_db)?;
        }
        AuditEvent::success("tenant_key.destroy", "tenant", tenant_id)
            .in_tenant(tenant_id)
            .with_details(json!({ "versionsDestroyed": done }))
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        self.forget(tenant_id);
        Ok(done)
    }
}

/// Plaintext bytes per sealed chunk of a blob.
pub const CHUNK: usize = 64 * 1024;
const SEALED_CHUNK: usize = NONCE_LEN + CHUNK + 16;

impl TenantKeys {
    /// Seals a blob (a file's content) in [`CHUNK`]-sized chunks, each bound to `binding`,
    /// its index and whether it is the last: chunks cannot be reordered, dropped, or the
    /// blob cut short without `open_blob` noticing. An empty blob is one empty last chunk.
    pub async fn seal_blob(&self, binding: Binding<'_>, data: &[u8]) -> ApiResult<Sealed> {
        let version = self.active_version(binding.tenant_id).await?;
        self.seal_blob_with(binding, version, data).await
    }

    /// [`TenantKeys::seal_blob`] under the key version `version`.
    pub async fn seal_blob_with(
        &self,
        binding: Binding<'_>,
        version: i32,
        data: &[u8],
    ) -> ApiResult<Sealed> {
        let key = self.key(binding.tenant_id, version).await?;
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(CHUNK).collect()
        };
        let mut bytes = Vec::with_capacity(data.len() + chunks.len() * (NONCE_LEN + 16));
        let last = chunks.len() - 1;
        for (index, chunk) in chunks.into_iter().enumerate() {
            let nonce = random_bytes::<NONCE_LEN>()?;
            let mut in_out = chunk.to_vec();
            let aad = chunk_data(binding, version, index, index == last);
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| ApiError::internal("sealing failed"))?;
            bytes.extend_from_slice(&nonce);
            bytes.extend_from_slice(&in_out);
        }
        Ok(Sealed { version, bytes })
    }

    /// Opens what [`TenantKeys::seal_blob`] sealed for the same `binding`.
    pub async fn open_blob(&self, binding: Binding<'_>, sealed: &Sealed) -> ApiResult<Vec<u8>> {
        let key = self.key(binding.tenant_id, sealed.version).await?;
        let altered = || ApiError::internal("a sealed file does not open: altered or truncated");
        let chunks: Vec<&[u8]> = sealed.bytes.chunks(SEALED_CHUNK).collect();
        if chunks.is_empty() {
            return Err(altered());
        }
        let last = chunks.len() - 1;
        let mut plain = Vec::with_capacity(sealed.bytes.len());
        for (index, chunk) in chunks.into_iter().enumerate() {
            if chunk.len() < NONCE_LEN + 16 {
                return Err(altered());
            }
            let (nonce, ciphertext) = chunk.split_at(NONCE_LEN);
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| altered())?;
            let mut in_out = ciphertext.to_vec();
            let aad = chunk_data(binding, sealed.version, index, index == last);
            let opened = key
                .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut in_out)
                .map_err(|_| altered())?;
            plain.extend_from_slice(opened);
        }
        Ok(plain)
    }
}

fn chunk_data(binding: Binding<'_>, version: i32, index: usize, last: bool) -> String {
    let end = if last { "last" } else { "more" };
    format!("{}/chunk/{index}/{end}", binding.associated_data(version))
}

/// The store of a sealed column pair (`*_sealed` bytes and `key_version`), if both set.
pub fn stored(bytes: Option<&Vec<u8>>, version: Option<i32>) -> Option<Sealed> {
    Some(Sealed {
        version: version?,
        bytes: bytes?.clone(),
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Schema};

    use super::*;

    async fn keys() -> ApiResult<TenantKeys> {
        let db = Database::connect("sqlite::memory:")
            .await
            .map_err(ApiError::from_db)?;
        let table = Schema::new(DbBackend::Sqlite).create_table_from_entity(tenant_key::Entity);
        db.execute(&table).await.map_err(ApiError::from_db)?;
        let data_key = DataKey::from_secret(b"an-envelope-test-key-an-envelope");
        Ok(TenantKeys::local(db, data_key))
    }

    fn binding(purpose: &'static str, tenant_id: Uuid, object_id: Uuid) -> Binding<'static> {
        Binding {
            purpose,
            tenant_id,
            object_id,
        }
    }

    #[tokio::test]
    async fn a_sealed_value_opens_only_where_it_was_bound() -> ApiResult<()> {
        let keys = keys().await?;
        let (tenant, other_tenant, row, other_row) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let here = binding("message.body", tenant, row);
        let sealed = keys.seal(here, b"quarterly numbers").await?;
        assert_eq!(sealed.version, 1);
        assert!(!sealed.bytes.windows(9).any(|w| w == b"quarterly"));
        assert_eq!(keys.open_text(here, &sealed).await?, "quarterly numbers");
        // Another row, purpose or tenant: refused.
        for elsewhere in [
            binding("message.body", tenant, other_row),
            binding("thread.subject", tenant, row),
            binding("message.body", other_tenant, row),
        ] {
            assert!(keys.open(elsewhere, &sealed).await.is_err());
        }
        // Another version number, or a flipped bit: refused.
        let relabelled = Sealed {
            version: 2,
            ..sealed.clone()
        };
        assert!(keys.open(here, &relabelled).await.is_err());
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.bytes.last_mut() {
            *last ^= 1;
        }
        assert!(keys.open(here, &flipped).await.is_err());
        // Each tenant has its own key: same text, same row id, different bytes.
        let theirs = keys
            .seal(
                binding("message.body", other_tenant, row),
                b"quarterly numbers",
            )
            .await?;
        assert_ne!(theirs.bytes[12..], sealed.bytes[12..]);
        assert_eq!(keys.versions(tenant).await?.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn blobs_open_whole_and_refuse_reordered_or_truncated_chunks() -> ApiResult<()> {
        let keys = keys().await?;
        let (tenant, file) = (Uuid::now_v7(), Uuid::now_v7());
        let here = binding("file.content", tenant, file);
        let data: Vec<u8> = (0..(CHUNK * 2 + 100)).map(|i| (i % 251) as u8).collect();
        let sealed = keys.seal_blob(here, &data).await?;
        assert_eq!(keys.open_blob(here, &sealed).await?, data);
        let empty = keys.seal_blob(here, b"").await?;
        assert_eq!(keys.open_blob(here, &empty).await?, b"");
        // The last chunk dropped: the new last chunk was not sealed as the last.
        let cut = Sealed {
            bytes: sealed.bytes[..SEALED_CHUNK * 2].to_vec(),
            ..sealed.clone()
        };
        assert!(keys.open_blob(here, &cut).await.is_err());
        // The first two chunks swapped.
        let mut swapped = sealed.bytes[SEALED_CHUNK..SEALED_CHUNK * 2].to_vec();
        swapped.extend_from_slice(&sealed.bytes[..SEALED_CHUNK]);
        swapped.extend_from_slice(&sealed.bytes[SEALED_CHUNK * 2..]);
        let reordered = Sealed {
            bytes: swapped,
            ..sealed.clone()
        };
        assert!(keys.open_blob(here, &reordered).await.is_err());
        let elsewhere = binding("file.content", tenant, Uuid::now_v7());
        assert!(keys.open_blob(elsewhere, &sealed).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn a_wrapped_key_moved_to_another_tenant_does_not_unwrap() -> ApiResult<()> {
        let keys = keys().await?.with_cache_ttl(std::time::Duration::ZERO);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        keys.seal(binding("p", a, a), b"x").await?;
        let sealed_b = keys.seal(binding("p", b, b), b"y").await?;
        let wrapped_a = tenant_key::Entity::find_by_id((a, 1))
            .one(&keys.db)
            .await
            .map_err(ApiError::from_db)?
            .and_then(|row| row.wrapped);
        tenant_key::Entity::update_many()
            .col_expr(tenant_key::Column::Wrapped, Expr::value(wrapped_a))
            .filter(tenant_key::Column::TenantId.eq(b))
            .exec(&keys.db)
            .await
            .map_err(ApiError::from_db)?;
        assert!(keys.open(binding("p", b, b), &sealed_b).await.is_err());
        Ok(())
    }
}
