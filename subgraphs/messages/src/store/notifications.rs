//! Notifications persistence: preferences (the user's, the tenant's defaults), quiet
//! hours, the notifications themselves, and what is due to be emailed. Notifications name
//! the thread and message, never their text.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::messages::{
    notification, notification_default, notification_preference, notification_quiet_hours,
};
use portal_kit::audit::AuditEvent;
use portal_kit::db::BeginWrite;
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::notifications::{
    Channel, Frequency, NotificationEvent, QuietHours, builtin_default,
};

/// Whose choice a frequency is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The user's own.
    User,
    /// The tenant's default.
    Tenant,
    /// The platform's default.
    Platform,
}

/// The frequency in force for one event and channel, and whose choice it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    /// The event.
    pub event: NotificationEvent,
    /// The channel.
    pub channel: Channel,
    /// How often.
    pub frequency: Frequency,
    /// Whose choice.
    pub source: Source,
}

/// Every (event, channel) pair, in a stable order.
fn pairs() -> impl Iterator<Item = (NotificationEvent, Channel)> {
    NotificationEvent::ALL.into_iter().flat_map(|event| {
        Channel::ALL
            .into_iter()
            .map(move |channel| (event, channel))
    })
}

type Choices = HashMap<(NotificationEvent, Channel), Frequency>;

fn choice(
    event: &str,
    channel: &str,
    frequency: &str,
) -> Option<((NotificationEvent, Channel), Frequency)> {
    Some((
        (
            NotificationEvent::from_db(event)?,
            Channel::from_db(channel)?,
        ),
        Frequency::from_db(frequency)?,
    ))
}

async fn tenant_choices(db: &impl ConnectionTrait, tenant_id: Uuid) -> ApiResult<Choices> {
    Ok(notification_default::Entity::find()
        .filter(notification_default::Column::TenantId.eq(tenant_id))
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .iter()
        .filter_map(|row| choice(&row.event, &row.channel, &row.frequency))
        .collect())
}

