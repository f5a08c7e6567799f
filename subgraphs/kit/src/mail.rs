//! Email through a transactional outbox: a change that must send mail writes an
//! `email_outbox` row in its own transaction ([`enqueue`]), so a committed change always
//! gets its email and a rolled-back one never does. A delivery worker ([`spawn_delivery`])
//! claims due rows — safely from several processes — and hands them to a [`Mailer`]: SMTP
//! (lettre) in production, or a directory of `.eml` files in the embedded default so the
//! mail can be read. Failed deliveries are retried with backoff, never dropped.
//!
//! Bodies can carry secrets (reset links), so they are sealed with the data key at rest.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use portal_entities::platform::email_outbox;

use crate::error::ApiError;
use crate::secret::DataKey;

/// The purpose outbox bodies are sealed for.
const SEAL_PURPOSE: &str = "mail.body";

/// How long a claimed row is reserved for the process delivering it.
const CLAIM_FOR: chrono::Duration = chrono::Duration::seconds(60);

/// Longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 3600;

/// One email to send.
#[derive(Clone, Debug)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// Writes `email` to the outbox through `db` (pass the transaction of the change).
pub async fn enqueue(
    db: &impl ConnectionTrait,
    data_key: &DataKey,
    tenant_id: Option<Uuid>,
    email: Email,
) -> Result<(), ApiError> {
    let now = Utc::now();
    email_outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        recipient: Set(email.to),
        subject: Set(email.subject),
        body_sealed: Set(data_key.seal(SEAL_PURPOSE, email.text.as_bytes())?),
        attempts: Set(0),
        created_at: Set(now),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        sent_at: Set(None),
        last_error: Set(None),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    Ok(())
}

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    /// Each message becomes `<dir>/<id>.eml` (embedded default, development, tests).
    Directory(PathBuf),
    /// An SMTP relay.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends outbox rows with a sender address over a [`Transport`].
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            Transport::Directory(dir) => format!("directory {}", dir.display()),
            Transport::Smtp(_) => "smtp".into(),
        };
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("transport", &transport)
            .finish()
    }
}

impl Mailer {
    /// A mailer sending as `from` (`Name <address>`) over `transport`.
    pub fn new(from: &str, transport: Transport) -> Result<Self, String> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|err| format!("mail.from `{from}`: {err}"))?;
        Ok(Self { from, transport })
    }

    /// An SMTP transport from a URL: `smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`, or `smtp://localhost:25` (plain, local relays only).
    pub fn smtp(url: &str) -> Result<Transport, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|err| format!("mail.smtp_url: {err}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Transport::Smtp(transport))
    }

    async fn send(&self, id: Uuid, to: &str, subject: &str, text: String) -> Result<(), String> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|err| format!("recipient: {err}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{id}@portal>")))
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|err| format!("building message: {err}"))?;
        match &self.transport {
            Transport::Directory(dir) => {
                // Mail holds live links (password resets, invitations): owner-only files.
                crate::files::create_private_dir(dir)
                    .map_err(|err| format!("mail directory: {err}"))?;
                let tmp = dir.join(format!(".{id}.tmp"));
                let _ = tokio::fs::remove_file(&tmp).await;
                crate::files::write_private_file(&tmp, &message.formatted())
                    .await
                    .map_err(|err| format!("writing mail: {err}"))?;
                tokio::fs::rename(&tmp, dir.join(format!("{id}.eml")))
                    .await
                    .map_err(|err| format!("writing mail: {err}"))
            }
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|err| format!("smtp: {err}")),
        }
    }
}

/// Delivers what is due, claiming each row first so that concurrent workers never send
/// one twice. Returns how many were sent.
pub async fn deliver_due(
    db: &DatabaseConnection,
    data_key: &DataKey,
    mailer: &Mailer,
) -> Result<usize, ApiError> {
    let now = Utc::now();
    let free = || {
        email_outbox::Column::LockedUntil
            .is_null()
            .or(email_outbox::Column::LockedUntil.lt(now))
    };
    let due = email_outbox::Entity::find()
        .filter(email_outbox::Column::SentAt.is_null())
        .filter(email_outbox::Column::NextAttemptAt.lte(now))
        .filter(free())
        .order_by_asc(email_outbox::Column::Id)
        .limit(20)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut sent = 0;
    for row in due {
        let claimed = email_outbox::Entity::update_many()
            .col_expr(
                email_outbox::Column::LockedUntil,
                Expr::value(Utc::now() + CLAIM_FOR),
            )
            .filter(email_outbox::Column::Id.eq(row.id))
            .filter(email_outbox::Column::SentAt.is_null())
            .filter(free())
            .exec(db)
            .await
            .map_err(ApiError::from_db)?;
        if claimed.rows_affected != 1 {
            continue;
        }
        let outcome = match data_key.open(SEAL_PURPOSE, &row.body_sealed) {
            Ok(body) => {
                let text = String::from_utf8_lossy(&body).into_owned();
                mailer
                    .send(row.id, &row.recipient, &row.subject, text)
                    .await
            }
            Err(_) => Err("body cannot be opened with this data key".into()),
        };
        let update = email_outbox::Entity::update_many()
            .filter(email_outbox::Column::Id.eq(row.id))
            .col_expr(
                email_outbox::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                email_outbox::Column::Attempts,
                Expr::value(row.attempts + 1),
            );
        let update = match outcome {
            Ok(()) => {
                sent += 1;
                update.col_expr(email_outbox::Column::SentAt, Expr::value(Utc::now()))
            }
            Err(error) => {
                tracing::warn!(id = %row.id, attempts = row.attempts + 1, %error, "email delivery failed; will retry");
                let backoff = Ord::min(10i64 << row.attempts.clamp(0, 12), MAX_BACKOFF_SECS);
                let error: String = error.chars().take(500).collect();
                update
                    .col_expr(email_outbox::Column::LastError, Expr::value(error))
                    .col_expr(
                        email_outbox::Column::NextAttemptAt,
                        Expr::value(Utc::now() + chrono::Duration::seconds(backoff)),
                    )
            }
        };
        update.exec(db).await.map_err(ApiError::from_db)?;
    }
    Ok(sent)
}

/// Runs [`deliver_due`] every `interval` until the task is aborted.
pub fn spawn_delivery(
    db: DatabaseConnection,
    data_key: DataKey,
    mailer: Mailer,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(err) = deliver_due(&db, &data_key, &mailer).await {
                tracing::warn!(?err, "email outbox pass failed");
            }
            tokio::time::sleep(interval).await;
        }
    })
}
