//! The privacy jobs of data-subject requests. Only workers run them; no client reaches
//! the domains' exports or erasures ([`portal_kit::privacy`]).
//!
//! - Access (`privacy.access`, [`AccessRequestJob`]): asks every domain for what it holds
//!   about the person, puts one JSON document per domain and the person's files into one
//!   zip archive, stores it as a file of the request and completes the request.
//! - Erasure (`privacy.erase`, [`ErasureJob`]): gathers the person's identifiers and ties
//!   from every domain, then the legal holds covering them — any hold blocks the request,
//!   with the holds named — and otherwise keeps the identifiers sealed on the request
//!   (retries finish the work with them, without checking the holds again over a
//!   half-erased person), has identity close the account first (no sign-in; sessions and
//!   API keys revoked), every other domain erase or anonymize its part, and the platform
//!   scrub the copies that travelled and shred their audit key last. The result lists,
//!   per part, what was erased, anonymized and kept, and why, summed over attempts.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::platform::file;
use portal_identity::subject_requests;
use portal_kit::db::BeginWrite;
use portal_kit::envelope::TenantKeys;
use portal_kit::jobs::NewJob;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::privacy::{DataSubject, Disposition, DomainErasure, Erasure, PrivacyDomain};
use portal_kit::secret::DataKey;
use portal_kit::storage::{FileStore, content_binding, object_key};
use portal_kit::{ApiError, ApiResult};

/// What the archive's README says.
const README: &str = "# Your personal data\n\n\
This archive holds a copy of the personal data the portal keeps about you (GDPR Articles \
15 and 20), as it was when it was prepared.\n\n\
- `<part>.json`: one JSON document per part of the portal (identity, accounts, reports, \
messages, integrations): collections by name, each a list of records.\n\
- `files/<part>/…`: your files: attachments you uploaded, report files made for you, \
exports you asked for.\n\n\
Secrets (password hashes, keys, tokens) are not personal information about you and are not \
included. Data about other people is not included either.\n";

/// Builds the archives of access requests.
pub struct AccessRequestJob {
    db: DatabaseConnection,
    files: FileStore,
    keys: TenantKeys,
    data_key: DataKey,
    domains: Vec<Arc<dyn PrivacyDomain>>,
}

