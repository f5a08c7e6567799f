//! The off-boarding job (`tenant.offboard`, [`OffboardingJob`]) of a tenant a platform
//! administrator off-boards (`offboardTenant`, see `portal_identity::offboarding`).
//!
//! 1. **Export** (`EXPORTING`): the legal holds of the tenant are asked for first — any
//!    hold ends the off-boarding `BLOCKED` and the tenant active again. Otherwise one zip
//!    archive is built: every user's data as their access archive has it
//!    (`users/<id>/<part>.json`), the tenant's own data part by part (`tenant/<part>.json`,
//!    every row, secrets left out, sealed text opened), every stored file once
//!    (`files/…`, listed in `files.json`), the published evidence keys and a
//!    `manifest.json` of every entry's SHA-256 signed with the evidence key. It is kept as
//!    a sealed file of the operator's tenant, and the job comes back when the grace period
//!    is over.
//! 2. **Deletion** (`DELETING`, no way back): every domain deletes the tenant's rows (each
//!    in one transaction, audited in the tenant's log), identity last of the domains (its
//!    users, then the tenant row becomes a tombstone), then the platform: stored files,
//!    events, jobs, outbox mail, data keys, audit subject keys shredded. Every step is
//!    idempotent: a retry finishes the work.
//! 3. **Hand-over** (`COMPLETED`): the tenant's audit log is closed with a final signed
//!    checkpoint and its evidence pack — every event, every checkpoint, the keys, a signed
//!    manifest — kept as a file of the operator's tenant.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::identity::{tenant_offboarding, user};
use portal_entities::platform::file;
use portal_identity::offboarding::{self, Completion, status};
use portal_kit::audit::{chain, pack};
use portal_kit::db::BeginWrite;
use portal_kit::envelope::TenantKeys;
use portal_kit::evidence::{self, EvidenceSigner};
use portal_kit::jobs;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::privacy::{DataSubject, PrivacyDomain, TenantErasure};
use portal_kit::storage::{FileStore, content_binding, object_key};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

/// What the archive's README says.
const README: &str = "# A tenant's data\n\n\
This archive holds everything the portal kept for your organisation when it was \
off-boarded, before it was deleted.\n\n\
- `tenant/<part>.json`: the organisation's own data, one JSON document per part of the \
portal (identity, accounts, reports, messages, integrations): every record, table by table, \
by column name. Secrets (password hashes, keys, tokens, connector credentials) are left out; \
encrypted text (message bodies, thread subjects, attachment names) is opened.\n\
- `users/<user id>/<part>.json`: each person's data, as their own data export has it.\n\
- `files/<part>/<file id>-<name>`: every stored file (attachments, report files, exports), \
listed with its owner in `files.json`.\n\
- `keys.json` and `manifest.json`: the manifest lists every other entry's SHA-256 and is signed \
with the portal's evidence key (Ed25519 over the RFC 8785 canonical JSON of the manifest \
without its `signature`); `keys.json` holds the public keys. Hash the entries and compare.\n\n\
The evidence pack of your audit log, ending at its final signed checkpoint, is handed over \
separately once the data is deleted.\n";

/// What the signed manifest calls itself.
const MANIFEST_TYPE: &str = "portal.tenant-archive.v1";

/// The domain that keeps the tenant's users and row: deleted last of the domains.
const ACCOUNT_DOMAIN: &str = "identity";

/// Exports, then deletes, off-boarded tenants.
pub struct OffboardingJob {
    db: DatabaseConnection,
    files: FileStore,
    keys: TenantKeys,
    signer: EvidenceSigner,
    domains: Vec<Arc<dyn PrivacyDomain>>,
}

