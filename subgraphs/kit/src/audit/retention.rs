//! Retention of the audit log (`portal_kit::retention::AUDIT_EVENTS`): events older than
//! the tenant's period are deleted in **whole segments ending at a signed checkpoint** —
//! never a part of one — so what remains still verifies: its first event links to the
//! checkpoint's head hash, which the evidence key signed (see [`super::verify`]).
//!
//! A segment goes in one transaction under the sequencer's lock, through a recorded lift of
//! the append-only guard (opened and closed inside it), and an `audit.segment_delete`
//! event naming the checkpoint, the sequence it ends at and the lift is recorded with it.
//! While any legal hold exists in the tenant, its audit log is kept whole.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::platform::{audit_checkpoint, audit_event, audit_guard_lift};

use super::chain::LOCK_KEY;
use crate::actor::{Actor, RequestMeta};
use crate::db::begin_exclusive;
use crate::error::{ApiError, ApiResult};
use crate::retention::{AUDIT_EVENTS, Class, Held, Sweeper};

/// Why the guard is lifted, as recorded.
pub const REASON: &str = "retention: an audit-log segment past the tenant's period";

/// The segment of `tenant`'s chain that may go at `cutoff`: the checkpoint it ends at
/// (sequence ≥ 1) — the latest one before the first event recorded at or after `cutoff` —
/// and how many events it still holds.
async fn segment(
    db: &impl ConnectionTrait,
    tenant: Uuid,
    cutoff: DateTime<Utc>,
) -> ApiResult<Option<(audit_checkpoint::Model, u64)>> {
    let of_tenant = audit_event::Column::TenantId.eq(tenant);
    let first_kept: Option<Option<i64>> = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::ChainSeq)
        .filter(of_tenant.clone())
        .filter(audit_event::Column::ChainSeq.is_not_null())
        .filter(audit_event::Column::CreatedAt.gte(cutoff))
        .order_by_asc(audit_event::Column::ChainSeq)
        .limit(1)
        .into_tuple()
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut checkpoints = audit_checkpoint::Entity::find()
        .filter(audit_checkpoint::Column::TenantId.eq(tenant))
        .filter(audit_checkpoint::Column::Sequence.gte(1));
    if let Some(Some(first_kept)) = first_kept {
        checkpoints = checkpoints.filter(audit_checkpoint::Column::Sequence.lt(first_kept));
    }
    let Some(end) = checkpoints
        .order_by_desc(audit_checkpoint::Column::Sequence)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
    else {
        return Ok(None);
    };
    let events = audit_event::Entity::find()
        .filter(of_tenant)
        .filter(audit_event::Column::ChainSeq.lte(end.sequence))
        .count(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok((events > 0).then_some((end, events)))
}

/// The audit log of a tenant, by whole segments.
pub struct AuditSegments {
    db: DatabaseConnection,
}

impl AuditSegments {
    /// The sweeper over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { db })
    }
}

#[async_trait::async_trait]
impl Sweeper for AuditSegments {
    fn class(&self) -> Class {
        AUDIT_EVENTS
    }

    async fn due(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        held: &Held,
    ) -> ApiResult<u64> {
        // The platform's own log is the operator's to keep; a held tenant keeps all of it.
        let Some(tenant) = tenant else { return Ok(0) };
        if !held.is_empty() {
            return Ok(0);
        }
        Ok(segment(&self.db, tenant, cutoff)
            .await?
            .map_or(0, |(_, events)| events))
    }

    async fn sweep(
        &self,
        tenant: Option<Uuid>,
        cutoff: DateTime<Utc>,
        held: &Held,
        _limit: u64,
    ) -> ApiResult<u64> {
        let Some(tenant) = tenant else { return Ok(0) };
        if !held.is_empty() {
            return Ok(0);
        }
        // Under the sequencer's lock: nothing is chained or checkpointed meanwhile.
        let txn = begin_exclusive(&self.db, LOCK_KEY)
            .await
            .map_err(ApiError::from_db)?;
        let Some((end, _)) = segment(&txn, tenant, cutoff).await? else {
            return Ok(0);
        };
        let lift = audit_guard_lift::ActiveModel {
            id: Set(Uuid::now_v7()),
            reason: Set(REASON.to_owned()),
            rows_changed: Set(0),
            started_at: Set(Utc::now()),
            finished_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        let deleted = audit_event::Entity::delete_many()
            .filter(audit_event::Column::TenantId.eq(tenant))
            .filter(audit_event::Column::ChainSeq.lte(end.sequence))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
        audit_guard_lift::Entity::update_many()
            .col_expr(
                audit_guard_lift::Column::FinishedAt,
                Expr::value(Utc::now()),
            )
            .col_expr(
                audit_guard_lift::Column::RowsChanged,
                Expr::value(i64::try_from(deleted).unwrap_or(i64::MAX)),
            )
            .filter(audit_guard_lift::Column::Id.eq(lift.id))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        let actor = Actor {
            tenant_id: Some(tenant),
            ..Actor::anonymous()
        };
        let meta = RequestMeta {
            user_agent: Some("portal retention".to_owned()),
            ..RequestMeta::default()
        };
        super::AuditEvent::access("audit.segment_delete", "audit_checkpoint", Some(end.id))
            .in_tenant(tenant)
            .with_details(json!({
                "throughSequence": end.sequence,
                "headHash": end.head_hash,
                "checkpointId": end.id,
                "events": deleted,
                "liftId": lift.id,
                "cutoff": cutoff,
            }))
            .record(&txn, &actor, &meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(deleted)
    }
}
