//! Attachments on the wire: `Attachment`, the upload a client declares
//! (`AttachmentUpload`), and the tenant's messaging settings.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use portal_entities::messages::message_attachment;
use portal_kit::ApiResult;
use portal_kit::context::actor;

use portal_kit::loader::load;

use super::federation::User;
use super::loaders::AttachmentFiles;
use super::store;
use crate::domain::attachments::{ACCEPTED, AttachmentState};
use crate::store::attachments as stored;

/// Where an attachment is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "AttachmentState")]
pub enum AttachmentStateGql {
    /// Declared; its bytes have not arrived.
    AwaitingUpload,
    /// Received and stored encrypted; the malware scan has not judged it yet.
    Scanning,
    /// Scanned and clean: downloadable.
    Clean,
    /// The scan found malware: never downloadable.
    Quarantined,
}

impl From<AttachmentState> for AttachmentStateGql {
    fn from(state: AttachmentState) -> Self {
        match state {
            AttachmentState::AwaitingUpload => Self::AwaitingUpload,
            AttachmentState::Scanning => Self::Scanning,
            AttachmentState::Clean => Self::Clean,
            AttachmentState::Quarantined => Self::Quarantined,
        }
    }
}

/// A file attached (or to be attached) to a message.
pub struct Attachment {
    row: message_attachment::Model,
}

impl From<message_attachment::Model> for Attachment {
    fn from(row: message_attachment::Model) -> Self {
        Self { row }
    }
}

/// A file attached (or to be attached) to a message. Its name and content are stored
/// encrypted; its type is judged from its content.
#[Object]
impl Attachment {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// The file name.
    async fn name(&self, ctx: &Context<'_>) -> ApiResult<String> {
        stored::name(store(ctx)?, &self.row).await
    }

    /// Where it is in its life.
    async fn state(&self) -> AttachmentStateGql {
        AttachmentState::from_db(&self.row.state).into()
    }

    /// Its media type, detected from its content once received.
    async fn content_type(&self) -> Option<&str> {
        self.row.content_type.as_deref()
    }

    /// Its size in bytes, once received.
    async fn size_bytes(&self) -> Option<i64> {
        self.row.size_bytes
    }

    /// SHA-256 of its content (lowercase hex), once received.
    async fn sha256(&self) -> Option<&str> {
        self.row.sha256.as_deref()
    }

    /// Who uploaded it.
    async fn uploaded_by(&self) -> User {
        User::stub(self.row.uploaded_by)
    }

    /// When it was declared.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// A short-lived link to download it (`GET`, signed for the caller; access is checked
    /// again at download, which is audited). Null unless `CLEAN`.
    async fn download_url(&self, ctx: &Context<'_>) -> ApiResult<Option<String>> {
        if AttachmentState::from_db(&self.row.state) != AttachmentState::Clean {
            return Ok(None);
        }
        let Some(file) = load::<AttachmentFiles>(ctx, self.row.id).await? else {
            return Ok(None);
        };
        let (url, _) = store(ctx)?.files.link(&file, actor(ctx), Utc::now())?;
        Ok(Some(url))
    }
}

/// An attachment declared for upload, and where its bytes go.
#[derive(SimpleObject)]
pub struct AttachmentUpload {
    /// The attachment (`AWAITING_UPLOAD`); pass its id in `postMessage` once uploaded.
    pub attachment: Attachment,
    /// Send the file's bytes here with one HTTP `PUT` (no GraphQL, no multipart).
    pub upload_url: String,
    /// The link works until then.
    pub expires_at: DateTime<Utc>,
    /// The most bytes the upload may send.
    pub max_bytes: i64,
}

impl AttachmentUpload {
    /// From a declared upload.
    pub fn new(declared: stored::Declared) -> Self {
        Self {
            expires_at: declared.row.upload_expires_at,
            max_bytes: declared.row.max_bytes,
            attachment: Attachment::from(declared.row),
            upload_url: declared.upload_url,
        }
    }
}

/// The tenant's messaging settings.
#[derive(SimpleObject)]
pub struct MessagingSettings {
    /// The largest attachment its users may upload, in bytes.
    pub attachment_max_bytes: i64,
    /// Media types accepted as attachments (judged from the content).
    pub accepted_types: Vec<String>,
}

impl MessagingSettings {
    /// Settings with the limit `attachment_max_bytes`.
    pub fn new(attachment_max_bytes: i64) -> Self {
        Self {
            attachment_max_bytes,
            accepted_types: ACCEPTED.iter().map(|a| a.mime.to_owned()).collect(),
        }
    }
}
