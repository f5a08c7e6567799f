//! Notifications' GraphQL surface: the caller's in-app list and unread count, their
//! preferences and quiet hours, the tenant's defaults, and `notificationReceived`.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::messages::notification;
use portal_kit::context::{actor, meta, tenant};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiError, ApiResult, input};

use super::federation::User;
use super::store;
use super::types::{Message, Thread};
use super::visibility::{load_readable_message, load_readable_thread};
use crate::domain::notifications::{
    self as rules, Channel, Frequency, NotificationEvent, QuietHours as Quiet,
};
use crate::store::notifications::{self as stored, Change, Effective, Source};

/// What a participant is notified of.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "NotificationEvent")]
pub enum NotificationEventGql {
    /// Someone else posted in a thread the recipient takes part in.
    NewMessage,
    /// A thread was assigned to the recipient.
    ThreadAssigned,
    /// A thread the recipient takes part in changed status.
    ThreadStatusChanged,
}

impl From<NotificationEvent> for NotificationEventGql {
    fn from(event: NotificationEvent) -> Self {
        match event {
            NotificationEvent::NewMessage => Self::NewMessage,
            NotificationEvent::ThreadAssigned => Self::ThreadAssigned,
            NotificationEvent::ThreadStatusChanged => Self::ThreadStatusChanged,
        }
    }
}

impl From<NotificationEventGql> for NotificationEvent {
    fn from(event: NotificationEventGql) -> Self {
        match event {
            NotificationEventGql::NewMessage => Self::NewMessage,
            NotificationEventGql::ThreadAssigned => Self::ThreadAssigned,
            NotificationEventGql::ThreadStatusChanged => Self::ThreadStatusChanged,
        }
    }
}

/// Where a notification goes.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "NotificationChannel")]
pub enum ChannelGql {
    /// The portal's notification list and `notificationReceived`.
    InApp,
    /// Email (no conversation text in it).
    Email,
}

impl From<Channel> for ChannelGql {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::InApp => Self::InApp,
            Channel::Email => Self::Email,
        }
    }
}

impl From<ChannelGql> for Channel {
    fn from(channel: ChannelGql) -> Self {
        match channel {
            ChannelGql::InApp => Self::InApp,
            ChannelGql::Email => Self::Email,
        }
    }
}

/// How often a channel delivers an event.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "NotificationFrequency")]
pub enum FrequencyGql {
    /// Not at all.
    Off,
    /// At once (emails wait for the end of quiet hours).
    Immediate,
    /// One email at the top of each hour with what happened in it (email only).
    Hourly,
    /// One email a day at 08:00 in the recipient's time zone (email only).
    Daily,
}

impl From<Frequency> for FrequencyGql {
    fn from(frequency: Frequency) -> Self {
        match frequency {
            Frequency::Off => Self::Off,
            Frequency::Immediate => Self::Immediate,
            Frequency::Hourly => Self::Hourly,
            Frequency::Daily => Self::Daily,
        }
    }
}

impl From<FrequencyGql> for Frequency {
    fn from(frequency: FrequencyGql) -> Self {
        match frequency {
            FrequencyGql::Off => Self::Off,
            FrequencyGql::Immediate => Self::Immediate,
            FrequencyGql::Hourly => Self::Hourly,
            FrequencyGql::Daily => Self::Daily,
        }
    }
}

/// Whose choice a frequency is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "NotificationPreferenceSource")]
pub enum SourceGql {
    /// The user's own.
    User,
    /// The tenant's default.
    Tenant,
    /// The platform's default.
    Platform,
}

/// The frequency in force for one event and channel.
#[derive(SimpleObject)]
pub struct NotificationPreference {
    /// The event.
    pub event: NotificationEventGql,
    /// The channel.
    pub channel: ChannelGql,
    /// How often.
    pub frequency: FrequencyGql,
    /// Whose choice it is.
    pub source: SourceGql,
}

