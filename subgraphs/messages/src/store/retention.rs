//! Retention persistence: a tenant's rules and legal holds, what the rules would remove
//! now (the preview), and the sweep that applies them. Both the preview and the sweep
//! come from one [`plan`], so the preview says exactly what a sweep at that moment does.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait as _, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::messages::{
    legal_hold, message, message_attachment, message_edit, message_retention_rule, notification,
    thread, thread_participant,
};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use super::{Store, attachments, search};
use crate::domain::ThreadStatus;
use crate::domain::retention::{HoldTarget, RetentionAction, cutoff};

/// A tenant's rule for one thread status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The status of the threads it applies to.
    pub status: ThreadStatus,
    /// What it does.
    pub action: RetentionAction,
    /// After how many days.
    pub older_than_days: i32,
}

/// The tenant's rules, by status.
pub async fn rules(db: &impl ConnectionTrait, tenant_id: Uuid) -> ApiResult<Vec<Rule>> {
    let rows = message_retention_rule::Entity::find()
        .filter(message_retention_rule::Column::TenantId.eq(tenant_id))
        .order_by_asc(message_retention_rule::Column::ThreadStatus)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(Rule {
                status: ThreadStatus::from_db(&row.thread_status),
                action: RetentionAction::from_db(&row.action)?,
                older_than_days: row.older_than_days,
            })
        })
        .collect())
}

