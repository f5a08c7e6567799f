//! Notifications' background work. **Fan-out** (`messages.notify`, queued in the
//! transaction of a post, an assignment or a status change): each participant but the
//! actor gets a notification as their preferences say — in the in-app list (and
//! `notificationReceived`), and by email now or in a digest. **Email** (one job per
//! recipient and due time): sends what is due in one email — unless the recipient's quiet
//! hours hold, when it comes back as they end. Emails name no subject or text of a
//! thread: they say that something happened and where to read it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, json};
use uuid::Uuid;

use portal_kit::actor::ActorKind;
use portal_kit::audit::AuditEvent;
use portal_kit::clock::SharedClock;
use portal_kit::db::BeginWrite;
use portal_kit::gateway_client::GatewayClient;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::jobs::{self, NewJob};
use portal_kit::mail::{self, Email};
use portal_kit::principal::{Principal, Standing};
use portal_kit::secret::DataKey;
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::notifications::{self as rules, Frequency, NotificationEvent};
use crate::store::notifications::{self as stored, Happened, NewNotification};
use crate::store::{self, Store};

/// The job kind that emails what is due to one recipient.
pub const EMAIL_KIND: &str = "messages.notification_email";

/// A recipient as identity shows them to themselves.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Their email address (none: nothing can be emailed).
    pub email: Option<String>,
    /// Their time zone (their own, else their tenant's).
    pub time_zone: Tz,
}

/// Who recipients are: their address and time zone, if they are still active.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// The profile of `user` of `tenant_id`, or `None` when they are no longer active.
    async fn profile(&self, tenant_id: Uuid, user: Uuid) -> ApiResult<Option<Profile>>;
}

/// Profiles read through the gateway as the user themselves (`me`, `tenant`), after
/// identity confirms they are still active.
pub struct GatewayDirectory {
    standing: Arc<dyn Standing>,
    gateway: Arc<dyn GatewayClient>,
}

impl GatewayDirectory {
    /// Over identity's `standing` and the `gateway`.
    pub fn new(standing: Arc<dyn Standing>, gateway: Arc<dyn GatewayClient>) -> Arc<Self> {
        Arc::new(Self { standing, gateway })
    }
}

#[async_trait::async_trait]
impl Directory for GatewayDirectory {
    async fn profile(&self, tenant_id: Uuid, user: Uuid) -> ApiResult<Option<Profile>> {
        let who = Principal {
            kind: ActorKind::User,
            tenant_id,
            id: user,
            session: None,
            key_roles: &[],
        };
        let Some(standing) = self.standing.current(who).await? else {
            return Ok(None);
        };
        let actor = standing.delegated("messages", format!("notifications of user {user}"));
        let found = self
            .gateway
            .query(
                &actor,
                &RequestMeta::default(),
                "{ me { email timeZone } tenant { timeZone } }",
                Map::new(),
            )
            .await?;
        let data = found.data.unwrap_or_default();
        let zone = data["me"]["timeZone"]
            .as_str()
            .or_else(|| data["tenant"]["timeZone"].as_str());
        Ok(Some(Profile {
            email: data["me"]["email"].as_str().map(str::to_owned),
            time_zone: rules::zone(zone),
        }))
    }
}

fn retry(err: ApiError) -> JobError {
    JobError::Retry(format!("{err:?}"))
}

/// The audit actor of notification work: the platform, within the tenant.
fn platform(tenant_id: Uuid) -> Actor {
    Actor {
        tenant_id: Some(tenant_id),
        ..Actor::anonymous()
    }
}

/// Turns one messaging event into notifications (payload: [`Happened`]).
pub struct FanOut {
    store: Store,
    directory: Arc<dyn Directory>,
    clock: SharedClock,
}

impl FanOut {
    /// Its job kind.
    pub const KIND: &'static str = stored::FAN_OUT_KIND;

