//! The tamper-evident audit log: per tenant (and one chain for platform events without a
//! tenant), every event is chained — its hash covers the hash before it and a canonical
//! encoding of everything recorded about it ([`record`]) — and the chains' heads are
//! signed with the evidence key at checkpoints.
//!
//! **Writers never wait.** An event is inserted unchained in the transaction of its change.
//! After commit, one sequencer ([`chain`]: an advisory lock on PostgreSQL, the write lock
//! on SQLite, and a unique index on (tenant, sequence) behind both) gives the committed
//! unchained events of each tenant the next sequence numbers, in id order, and their
//! hashes. An event committed late is simply chained later. The database lets exactly this
//! one update through its append-only guard: the chain fields set once, nothing else
//! changed.
//!
//! **Checkpoints** ([`checkpoint`]) sign `{tenant, sequence, headHash, signedAt}`: a
//! *genesis* checkpoint (sequence 0) starts each chain, *periodic* ones follow while the
//! chain grows, and a *final* one closes a tenant that is off-boarded. [`super::verify`]
//! checks a chain against them.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::platform::{audit_checkpoint, audit_event};

use crate::db::begin_exclusive;
use crate::error::{ApiError, ApiResult};
use crate::evidence::{ActiveKey, EvidenceSigner, canonical};

/// The `prev` of a chain's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The version of the canonical encoding (a member of every record).
pub const RECORD_VERSION: i64 = 1;

/// The `type` of a signed checkpoint document.
pub const CHECKPOINT_TYPE: &str = "portal.audit.checkpoint";

/// The PostgreSQL advisory lock held while chaining and checkpointing.
pub(crate) const LOCK_KEY: i64 = 0x706f_7274_616c_4143; // "portalAC"

/// Kinds of checkpoint.
pub mod kind {
    /// Sequence 0: the chain starts here.
    pub const GENESIS: &str = "genesis";
    /// A later head.
    pub const PERIODIC: &str = "periodic";
    /// The last head of an off-boarded tenant's chain.
    pub const FINAL: &str = "final";
}

fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The canonical record of a chained (or about to be chained) event: every column of the
/// row, the personal data as its ciphertext. Its hash is SHA-256 over its RFC 8785 form;
/// the evidence pack's lines are these records with `hash` added.
pub fn record(row: &audit_event::Model, sequence: i64, prev: &str) -> Value {
    json!({
        "version": RECORD_VERSION,
        "tenant": row.tenant_id.map(|t| t.to_string()),
        "sequence": sequence,
        "prev": prev,
        "id": row.id.to_string(),
        "at": time(&row.created_at),
        "actor": { "kind": row.actor_kind, "id": row.actor_id.map(|a| a.to_string()) },
        "action": row.action,
        "target": { "type": row.target_type, "id": row.target_id.map(|t| t.to_string()) },
        "outcome": row.outcome,
        "request": {
            "id": row.request_id,
            "sourceIp": row.source_ip,
            "userAgent": row.user_agent,
            "personal": row.actor_personal,
        },
        "subject": { "id": row.subject_id.map(|s| s.to_string()), "personal": row.subject_personal },
        "details": row.details,
    })
}

/// SHA-256 of a record's canonical form (without `hash`), hex.
pub fn hash(record: &Value) -> String {
    let mut body = record.clone();
    if let Value::Object(members) = &mut body {
        members.remove("hash");
    }
    hex::encode(Sha256::digest(canonical(&body)))
}

/// The chain of `tenant_id` (`None`: the platform's own events).
fn of_chain(tenant_id: Option<Uuid>) -> Condition {
    match tenant_id {
        Some(tenant) => Condition::all().add(audit_event::Column::TenantId.eq(tenant)),
        None => Condition::all().add(audit_event::Column::TenantId.is_null()),
    }
}

/// The last chained event of a chain: (sequence, hash); (0, genesis) when there is none.
pub async fn head(db: &impl ConnectionTrait, tenant_id: Option<Uuid>) -> ApiResult<(i64, String)> {
    let last = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::ChainSeq)
        .column(audit_event::Column::ChainHash)
        .filter(of_chain(tenant_id))
        .filter(audit_event::Column::ChainSeq.is_not_null())
        .order_by_desc(audit_event::Column::ChainSeq)
        .limit(1)
        .into_tuple::<(Option<i64>, Option<String>)>()
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(match last {
        Some((Some(seq), Some(hash))) => (seq, hash),
        _ => (0, GENESIS_HASH.to_owned()),
    })
}