impl AccessRequestJob {
    /// The handler over `db`, asking `domains`, reading and keeping files in `files`
    /// (sealed ones opened with `keys`), mailing the person (sealed with `data_key`).
    pub fn new(
        db: DatabaseConnection,
        (files, keys): (FileStore, TenantKeys),
        data_key: DataKey,
        domains: Vec<Arc<dyn PrivacyDomain>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            files,
            keys,
            data_key,
            domains,
        })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = subject_requests::ACCESS_JOB;

    /// Every domain's export of the person, each file's content read, as archive entries
    /// by path; and what each domain held (records by collection, files).
    async fn gather(&self, subject: DataSubject) -> ApiResult<(BTreeMap<String, Vec<u8>>, Value)> {
        let mut entries = BTreeMap::new();
        entries.insert("README.md".to_owned(), README.as_bytes().to_vec());
        let mut summary = Map::new();
        for domain in &self.domains {
            let export = domain.export(subject).await?;
            let name = domain.name();
            let mut counts = Map::new();
            if let Value::Object(collections) = &export.data {
                for (collection, value) in collections {
                    let count = match value {
                        Value::Array(items) => items.len(),
                        Value::Null => 0,
                        _ => 1,
                    };
                    counts.insert(collection.clone(), count.into());
                }
            }
            let mut included = Vec::new();
            for theirs in &export.files {
                let Some(row) = portal_kit::storage::find(
                    &self.db,
                    subject.tenant_id,
                    theirs.file_id,
                    Utc::now(),
                )
                .await?
                else {
                    continue;
                };
                let (content, _) = crate::files::contents(&self.files, &self.keys, &row).await?;
                // Paths are unique within a domain by contract; a clash is kept apart.
                let mut path = format!("files/{name}/{}", safe_path(&theirs.path));
                if entries.contains_key(&path) {
                    path = format!(
                        "files/{name}/{}-{}",
                        theirs.file_id,
                        safe_path(&theirs.path)
                    );
                }
                entries.insert(path, content);
                included.push(theirs.clone());
            }
            counts.insert("files".into(), included.len().into());
            summary.insert(name.to_owned(), Value::Object(counts));
            let document = json!({
                "part": name,
                "subject": { "tenantId": subject.tenant_id, "userId": subject.user_id },
                "preparedAt": Utc::now(),
                "data": export.data,
                "files": included,
            });
            entries.insert(
                format!("{name}.json"),
                serde_json::to_vec_pretty(&document)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
        Ok((entries, Value::Object(summary)))
    }

    /// Records the stored archive and completes the request, in one transaction; whether
    /// it did (not when another run completed it first).
    async fn record(
        &self,
        request: &portal_entities::identity::data_subject_request::Model,
        (file_id, key_version, key): (Uuid, i32, &str),
        (size, sha256): (i64, &str),
        summary: Value,
        (actor, meta): (&portal_kit::Actor, &portal_kit::RequestMeta),
    ) -> ApiResult<bool> {
        let now = Utc::now();
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        file::ActiveModel {
            id: Set(file_id),
            tenant_id: Set(request.tenant_id),
            domain: Set("identity".to_owned()),
            owner_type: Set(subject_requests::FILE_OWNER.to_owned()),
            owner_id: Set(request.id),
            name: Set(format!("personal-data-{}.zip", now.format("%Y%m%d"))),
            content_type: Set("application/zip".to_owned()),
            size_bytes: Set(size),
            sha256: Set(sha256.to_owned()),
            row_count: Set(None),
            storage_key: Set(key.to_owned()),
            // Only the person downloads it: the archive field answers them alone.
            access_selection: Set(Some(subject_requests::ARCHIVE_ACCESS.to_owned())),
            created_by: Set(Some(request.subject_id)),
            created_at: Set(now),
            expires_at: Set(Some(now + self.files.retention())),
            key_version: Set(Some(key_version)),
            name_sealed: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        let archive = subject_requests::Archive {
            file_id,
            kept_until: now + self.files.retention(),
            result: json!({ "parts": summary, "sha256": sha256 }),
        };
        if subject_requests::complete(&txn, request, archive, (actor, meta), &self.data_key).await?
        {
            txn.commit().await.map_err(ApiError::from_db)?;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// A path inside the archive: no absolute paths, no `..`, only plain characters.
fn safe_path(path: &str) -> String {
    let cleaned: Vec<String> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != "." && *part != "..")
        .map(|part| {
            part.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned.join("/")
    }
}

#[async_trait::async_trait]
impl JobHandler for AccessRequestJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let id = job.required_id("requestId")?;
        let (Some(tenant), Some(actor)) = (job.tenant_id, job.principal.as_ref()) else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let meta = job.audit_meta();
        let request = match subject_requests::for_job(&self.db, tenant, id).await {
            Ok(request) => request,
            Err(ApiError::NotFound(_)) => {
                return Err(JobError::Permanent("the request no longer exists".into()));
            }
            Err(err) => return Err(retry(err)),
        };
        if !subject_requests::start(&self.db, request.id)
            .await
            .map_err(retry)?
        {
            // Done, failed or never confirmed: nothing to do.
            return Ok(());
        }
        let subject = DataSubject {
            tenant_id: tenant,
            user_id: request.subject_id,
        };
        let outcome = async {
            let (entries, summary) = self.gather(subject).await?;
            let zipped = tokio::task::spawn_blocking(move || portal_kit::archive::zip(&entries))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            // The archive holds opened seals (message bodies, attachments): it is stored
            // sealed under the tenant's key, like what it was made from.
            let file_id = Uuid::now_v7();
            let sha256 = hex::encode(Sha256::digest(&zipped));
            let size = i64::try_from(zipped.len()).unwrap_or(i64::MAX);
            let sealed = self
                .keys
                .seal_blob(content_binding(tenant, file_id), &zipped)
                .await?;
            drop(zipped);
            let key = object_key("identity", tenant, file_id);
            self.files.put_bytes(&key, sealed.bytes).await?;
            let recorded = self
                .record(
                    &request,
                    (file_id, sealed.version, &key),
                    (size, &sha256),
                    summary,
                    (actor, &meta),
                )
                .await;
            if !matches!(recorded, Ok(true)) {
                // Not recorded (an error, or another run finished first): the object would
                // have no row, so nothing would ever remove it.
                self.files.remove(&key).await.ok();
            }
            recorded.map(|_| ())
        }
        .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(err) if job.attempt >= subject_requests::JOB_ATTEMPTS => {
                tracing::error!(request = %request.id, error = ?err, "a data export failed");
                subject_requests::fail(
                    &self.db,
                    &request,
                    "the archive could not be prepared",
                    actor,
                    &meta,
                )
                .await
                .map_err(retry)?;
                Ok(())
            }
            Err(err) => Err(retry(err)),
        }
    }
}

/// The domain that keeps the person's account: it erases first, so the account is
/// closed — no sign-in, sessions and API keys revoked — before anything else goes.
const ACCOUNT_DOMAIN: &str = "identity";

/// When an erasure that keeps failing after it began is taken up again.
const RESUME_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// What the sealed identifiers of an erasure are sealed for.
fn erasure_purpose(request: Uuid) -> String {
    format!("data-subject erasure identifiers/{request}")
}

/// Carries out confirmed erasure requests.
pub struct ErasureJob {
    db: DatabaseConnection,
    data_key: DataKey,
    domains: Vec<Arc<dyn PrivacyDomain>>,
}

impl ErasureJob {
    /// The handler over `db`, erasing through `domains`, keeping an erasure's identifiers
    /// between attempts sealed with `data_key`.
    pub fn new(
        db: DatabaseConnection,
        data_key: DataKey,
        domains: Vec<Arc<dyn PrivacyDomain>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            data_key,
            domains,
        })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = subject_requests::ERASURE_JOB;

    /// The holds of every domain covering `subject` or anything any domain ties them to.
    async fn holds(&self, subject: DataSubject) -> ApiResult<Vec<Value>> {
        let mut ties = Vec::new();
        for domain in &self.domains {
            ties.extend(domain.ties(subject).await?);
        }
        ties.sort();
        ties.dedup();
        let mut holds = Vec::new();
        for domain in &self.domains {
            for hold in domain.holds(subject, &ties).await? {
                holds.push(json!({
                    "part": domain.name(),
                    "id": hold.id,
                    "targetType": hold.target_type,
                    "targetId": hold.target_id,
                }));
            }
        }
        Ok(holds)
    }

    /// Every domain's identifiers of `subject`, deduplicated.
    async fn identifiers(&self, subject: DataSubject) -> ApiResult<Vec<String>> {
        let mut all: Vec<String> = Vec::new();
        for domain in &self.domains {
            for id in domain.identifiers(subject).await? {
                let id = id.trim().to_owned();
                if !id.is_empty() && !all.iter().any(|a| a.eq_ignore_ascii_case(&id)) {
                    all.push(id);
                }
            }
        }
        Ok(all)
    }

    /// The identifiers kept by an earlier attempt of `request`.
    fn kept_identifiers(&self, request: Uuid, sealed: &str) -> ApiResult<Vec<String>> {
        let opened = self
            .data_key
            .open(&erasure_purpose(request), sealed)
            .map_err(|_| ApiError::internal("an erasure's identifiers do not open"))?;
        serde_json::from_slice(&opened).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Erases `subject` everywhere — the account first, the other domains, then the
    /// platform's copies (last, so that what the other steps wrote is scrubbed too) —
    /// adding each part's report to `result` and keeping it after each step.
    async fn erase(
        &self,
        request: Uuid,
        subject: DataSubject,
        erasure: &Erasure,
        result: &mut Value,
    ) -> ApiResult<()> {
        let ordered = self
            .domains
            .iter()
            .filter(|d| d.name() == ACCOUNT_DOMAIN)
            .chain(self.domains.iter().filter(|d| d.name() != ACCOUNT_DOMAIN));
        for domain in ordered {
            let done = domain.erase(subject, erasure).await?;
            merge(result, domain.name(), done);
            subject_requests::save_progress(&self.db, request, result.clone()).await?;
        }
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let done = portal_kit::privacy::platform::erase(&txn, subject, erasure).await?;
        portal_kit::audit::AuditEvent::success("user_platform.erase", "user", subject.user_id)
            .with_details(json!({
                "items": done.items.iter().map(|i| json!({
                    "collection": i.collection,
                    "disposition": i.disposition,
                    "count": i.count,
                })).collect::<Vec<_>>(),
            }))
            .record(&txn, &erasure.actor, &erasure.meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        merge(result, "platform", done);
        subject_requests::save_progress(&self.db, request, result.clone()).await?;
        Ok(())
    }
}

/// Adds `done` to `result.parts[part]`: what was erased or anonymized adds up over
/// attempts; what is kept is as the latest attempt found it.
fn merge(result: &mut Value, part: &str, done: DomainErasure) {
    if !result["parts"].is_object() {
        result["parts"] = json!({});
    }
    let lines = &mut result["parts"][part];
    if !lines.is_array() {
        *lines = json!([]);
    }
    let Some(lines) = lines.as_array_mut() else {
        return;
    };
    for item in done.items {
        let Ok(new) = serde_json::to_value(&item) else {
            continue;
        };
        let same = lines.iter_mut().find(|line| {
            line["collection"] == new["collection"] && line["disposition"] == new["disposition"]
        });
        match same {
            Some(line) if item.disposition == Disposition::Kept => *line = new,
            Some(line) => {
                let total = line["count"]
                    .as_u64()
                    .unwrap_or(0)
                    .saturating_add(item.count);
                line["count"] = total.into();
            }
            None => lines.push(new),
        }
    }
}

#[async_trait::async_trait]
impl JobHandler for ErasureJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let id = job.required_id("requestId")?;
        let (Some(tenant), Some(actor)) = (job.tenant_id, job.principal.as_ref()) else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let meta = job.audit_meta();
        let request = match subject_requests::for_job(&self.db, tenant, id).await {
            Ok(request) => request,
            Err(ApiError::NotFound(_)) => {
                return Err(JobError::Permanent("the request no longer exists".into()));
            }
            Err(err) => return Err(retry(err)),
        };
        if request.kind != subject_requests::kind::ERASURE {
            return Err(JobError::Permanent("not an erasure request".into()));
        }
        if !subject_requests::start(&self.db, request.id)
            .await
            .map_err(retry)?
        {
            return Ok(());
        }
        let subject = DataSubject {
            tenant_id: tenant,
            user_id: request.subject_id,
        };
        let outcome = async {
            let identifiers = match &request.erasure_sealed {
                // Erasing began in an earlier attempt: finish it, with what was gathered
                // then (the holds were checked then; the account may be closed now).
                Some(sealed) => self.kept_identifiers(request.id, sealed)?,
                None => {
                    let holds = self.holds(subject).await?;
                    if !holds.is_empty() {
                        subject_requests::block(
                            &self.db,
                            &request,
                            Value::Array(holds),
                            (actor, &meta),
                        )
                        .await?;
                        return Ok(());
                    }
                    let identifiers = self.identifiers(subject).await?;
                    let plain = serde_json::to_vec(&identifiers)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    let sealed = self.data_key.seal(&erasure_purpose(request.id), &plain)?;
                    subject_requests::begin_erasure(&self.db, request.id, sealed).await?;
                    identifiers
                }
            };
            let erasure = Erasure {
                identifiers,
                actor: actor.clone(),
                meta: meta.clone(),
            };
            let mut result = request.result.clone().unwrap_or_else(|| json!({}));
            self.erase(request.id, subject, &erasure, &mut result)
                .await?;
            let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
            if subject_requests::complete_erasure(&txn, &request, result, (actor, &meta)).await? {
                txn.commit().await.map_err(ApiError::from_db)?;
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(err) if job.attempt >= subject_requests::JOB_ATTEMPTS => {
                let begun = subject_requests::for_job(&self.db, tenant, request.id)
                    .await
                    .map_err(retry)?
                    .erasure_sealed
                    .is_some();
                if begun {
                    // Erasing began: the account may be closed already, so nobody could
                    // ask again. The request stays running and a fresh job takes it up
                    // later, until it completes.
                    tracing::error!(
                        request = %request.id, error = ?err,
                        "an erasure keeps failing; it is tried again in an hour"
                    );
                    let now = Utc::now();
                    let again = NewJob::new(Self::KIND, json!({ "requestId": request.id }))
                        .acting_for(actor)
                        .max_attempts(subject_requests::JOB_ATTEMPTS)
                        .at(now + RESUME_AFTER);
                    portal_kit::jobs::enqueue(&self.db, now, again)
                        .await
                        .map_err(retry)?;
                    return Ok(());
                }
                tracing::error!(request = %request.id, error = ?err, "an erasure failed");
                subject_requests::fail(
                    &self.db,
                    &request,
                    "the erasure could not be started; nothing was erased; ask again",
                    actor,
                    &meta,
                )
                .await
                .map_err(retry)?;
                Ok(())
            }
            Err(err) => Err(retry(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_add_up_what_they_erased_and_keep_the_latest_of_what_is_kept() {
        let mut result = json!({});
        let mut first = DomainErasure::default();
        first.erased("sessions", 2, "r").kept("ledger", 5, "law");
        merge(&mut result, "identity", first);
        let mut second = DomainErasure::default();
        second
            .erased("sessions", 1, "r")
            .kept("ledger", 5, "law")
            .anonymized("x", 3, "r");
        merge(&mut result, "identity", second);
        let lines = &result["parts"]["identity"];
        assert_eq!(lines[0]["count"], 3);
        assert_eq!(lines[1]["count"], 5);
        assert_eq!(lines[2]["disposition"], "ANONYMIZED");
    }

    #[test]
    fn archive_paths_stay_inside_their_folder() {
        assert_eq!(safe_path("../../etc/passwd"), "etc/passwd");
        assert_eq!(safe_path("/abs/x y.txt"), "abs/x_y.txt");
        assert_eq!(safe_path(".."), "file");
    }
}