    /// The handler over `store`, reading recipients' time zones from `directory`.
    pub fn new(store: Store, directory: Arc<dyn Directory>, clock: SharedClock) -> Arc<Self> {
        Arc::new(Self {
            store,
            directory,
            clock,
        })
    }
}

#[async_trait::async_trait]
impl JobHandler for FanOut {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let tenant_id = job.tenant()?;
        let happened: Happened = serde_json::from_value(job.payload.clone())
            .map_err(|err| JobError::Permanent(format!("payload: {err}")))?;
        let event = NotificationEvent::from_db(&happened.event)
            .ok_or_else(|| JobError::Permanent(format!("unknown event {}", happened.event)))?;
        let db = &self.store.db;
        // Who took part when it happened and still does (someone removed meanwhile, or
        // who joined later, is not told).
        let members: Vec<Uuid> =
            store::participants_of_threads(db, tenant_id, [happened.thread_id])
                .await
                .map_err(retry)?
                .remove(&happened.thread_id)
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.created_at <= happened.at)
                .map(|p| p.user_id)
                .collect();
        let recipients: Vec<Uuid> = match event {
            NotificationEvent::ThreadAssigned => happened.assignee_id.into_iter().collect(),
            _ => members.clone(),
        }
        .into_iter()
        .filter(|user| Some(*user) != happened.actor_id && members.contains(user))
        .collect();
        if recipients.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let frequencies = stored::frequencies_of(db, tenant_id, &recipients, event)
            .await
            .map_err(retry)?;
        let mut new = Vec::new();
        for user in recipients {
            let (in_app, email) = frequencies
                .get(&user)
                .copied()
                .unwrap_or((Frequency::Off, Frequency::Off));
            // Daily digests go out at a local hour: the recipient's zone decides.
            let zone = if email == Frequency::Daily {
                match self
                    .directory
                    .profile(tenant_id, user)
                    .await
                    .map_err(retry)?
                {
                    Some(profile) => profile.time_zone,
                    None => continue,
                }
            } else {
                Tz::UTC
            };
            let email_due_at = rules::email_due(email, now, zone);
            if in_app == Frequency::Off && email_due_at.is_none() {
                continue;
            }
            new.push(NewNotification {
                user_id: user,
                event,
                thread_id: happened.thread_id,
                message_id: happened.message_id,
                actor_id: happened.actor_id,
                in_app: in_app != Frequency::Off,
                email_due_at,
            });
        }
        let txn = db
            .begin_write()
            .await
            .map_err(|e| retry(ApiError::from_db(e)))?;
        // Someone erased (or removed) since the recipients were read is not told.
        let users: Vec<Uuid> = new.iter().map(|n| n.user_id).collect();
        let still = stored::still_participating(&txn, tenant_id, happened.thread_id, &users)
            .await
            .map_err(retry)?;
        new.retain(|n| still.contains(&n.user_id));
        let actor = platform(tenant_id);
        stored::record(&txn, (&actor, &job.audit_meta()), tenant_id, &new, now)
            .await
            .map_err(retry)?;
        for n in &new {
            if let Some(due) = n.email_due_at {
                enqueue_email(&txn, tenant_id, n.user_id, due)
                    .await
                    .map_err(retry)?;
            }
        }
        txn.commit().await.map_err(|e| retry(ApiError::from_db(e)))
    }
}

/// The email job of `user` due at `at` (one per recipient and time: digests share it).
async fn enqueue_email(
    db: &impl sea_orm::ConnectionTrait,
    tenant_id: Uuid,
    user: Uuid,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    let mut job = NewJob::new(EMAIL_KIND, json!({ "userId": user }))
        .at(at)
        .idempotency_key(format!("{user}:{}", at.timestamp()));
    job.tenant_id = Some(tenant_id);
    jobs::enqueue(db, at, job).await.map(|_| ())
}

/// Emails one recipient what is due (payload `userId`).
pub struct NotificationEmail {
    store: Store,
    directory: Arc<dyn Directory>,
    mail_key: DataKey,
    clock: SharedClock,
}

