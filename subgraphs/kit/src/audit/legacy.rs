//! Personal data recorded in the clear before sealing existed (`source_ip`, `user_agent`,
//! personal members of `details`) is sealed before any of it is chained: the one
//! rewrite of audit rows there is, done through a recorded lift of the append-only guard
//! (`audit_guard_lifts`, opened and closed in the same transaction) and recorded as an
//! audit event of its own (`audit.personal_data_seal`).

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use portal_entities::platform::{audit_event, audit_guard_lift};

use super::personal;
use crate::actor::{Actor, RequestMeta};
use crate::db::begin_exclusive;
use crate::error::{ApiError, ApiResult};

/// Why the guard was lifted, as recorded.
pub const REASON: &str = "m0061: seal personal data recorded before audit events were sealed";

/// The PostgreSQL advisory lock of the rewrite (the sequencer's).
const LOCK_KEY: i64 = 0x706f_7274_616c_4143;

/// Seals the personal data of unchained rows written before sealing existed (they have no
/// `subject_id`: every event recorded since has one); how many rows it changed. Cheap when
/// there are none.
pub async fn seal_once(db: &DatabaseConnection) -> ApiResult<u64> {
    let mut total = 0;
    loop {
        let sealed = seal_batch(db).await?;
        total += sealed;
        if sealed < BATCH {
            return Ok(total);
        }
    }
}

/// Rows sealed per transaction (each its own lift): the write lock is held briefly.
const BATCH: u64 = 500;

async fn seal_batch(db: &DatabaseConnection) -> ApiResult<u64> {
    let legacy = || {
        audit_event::Entity::find()
            .filter(audit_event::Column::ChainSeq.is_null())
            .filter(audit_event::Column::SubjectId.is_null())
    };
    if legacy().one(db).await.map_err(ApiError::from_db)?.is_none() {
        return Ok(0);
    }
    let txn = begin_exclusive(db, LOCK_KEY)
        .await
        .map_err(ApiError::from_db)?;
    let rows = legacy()
        .order_by_asc(audit_event::Column::Id)
        .limit(BATCH)
        .all(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if rows.is_empty() {
        // Another process sealed them meanwhile.
        txn.commit().await.map_err(ApiError::from_db)?;
        return Ok(0);
    }
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
    let count = rows.len() as u64;
    for row in rows {
        let (details, personal) = match row.details.clone() {
            Some(details) => personal::split(&row.action, &row.target_type, details),
            None => (None, None),
        };
        let actor_subject = personal::actor_subject(&row.actor_kind, row.actor_id, row.tenant_id);
        let actor_personal = personal::seal_request(
            &txn,
            row.tenant_id,
            actor_subject,
            row.id,
            row.source_ip.as_deref(),
            row.user_agent.as_deref(),
        )
        .await?;
        let (subject_id, subject_personal) = match personal {
            Some(value) => {
                let subject = super::subject_of(&row.target_type, row.target_id, actor_subject);
                let sealed = personal::seal_for(
                    &txn,
                    row.tenant_id,
                    subject,
                    &format!("subject:{}", row.id),
                    &value,
                )
                .await?;
                (subject, sealed)
            }
            None => (actor_subject, None),
        };
        audit_event::Entity::update_many()
            .col_expr(
                audit_event::Column::SourceIp,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                audit_event::Column::UserAgent,
                Expr::value(Option::<String>::None),
            )
            .col_expr(audit_event::Column::Details, Expr::value(details))
            .col_expr(
                audit_event::Column::ActorPersonal,
                Expr::value(actor_personal),
            )
            .col_expr(
                audit_event::Column::SubjectId,
                Expr::value(Some(subject_id)),
            )
            .col_expr(
                audit_event::Column::SubjectPersonal,
                Expr::value(subject_personal),
            )
            .filter(audit_event::Column::Id.eq(row.id))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
    }
    audit_guard_lift::Entity::update_many()
        .col_expr(
            audit_guard_lift::Column::FinishedAt,
            Expr::value(Utc::now()),
        )
        .col_expr(
            audit_guard_lift::Column::RowsChanged,
            Expr::value(count as i64),
        )
        .filter(audit_guard_lift::Column::Id.eq(lift.id))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    super::AuditEvent::success("audit.personal_data_seal", "audit_guard_lift", lift.id)
        .with_details(serde_json::json!({ "rowsSealed": count, "reason": REASON }))
        .record(&txn, &Actor::anonymous(), &RequestMeta::default())
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    tracing::info!(
        rows = count,
        "sealed the personal data of earlier audit events"
    );
    Ok(count)
}
