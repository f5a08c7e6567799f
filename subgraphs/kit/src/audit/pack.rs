//! The evidence pack: a tenant's audit chain as files an auditor verifies without the
//! portal — `events.jsonl` (one chain record per line, personal data as ciphertext),
//! `checkpoints.jsonl` (the signed checkpoints, the last one made for the pack),
//! `keys.json` (every evidence key ever published), `manifest.json` (the SHA-256 of each
//! file, signed with the evidence key) and a `README.md` saying how to check them by hand.
//! [`verify_files`] is that check; [`verify_database`] runs the same over the live tables.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::platform::audit_event;

use super::chain::{self, record};
use super::verify::{Finding, Report, verify};
use crate::error::{ApiError, ApiResult};
use crate::evidence::{self, EvidenceSigner, KeySet};

/// The files of a pack, in the order they are written.
pub const FILES: [&str; 5] = [
    "README.md",
    "events.jsonl",
    "checkpoints.jsonl",
    "keys.json",
    "manifest.json",
];

/// The `type` of a pack's signed manifest.
pub const MANIFEST_TYPE: &str = "portal.audit.evidence-pack";

/// The largest file a zipped pack may hold (its events file grows with the log).
const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;

/// Rows read per query.
const PAGE: u64 = 2_000;

const README: &str = include_str!("pack_readme.md");

/// Every chained record of a chain, in sequence order.
pub async fn records(db: &impl ConnectionTrait, tenant_id: Option<Uuid>) -> ApiResult<Vec<Value>> {
    let mut out = Vec::new();
    let mut after = 0i64;
    loop {
        let mut query = audit_event::Entity::find()
            .filter(audit_event::Column::ChainSeq.gt(after))
            .order_by_asc(audit_event::Column::ChainSeq)
            .limit(PAGE);
        query = match tenant_id {
            Some(tenant) => query.filter(audit_event::Column::TenantId.eq(tenant)),
            None => query.filter(audit_event::Column::TenantId.is_null()),
        };
        let rows = query.all(db).await.map_err(ApiError::from_db)?;
        let done = (rows.len() as u64) < PAGE;
        for row in rows {
            let (Some(sequence), Some(prev), Some(hash)) = (
                row.chain_seq,
                row.chain_prev.clone(),
                row.chain_hash.clone(),
            ) else {
                continue;
            };
            let mut line = record(&row, sequence, &prev);
            line["hash"] = Value::String(hash);
            after = sequence;
            out.push(line);
        }
        if done {
            return Ok(out);
        }
    }
}

/// The signed checkpoint documents of a chain, oldest first.
pub async fn checkpoint_documents(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
) -> ApiResult<Vec<Value>> {
    chain::checkpoints(db, tenant_id)
        .await?
        .into_iter()
        .map(|row| {
            serde_json::from_str(&row.document)
                .map_err(|_| ApiError::internal("a stored checkpoint is not JSON"))
        })
        .collect()
}

