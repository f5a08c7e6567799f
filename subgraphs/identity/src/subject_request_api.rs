//! Data-subject requests through GraphQL: ask for a copy of one's data or for its
//! erasure (or, for tenant admins, a user's), confirm it through the link sent to the
//! person, follow it, download the archive or read what was erased, anonymized and kept.

use async_graphql::{Context, Enum, ID, Json, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::identity::data_subject_request;
use portal_entities::platform::file;
use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta};
use portal_kit::input;
use portal_kit::pagination::{Node, PageRequest};

use crate::subject_requests::{self, status};

portal_kit::file_object!(
    /// A data export archive: one JSON document per part of the portal and the person's
    /// files (attachments, report files), zipped.
    DataExportFile,
    rows: "Files of the person's in it (attachments, report files)."
);

/// What a data-subject request asks for.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataSubjectRequestKind {
    /// A copy of the person's data, in a machine-readable archive (GDPR Art. 15, 20).
    Access,
    /// The person's data erased or anonymized, their account closed (GDPR Art. 17).
    Erasure,
}

/// Where a data-subject request is.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataSubjectRequestStatus {
    /// Waiting for the person to confirm through the link sent to their address.
    AwaitingVerification,
    /// Confirmed; waiting for a worker.
    Queued,
    /// Being carried out.
    Running,
    /// Done (`file` holds the archive).
    Completed,
    /// It could not be carried out (`failure` says why).
    Failed,
    /// Refused: a legal hold covers the person or records they are tied to (`result`
    /// lists the holds; nothing was erased). Ask again once they are released.
    Blocked,
    /// Not confirmed in time.
    Expired,
}

/// A GDPR request about one person of the tenant.
pub struct DataSubjectRequest {
    row: data_subject_request::Model,
    file: Option<file::Model>,
}

#[Object]
impl DataSubjectRequest {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    /// What it asks for.
    async fn kind(&self) -> DataSubjectRequestKind {
        if self.row.kind == subject_requests::kind::ERASURE {
            DataSubjectRequestKind::Erasure
        } else {
            DataSubjectRequestKind::Access
        }
    }

    /// The person it is about.
    async fn subject_id(&self) -> ID {
        ID(self.row.subject_id.to_string())
    }

    /// Who asked: the person, or an admin on their behalf.
    async fn requested_by(&self) -> Option<ID> {
        self.row.requested_by.map(|id| ID(id.to_string()))
    }

    /// Where it is.
    async fn status(&self) -> DataSubjectRequestStatus {
        match self.row.status.as_str() {
            status::AWAITING_VERIFICATION
                if self
                    .row
                    .verification_expires_at
                    .is_some_and(|at| at < Utc::now()) =>
            {
                DataSubjectRequestStatus::Expired
            }
            status::AWAITING_VERIFICATION => DataSubjectRequestStatus::AwaitingVerification,
            status::QUEUED => DataSubjectRequestStatus::Queued,
            status::RUNNING => DataSubjectRequestStatus::Running,
            status::COMPLETED => DataSubjectRequestStatus::Completed,
            status::EXPIRED => DataSubjectRequestStatus::Expired,
            status::BLOCKED => DataSubjectRequestStatus::Blocked,
            _ => DataSubjectRequestStatus::Failed,
        }
    }

    /// When it was made.
    async fn requested_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// When the person confirmed it.
    async fn verified_at(&self) -> Option<DateTime<Utc>> {
        self.row.verified_at
    }

    /// When the answer is due: 30 days after the request.
    async fn due_at(&self) -> DateTime<Utc> {
        self.row.due_at
    }

    /// When it was carried out or failed.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.row.completed_at
    }

    /// What was done. Access: what each part of the portal held (records by collection,
    /// and files). Erasure: per part, each collection `ERASED`, `ANONYMIZED` or `KEPT`,
    /// with a count and why (for kept records, the legal basis); when blocked, the legal
    /// holds that block it.
    async fn result(&self) -> Option<Json<serde_json::Value>> {
        self.row.result.clone().map(Json)
    }

    /// Why it failed.
    async fn failure(&self) -> Option<&str> {
        self.row.failure.as_deref()
    }

    /// The archive of a completed access request, while it is kept — for the person only:
    /// those who filed for them or oversee requests see that it exists, not what is in it
    /// (`FORBIDDEN`).
    async fn file(&self, ctx: &Context<'_>) -> ApiResult<Option<DataExportFile>> {
        if actor(ctx).id != Some(self.row.subject_id) {
            return Err(portal_kit::ApiError::Forbidden);
        }
        Ok(self.file.clone().map(|row| DataExportFile { row }))
    }
}