impl From<Effective> for NotificationPreference {
    fn from(e: Effective) -> Self {
        Self {
            event: e.event.into(),
            channel: e.channel.into(),
            frequency: e.frequency.into(),
            source: match e.source {
                Source::User => SourceGql::User,
                Source::Tenant => SourceGql::Tenant,
                Source::Platform => SourceGql::Platform,
            },
        }
    }
}

/// A daily stretch of local time without notification emails.
#[derive(SimpleObject)]
pub struct QuietHours {
    /// Local time it begins (`HH:MM`).
    pub starts: String,
    /// Local time it ends (`HH:MM`; before `starts` when it spans midnight).
    pub ends: String,
}

/// The caller's notification preferences.
#[derive(SimpleObject)]
pub struct NotificationPreferences {
    /// Every event and channel, with the frequency in force.
    pub preferences: Vec<NotificationPreference>,
    /// No email goes out in them (in the caller's time zone, identity's `User.timeZone`
    /// or the tenant's); what falls due is sent as they end. Null: none.
    pub quiet_hours: Option<QuietHours>,
}

impl NotificationPreferences {
    fn new((preferences, quiet): (Vec<Effective>, Option<Quiet>)) -> Self {
        Self {
            preferences: preferences.into_iter().map(Into::into).collect(),
            quiet_hours: quiet.map(|q| {
                let (starts, ends) = q.bounds();
                QuietHours { starts, ends }
            }),
        }
    }
}

/// Something the caller was notified of.
pub struct Notification {
    row: notification::Model,
}

impl From<notification::Model> for Notification {
    fn from(row: notification::Model) -> Self {
        Self { row }
    }
}

impl Node for Notification {
    fn cursor_id(&self) -> Uuid {
        self.row.id
    }
}

#[Object]
impl Notification {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// What happened.
    async fn event(&self) -> Option<NotificationEventGql> {
        NotificationEvent::from_db(&self.row.event).map(Into::into)
    }

    /// The thread it is about; null when the caller may no longer read it.
    async fn thread(&self, ctx: &Context<'_>) -> ApiResult<Option<Thread>> {
        Ok(load_readable_thread(ctx, self.row.thread_id)
            .await?
            .map(Thread::from))
    }

    /// The message, for new messages; null when gone or no longer readable.
    async fn message(&self, ctx: &Context<'_>) -> ApiResult<Option<Message>> {
        let Some(id) = self.row.message_id else {
            return Ok(None);
        };
        Ok(load_readable_message(ctx, id).await?.map(Message::from))
    }

    /// Who caused it.
    async fn actor(&self) -> Option<User> {
        self.row.actor_id.map(User::stub)
    }

    /// When it happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When the caller marked it read; null while unread.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.row.read_at
    }
}

portal_kit::connection!(NotificationConnection, NotificationEdge, Notification);

/// One preference to change.
#[derive(InputObject)]
pub struct NotificationPreferenceInput {
    /// The event.
    pub event: NotificationEventGql,
    /// The channel.
    pub channel: ChannelGql,
    /// How often; null: follow the tenant's default again (for tenant defaults: the
    /// platform's).
    pub frequency: Option<FrequencyGql>,
}

/// Quiet hours to set.
#[derive(InputObject)]
pub struct QuietHoursInput {
    /// Local time they begin, `HH:MM`.
    pub starts: String,
    /// Local time they end, `HH:MM`.
    pub ends: String,
}

/// Changes to the caller's notification preferences.
#[derive(InputObject)]
pub struct UpdateNotificationPreferencesInput {
    /// Preferences to change; others stay as they are.
    #[graphql(default)]
    pub preferences: Vec<NotificationPreferenceInput>,
    /// New quiet hours; null removes them; absent leaves them.
    pub quiet_hours: MaybeUndefined<QuietHoursInput>,
}

/// Changes to the tenant's default notification preferences.
#[derive(InputObject)]
pub struct UpdateTenantNotificationDefaultsInput {
    /// Defaults to change; others stay as they are.
    pub preferences: Vec<NotificationPreferenceInput>,
}

