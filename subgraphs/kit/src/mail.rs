//! Email through a transactional outbox: a change that must send mail writes an
//! `email_outbox` row and a `mail.deliver` job in its own transaction ([`enqueue`]), so a
//! committed change always gets its email and a rolled-back one never does. The job runner
//! ([`crate::jobs`]) delivers it with [`Delivery`] — safely from several processes — over
//! a [`Mailer`]: SMTP (lettre) in production, or a directory of `.eml` files in the
//! embedded default so the mail can be read. Failed deliveries are retried with the
//! runner's backoff, never dropped.
//!
//! Bodies can carry secrets (reset links), so they are sealed with the data key at rest.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::platform::{email_outbox, file};

use crate::error::ApiError;
use crate::jobs::runner::{JobContext, JobError, JobHandler};
use crate::jobs::{self, NewJob};
use crate::secret::DataKey;
use crate::storage::FileStore;

/// The purpose outbox bodies are sealed for.
const SEAL_PURPOSE: &str = "mail.body";

/// The job kind that delivers one outbox row.
pub const DELIVER_KIND: &str = "mail.deliver";

/// How long a sender holds a message it is sending: longer than the SMTP timeout (20 s),
/// so a sender that died mid-send releases it soon.
const SENDING: chrono::Duration = chrono::Duration::seconds(25);

/// Attempts before an undeliverable message is dead-lettered (about two days of backoff).
pub(crate) const MAX_ATTEMPTS: i32 = 60;

/// One email to send.
#[derive(Clone, Debug)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// A one-click unsubscribe address (`https://…`, answering RFC 8058's `POST`): the
    /// message carries `List-Unsubscribe` and `List-Unsubscribe-Post` headers naming it.
    pub unsubscribe: Option<String>,
}

/// Writes `email` to the outbox through `db` (pass the transaction of the change).
pub async fn enqueue(
    db: &impl ConnectionTrait,
    data_key: &DataKey,
    tenant_id: Option<Uuid>,
    email: Email,
) -> Result<(), ApiError> {
    enqueue_with_attachment(db, data_key, tenant_id, email, None).await
}