impl NotificationEmail {
    /// Its job kind.
    pub const KIND: &'static str = EMAIL_KIND;

    /// The handler over `store`, finding addresses in `directory`, sealing outbox mail
    /// with `mail_key`, telling the time by `clock`.
    pub fn new(
        store: Store,
        directory: Arc<dyn Directory>,
        mail_key: DataKey,
        clock: SharedClock,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            directory,
            mail_key,
            clock,
        })
    }
}

#[async_trait::async_trait]
impl JobHandler for NotificationEmail {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let tenant_id = job.tenant()?;
        let user = job.required_id("userId")?;
        let db = &self.store.db;
        let now = self.clock.now();
        let due = stored::due_emails(db, (tenant_id, user), now)
            .await
            .map_err(retry)?;
        if due.is_empty() {
            return Ok(());
        }
        let Some(profile) = self
            .directory
            .profile(tenant_id, user)
            .await
            .map_err(retry)?
        else {
            // No longer active: nothing goes out.
            return stored::cancel_emails(db, tenant_id, user)
                .await
                .map_err(retry);
        };
        let Some(address) = profile.email else {
            return stored::cancel_emails(db, tenant_id, user)
                .await
                .map_err(retry);
        };
        let quiet = stored::quiet_hours(db, tenant_id, user)
            .await
            .map_err(retry)?;
        if let Some(until) = quiet.and_then(|q| q.holds_until(now, profile.time_zone)) {
            // Held: the same email, once the quiet hours end.
            return enqueue_email(db, tenant_id, user, until)
                .await
                .map_err(retry);
        }
        let events: Vec<NotificationEvent> = due
            .iter()
            .filter_map(|n| NotificationEvent::from_db(&n.event))
            .collect();
        let topic = match events.first() {
            Some(first) if events.iter().all(|e| e == first) => first.as_str(),
            _ => "ALL",
        };
        let unsubscribe = self.store.files.unsubscribe_link(tenant_id, user, topic);
        let email = Email {
            to: address,
            subject: if due.len() == 1 {
                "New activity in your secure messages".to_owned()
            } else {
                format!("{} updates in your secure messages", due.len())
            },
            text: email_text(&due, profile.time_zone, &unsubscribe),
            unsubscribe: Some(unsubscribe),
        };
        let ids: Vec<Uuid> = due.iter().map(|n| n.id).collect();
        let txn = db
            .begin_write()
            .await
            .map_err(|e| retry(ApiError::from_db(e)))?;
        if stored::mark_emailed(&txn, tenant_id, &ids, now)
            .await
            .map_err(retry)?
            != ids.len() as u64
        {
            // Another worker took some of them: let it.
            return Ok(());
        }
        mail::enqueue(&txn, &self.mail_key, Some(tenant_id), email)
            .await
            .map_err(retry)?;
        AuditEvent::success("notification.email", "user", user)
            .with_details(json!({ "notificationIds": ids }))
            .record(&txn, &platform(tenant_id), &job.audit_meta())
            .await
            .map_err(retry)?;
        txn.commit().await.map_err(|e| retry(ApiError::from_db(e)))
    }
}

/// The text of a notification email: what happened when, in the recipient's time zone —
/// never a subject or a message's text.
fn email_text(
    due: &[portal_entities::messages::notification::Model],
    zone: Tz,
    unsubscribe: &str,
) -> String {
    let mut text = String::from("Hello,\n\n");
    for n in due {
        let when = n
            .created_at
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M %Z");
        let what = NotificationEvent::from_db(&n.event).map_or("an update", |e| e.describe());
        text.push_str(&format!(
            "- {when}: {what} (conversation {})\n",
            n.thread_id
        ));
    }
    text.push_str(
        "\nSign in to the portal to read it. For your security, this email does not include \
         the conversation.\n\nTo stop these emails, change your notification preferences in \
         the portal, or unsubscribe: ",
    );
    text.push_str(unsubscribe);
    text.push('\n');
    text
}