/// Chains up to `limit` committed unchained events (oldest id first); how many it chained.
/// Cheap when there is nothing to do (no write transaction is opened). Chains without a
/// checkpoint get their genesis checkpoint first, signed by `signer`.
pub async fn chain(db: &DatabaseConnection, signer: &EvidenceSigner, limit: u64) -> ApiResult<u64> {
    let waiting = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::Id)
        .filter(audit_event::Column::ChainSeq.is_null())
        .limit(1)
        .into_tuple::<Uuid>()
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    if waiting.is_none() {
        return Ok(0);
    }
    // Personal data stored in the clear before sealing existed is sealed before any of
    // it is chained (chaining it first would fix the plaintext into the chain).
    super::legacy::seal_once(db).await?;
    // Read the evidence key before taking the lock: signing inside it needs no database.
    let key = signer.active_key().await?;
    let txn = begin_exclusive(db, LOCK_KEY)
        .await
        .map_err(ApiError::from_db)?;
    let rows = audit_event::Entity::find()
        .filter(audit_event::Column::ChainSeq.is_null())
        // A row an older binary wrote after the sealing above keeps its plaintext until
        // the next round seals it: never chained unsealed.
        .filter(audit_event::Column::SubjectId.is_not_null())
        .order_by_asc(audit_event::Column::Id)
        .limit(limit)
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let mut heads: std::collections::HashMap<Option<Uuid>, (i64, String)> = Default::default();
    let mut chained = 0;
    for row in rows {
        let tenant = row.tenant_id;
        if let std::collections::hash_map::Entry::Vacant(entry) = heads.entry(tenant) {
            let found = head(&txn, tenant).await?;
            // A new chain starts at a signed genesis checkpoint.
            if found.0 == 0 && !has_checkpoint(&txn, tenant).await? {
                write_checkpoint(&txn, &key, tenant, 0, GENESIS_HASH, kind::GENESIS).await?;
            }
            entry.insert(found);
        }
        let Some((sequence, prev)) = heads.get(&tenant).cloned() else {
            continue;
        };
        let sequence = sequence + 1;
        let hashed = hash(&record(&row, sequence, &prev));
        let updated = audit_event::Entity::update_many()
            .col_expr(audit_event::Column::ChainSeq, Expr::value(sequence))
            .col_expr(audit_event::Column::ChainPrev, Expr::value(prev))
            .col_expr(audit_event::Column::ChainHash, Expr::value(hashed.clone()))
            .filter(audit_event::Column::Id.eq(row.id))
            .filter(audit_event::Column::ChainSeq.is_null())
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if updated.rows_affected == 1 {
            heads.insert(tenant, (sequence, hashed));
            chained += 1;
        }
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(chained)
}

/// Chains every committed unchained event (in rounds of `batch`); how many.
pub async fn chain_all(
    db: &DatabaseConnection,
    signer: &EvidenceSigner,
    batch: u64,
) -> ApiResult<u64> {
    let mut total = 0;
    loop {
        let chained = chain(db, signer, batch).await?;
        total += chained;
        if chained < batch {
            return Ok(total);
        }
    }
}

async fn has_checkpoint(db: &impl ConnectionTrait, tenant_id: Option<Uuid>) -> ApiResult<bool> {
    let condition = match tenant_id {
        Some(tenant) => audit_checkpoint::Column::TenantId.eq(tenant),
        None => audit_checkpoint::Column::TenantId.is_null(),
    };
    Ok(audit_checkpoint::Entity::find()
        .select_only()
        .column(audit_checkpoint::Column::Id)
        .filter(condition)
        .limit(1)
        .into_tuple::<Uuid>()
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .is_some())
}

/// The checkpoints of a chain, oldest first.
pub async fn checkpoints(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
) -> ApiResult<Vec<audit_checkpoint::Model>> {
    let condition = match tenant_id {
        Some(tenant) => audit_checkpoint::Column::TenantId.eq(tenant),
        None => audit_checkpoint::Column::TenantId.is_null(),
    };
    audit_checkpoint::Entity::find()
        .filter(condition)
        .order_by_asc(audit_checkpoint::Column::Sequence)
        .order_by_asc(audit_checkpoint::Column::CreatedAt)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// The latest checkpoint of a chain.
pub async fn last_checkpoint(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
) -> ApiResult<Option<audit_checkpoint::Model>> {
    let condition = match tenant_id {
        Some(tenant) => audit_checkpoint::Column::TenantId.eq(tenant),
        None => audit_checkpoint::Column::TenantId.is_null(),
    };
    audit_checkpoint::Entity::find()
        .filter(condition)
        .order_by_desc(audit_checkpoint::Column::Sequence)
        .order_by_desc(audit_checkpoint::Column::CreatedAt)
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

async fn write_checkpoint(
    db: &impl ConnectionTrait,
    key: &ActiveKey,
    tenant_id: Option<Uuid>,
    sequence: i64,
    head_hash: &str,
    kind: &str,
) -> ApiResult<audit_checkpoint::Model> {
    let mut document = serde_json::Map::new();
    document.insert("type".into(), CHECKPOINT_TYPE.into());
    document.insert("kind".into(), kind.into());
    document.insert("tenant".into(), tenant_id.map(|t| t.to_string()).into());
    document.insert("sequence".into(), sequence.into());
    document.insert("headHash".into(), head_hash.into());
    let signed = key.sign(document);
    let key_id = signed
        .pointer("/signature/keyId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    audit_checkpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        sequence: Set(sequence),
        head_hash: Set(head_hash.to_owned()),
        kind: Set(kind.to_owned()),
        key_id: Set(key_id),
        document: Set(signed.to_string()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)
}

/// When a chain's head is signed again.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointPolicy {
    /// At most this long after the last checkpoint, if the chain grew since.
    pub every: Duration,
    /// Or as soon as this many events were chained since the last checkpoint.
    pub events: i64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every: Duration::hours(1),
            events: 10_000,
        }
    }
}