fn lines(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        out.extend_from_slice(value.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Builds the evidence pack of `tenant_id`'s chain: chains what is waiting, signs a
/// checkpoint of the head for the pack, and returns the files by name.
pub async fn build(
    db: &DatabaseConnection,
    signer: &EvidenceSigner,
    tenant_id: Option<Uuid>,
) -> ApiResult<BTreeMap<String, Vec<u8>>> {
    build_to(db, signer, tenant_id, chain::kind::PERIODIC).await
}

/// Builds the evidence pack of `tenant_id`'s chain like [`build`], its head checkpoint of
/// `kind` ([`chain::kind::FINAL`] when a tenant is off-boarded).
pub async fn build_to(
    db: &DatabaseConnection,
    signer: &EvidenceSigner,
    tenant_id: Option<Uuid>,
    kind: &str,
) -> ApiResult<BTreeMap<String, Vec<u8>>> {
    let head = chain::checkpoint_now(db, signer, tenant_id, kind).await?;
    let records = records(db, tenant_id).await?;
    // Only what the pack's checkpoint covers: events chained since are in the next pack.
    let records: Vec<Value> = records
        .into_iter()
        .filter(|r| r.get("sequence").and_then(Value::as_i64).unwrap_or(0) <= head.sequence)
        .collect();
    let checkpoints = checkpoint_documents(db, tenant_id).await?;
    let keys = evidence::published(db).await?;
    let mut files = BTreeMap::new();
    files.insert("README.md".to_owned(), README.as_bytes().to_vec());
    files.insert("events.jsonl".to_owned(), lines(&records));
    files.insert("checkpoints.jsonl".to_owned(), lines(&checkpoints));
    files.insert(
        "keys.json".to_owned(),
        serde_json::to_vec_pretty(&keys).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    let mut digests = Map::new();
    for (name, bytes) in &files {
        digests.insert(
            name.clone(),
            Value::String(hex::encode(Sha256::digest(bytes))),
        );
    }
    let mut manifest = Map::new();
    manifest.insert("type".into(), MANIFEST_TYPE.into());
    manifest.insert("tenant".into(), tenant_id.map(|t| t.to_string()).into());
    manifest.insert("sequence".into(), head.sequence.into());
    manifest.insert("headHash".into(), head.head_hash.clone().into());
    manifest.insert("events".into(), (records.len() as u64).into());
    manifest.insert("files".into(), Value::Object(digests));
    let manifest = signer.sign(manifest).await?;
    files.insert(
        "manifest.json".to_owned(),
        serde_json::to_vec_pretty(&manifest).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(files)
}

/// The pack's files in one zip archive.
pub fn zip(files: &BTreeMap<String, Vec<u8>>) -> ApiResult<Vec<u8>> {
    crate::archive::zip(files)
}

/// The files of a zipped pack (only the pack's own names are read).
pub fn unzip(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    crate::archive::unzip(bytes, MAX_FILE_BYTES, |path| FILES.contains(&path))
}

fn parse_lines(name: &str, bytes: &[u8]) -> Result<Vec<Value>, String> {
    std::str::from_utf8(bytes)
        .map_err(|_| format!("{name} is not UTF-8"))?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| format!("{name} line {}: {e}", n + 1))
        })
        .collect()
}

/// Verifies a pack's files: the manifest's signature and digests, then the chain against
/// its checkpoints — with the `trusted` evidence keys (the portal's published ones, fetched
/// by the verifier), else with the pack's own `keys.json`, which proves only that the pack
/// is consistent, not who signed it. An error is a pack that cannot be read at all; a
/// report with findings is a pack that was read and is wrong.
pub fn verify_files(
    files: &BTreeMap<String, Vec<u8>>,
    trusted: Option<&KeySet>,
) -> Result<Report, String> {
    let get = |name: &str| {
        files
            .get(name)
            .ok_or_else(|| format!("the pack has no {name}"))
    };
    let keys: KeySet = match trusted {
        Some(keys) => keys.clone(),
        None => serde_json::from_slice(get("keys.json")?).map_err(|e| format!("keys.json: {e}"))?,
    };
    let manifest: Value =
        serde_json::from_slice(get("manifest.json")?).map_err(|e| format!("manifest.json: {e}"))?;
    let records = parse_lines("events.jsonl", get("events.jsonl")?)?;
    let checkpoints = parse_lines("checkpoints.jsonl", get("checkpoints.jsonl")?)?;
    let tenant = manifest.get("tenant").and_then(Value::as_str);
    let mut report = verify(tenant, &records, &checkpoints, &keys);
    let bad = |reason: String| Finding::BadCheckpoint {
        sequence: manifest.get("sequence").and_then(Value::as_i64),
        reason,
    };
    if let Err(err) = evidence::verify(&manifest, &keys) {
        report.findings.push(bad(format!("the manifest: {err}")));
    } else if manifest.get("type").and_then(Value::as_str) != Some(MANIFEST_TYPE) {
        report
            .findings
            .push(bad("the manifest is not an evidence pack's".into()));
    } else {
        for name in [
            "README.md",
            "events.jsonl",
            "checkpoints.jsonl",
            "keys.json",
        ] {
            let expected = manifest
                .pointer(&format!("/files/{name}"))
                .and_then(Value::as_str);
            let actual = hex::encode(Sha256::digest(get(name)?));
            if expected != Some(actual.as_str()) {
                report
                    .findings
                    .push(bad(format!("{name} is not the file the manifest signed")));
            }
        }
        if manifest.get("sequence").and_then(Value::as_i64) != Some(report.head_sequence) {
            report.findings.push(Finding::Truncated {
                last: report.head_sequence,
                checkpoint: manifest
                    .get("sequence")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            });
        }
    }
    Ok(report)
}

/// Verifies `tenant_id`'s chain in the database (`None`: the platform's chain); events
/// still unchained after `bound` are reported too.
pub async fn verify_database(
    db: &DatabaseConnection,
    tenant_id: Option<Uuid>,
    bound: chrono::Duration,
    now: DateTime<Utc>,
) -> ApiResult<Report> {
    let records = records(db, tenant_id).await?;
    let checkpoints = checkpoint_documents(db, tenant_id).await?;
    let keys = evidence::published(db).await?;
    let tenant = tenant_id.map(|t| t.to_string());
    let mut report = verify(tenant.as_deref(), &records, &checkpoints, &keys);
    let open_lifts = portal_entities::platform::audit_guard_lift::Entity::find()
        .filter(portal_entities::platform::audit_guard_lift::Column::FinishedAt.is_null())
        .count(db)
        .await
        .map_err(ApiError::from_db)?;
    if open_lifts > 0 {
        report
            .findings
            .push(Finding::GuardLifted { count: open_lifts });
    }
    let (count, oldest) = chain::unchained(db, tenant_id).await?;
    if let Some(oldest) = oldest
        && now - oldest > bound
    {
        report.findings.push(Finding::Unchained {
            count,
            oldest_age_secs: (now - oldest).num_seconds(),
        });
    }
    Ok(report)
}

/// Every chain in the database: each tenant's that has events, and the platform's.
pub async fn chains(db: &impl ConnectionTrait) -> ApiResult<Vec<Option<Uuid>>> {
    audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::TenantId)
        .distinct()
        .into_tuple::<Option<Uuid>>()
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// A short human-readable account of `report`.
pub fn describe(report: &Report) -> String {
    let chain = report.tenant.as_deref().unwrap_or("platform");
    let mut out = format!(
        "chain {chain}: {} event(s), head {} ({}), {} checkpoint(s) verified{}\n",
        report.events,
        report.head_sequence,
        report.head_hash.chars().take(16).collect::<String>(),
        report.checkpoints_verified,
        report
            .last_checkpoint
            .map(|c| format!(", the last at {c}"))
            .unwrap_or_default(),
    );
    for finding in &report.findings {
        out.push_str("  ");
        out.push_str(&json!(finding).to_string());
        out.push('\n');
    }
    out.push_str(if report.ok() {
        "  verified\n"
    } else {
        "  NOT VERIFIED\n"
    });
    out
}