async fn user_choices(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<Choices> {
    Ok(notification_preference::Entity::find()
        .filter(notification_preference::Column::TenantId.eq(tenant_id))
        .filter(notification_preference::Column::UserId.eq(user))
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .iter()
        .filter_map(|row| choice(&row.event, &row.channel, &row.frequency))
        .collect())
}

fn effective(users: &Choices, tenants: &Choices) -> Vec<Effective> {
    pairs()
        .map(|(event, channel)| {
            let (frequency, source) =
                match (users.get(&(event, channel)), tenants.get(&(event, channel))) {
                    (Some(f), _) => (*f, Source::User),
                    (None, Some(f)) => (*f, Source::Tenant),
                    (None, None) => (builtin_default(event, channel), Source::Platform),
                };
            Effective {
                event,
                channel,
                frequency,
                source,
            }
        })
        .collect()
}

/// The tenant's defaults for every event and channel (the platform's where it set none).
pub async fn tenant_defaults(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
) -> ApiResult<Vec<Effective>> {
    Ok(effective(
        &Choices::new(),
        &tenant_choices(db, tenant_id).await?,
    ))
}

/// What is in force for `user`: every event and channel, and their quiet hours.
pub async fn preferences(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<(Vec<Effective>, Option<QuietHours>)> {
    let users = user_choices(db, tenant_id, user).await?;
    let tenants = tenant_choices(db, tenant_id).await?;
    Ok((
        effective(&users, &tenants),
        quiet_hours(db, tenant_id, user).await?,
    ))
}

/// The user's quiet hours, if they set some.
pub async fn quiet_hours(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<Option<QuietHours>> {
    let row = notification_quiet_hours::Entity::find_by_id((tenant_id, user))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(row.and_then(|row| QuietHours::parse("quietHours", &row.starts, &row.ends).ok()))
}

/// One change of a preference: `None` follows the tenant's default again.
pub type Change = (NotificationEvent, Channel, Option<Frequency>);

/// Applies the actor's own `changes` and, when given, their quiet hours (`Some(None)`
/// clears them), in one audited transaction.
pub async fn update_preferences(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    changes: &[Change],
    quiet: Option<Option<QuietHours>>,
) -> ApiResult<()> {
    let tenant_id = actor.tenant()?;
    let user = actor.principal()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    for (event, channel, frequency) in changes {
        set_user_frequency(&txn, (tenant_id, user), (*event, *channel), *frequency, now).await?;
    }
    if let Some(quiet) = quiet {
        notification_quiet_hours::Entity::delete_by_id((tenant_id, user))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if let Some(quiet) = quiet {
            let (starts, ends) = quiet.bounds();
            notification_quiet_hours::ActiveModel {
                tenant_id: Set(tenant_id),
                user_id: Set(user),
                starts: Set(starts),
                ends: Set(ends),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(ApiError::from_db)?;
        }
    }
    AuditEvent::success("notification_preferences.update", "user", user)
        .with_details(json!({
            "changes": changes_json(changes),
            "quietHours": quiet.map(|q| q.map(|q| q.bounds())),
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

fn changes_json(changes: &[Change]) -> serde_json::Value {
    changes
        .iter()
        .map(|(event, channel, frequency)| {
            json!({
                "event": event.as_str(),
                "channel": channel.as_str(),
                "frequency": frequency.map(Frequency::as_str),
            })
        })
        .collect()
}

async fn set_user_frequency(
    txn: &impl ConnectionTrait,
    (tenant_id, user): (Uuid, Uuid),
    (event, channel): (NotificationEvent, Channel),
    frequency: Option<Frequency>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    notification_preference::Entity::delete_by_id((
        tenant_id,
        user,
        event.as_str().to_owned(),
        channel.as_str().to_owned(),
    ))
    .exec(txn)
    .await
    .map_err(ApiError::from_db)?;
    if let Some(frequency) = frequency {
        notification_preference::ActiveModel {
            tenant_id: Set(tenant_id),
            user_id: Set(user),
            event: Set(event.as_str().to_owned()),
            channel: Set(channel.as_str().to_owned()),
            frequency: Set(frequency.as_str().to_owned()),
            updated_at: Set(now),
        }
        .insert(txn)
        .await
        .map_err(ApiError::from_db)?;
    }
    Ok(())
}

/// Applies `changes` to the actor's tenant's defaults (`None`: the platform's again), in
/// one audited transaction.
pub async fn update_tenant_defaults(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    changes: &[Change],
) -> ApiResult<()> {
    let tenant_id = actor.tenant()?;
    let by = actor.principal()?;
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    for (event, channel, frequency) in changes {
        notification_default::Entity::delete_by_id((
            tenant_id,
            event.as_str().to_owned(),
            channel.as_str().to_owned(),
        ))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
        if let Some(frequency) = frequency {
            notification_default::ActiveModel {
                tenant_id: Set(tenant_id),
                event: Set(event.as_str().to_owned()),
                channel: Set(channel.as_str().to_owned()),
                frequency: Set(frequency.as_str().to_owned()),
                updated_by: Set(by),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(ApiError::from_db)?;
        }
    }
    AuditEvent::success("notification_defaults.update", "tenant", tenant_id)
        .with_details(json!({ "changes": changes_json(changes) }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// One-click unsubscribe from a link in an email: the user's email frequency for `events`
/// becomes `OFF`, audited as the user (the link is their credential for this alone).
pub async fn unsubscribe(
    db: &DatabaseConnection,
    (tenant_id, user): (Uuid, Uuid),
    events: &[NotificationEvent],
    meta: &RequestMeta,
) -> ApiResult<()> {
    let now = Utc::now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    for event in events {
        set_user_frequency(
            &txn,
            (tenant_id, user),
            (*event, Channel::Email),
            Some(Frequency::Off),
            now,
        )
        .await?;
    }
    let actor = Actor::user(user, tenant_id, Vec::new());
    let changes: Vec<Change> = events
        .iter()
        .map(|event| (*event, Channel::Email, Some(Frequency::Off)))
        .collect();
    AuditEvent::success("notification_preferences.unsubscribe", "user", user)
        .with_details(json!({ "changes": changes_json(&changes), "via": "one-click link" }))
        .record(&txn, &actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// A notification about to be recorded.
#[derive(Clone, Debug)]
pub struct NewNotification {
    /// The recipient.
    pub user_id: Uuid,
    /// What happened.
    pub event: NotificationEvent,
    /// The thread.
    pub thread_id: Uuid,
    /// The message, for new messages.
    pub message_id: Option<Uuid>,
    /// Who caused it.
    pub actor_id: Option<Uuid>,
    /// Shown in the in-app list.
    pub in_app: bool,
    /// When its email is due; `None`: not emailed.
    pub email_due_at: Option<DateTime<Utc>>,
}

/// Records `new` notifications, each with its `notification.create` event (what
/// `notificationReceived` follows), in `txn`.
pub async fn record(
    txn: &impl ConnectionTrait,
    (actor, meta): (&Actor, &RequestMeta),
    tenant_id: Uuid,
    new: &[NewNotification],
    now: DateTime<Utc>,
) -> ApiResult<Vec<notification::Model>> {
    let mut made = Vec::with_capacity(new.len());
    for n in new {
        let row = notification::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant_id),
            user_id: Set(n.user_id),
            event: Set(n.event.as_str().to_owned()),
            thread_id: Set(n.thread_id),
            message_id: Set(n.message_id),
            actor_id: Set(n.actor_id),
            created_at: Set(now),
            in_app: Set(n.in_app),
            read_at: Set(None),
            email_due_at: Set(n.email_due_at),
            emailed_at: Set(None),
        }
        .insert(txn)
        .await
        .map_err(ApiError::from_db)?;
        AuditEvent::success("notification.create", "notification", row.id)
            .with_details(json!({
                "userId": n.user_id,
                "event": n.event.as_str(),
                "threadId": n.thread_id,
                "messageId": n.message_id,
                "inApp": n.in_app,
                "email": n.email_due_at.is_some(),
            }))
            .record(txn, actor, meta)
            .await?;
        made.push(row);
    }
    Ok(made)
}

/// Which of `users` still take part in `thread_id`, read inside the transaction that
/// records their notifications: their participation rows are share-locked on PostgreSQL
/// (SQLite's write transaction holds the whole database), so an erasure that removes
/// someone from the thread either happened before — they are dropped — or waits for this
/// transaction and then also removes what it recorded.
pub async fn still_participating(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    thread_id: Uuid,
    users: &[Uuid],
) -> ApiResult<std::collections::HashSet<Uuid>> {
    use portal_entities::messages::thread_participant;
    use sea_orm::QuerySelect;
    let rows: Vec<Uuid> = thread_participant::Entity::find()
        .select_only()
        .column(thread_participant::Column::UserId)
        .filter(thread_participant::Column::TenantId.eq(tenant_id))
        .filter(thread_participant::Column::ThreadId.eq(thread_id))
        .filter(thread_participant::Column::UserId.is_in(users.iter().copied()))
        .lock_shared()
        .into_tuple()
        .all(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(rows.into_iter().collect())
}

/// One notification of `user`.
pub async fn notification(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
    id: Uuid,
) -> ApiResult<Option<notification::Model>> {
    notification::Entity::find_by_id(id)
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// A page of `user`'s in-app notifications, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    (tenant_id, user): (Uuid, Uuid),
    unread_only: bool,
    page: PageRequest,
) -> ApiResult<Page<notification::Model>> {
    let mut select = notification::Entity::find()
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .filter(notification::Column::InApp.eq(true));
    if unread_only {
        select = select.filter(notification::Column::ReadAt.is_null());
    }
    if let Some(after) = page.after {
        select = select.filter(notification::Column::Id.lt(after));
    }
    let rows = select
        .order_by_desc(notification::Column::Id)
        .limit(page.first + 1)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(page.page(rows))
}

/// How many of `user`'s in-app notifications are unread.
pub async fn unread_count(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<u64> {
    notification::Entity::find()
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .filter(notification::Column::InApp.eq(true))
        .filter(notification::Column::ReadAt.is_null())
        .count(db)
        .await
        .map_err(ApiError::from_db)
}

/// Marks the actor's notifications `ids` (all of them with `None`) read; how many were
/// unread. Not audited, like reading a thread: it changes nothing anyone else sees.
pub async fn mark_read(
    db: &DatabaseConnection,
    actor: &Actor,
    ids: Option<&[Uuid]>,
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    let tenant_id = actor.tenant()?;
    let user = actor.principal()?;
    let mut update = notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, Expr::value(now))
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .filter(notification::Column::ReadAt.is_null());
    if let Some(ids) = ids {
        update = update.filter(notification::Column::Id.is_in(ids.iter().copied()));
    }
    let done = update.exec(db).await.map_err(ApiError::from_db)?;
    Ok(done.rows_affected)
}

/// `user`'s notifications whose email is due at `now` and not sent, oldest first.
pub async fn due_emails(
    db: &impl ConnectionTrait,
    (tenant_id, user): (Uuid, Uuid),
    now: DateTime<Utc>,
) -> ApiResult<Vec<notification::Model>> {
    notification::Entity::find()
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .filter(notification::Column::EmailDueAt.lte(now))
        .filter(notification::Column::EmailedAt.is_null())
        .order_by_asc(notification::Column::Id)
        .limit(200)
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// Marks `ids` emailed at `now` (in the transaction that queues the email); how many
/// were still unsent (fewer: another worker sent them first).
pub async fn mark_emailed(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> ApiResult<u64> {
    let done = notification::Entity::update_many()
        .col_expr(notification::Column::EmailedAt, Expr::value(now))
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::Id.is_in(ids.iter().copied()))
        .filter(notification::Column::EmailedAt.is_null())
        .exec(txn)
        .await
        .map_err(ApiError::from_db)?;
    Ok(done.rows_affected)
}

/// Drops the pending emails of `user` (no longer active): nothing will be sent.
pub async fn cancel_emails(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
) -> ApiResult<()> {
    notification::Entity::update_many()
        .col_expr(
            notification::Column::EmailDueAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(notification::Column::TenantId.eq(tenant_id))
        .filter(notification::Column::UserId.eq(user))
        .filter(notification::Column::EmailedAt.is_null())
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// The frequencies in force for many users at once (the fan-out of one event).
pub async fn frequencies_of(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    users: &[Uuid],
    event: NotificationEvent,
) -> ApiResult<HashMap<Uuid, (Frequency, Frequency)>> {
    let tenants = tenant_choices(db, tenant_id).await?;
    let rows = notification_preference::Entity::find()
        .filter(notification_preference::Column::TenantId.eq(tenant_id))
        .filter(notification_preference::Column::UserId.is_in(users.iter().copied()))
        .filter(notification_preference::Column::Event.eq(event.as_str()))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let pick = |user: Uuid, channel: Channel| {
        rows.iter()
            .find(|r| r.user_id == user && r.channel == channel.as_str())
            .and_then(|r| Frequency::from_db(&r.frequency))
            .or_else(|| tenants.get(&(event, channel)).copied())
            .unwrap_or_else(|| builtin_default(event, channel))
    };
    Ok(users
        .iter()
        .map(|user| {
            (
                *user,
                (pick(*user, Channel::InApp), pick(*user, Channel::Email)),
            )
        })
        .collect())
}

/// The job kind that turns one messaging event into notifications.
pub const FAN_OUT_KIND: &str = "messages.notify";

/// What happened, for the fan-out job (its payload).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Happened {
    /// The event (storage form of [`NotificationEvent`]).
    pub event: String,
    /// The thread.
    pub thread_id: Uuid,
    /// The message, for new messages.
    pub message_id: Option<Uuid>,
    /// Who caused it (not notified).
    pub actor_id: Option<Uuid>,
    /// The assignee, for assignments.
    pub assignee_id: Option<Uuid>,
    /// When it happened (who joined the thread later is not told).
    #[serde(default = "Utc::now")]
    pub at: DateTime<Utc>,
}

/// Queues the fan-out of `happened` in `txn` (the transaction of the change): a committed
/// change always notifies, a rolled-back one never does.
pub async fn enqueue_fan_out(
    txn: &impl ConnectionTrait,
    tenant_id: Uuid,
    event: NotificationEvent,
    happened: Happened,
) -> ApiResult<()> {
    let happened = Happened {
        event: event.as_str().to_owned(),
        ..happened
    };
    let payload = serde_json::to_value(&happened)
        .map_err(|err| ApiError::internal(format!("notification payload: {err}")))?;
    let mut job = portal_kit::jobs::NewJob::new(FAN_OUT_KIND, payload);
    job.tenant_id = Some(tenant_id);
    portal_kit::jobs::enqueue(txn, Utc::now(), job)
        .await
        .map(|_| ())
}