/// Signs the heads of the chains that grew since their last checkpoint and are due under
/// `policy` (at `now`); how many checkpoints it wrote.
pub async fn checkpoint(
    db: &DatabaseConnection,
    signer: &EvidenceSigner,
    policy: CheckpointPolicy,
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    // Which chains are due is read without the lock; only those are checkpointed under
    // it (after a second look: another process may have just done it).
    let mut due = Vec::new();
    for tenant in chained_tenants(db).await? {
        if is_due(db, tenant, policy, now).await?.is_some() {
            due.push(tenant);
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    let key = signer.active_key().await?;
    // One checkpointer at a time (no duplicate checkpoints from two processes).
    let txn = begin_exclusive(db, LOCK_KEY)
        .await
        .map_err(ApiError::from_db)?;
    let mut written = 0;
    for tenant in due {
        if let Some((sequence, head_hash)) = is_due(&txn, tenant, policy, now).await? {
            write_checkpoint(&txn, &key, tenant, sequence, &head_hash, kind::PERIODIC).await?;
            written += 1;
        }
    }
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(written)
}

async fn chained_tenants(db: &impl ConnectionTrait) -> ApiResult<Vec<Option<Uuid>>> {
    audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::TenantId)
        .distinct()
        .filter(audit_event::Column::ChainSeq.is_not_null())
        .into_tuple::<Option<Uuid>>()
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// The head to sign when `tenant_id`'s chain is due for a checkpoint under `policy`.
async fn is_due(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
    policy: CheckpointPolicy,
    now: DateTime<Utc>,
) -> ApiResult<Option<(i64, String)>> {
    let (sequence, head_hash) = head(db, tenant_id).await?;
    let due = match last_checkpoint(db, tenant_id).await? {
        None => true,
        Some(last) if last.sequence >= sequence => false,
        Some(last) => {
            sequence - last.sequence >= policy.events || now - last.created_at >= policy.every
        }
    };
    Ok(due.then_some((sequence, head_hash)))
}

/// Chains what is waiting and signs a checkpoint of `tenant_id`'s head now, whatever the
/// policy (an evidence pack's export, an off-boarding's final checkpoint).
pub async fn checkpoint_now(
    db: &DatabaseConnection,
    signer: &EvidenceSigner,
    tenant_id: Option<Uuid>,
    kind: &str,
) -> ApiResult<audit_checkpoint::Model> {
    chain_all(db, signer, 1_000).await?;
    let key = signer.active_key().await?;
    let txn = begin_exclusive(db, LOCK_KEY)
        .await
        .map_err(ApiError::from_db)?;
    let (sequence, head_hash) = head(&txn, tenant_id).await?;
    let written = write_checkpoint(&txn, &key, tenant_id, sequence, &head_hash, kind).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(written)
}

/// Events of a chain that are still unchained, and the oldest one's time.
pub async fn unchained(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
) -> ApiResult<(u64, Option<DateTime<Utc>>)> {
    let waiting = || {
        audit_event::Entity::find()
            .filter(of_chain(tenant_id))
            .filter(audit_event::Column::ChainSeq.is_null())
    };
    let count = waiting().count(db).await.map_err(ApiError::from_db)?;
    let oldest = waiting()
        .select_only()
        .column(audit_event::Column::CreatedAt)
        .order_by_asc(audit_event::Column::Id)
        .limit(1)
        .into_tuple::<DateTime<Utc>>()
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok((count, oldest))
}

/// Keeps the chains current in this process: chains committed events every `poll` and
/// signs due checkpoints. Any number of processes may run it; one chains at a time.
pub fn spawn(
    db: DatabaseConnection,
    signer: EvidenceSigner,
    poll: std::time::Duration,
    policy: CheckpointPolicy,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_checkpoint = std::time::Instant::now() - std::time::Duration::from_secs(3600);
        loop {
            if let Err(err) = chain_all(&db, &signer, 1_000).await {
                tracing::warn!(error = ?err, "chaining audit events failed; will retry");
            }
            if last_checkpoint.elapsed() >= std::time::Duration::from_secs(10) {
                last_checkpoint = std::time::Instant::now();
                if let Err(err) = checkpoint(&db, &signer, policy, Utc::now()).await {
                    tracing::warn!(error = ?err, "signing audit checkpoints failed; will retry");
                }
            }
            tokio::time::sleep(poll).await;
        }
    })
}