impl OffboardingJob {
    /// The handler over `db`, reading and keeping files in `files` (sealed ones opened, and
    /// archives sealed, with `keys`), signing with `signer`, asking `domains`.
    pub fn new(
        db: DatabaseConnection,
        (files, keys): (FileStore, TenantKeys),
        signer: EvidenceSigner,
        domains: Vec<Arc<dyn PrivacyDomain>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            files,
            keys,
            signer,
            domains,
        })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = offboarding::JOB_KIND;

    /// The holds anywhere in the tenant, as JSON.
    async fn holds(&self, tenant: Uuid) -> ApiResult<Vec<Value>> {
        let mut holds = Vec::new();
        for domain in &self.domains {
            holds.extend(domain.tenant_holds(tenant).await?);
        }
        serde_json::to_value(holds)
            .map(|v| v.as_array().cloned().unwrap_or_default())
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// The archive's entries, and what it holds.
    async fn gather(&self, row: &tenant_offboarding::Model) -> ApiResult<(Entries, Value)> {
        let tenant = row.tenant_id;
        let mut entries = Entries::default();
        entries.add("README.md", README.as_bytes().to_vec());
        let mut parts = Map::new();
        for domain in &self.domains {
            let export = domain.export_tenant(tenant).await?;
            parts.insert(domain.name().to_owned(), counts(&export.data));
            entries.add_json(
                &format!("tenant/{}.json", domain.name()),
                &json!({
                    "part": domain.name(),
                    "tenantId": tenant,
                    "preparedAt": Utc::now(),
                    "data": export.data,
                }),
            )?;
        }
        let users: Vec<Uuid> = user::Entity::find()
            .filter(user::Column::TenantId.eq(tenant))
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|u| u.id)
            .collect();
        for &user_id in &users {
            let subject = DataSubject {
                tenant_id: tenant,
                user_id,
            };
            for domain in &self.domains {
                let export = domain.export(subject).await?;
                entries.add_json(
                    &format!("users/{user_id}/{}.json", domain.name()),
                    &json!({
                        "part": domain.name(),
                        "subject": { "tenantId": tenant, "userId": user_id },
                        "data": export.data,
                        "files": export.files,
                    }),
                )?;
            }
        }
        let files = self.add_files(tenant, &mut entries).await?;
        let summary = json!({
            "users": users.len(),
            "parts": parts,
            "files": files,
        });
        Ok((entries, summary))
    }

    /// Every stored file of `tenant` into `entries` (sealed ones opened), and `files.json`
    /// listing them; how many.
    async fn add_files(&self, tenant: Uuid, entries: &mut Entries) -> ApiResult<usize> {
        let rows = file::Entity::find()
            .filter(file::Column::TenantId.eq(tenant))
            .order_by_asc(file::Column::Id)
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut listed = Vec::with_capacity(rows.len());
        for row in &rows {
            let (content, name) = crate::files::contents(&self.files, &self.keys, row).await?;
            let path = format!("files/{}/{}-{}", safe(&row.domain), row.id, safe(&name));
            listed.push(json!({
                "id": row.id,
                "path": path,
                "name": name,
                "part": row.domain,
                "ownerType": row.owner_type,
                "ownerId": row.owner_id,
                "contentType": row.content_type,
                "sizeBytes": row.size_bytes,
                "sha256": row.sha256,
                "createdAt": row.created_at,
            }));
            entries.add(&path, content);
        }
        entries.add_json("files.json", &Value::Array(listed))?;
        Ok(rows.len())
    }

    /// Builds, seals and keeps the archive, and moves the off-boarding on; whether it did.
    async fn export(
        &self,
        row: &tenant_offboarding::Model,
        (actor, meta): (&Actor, &RequestMeta),
    ) -> ApiResult<bool> {
        let (mut entries, summary) = self.gather(row).await?;
        let mut manifest = Map::new();
        manifest.insert("type".into(), MANIFEST_TYPE.into());
        manifest.insert("tenant".into(), row.tenant_id.to_string().into());
        manifest.insert("offboarding".into(), row.id.to_string().into());
        manifest.insert("preparedAt".into(), Utc::now().to_rfc3339().into());
        manifest.insert("entries".into(), Value::Object(entries.digests()));
        let manifest = self.signer.sign(manifest).await?;
        entries.add_json("manifest.json", &manifest)?;
        // Read after signing: the first signature makes the first key.
        let keys = evidence::published(&self.db).await?;
        entries.add_json(
            "keys.json",
            &serde_json::to_value(&keys).map_err(|e| ApiError::internal(e.to_string()))?,
        )?;
        let users = summary["users"].as_i64();
        let map = entries.0;
        let zipped = tokio::task::spawn_blocking(move || portal_kit::archive::zip(&map))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        // It holds opened seals (message bodies, attachments): sealed again, under the
        // operator's tenant key, like an access archive.
        let owner = row.operator_tenant_id;
        let file_id = Uuid::now_v7();
        let sha256 = hex::encode(Sha256::digest(&zipped));
        let size = i64::try_from(zipped.len()).unwrap_or(i64::MAX);
        let sealed = self
            .keys
            .seal_blob(content_binding(owner, file_id), &zipped)
            .await?;
        drop(zipped);
        let key = object_key("identity", owner, file_id);
        self.files.put_bytes(&key, sealed.bytes).await?;
        let now = Utc::now();
        let recorded = async {
            let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
            file::ActiveModel {
                id: Set(file_id),
                tenant_id: Set(owner),
                domain: Set("identity".to_owned()),
                owner_type: Set(offboarding::FILE_OWNER.to_owned()),
                owner_id: Set(row.id),
                name: Set(format!(
                    "tenant-{}-{}.zip",
                    safe(&row.tenant_slug),
                    now.format("%Y%m%d")
                )),
                content_type: Set("application/zip".to_owned()),
                size_bytes: Set(size),
                sha256: Set(sha256.clone()),
                row_count: Set(users),
                storage_key: Set(key.clone()),
                access_selection: Set(None),
                created_by: Set(Some(row.requested_by)),
                created_at: Set(now),
                expires_at: Set(Some(handover_until(row, now))),
                key_version: Set(Some(sealed.version)),
                name_sealed: Set(None),
            }
            .insert(&txn)
            .await
            .map_err(ApiError::from_db)?;
            let summary = json!({ "archive": summary, "sha256": sha256 });
            if offboarding::exported(&txn, row, file_id, summary, (actor, meta)).await? {
                // The run that deletes, queued with the export it follows.
                let deletion = offboarding::job(actor, row.id, Some(row.delete_after))
                    .idempotency_key(format!("{}/{}/delete", Self::KIND, row.id));
                jobs::enqueue(&txn, now, deletion).await?;
                txn.commit().await.map_err(ApiError::from_db)?;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        .await;
        if !matches!(recorded, Ok(true)) {
            // No row names the object: nothing else would ever remove it.
            self.files.remove(&key).await.ok();
        }
        recorded
    }

    /// Deletes the tenant's data everywhere, closes its audit log and hands over its
    /// evidence pack.
    async fn delete(
        &self,
        row: &tenant_offboarding::Model,
        (actor, meta): (&Actor, &RequestMeta),
    ) -> ApiResult<()> {
        let tenant = row.tenant_id;
        let by = TenantErasure {
            actor: actor.clone(),
            meta: meta.clone(),
            offboarding_id: row.id,
        };
        let mut deleted = Map::new();
        let (jobs, schedules) =
            portal_kit::privacy::platform::halt_tenant(&self.db, tenant).await?;
        deleted.insert(
            "halted".to_owned(),
            json!({ "jobs": jobs, "schedules": schedules }),
        );
        let (account, others): (Vec<_>, Vec<_>) = self
            .domains
            .iter()
            .partition(|d| d.name() == ACCOUNT_DOMAIN);
        for domain in others.into_iter().chain(account) {
            let done = domain.erase_tenant(tenant, &by).await?;
            deleted.insert(domain.name().to_owned(), lines(&done.items));
        }
        let platform = portal_kit::privacy::platform::erase_tenant(
            &self.db,
            (&self.files, &self.keys),
            tenant,
            &by,
        )
        .await?;
        deleted.insert("platform".to_owned(), lines(&platform.items));
        // The log is closed: a final checkpoint over its last event, and the pack of it all.
        let pack = pack::build_to(&self.db, &self.signer, Some(tenant), chain::kind::FINAL).await?;
        let checkpoint = chain::last_checkpoint(&self.db, Some(tenant))
            .await?
            .ok_or_else(|| ApiError::internal("the final checkpoint is missing"))?;
        let events = pack.get("events.jsonl").map_or(0, |lines| {
            lines
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        });
        let events = i64::try_from(events).unwrap_or(i64::MAX);
        let zipped = tokio::task::spawn_blocking(move || pack::zip(&pack))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let owner = row.operator_tenant_id;
        let file_id = Uuid::now_v7();
        let scratch = self.files.scratch("zip");
        tokio::fs::write(scratch.path(), &zipped)
            .await
            .map_err(|e| ApiError::internal(format!("writing a pack: {e}")))?;
        let stored = self
            .files
            .put(&object_key("identity", owner, file_id), scratch.path())
            .await?;
        drop(scratch);
        let now = Utc::now();
        let recorded = async {
            let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
            file::ActiveModel {
                id: Set(file_id),
                tenant_id: Set(owner),
                domain: Set("identity".to_owned()),
                owner_type: Set(offboarding::FILE_OWNER.to_owned()),
                owner_id: Set(row.id),
                name: Set(format!(
                    "evidence-pack-{}-final-{}.zip",
                    safe(&row.tenant_slug),
                    checkpoint.sequence
                )),
                content_type: Set("application/zip".to_owned()),
                size_bytes: Set(stored.size),
                sha256: Set(stored.sha256.clone()),
                row_count: Set(Some(events)),
                storage_key: Set(stored.key.clone()),
                access_selection: Set(None),
                created_by: Set(Some(row.requested_by)),
                created_at: Set(now),
                expires_at: Set(Some(handover_until(row, now))),
                key_version: Set(None),
                name_sealed: Set(None),
            }
            .insert(&txn)
            .await
            .map_err(ApiError::from_db)?;
            let mut result = row.result.clone().unwrap_or_else(|| json!({}));
            if let Value::Object(members) = &mut result {
                members.insert("deleted".into(), Value::Object(deleted));
            }
            let done = Completion {
                evidence_file_id: file_id,
                checkpoint: (
                    checkpoint.id,
                    checkpoint.sequence,
                    checkpoint.head_hash.clone(),
                ),
                result,
            };
            if offboarding::complete(&txn, row, done, (actor, meta)).await? {
                txn.commit().await.map_err(ApiError::from_db)?;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        .await;
        if !matches!(recorded, Ok(true)) {
            self.files.remove(&stored.key).await.ok();
        }
        recorded.map(|_| ())
    }
}

/// How long handed-over files are kept: 30 days after the deletion is due.
fn handover_until(
    row: &tenant_offboarding::Model,
    now: chrono::DateTime<Utc>,
) -> chrono::DateTime<Utc> {
    row.delete_after.max(now) + chrono::Duration::days(30)
}

/// The collections of an export and their sizes.
fn counts(data: &Value) -> Value {
    let mut counts = Map::new();
    if let Value::Object(collections) = data {
        for (name, value) in collections {
            let count = value.as_array().map_or(1, Vec::len);
            counts.insert(name.clone(), count.into());
        }
    }
    Value::Object(counts)
}

/// Erasure lines as JSON.
fn lines(items: &[portal_kit::privacy::ErasureItem]) -> Value {
    serde_json::to_value(items).unwrap_or(Value::Null)
}

/// `name` as one archive path segment: `[A-Za-z0-9._-]` kept, anything else `_`.
fn safe(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "file".to_owned(),
        kept => kept.to_owned(),
    }
}

/// Archive entries by path, in path order.
#[derive(Default)]
struct Entries(BTreeMap<String, Vec<u8>>);

impl Entries {
    fn add(&mut self, path: &str, bytes: Vec<u8>) {
        self.0.insert(path.to_owned(), bytes);
    }

    fn add_json(&mut self, path: &str, value: &Value) -> ApiResult<()> {
        let bytes =
            serde_json::to_vec_pretty(value).map_err(|e| ApiError::internal(e.to_string()))?;
        self.add(path, bytes);
        Ok(())
    }

    /// Every entry's SHA-256, hex.
    fn digests(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(path, bytes)| (path.clone(), hex::encode(Sha256::digest(bytes)).into()))
            .collect()
    }
}

impl OffboardingJob {
    /// The export step: holds first (any: `BLOCKED`), then the archive.
    async fn exporting(
        &self,
        row: &tenant_offboarding::Model,
        (actor, meta): (&Actor, &RequestMeta),
    ) -> ApiResult<()> {
        let holds = self.holds(row.tenant_id).await?;
        if !holds.is_empty() {
            let result = json!({ "holds": holds });
            return offboarding::stop(
                &self.db,
                row,
                (status::BLOCKED, Some(result), None),
                (actor, meta),
            )
            .await;
        }
        self.export(row, (actor, meta)).await.map(|_| ())
    }

    /// The deletion step, once due: holds again (a hold placed during the grace period
    /// keeps the data), then no way back.
    async fn deleting(
        &self,
        row: &tenant_offboarding::Model,
        now: chrono::DateTime<Utc>,
        (actor, meta): (&Actor, &RequestMeta),
    ) -> ApiResult<()> {
        if row.status == status::AWAITING_DELETION {
            let holds = self.holds(row.tenant_id).await?;
            if !holds.is_empty() {
                let result = json!({ "holds": holds });
                return offboarding::stop(
                    &self.db,
                    row,
                    (status::BLOCKED, Some(result), None),
                    (actor, meta),
                )
                .await;
            }
        }
        if !offboarding::begin_deletion(&self.db, row, now, (actor, meta)).await? {
            // Cancelled meanwhile.
            return Ok(());
        }
        self.delete(row, (actor, meta)).await
    }

    /// Takes a deletion that keeps failing up again in an hour: once begun (or due), it is
    /// never abandoned.
    async fn resume_later(&self, row: &tenant_offboarding::Model, actor: &Actor) -> ApiResult<()> {
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let again = offboarding::job(actor, row.id, Some(Utc::now() + chrono::Duration::hours(1)));
        jobs::enqueue(&txn, Utc::now(), again).await?;
        txn.commit().await.map_err(ApiError::from_db)
    }
}

#[async_trait::async_trait]
impl JobHandler for OffboardingJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let id = job.required_id("offboardingId")?;
        let Some(actor) = job.principal.as_ref() else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let meta = job.audit_meta();
        let row = match offboarding::find(&self.db, id).await {
            Ok(row) => row,
            Err(ApiError::NotFound(_)) => {
                return Err(JobError::Permanent(
                    "the off-boarding no longer exists".into(),
                ));
            }
            Err(err) => return Err(retry(err)),
        };
        let last = job.attempt >= offboarding::JOB_ATTEMPTS;
        let now = Utc::now();
        match row.status.as_str() {
            status::EXPORTING => match self.exporting(&row, (actor, &meta)).await {
                Ok(()) => Ok(()),
                Err(err) if last => {
                    tracing::error!(offboarding = %id, error = ?err, "a tenant export failed");
                    offboarding::stop(
                        &self.db,
                        &row,
                        (status::FAILED, None, Some("the archive could not be built")),
                        (actor, &meta),
                    )
                    .await
                    .map_err(retry)
                }
                Err(err) => Err(retry(err)),
            },
            status::AWAITING_DELETION if row.delete_after > now => {
                // Early (a clock, a claim before its time): back when it is due.
                Err(JobError::RetryAt {
                    reason: "the grace period is not over".into(),
                    at: row.delete_after,
                })
            }
            status::AWAITING_DELETION | status::DELETING => {
                match self.deleting(&row, now, (actor, &meta)).await {
                    Ok(()) => Ok(()),
                    Err(err) if last => {
                        tracing::error!(offboarding = %id, error = ?err, "a tenant deletion failed; resuming later");
                        self.resume_later(&row, actor).await.map_err(retry)
                    }
                    Err(err) => Err(retry(err)),
                }
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_stay_inside_the_archive() {
        assert_eq!(safe("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe(".."), "file");
        assert_eq!(safe("Q3 report.pdf"), "Q3_report.pdf");
    }
}