/// Sets (or, with `None`, removes) the actor's tenant's rule for `status`, audited.
pub async fn set_rule(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    status: ThreadStatus,
    rule: Option<(RetentionAction, i32)>,
) -> ApiResult<()> {
    let tenant_id = actor.tenant()?;
    let by = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let before =
        message_retention_rule::Entity::find_by_id((tenant_id, status.as_str().to_owned()))
            .one(&txn)
            .await
            .map_err(ApiError::from_db)?;
    if before.is_some() {
        message_retention_rule::Entity::delete_by_id((tenant_id, status.as_str().to_owned()))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
    } else if rule.is_none() {
        return Err(ApiError::NotFound("retention rule"));
    }
    if let Some((action, days)) = rule {
        message_retention_rule::ActiveModel {
            tenant_id: Set(tenant_id),
            thread_status: Set(status.as_str().to_owned()),
            action: Set(action.as_str().to_owned()),
            older_than_days: Set(days),
            updated_by: Set(by),
            updated_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
    }
    let describe = |action: &str, days: i32| json!({ "action": action, "olderThanDays": days });
    AuditEvent::success("message_retention_rule.change", "tenant", tenant_id)
        .with_details(json!({
            "threadStatus": status.as_str(),
            "before": before.map(|b| describe(&b.action, b.older_than_days)),
            "after": rule.map(|(a, d)| describe(a.as_str(), d)),
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// The tenant's legal holds, newest first (released ones too, with `active` false).
pub async fn holds(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
) -> ApiResult<Vec<legal_hold::Model>> {
    legal_hold::Entity::find()
        .filter(legal_hold::Column::TenantId.eq(tenant_id))
        .order_by_desc(legal_hold::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// Places a legal hold on `target` (checked to exist and be visible by the caller
/// beforehand), audited.
pub async fn place_hold(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    (target, target_id): (HoldTarget, Uuid),
    reason: String,
) -> ApiResult<legal_hold::Model> {
    let tenant_id = actor.tenant()?;
    let by = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let placed = legal_hold::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        target_type: Set(target.as_str().to_owned()),
        target_id: Set(target_id),
        reason: Set(reason),
        placed_by: Set(by),
        placed_at: Set(Utc::now()),
        released_by: Set(None),
        released_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    AuditEvent::success("legal_hold.place", "legal_hold", placed.id)
        .with_details(json!({
            "targetType": target.as_str(),
            "targetId": target_id,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(placed)
}

/// Releases the legal hold `id` of the actor's tenant, audited; `CONFLICT` if it is
/// released already.
pub async fn release_hold(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    id: Uuid,
) -> ApiResult<legal_hold::Model> {
    let tenant_id = actor.tenant()?;
    let by = actor.principal()?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let found = legal_hold::Entity::find_by_id(id)
        .filter(legal_hold::Column::TenantId.eq(tenant_id))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("legal hold"))?;
    if found.released_at.is_some() {
        return Err(ApiError::Conflict("the hold is released already".into()));
    }
    let mut active: legal_hold::ActiveModel = found.into();
    active.released_by = Set(Some(by));
    active.released_at = Set(Some(Utc::now()));
    let released = active.update(&txn).await.map_err(ApiError::from_db)?;
    AuditEvent::success("legal_hold.release", "legal_hold", id)
        .with_details(json!({
            "targetType": released.target_type,
            "targetId": released.target_id,
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(released)
}

/// What retention does to one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPlan {
    /// The thread.
    pub thread_id: Uuid,
    /// The account it is about.
    pub account_id: Option<Uuid>,
    /// What is done.
    pub action: RetentionAction,
    /// Every message is past its time: the whole thread goes (for `Delete`).
    pub whole: bool,
    /// The messages it touches.
    pub message_ids: Vec<Uuid>,
    /// Who wrote its messages past their time (a hold on one of them keeps the thread).
    pub authors: BTreeSet<Uuid>,
}

/// What the rules do at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per thread, in thread order.
    pub threads: Vec<ThreadPlan>,
    /// Threads the rules would touch but a legal hold protects.
    pub held_threads: Vec<Uuid>,
}

impl Plan {
    /// Messages the plan deletes (whole threads included) and anonymizes.
    pub fn message_counts(&self) -> (usize, usize) {
        let count = |action| {
            self.threads
                .iter()
                .filter(|t| t.action == action)
                .map(|t| t.message_ids.len())
                .sum()
        };
        (
            count(RetentionAction::Delete),
            count(RetentionAction::Anonymize),
        )
    }

    /// Whole threads it removes.
    pub fn whole_threads(&self) -> usize {
        self.threads.iter().filter(|t| t.whole).count()
    }

    /// Messages touched per account (`None`: threads about no account).
    pub fn by_account(&self) -> BTreeMap<Option<Uuid>, usize> {
        let mut out = BTreeMap::new();
        for t in &self.threads {
            *out.entry(t.account_id).or_insert(0) += t.message_ids.len();
        }
        out
    }
}

/// What the tenant's active legal holds cover.
#[derive(Clone, Debug, Default)]
pub struct Held {
    /// Threads held one by one.
    pub threads: HashSet<Uuid>,
    /// Accounts held: every thread about them.
    pub accounts: HashSet<Uuid>,
    /// People held: every message they wrote.
    pub users: HashSet<Uuid>,
}

impl Held {
    /// Whether a hold covers `thread_id` (about `account_id`) or one of `authors`.
    pub fn covers(
        &self,
        thread_id: Uuid,
        account_id: Option<Uuid>,
        authors: &BTreeSet<Uuid>,
    ) -> bool {
        self.threads.contains(&thread_id)
            || account_id.is_some_and(|a| self.accounts.contains(&a))
            || authors.iter().any(|a| self.users.contains(a))
    }
}

/// What the tenant's active legal holds cover.
pub async fn held(db: &impl ConnectionTrait, tenant_id: Uuid) -> ApiResult<Held> {
    let active = active_holds(db, tenant_id).await?;
    let mut held = Held::default();
    for hold in active {
        match HoldTarget::from_db(&hold.target_type) {
            Some(HoldTarget::Thread) => held.threads.insert(hold.target_id),
            Some(HoldTarget::Account) => held.accounts.insert(hold.target_id),
            Some(HoldTarget::User) => held.users.insert(hold.target_id),
            None => false,
        };
    }
    Ok(held)
}

/// The tenant's active legal holds.
pub async fn active_holds(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
) -> ApiResult<Vec<legal_hold::Model>> {
    legal_hold::Entity::find()
        .filter(legal_hold::Column::TenantId.eq(tenant_id))
        .filter(legal_hold::Column::ReleasedAt.is_null())
        .order_by_asc(legal_hold::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// What the tenant's rules do at `now`: for each rule, the threads in its status holding
/// messages older than its days, minus those a legal hold protects. Reads only the old
/// messages (and, of their threads, whether newer ones exist).
pub async fn plan(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<Plan> {
    let rules = rules(db, tenant_id).await?;
    let held = held(db, tenant_id).await?;
    let mut plan = Plan::default();
    for rule in rules {
        let before = cutoff(now, rule.older_than_days);
        let in_status = Query::select()
            .column(thread::Column::Id)
            .from(thread::Entity)
            .and_where(Expr::col(thread::Column::TenantId).eq(tenant_id))
            .and_where(Expr::col(thread::Column::Status).eq(rule.status.as_str()))
            .to_owned();
        let old: Vec<(Uuid, Uuid, Option<DateTime<Utc>>, Uuid)> = message::Entity::find()
            .select_only()
            .columns([
                message::Column::Id,
                message::Column::ThreadId,
                message::Column::DeletedAt,
                message::Column::AuthorId,
            ])
            .filter(message::Column::TenantId.eq(tenant_id))
            .filter(message::Column::ThreadId.in_subquery(in_status))
            .filter(message::Column::CreatedAt.lt(before))
            .order_by_asc(message::Column::ThreadId)
            .order_by_asc(message::Column::Id)
            .into_tuple()
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let mut per_thread: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        let mut authors: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
        for (id, thread_id, deleted_at, author) in old {
            authors.entry(thread_id).or_default().insert(author);
            let ids = per_thread.entry(thread_id).or_default();
            // What is left to do: content to delete, or a person to untie.
            let pending = match rule.action {
                RetentionAction::Delete => deleted_at.is_none(),
                RetentionAction::Anonymize => author != Uuid::nil(),
            };
            if pending {
                ids.push(id);
            }
        }
        let thread_ids: Vec<Uuid> = per_thread.keys().copied().collect();
        let mut newer: HashSet<Uuid> = HashSet::new();
        let mut threads = HashMap::new();
        for chunk in thread_ids.chunks(500) {
            let found: Vec<Uuid> = message::Entity::find()
                .select_only()
                .column(message::Column::ThreadId)
                .distinct()
                .filter(message::Column::TenantId.eq(tenant_id))
                .filter(message::Column::ThreadId.is_in(chunk.iter().copied()))
                .filter(message::Column::CreatedAt.gte(before))
                .into_tuple()
                .all(db)
                .await
                .map_err(ApiError::from_db)?;
            newer.extend(found);
            threads.extend(super::threads_by_ids(db, tenant_id, chunk.iter().copied()).await?);
        }
        for (thread_id, message_ids) in per_thread {
            let Some(t) = threads.get(&thread_id) else {
                continue;
            };
            let whole = rule.action == RetentionAction::Delete && !newer.contains(&thread_id);
            if message_ids.is_empty() && !whole {
                continue;
            }
            let authors = authors.remove(&thread_id).unwrap_or_default();
            if held.covers(thread_id, t.account_id, &authors) {
                plan.held_threads.push(thread_id);
                continue;
            }
            plan.threads.push(ThreadPlan {
                thread_id,
                account_id: t.account_id,
                action: rule.action,
                whole,
                message_ids,
                authors,
            });
        }
    }
    Ok(plan)
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Whole threads removed.
    pub threads_deleted: usize,
    /// Messages deleted (in removed threads, or tombstoned).
    pub messages_deleted: usize,
    /// Messages anonymized.
    pub messages_anonymized: usize,
    /// Attachments removed.
    pub attachments_deleted: usize,
    /// Threads a legal hold kept.
    pub threads_held: usize,
}

/// Applies the tenant's rules as they stand at `now`, a thread per transaction, and
/// records one audit event for the sweep (by the platform).
pub async fn sweep(
    store: &Store,
    tenant_id: Uuid,
    now: DateTime<Utc>,
    meta: &RequestMeta,
) -> ApiResult<Swept> {
    let plan = plan(&store.db, tenant_id, now).await?;
    let mut swept = Swept {
        threads_held: plan.held_threads.len(),
        ..Swept::default()
    };
    for t in &plan.threads {
        // Re-checked inside the transaction: a hold placed since the plan wins.
        let txn = store.db.begin_write().await.map_err(ApiError::from_db)?;
        if held(&txn, tenant_id)
            .await?
            .covers(t.thread_id, t.account_id, &t.authors)
        {
            swept.threads_held += 1;
            continue;
        }
        let objects = match (t.action, t.whole) {
            (RetentionAction::Delete, true) => {
                let objects = delete_thread(&txn, tenant_id, t.thread_id).await?;
                swept.threads_deleted += 1;
                swept.messages_deleted += t.message_ids.len();
                objects
            }
            (RetentionAction::Delete, false) => {
                swept.messages_deleted += t.message_ids.len();
                super::tombstone(&txn, tenant_id, &t.message_ids, now)
                    .await?
                    .1
            }
            (RetentionAction::Anonymize, _) => {
                anonymize(&txn, tenant_id, &t.message_ids).await?;
                swept.messages_anonymized += t.message_ids.len();
                Vec::new()
            }
        };
        txn.commit().await.map_err(ApiError::from_db)?;
        swept.attachments_deleted += objects.len();
        store.remove_objects(objects).await;
    }
    let platform = Actor {
        tenant_id: Some(tenant_id),
        ..Actor::anonymous()
    };
    AuditEvent::success("message_retention.enforce", "tenant", tenant_id)
        .with_details(json!({
            "threadsDeleted": swept.threads_deleted,
            "messagesDeleted": swept.messages_deleted,
            "messagesAnonymized": swept.messages_anonymized,
            "attachmentsDeleted": swept.attachments_deleted,
            "threadsHeld": swept.threads_held,
        }))
        .record(&store.db, &platform, meta)
        .await?;
    Ok(swept)
}

/// Removes a thread with everything in it; the attachment objects to remove once
/// committed.
async fn delete_thread(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_id: Uuid,
) -> ApiResult<Vec<String>> {
    let ids: Vec<Uuid> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::ThreadId.eq(thread_id))
        .into_tuple()
        .all(txn)
        .await
        .map_err(ApiError::from_db)?;
    search::unindex(txn, tenant_id, &ids).await?;
    let mut objects = attachments::remove_of_messages(txn, tenant_id, &ids).await?;
    // Uploads never attached to a message belong to the thread too.
    let loose = message_attachment::Entity::find()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::ThreadId.eq(thread_id))
        .all(txn)
        .await
        .map_err(ApiError::from_db)?;
    objects.extend(loose.iter().filter_map(|a| a.storage_key.clone()));
    message_attachment::Entity::delete_many()
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::ThreadId.eq(thread_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    message_edit::Entity::delete_many()
        .filter(message_edit::Column::TenantId.eq(tenant_id))
        .filter(message_edit::Column::MessageId.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    notification::Entity::delete_many()
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::ThreadId.eq(thread_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    // Replies point at earlier messages of the same thread: unlink before removing.
    message::Entity::update_many()
        .col_expr(
            message::Column::ReplyToId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::ThreadId.eq(thread_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    message::Entity::delete_many()
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::ThreadId.eq(thread_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    thread_participant::Entity::delete_many()
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::ThreadId.eq(thread_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    thread::Entity::delete_many()
        .filter(thread::Column::TenantId.eq(tenant_id))
        .filter(thread::Column::Id.eq(thread_id))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(objects)
}

/// Unties `ids` from people: the author becomes the deleted-user tombstone (the nil id),
/// earlier versions go, attachments lose their uploader, notifications their actor.
async fn anonymize(txn: &impl ConnectionTrait, tenant_id: Uuid, ids: &[Uuid]) -> ApiResult<()> {
    message::Entity::update_many()
        .col_expr(message::Column::AuthorId, Expr::value(Uuid::nil()))
        .filter(message::Column::TenantId.eq(tenant_id))
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    message_edit::Entity::delete_many()
        .filter(message_edit::Column::TenantId.eq(tenant_id))
        .filter(message_edit::Column::MessageId.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    message_attachment::Entity::update_many()
        .col_expr(
            message_attachment::Column::UploadedBy,
            Expr::value(Uuid::nil()),
        )
        .filter(message_attachment::Column::TenantId.eq(tenant_id))
        .filter(message_attachment::Column::MessageId.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    notification::Entity::update_many()
        .col_expr(
            notification::Column::ActorId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::MessageId.is_in(ids.iter().copied()))
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Tenants with at least one retention rule.
pub async fn tenants_with_rules(db: &impl ConnectionTrait) -> ApiResult<Vec<Uuid>> {
    message_retention_rule::Entity::find()
        .select_only()
        .column(message_retention_rule::Column::TenantId)
        .distinct()
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)
}