/// As [`enqueue`], with the stored file `attachment` (a `files` row) attached when it is
/// sent — read then, so the outbox holds no copy. A file gone by then is not attached and
/// the message says so.
pub async fn enqueue_with_attachment(
    db: &impl ConnectionTrait,
    data_key: &DataKey,
    tenant_id: Option<Uuid>,
    email: Email,
    attachment: Option<Uuid>,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    email_outbox::ActiveModel {
        id: Set(id),
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
        attachment_file_id: Set(attachment),
        unsubscribe_sealed: Set(email
            .unsubscribe
            .map(|url| data_key.seal(SEAL_PURPOSE, url.as_bytes()))
            .transpose()?),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    enqueue_delivery(db, id, tenant_id).await
}

/// Deletes the tenant's outbox mail — sent or waiting — that carries one of the stored
/// files `file_ids` (a report shared by someone being erased: the mail names them, and
/// its attachment goes with their files); how many. A waiting mail's delivery job then
/// finds nothing to send.
pub async fn forget_attachments(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    file_ids: &[Uuid],
) -> Result<u64, ApiError> {
    let mut deleted = 0;
    for chunk in file_ids.chunks(500) {
        deleted += email_outbox::Entity::delete_many()
            .filter(email_outbox::Column::TenantId.eq(tenant_id))
            .filter(email_outbox::Column::AttachmentFileId.is_in(chunk.iter().copied()))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    Ok(deleted)
}

/// The delivery job of outbox row `id` (at most one per row).
async fn enqueue_delivery(
    db: &impl ConnectionTrait,
    id: Uuid,
    tenant_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let mut job = NewJob::new(DELIVER_KIND, json!({ "outboxId": id }))
        .idempotency_key(id.to_string())
        .max_attempts(MAX_ATTEMPTS);
    job.tenant_id = tenant_id;
    jobs::enqueue(db, Utc::now(), job).await.map(|_| ())
}

/// Gives every unsent outbox row a delivery job (rows queued before deliveries ran on the
/// job runner, for instance); rows that have one already are left alone. Returns how many
/// rows it looked at.
pub async fn adopt_pending(db: &DatabaseConnection) -> Result<usize, ApiError> {
    let pending = email_outbox::Entity::find()
        .filter(email_outbox::Column::SentAt.is_null())
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    for row in &pending {
        enqueue_delivery(db, row.id, row.tenant_id).await?;
    }
    Ok(pending.len())
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

    async fn send(
        &self,
        id: Uuid,
        (to, subject): (&str, &str),
        (text, unsubscribe): (String, Option<String>),
        attachment: Option<(String, String, Vec<u8>)>,
    ) -> Result<(), String> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|err| format!("recipient: {err}"))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{id}@portal>")));
        if let Some(url) = unsubscribe {
            // RFC 8058: one click, a POST the mail client sends (never a GET).
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        let message = match attachment {
            None => builder.header(ContentType::TEXT_PLAIN).body(text),
            Some((name, content_type, contents)) => {
                let content_type = ContentType::parse(&content_type)
                    .or_else(|_| ContentType::parse("application/octet-stream"))
                    .map_err(|err| format!("attachment type: {err}"))?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(text))
                        .singlepart(Attachment::new(name).body(contents, content_type)),
                )
            }
        }
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

/// The `mail.deliver` job handler: sends one outbox row, at most once successfully.
pub struct Delivery {
    db: DatabaseConnection,
    data_key: DataKey,
    mailer: Mailer,
    files: Option<FileStore>,
}

impl Delivery {
    /// Delivers rows of `db`, opened with `data_key`, through `mailer`.
    pub fn new(db: DatabaseConnection, data_key: DataKey, mailer: Mailer) -> Self {
        Self {
            db,
            data_key,
            mailer,
            files: None,
        }
    }

    /// Reads attachments from `files`.
    pub fn with_files(mut self, files: FileStore) -> Self {
        self.files = Some(files);
        self
    }

    /// The attachment of `row` (name, media type, contents); `Ok(None)` when it has none
    /// or the file is gone (expired), in which case `text` says so.
    async fn attachment(
        &self,
        row: &email_outbox::Model,
        text: &mut String,
    ) -> Result<Option<(String, String, Vec<u8>)>, JobError> {
        use futures::TryStreamExt;
        let Some(file_id) = row.attachment_file_id else {
            return Ok(None);
        };
        let Some(files) = &self.files else {
            return Err(JobError::Retry(
                "this worker cannot read stored files".into(),
            ));
        };
        let found = file::Entity::find_by_id(file_id)
            .one(&self.db)
            .await
            .map_err(|err| JobError::Retry(format!("reading the attachment: {err}")))?
            .filter(|found| found.expires_at.is_none_or(|at| at > Utc::now()));
        let Some(found) = found else {
            text.push_str("\n(The attached file has expired and is no longer available.)\n");
            return Ok(None);
        };
        let chunks: Vec<bytes::Bytes> = files
            .open(&found)
            .await
            .map_err(|err| JobError::Retry(format!("{err:?}")))?
            .try_collect()
            .await
            .map_err(|err| JobError::Retry(format!("{err:?}")))?;
        Ok(Some((found.name, found.content_type, chunks.concat())))
    }
}

#[async_trait::async_trait]
impl JobHandler for Delivery {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let id = job.payload["outboxId"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| JobError::Permanent("no outbox id".into()))?;
        let row = email_outbox::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(|err| JobError::Retry(format!("reading the outbox: {err}")))?
            .ok_or_else(|| JobError::Permanent("the outbox row is gone".into()))?;
        if row.sent_at.is_some() {
            // Sent by an earlier run whose outcome was lost: never twice.
            return Ok(());
        }
        // Reserve the row while sending, so two senders (a duplicate job, an older
        // process during an upgrade) never send it at the same time.
        let now = Utc::now();
        let reserved = email_outbox::Entity::update_many()
            .col_expr(
                email_outbox::Column::LockedUntil,
                Expr::value(now + SENDING),
            )
            .filter(email_outbox::Column::Id.eq(row.id))
            .filter(email_outbox::Column::SentAt.is_null())
            .filter(
                email_outbox::Column::LockedUntil
                    .is_null()
                    .or(email_outbox::Column::LockedUntil.lt(now)),
            )
            .exec(&self.db)
            .await
            .map_err(|err| JobError::Retry(format!("reserving the message: {err}")))?;
        if reserved.rows_affected != 1 {
            // Held by another sender (or one that died): try again when its hold ends.
            let held_until = email_outbox::Entity::find_by_id(row.id)
                .one(&self.db)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.locked_until)
                .unwrap_or(now + SENDING);
            return Err(JobError::RetryAt {
                reason: "the message is being sent elsewhere".into(),
                at: held_until + chrono::Duration::milliseconds(100),
            });
        }
        let body = self
            .data_key
            .open(SEAL_PURPOSE, &row.body_sealed)
            .map_err(|_| JobError::Permanent("body cannot be opened with this data key".into()))?;
        let mut text = String::from_utf8_lossy(&body).into_owned();
        let unsubscribe = match &row.unsubscribe_sealed {
            Some(sealed) => Some(
                self.data_key
                    .open(SEAL_PURPOSE, sealed)
                    .map(|url| String::from_utf8_lossy(&url).into_owned())
                    .map_err(|_| {
                        JobError::Permanent("headers cannot be opened with this data key".into())
                    })?,
            ),
            None => None,
        };
        let attachment = self.attachment(&row, &mut text).await?;
        let outcome = self
            .mailer
            .send(
                row.id,
                (&row.recipient, &row.subject),
                (text, unsubscribe),
                attachment,
            )
            .await;
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
        let update = match &outcome {
            Ok(()) => update.col_expr(email_outbox::Column::SentAt, Expr::value(Utc::now())),
            Err(error) => {
                let error: String = error.chars().take(500).collect();
                update.col_expr(email_outbox::Column::LastError, Expr::value(error))
            }
        };
        update
            .exec(&self.db)
            .await
            .map_err(|err| JobError::Retry(format!("recording the delivery: {err}")))?;
        outcome.map_err(JobError::Retry)
    }
}