/// Validates `changes` (`field` names the list in errors).
fn changes(
    field: &'static str,
    inputs: Vec<NotificationPreferenceInput>,
) -> ApiResult<Vec<Change>> {
    if inputs.len() > 50 {
        return Err(ApiError::invalid(field, "at most 50 changes at once"));
    }
    inputs
        .into_iter()
        .map(|p| {
            let channel = Channel::from(p.channel);
            let frequency = p.frequency.map(Frequency::from);
            if let Some(frequency) = frequency {
                rules::check_frequency(field, channel, frequency)?;
            }
            Ok((p.event.into(), channel, frequency))
        })
        .collect()
}

/// Notification queries.
#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// The caller's in-app notifications, newest first.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(default)] unread_only: bool,
    ) -> ApiResult<NotificationConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let user = actor(ctx).principal()?;
        let db = &store(ctx)?.db;
        let found = stored::list(db, (tenant(ctx)?, user), unread_only, page).await?;
        Ok(found.map(Notification::from).into())
    }

    /// How many of the caller's in-app notifications are unread.
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        let user = actor(ctx).principal()?;
        let count = stored::unread_count(&store(ctx)?.db, tenant(ctx)?, user).await?;
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// The caller's notification preferences, with what is in force where they chose
    /// nothing.
    async fn notification_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<NotificationPreferences> {
        let user = actor(ctx).principal()?;
        let found = stored::preferences(&store(ctx)?.db, tenant(ctx)?, user).await?;
        Ok(NotificationPreferences::new(found))
    }

    /// The tenant's default notification preferences (the platform's where it set none).
    async fn tenant_notification_defaults(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Vec<NotificationPreference>> {
        let found = stored::tenant_defaults(&store(ctx)?.db, tenant(ctx)?).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }
}

/// Notification mutations.
#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    /// Marks the caller's notifications `ids` read, or all of them with `all: true`; how
    /// many were unread.
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<ID>>,
        #[graphql(default)] all: bool,
    ) -> ApiResult<i32> {
        let ids = match (ids, all) {
            (Some(_), true) | (None, false) => {
                return Err(ApiError::invalid("ids", "give either ids or all: true"));
            }
            (Some(ids), false) => {
                if ids.len() > 500 {
                    return Err(ApiError::invalid("ids", "at most 500 at once"));
                }
                Some(
                    ids.iter()
                        .map(|id| input::id("ids", id))
                        .collect::<ApiResult<Vec<Uuid>>>()?,
                )
            }
            (None, true) => None,
        };
        let db = &store(ctx)?.db;
        let done = stored::mark_read(db, actor(ctx), ids.as_deref(), Utc::now()).await?;
        Ok(i32::try_from(done).unwrap_or(i32::MAX))
    }

    /// Changes the caller's notification preferences and quiet hours.
    async fn update_notification_preferences(
        &self,
        ctx: &Context<'_>,
        input: UpdateNotificationPreferencesInput,
    ) -> ApiResult<NotificationPreferences> {
        let changes = changes("input.preferences", input.preferences)?;
        let quiet = match input.quiet_hours {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(q) => {
                Some(Some(Quiet::parse("input.quietHours", &q.starts, &q.ends)?))
            }
        };
        let db = &store(ctx)?.db;
        let who = (actor(ctx), meta(ctx));
        stored::update_preferences(db, who, &changes, quiet).await?;
        let found = stored::preferences(db, tenant(ctx)?, actor(ctx).principal()?).await?;
        Ok(NotificationPreferences::new(found))
    }

    /// Changes the tenant's default notification preferences (users' own choices win).
    async fn update_tenant_notification_defaults(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantNotificationDefaultsInput,
    ) -> ApiResult<Vec<NotificationPreference>> {
        let changes = changes("input.preferences", input.preferences)?;
        let db = &store(ctx)?.db;
        stored::update_tenant_defaults(db, (actor(ctx), meta(ctx)), &changes).await?;
        let found = stored::tenant_defaults(db, tenant(ctx)?).await?;
        Ok(found.into_iter().map(Into::into).collect())
    }
}
