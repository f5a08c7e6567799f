//! The privacy contract every subgraph implements for data-subject requests (GDPR
//! Articles 15, 17 and 20): export everything a domain holds about one person, and erase or
//! anonymize it. Only the privacy jobs of the data-subject-request workflow call it — in a
//! worker, with the database — never a client: no GraphQL field reaches it.
//!
//! Each domain answers for its own tables, in its own crate (`<subgraph>::privacy`), and
//! returns plain JSON (ids, timestamps, the person's own words opened from their seals) and
//! the stored files that are theirs (attachments, report files). The workflow puts one JSON
//! document per domain and the files into one archive.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiResult;

/// The person a request is about: a user of a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSubject {
    /// Their tenant.
    pub tenant_id: Uuid,
    /// Their user id.
    pub user_id: Uuid,
}

/// A stored file that belongs in a subject's archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectFile {
    /// The `files` row.
    pub file_id: Uuid,
    /// Where it goes in the archive, under `files/<domain>/` (unique within the domain).
    pub path: String,
    /// Why it is theirs (`attachment of message …`, `report run …`).
    pub about: String,
}

/// What one domain holds about a subject.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainExport {
    /// Everything, as one JSON object (collections by name, each a list of records).
    pub data: Value,
    /// Their files.
    pub files: Vec<SubjectFile>,
}

/// One domain's side of the contract.
#[async_trait::async_trait]
pub trait PrivacyDomain: Send + Sync {
    /// The domain's name (the subgraph's: `identity`, `accounts`, …).
    fn name(&self) -> &'static str;

    /// Everything this domain holds about `subject`.
    async fn export(&self, subject: DataSubject) -> ApiResult<DomainExport>;
}