impl Node for DataSubjectRequest {
    fn cursor_id(&self) -> Uuid {
        self.row.id
    }
}

portal_kit::connection!(
    DataSubjectRequestConnection,
    DataSubjectRequestEdge,
    DataSubjectRequest
);

/// What confirming a request gives back to whoever holds the link (who may not be signed
/// in): no personal data.
#[derive(async_graphql::SimpleObject)]
pub struct DataSubjectRequestVerification {
    /// The request.
    pub id: ID,
    /// Where it is now (`QUEUED`).
    pub status: DataSubjectRequestStatus,
    /// When the answer is due.
    pub due_at: DateTime<Utc>,
}

async fn with_file(
    db: &sea_orm::DatabaseConnection,
    row: data_subject_request::Model,
) -> ApiResult<DataSubjectRequest> {
    let file = match row.file_id {
        Some(id) => portal_kit::storage::find(db, row.tenant_id, id, Utc::now()).await?,
        None => None,
    };
    Ok(DataSubjectRequest { row, file })
}

/// Data-subject request queries.
#[derive(Default)]
pub struct SubjectRequestQuery;

#[Object]
impl SubjectRequestQuery {
    /// One data-subject request: the caller's own (as the person or the one who asked),
    /// or any of the tenant's for those the policies grant it.
    async fn data_subject_request(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<DataSubjectRequest> {
        let id = input::id("id", &id)?;
        let db = db(ctx)?;
        let row = subject_requests::find(db, actor(ctx), id).await?;
        with_file(db, row).await
    }

    /// The caller's data-subject requests (or all of the tenant's, for those the policies
    /// grant it), oldest first.
    async fn data_subject_requests(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<DataSubjectRequestConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let db = db(ctx)?;
        let rows = subject_requests::list(db, actor(ctx), page).await?;
        Ok(rows.try_map(|row| with_file(db, row)).await?.into())
    }
}

/// Files a request of `kind` for `user_id` (the caller when `None`).
async fn request(
    ctx: &Context<'_>,
    user_id: Option<ID>,
    kind: &'static str,
) -> ApiResult<DataSubjectRequest> {
    let subject = user_id.map(|id| input::id("userId", &id)).transpose()?;
    let settings = crate::sessions::authenticator(ctx)?.settings();
    let row = subject_requests::request(db(ctx)?, settings, (actor(ctx), meta(ctx)), subject, kind)
        .await?;
    Ok(DataSubjectRequest { row, file: None })
}

/// Data-subject request mutations.
#[derive(Default)]
pub struct SubjectRequestMutation;

#[Object]
impl SubjectRequestMutation {
    /// Asks for a copy of the personal data the portal holds about the caller — or, with
    /// `userId`, about a user of the tenant on their behalf (for those the policies grant
    /// it). The person confirms through a link sent to their address; the archive is then
    /// prepared by a job and downloaded through `dataSubjectRequest(id).file`. `CONFLICT`
    /// while another access request of the person is open.
    async fn request_data_export(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> ApiResult<DataSubjectRequest> {
        request(ctx, user_id, subject_requests::kind::ACCESS).await
    }

    /// Asks for the personal data the portal holds about the caller — or, with `userId`,
    /// about a user of the tenant on their behalf (for those the policies grant it) — to be
    /// erased (GDPR Art. 17). The person confirms through a link sent to their address;
    /// then a job checks the legal holds (any hold covering them, their accounts or their
    /// threads blocks it: `BLOCKED`), and otherwise every part of the portal erases or
    /// anonymizes what it holds, their sessions and API keys are revoked and their account
    /// is closed; `result` lists what was erased, anonymized and kept, and why. Records
    /// the law requires (ledger entries, the audit trail) are kept without anything more
    /// than needed. `CONFLICT` while another erasure request of the person is open, or
    /// when they are erased already.
    async fn request_data_erasure(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> ApiResult<DataSubjectRequest> {
        request(ctx, user_id, subject_requests::kind::ERASURE).await
    }

    /// Confirms a data-subject request with the token from the link sent to the person.
    /// `NOT_FOUND` for an unknown, used or lapsed token.
    async fn verify_data_subject_request(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> ApiResult<DataSubjectRequestVerification> {
        let token = input::text("token", &token, 200)?;
        let settings = crate::sessions::authenticator(ctx)?.settings();
        let row = subject_requests::verify(db(ctx)?, settings, meta(ctx), &token).await?;
        Ok(DataSubjectRequestVerification {
            id: ID(row.id.to_string()),
            status: DataSubjectRequestStatus::Queued,
            due_at: row.due_at,
        })
    }
}
