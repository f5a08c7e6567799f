//! SOC 2 compliance reports: what an auditor samples every period, built from the records
//! the portal keeps anyway, each with an integrity manifest signed with the evidence key.
//!
//! - **Access review** (CC6.2, CC6.3): every user of the tenant with their status, roles,
//!   last sign-in, second factor and single sign-on — as the report is made.
//! - **Privileged actions** (CC6.1, CC7.2, CC8.1): audit events of the period that change
//!   who may do what or how the tenant is configured (roles, policies, users, API keys,
//!   service accounts, single sign-on, keys, retention, legal holds, data-subject requests).
//! - **Policy changes** (CC8.1): every policy rule added or removed in the period, with
//!   what changed.
//! - **Sign-in failures and lockouts** (CC6.1, CC7.2): failed sign-ins, step-ups, second
//!   factors and resets of the period, with the reason.
//! - **Key rotations** (CC6.1, CC6.7): tenant data keys rotated, resealed and destroyed,
//!   evidence keys created and rotated (the platform's), webhook secrets rotated, API keys
//!   created and revoked.
//!
//! An auditor (tenant admins inherit the role) asks for one kind over a period in CSV or
//! PDF (`requestComplianceReport`); a job writes the report, a manifest — the report's
//! SHA-256, size, rows, period, the audit chain's head when it was made — signed with the
//! evidence key, the published keys and a README into one zip, stored like evidence
//! packs and downloaded through a link checked again when used (`complianceReport(id)`).
//! Audit events are listed with their readable details only: the personal data sealed in
//! them (addresses, user agents, names) is left out, subjects appear as pseudonymous ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::identity::{
    compliance_report, mfa_factor, role, session, user, user_identity, user_role,
};
use portal_entities::platform::{audit_event, file};
use portal_kit::audit::{AuditEvent, chain};
use portal_kit::db::BeginWrite;
use portal_kit::evidence::{self, EvidenceSigner};
use portal_kit::export::{Cell, CellKind, Column, Format, Heading, TableWriter};
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::jobs::{self, NewJob};
use portal_kit::pagination::{Page, PageRequest};
use portal_kit::storage::{FileStore, object_key};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::domain::UserStatus;

/// The job kind that builds a report.
pub const JOB_KIND: &str = "compliance.report";

/// The owner type of a report's stored file (its query field: `complianceReport`).
pub const FILE_OWNER: &str = "ComplianceReport";

/// Reports a tenant may have waiting at once.
pub const MAX_PENDING: u64 = 5;

/// The longest period one report covers, in days (a year and a bit: an annual audit).
pub const MAX_PERIOD_DAYS: i64 = 400;

/// Rows of audit events one report holds at most (a longer period is split).
pub const MAX_EVENTS: u64 = 200_000;

/// What the signed manifest calls itself.
pub const MANIFEST_TYPE: &str = "portal.compliance.report";

/// Attempts before the job gives up.
const JOB_ATTEMPTS: i32 = 4;

/// How long a report may stay queued or running before it counts as failed.
pub const STALE_AFTER_HOURS: i64 = 6;

/// Lifecycle of a report (storage form).
pub mod status {
    /// Waiting for a worker.
    pub const QUEUED: &str = "QUEUED";
    /// Being built.
    pub const RUNNING: &str = "RUNNING";
    /// Its file can be downloaded.
    pub const READY: &str = "READY";
    /// It could not be built.
    pub const FAILED: &str = "FAILED";
}

/// The reports there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// Users × roles × last sign-in × second factor.
    AccessReview,
    /// Changes to who may do what and to the tenant's configuration.
    PrivilegedActions,
    /// Policy rules added and removed.
    PolicyChanges,
    /// Failed sign-ins and lockouts.
    SignInFailures,
    /// Keys and secrets created, rotated, revoked and destroyed.
    KeyRotations,
}

impl ReportKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::AccessReview,
        Self::PrivilegedActions,
        Self::PolicyChanges,
        Self::SignInFailures,
        Self::KeyRotations,
    ];

    /// Storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessReview => "ACCESS_REVIEW",
            Self::PrivilegedActions => "PRIVILEGED_ACTIONS",
            Self::PolicyChanges => "POLICY_CHANGES",
            Self::SignInFailures => "SIGN_IN_FAILURES",
            Self::KeyRotations => "KEY_ROTATIONS",
        }
    }

    /// Parses the storage form.
    pub fn from_db(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Self::AccessReview => "Access review",
            Self::PrivilegedActions => "Privileged actions",
            Self::PolicyChanges => "Policy change history",
            Self::SignInFailures => "Sign-in failures and lockouts",
            Self::KeyRotations => "Key rotations",
        }
    }

    /// The SOC 2 criteria it is evidence for.
    pub fn criteria(self) -> &'static str {
        match self {
            Self::AccessReview => "CC6.2, CC6.3",
            Self::PrivilegedActions => "CC6.1, CC7.2, CC8.1",
            Self::PolicyChanges => "CC8.1",
            Self::SignInFailures => "CC6.1, CC7.2",
            Self::KeyRotations => "CC6.1, CC6.7",
        }
    }

    /// The file name stem.
    fn file_stem(self) -> &'static str {
        match self {
            Self::AccessReview => "access-review",
            Self::PrivilegedActions => "privileged-actions",
            Self::PolicyChanges => "policy-changes",
            Self::SignInFailures => "sign-in-failures",
            Self::KeyRotations => "key-rotations",
        }
    }
}

/// Audit actions that change who may do what, or how the tenant is configured (a prefix
/// ending in `.` takes every action of that subject).
const PRIVILEGED: [&str; 32] = [
    "policy.",
    "user.provision",
    "user.email_change",
    "mfa.enable",
    "mfa.recovery_codes",
    "integration.create",
    "integration.update",
    "webhook_endpoint.create",
    "webhook_endpoint.update",
    "webhook_endpoint.disable",
    "account.member.",
    "role.",
    "api_key.",
    "service_account.",
    "tenant.",
    "tenant_key.",
    "evidence_key.",
    "sso.",
    "legal_hold.",
    "audit_evidence.",
    "data_subject_request.",
    "compliance_report.",
    "user.create",
    "user.update",
    "user.erase",
    "mfa.disable",
    "integration.configure",
    "webhook_endpoint.secret_rotate",
    "message_retention_rule.",
    "messaging_settings.",
    "notification_defaults.",
    "job.cancel",
];

/// Audit actions of keys and secrets.
const KEY_ACTIONS: [&str; 8] = [
    "tenant_key.rotate",
    "tenant_key.reseal",
    "tenant_key.destroy",
    "evidence_key.create",
    "evidence_key.rotate",
    "webhook_endpoint.secret_rotate",
    "api_key.create",
    "api_key.revoke",
];

/// Records a request for a report of `kind` over `[from, to)` in `format` (CSV or PDF) of
/// the caller's tenant, enqueues its job and audits the request, in one transaction.
/// `BAD_USER_INPUT` for a period that is empty, longer than [`MAX_PERIOD_DAYS`] or starts
/// in the future, or another format; `CONFLICT` when [`MAX_PENDING`] are waiting.
pub async fn request(
    db: &DatabaseConnection,
    (actor, meta): (&Actor, &RequestMeta),
    kind: ReportKind,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    format: Format,
) -> ApiResult<compliance_report::Model> {
    let tenant = actor.tenant()?;
    let now = Utc::now();
    if !matches!(format, Format::Csv | Format::Pdf) {
        return Err(ApiError::invalid("input.format", "CSV or PDF"));
    }
    if to <= from {
        return Err(ApiError::invalid("input.to", "must be after `from`"));
    }
    if from > now {
        return Err(ApiError::invalid("input.from", "must not be in the future"));
    }
    // A period that has not ended is reported up to now: the manifest signs what the
    // report covers, not more.
    let to = to.min(now);
    if to - from > Duration::days(MAX_PERIOD_DAYS) {
        return Err(ApiError::invalid(
            "input.to",
            format!("a report covers at most {MAX_PERIOD_DAYS} days"),
        ));
    }
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    // A report whose job died (its worker gone, the job cancelled) must not hold a place
    // for ever.
    compliance_report::Entity::update_many()
        .col_expr(
            compliance_report::Column::Status,
            Expr::value(status::FAILED),
        )
        .col_expr(
            compliance_report::Column::Failure,
            Expr::value("the report did not finish; ask again"),
        )
        .col_expr(compliance_report::Column::FinishedAt, Expr::value(now))
        .filter(compliance_report::Column::TenantId.eq(tenant))
        .filter(compliance_report::Column::Status.is_in([status::QUEUED, status::RUNNING]))
        .filter(compliance_report::Column::CreatedAt.lt(now - Duration::hours(STALE_AFTER_HOURS)))
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    let pending = compliance_report::Entity::find()
        .filter(compliance_report::Column::TenantId.eq(tenant))
        .filter(compliance_report::Column::Status.is_in([status::QUEUED, status::RUNNING]))
        .count(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if pending >= MAX_PENDING {
        return Err(ApiError::Conflict(format!(
            "{MAX_PENDING} compliance reports of this tenant are being built already; \
             try again when one is ready"
        )));
    }
    let row = compliance_report::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant),
        kind: Set(kind.as_str().to_owned()),
        period_from: Set(from),
        period_to: Set(to),
        format: Set(format.as_str().to_owned()),
        requested_by: Set(actor.id),
        status: Set(status::QUEUED.to_owned()),
        row_count: Set(None),
        file_id: Set(None),
        failure: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let job = NewJob::new(JOB_KIND, json!({ "reportId": row.id }))
        .acting_for(actor)
        .max_attempts(JOB_ATTEMPTS);
    jobs::enqueue(&txn, now, job).await?;
    AuditEvent::success("compliance_report.request", "compliance_report", row.id)
        .with_details(json!({
            "kind": kind.as_str(),
            "from": from,
            "to": to,
            "format": format.as_str(),
        }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(row)
}

/// The report `id` of `tenant` (`NOT_FOUND` for another tenant's).
pub async fn find(
    db: &DatabaseConnection,
    tenant: Uuid,
    id: Uuid,
) -> ApiResult<compliance_report::Model> {
    compliance_report::Entity::find_by_id(id)
        .filter(compliance_report::Column::TenantId.eq(tenant))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound("compliance report"))
}

/// The tenant's reports, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    tenant: Uuid,
    request: PageRequest,
) -> ApiResult<Page<compliance_report::Model>> {
    let query =
        compliance_report::Entity::find().filter(compliance_report::Column::TenantId.eq(tenant));
    request
        .fetch(db, query, compliance_report::Column::Id)
        .await
}

/// The stored zip of `report`, while it is kept.
pub async fn file_of(
    db: &DatabaseConnection,
    report: &compliance_report::Model,
) -> ApiResult<Option<file::Model>> {
    match report.file_id {
        Some(id) => portal_kit::storage::find(db, report.tenant_id, id, Utc::now()).await,
        None => Ok(None),
    }
}

/// A report's table.
struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

fn at(time: DateTime<Utc>) -> Cell {
    Cell::Time(time.fixed_offset())
}

fn text(value: impl Into<String>) -> Cell {
    Cell::Text(value.into())
}

fn id_cell(id: Option<Uuid>) -> Cell {
    id.map_or(Cell::Empty, |id| Cell::Text(id.to_string()))
}

/// The access review of `tenant`: every user not erased, as they are now.
async fn access_review(db: &DatabaseConnection, tenant: Uuid) -> ApiResult<Table> {
    let users = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant))
        .filter(user::Column::Status.ne(UserStatus::Erased.as_str()))
        .order_by_asc(user::Column::Email)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let role_names: HashMap<Uuid, String> = role::Entity::find()
        .filter(role::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    let mut roles: HashMap<Uuid, Vec<String>> = HashMap::new();
    for grant in user_role::Entity::find()
        .filter(user_role::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .map_err(ApiError::from_db)?
    {
        if let Some(name) = role_names.get(&grant.role_id) {
            roles.entry(grant.user_id).or_default().push(name.clone());
        }
    }
    let last_sign_in: HashMap<Uuid, DateTime<Utc>> = session::Entity::find()
        .select_only()
        .column(session::Column::UserId)
        .column_as(session::Column::CreatedAt.max(), "last")
        .filter(session::Column::TenantId.eq(tenant))
        .group_by(session::Column::UserId)
        .into_tuple::<(Uuid, Option<DateTime<Utc>>)>()
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .filter_map(|(user, last)| last.map(|last| (user, last)))
        .collect();
    let mfa: HashMap<Uuid, String> = mfa_factor::Entity::find()
        .filter(mfa_factor::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .map(|f| (f.user_id, f.status))
        .collect();
    let sso: HashMap<Uuid, usize> = user_identity::Entity::find()
        .filter(user_identity::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .map_err(ApiError::from_db)?
        .into_iter()
        .fold(HashMap::new(), |mut count, link| {
            *count.entry(link.user_id).or_insert(0) += 1;
            count
        });
    let columns = vec![
        Column::new("userId", CellKind::Text),
        Column::new("email", CellKind::Text),
        Column::new("displayName", CellKind::Text),
        Column::new("status", CellKind::Text),
        Column::new("roles", CellKind::Text),
        Column::new("lastSignInAt", CellKind::Time),
        Column::new("secondFactor", CellKind::Text),
        Column::new("singleSignOnLinks", CellKind::Integer),
        Column::new("createdAt", CellKind::Time),
    ];
    let rows = users
        .into_iter()
        .map(|u| {
            let mut held = roles.remove(&u.id).unwrap_or_default();
            held.sort();
            vec![
                text(u.id.to_string()),
                text(u.email),
                text(u.display_name),
                text(u.status),
                text(held.join(" ")),
                last_sign_in.get(&u.id).copied().map_or(Cell::Empty, at),
                text(mfa.get(&u.id).cloned().unwrap_or_else(|| "NONE".into())),
                Cell::Integer(sso.get(&u.id).copied().unwrap_or(0) as i64),
                at(u.created_at),
            ]
        })
        .collect();
    Ok(Table { columns, rows })
}

/// Which audit events a report of `kind` takes.
fn audit_filter(kind: ReportKind, tenant: Uuid) -> Condition {
    let of_tenant = audit_event::Column::TenantId.eq(tenant);
    let prefixed = |prefixes: &[&str]| {
        prefixes.iter().fold(Condition::any(), |any, p| {
            if p.ends_with('.') {
                any.add(audit_event::Column::Action.starts_with(*p))
            } else {
                any.add(audit_event::Column::Action.eq(*p))
            }
        })
    };
    match kind {
        ReportKind::AccessReview => Condition::all().add(Expr::val(false)),
        ReportKind::PrivilegedActions => Condition::all().add(of_tenant).add(prefixed(&PRIVILEGED)),
        ReportKind::PolicyChanges => Condition::all()
            .add(of_tenant)
            .add(audit_event::Column::Action.starts_with("policy.")),
        // Lockouts are failed sign-ins whose reason is `locked`; a refresh token used twice
        // is recorded as detected theft.
        ReportKind::SignInFailures => Condition::all().add(of_tenant).add(
            Condition::any()
                .add(
                    Condition::all()
                        .add(
                            Condition::any()
                                .add(audit_event::Column::Action.starts_with("auth."))
                                .add(audit_event::Column::Action.starts_with("mfa.")),
                        )
                        .add(audit_event::Column::Outcome.ne("success")),
                )
                .add(audit_event::Column::Action.eq("auth.refresh_reuse")),
        ),
        // The platform's evidence keys sign every tenant's evidence: theirs too.
        ReportKind::KeyRotations => Condition::all().add(prefixed(&KEY_ACTIONS)).add(
            Condition::any().add(of_tenant).add(
                Condition::all()
                    .add(audit_event::Column::TenantId.is_null())
                    .add(audit_event::Column::Action.starts_with("evidence_key.")),
            ),
        ),
    }
}

/// The audit events of the period a report of `kind` takes, with their readable details
/// (the sealed personal data left out, subjects as pseudonymous ids).
async fn audit_rows(
    db: &DatabaseConnection,
    report: &compliance_report::Model,
    kind: ReportKind,
) -> ApiResult<Table> {
    let selected = audit_event::Entity::find()
        .filter(audit_filter(kind, report.tenant_id))
        .filter(audit_event::Column::CreatedAt.gte(report.period_from))
        .filter(audit_event::Column::CreatedAt.lt(report.period_to));
    let count = selected
        .clone()
        .count(db)
        .await
        .map_err(ApiError::from_db)?;
    if count > MAX_EVENTS {
        return Err(ApiError::invalid(
            "input.to",
            format!("more than {MAX_EVENTS} events in the period: ask for a shorter one"),
        ));
    }
    let rows = selected
        .order_by_asc(audit_event::Column::CreatedAt)
        .order_by_asc(audit_event::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let columns = vec![
        Column::new("at", CellKind::Time),
        Column::new("sequence", CellKind::Integer),
        Column::new("action", CellKind::Text),
        Column::new("outcome", CellKind::Text),
        Column::new("actorKind", CellKind::Text),
        Column::new("actorId", CellKind::Text),
        Column::new("subjectId", CellKind::Text),
        Column::new("targetType", CellKind::Text),
        Column::new("targetId", CellKind::Text),
        Column::new("requestId", CellKind::Text),
        Column::new("details", CellKind::Text),
        Column::new("chain", CellKind::Text),
        Column::new("chainHash", CellKind::Text),
    ];
    let rows = rows
        .into_iter()
        .map(|e| {
            // The platform's own events (its evidence keys) sit in the platform's chain,
            // not the tenant's: their sequence and hash are that chain's.
            let chain = if e.tenant_id.is_some() {
                "tenant"
            } else {
                "platform"
            };
            vec![
                at(e.created_at),
                e.chain_seq.map_or(Cell::Empty, Cell::Integer),
                text(e.action),
                text(e.outcome),
                text(e.actor_kind),
                id_cell(e.actor_id),
                id_cell(e.subject_id),
                text(e.target_type),
                id_cell(e.target_id),
                Cell::from(e.request_id),
                e.details.map_or(Cell::Empty, |d| {
                    Cell::Text(String::from_utf8_lossy(&evidence::canonical(&d)).into_owned())
                }),
                text(chain),
                Cell::from(e.chain_hash),
            ]
        })
        .collect();
    Ok(Table { columns, rows })
}

/// What the report's README says.
const README: &str = "# Compliance report\n\n\
- The report: `<kind>.csv` or `<kind>.pdf`.\n\
- `manifest.json`: what the report is (tenant, kind, SOC 2 criteria, period, when it was \
made, the audit chain's head then) and the report file's SHA-256, size and rows, signed \
with the portal's evidence key (Ed25519 over the RFC 8785 canonical JSON of the manifest \
without its `signature`).\n\
- `keys.json`: every evidence key the portal ever used, as it publishes them.\n\n\
To check it: hash the report file (`sha256sum`) and compare with `manifest.json`; check \
the manifest's signature against the key it names in `keys.json` (or the copy the portal \
publishes); `portal audit verify` checks an evidence pack of the same tenant, whose chain \
covers the events listed here up to the head the manifest names.\n";

/// Builds requested reports.
pub struct ComplianceReportJob {
    db: DatabaseConnection,
    signer: EvidenceSigner,
    files: FileStore,
}

impl ComplianceReportJob {
    /// The handler over `db`, signing with `signer`, keeping reports in `files`.
    pub fn new(db: DatabaseConnection, signer: EvidenceSigner, files: FileStore) -> Arc<Self> {
        Arc::new(Self { db, signer, files })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = JOB_KIND;

    /// The report's file (name, bytes) and rows.
    async fn write(
        &self,
        report: &compliance_report::Model,
        kind: ReportKind,
        format: Format,
        table: Table,
    ) -> ApiResult<(String, Vec<u8>, u64)> {
        let heading = Heading {
            title: kind.title().to_owned(),
            subtitle: Some(format!(
                "Tenant {} · {} to {} · SOC 2 {} · made {}",
                report.tenant_id,
                report
                    .period_from
                    .to_rfc3339_opts(SecondsFormat::Secs, true),
                report.period_to.to_rfc3339_opts(SecondsFormat::Secs, true),
                kind.criteria(),
                Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            )),
        };
        let scratch = self.files.scratch(format.extension());
        let path = scratch.path().to_path_buf();
        let rows = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut writer = TableWriter::create_with(format, &path, &table.columns, heading)?;
            for row in &table.rows {
                writer.row(row)?;
            }
            writer.finish()
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("writing a report: {e}")))?;
        let bytes = tokio::fs::read(scratch.path())
            .await
            .map_err(|e| ApiError::internal(format!("reading a report: {e}")))?;
        let name = format!("{}.{}", kind.file_stem(), format.extension());
        Ok((name, bytes, rows))
    }

    async fn build(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        report: &compliance_report::Model,
    ) -> ApiResult<()> {
        let kind = ReportKind::from_db(&report.kind)
            .ok_or_else(|| ApiError::internal("an unknown report kind"))?;
        let format = Format::from_db(&report.format)
            .ok_or_else(|| ApiError::internal("an unknown report format"))?;
        let table = match kind {
            ReportKind::AccessReview => access_review(&self.db, report.tenant_id).await?,
            _ => audit_rows(&self.db, report, kind).await?,
        };
        let (name, bytes, rows) = self.write(report, kind, format, table).await?;
        let (sequence, head_hash) = chain::head(&self.db, Some(report.tenant_id)).await?;
        let now = Utc::now();
        let mut manifest = Map::new();
        manifest.insert("type".into(), MANIFEST_TYPE.into());
        manifest.insert("tenant".into(), report.tenant_id.to_string().into());
        manifest.insert("report".into(), report.id.to_string().into());
        manifest.insert("kind".into(), kind.as_str().into());
        manifest.insert("title".into(), kind.title().into());
        manifest.insert("criteria".into(), kind.criteria().into());
        manifest.insert("periodFrom".into(), json!(report.period_from));
        manifest.insert("periodTo".into(), json!(report.period_to));
        manifest.insert("madeAt".into(), json!(now));
        manifest.insert(
            "auditHead".into(),
            json!({ "sequence": sequence, "hash": head_hash }),
        );
        manifest.insert(
            "file".into(),
            json!({
                "name": name,
                "sha256": hex::encode(Sha256::digest(&bytes)),
                "bytes": bytes.len(),
                "rows": rows,
            }),
        );
        let manifest = self.signer.sign(manifest).await?;
        let keys = evidence::published(&self.db).await?;
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        entries.insert(name.clone(), bytes);
        entries.insert(
            "manifest.json".into(),
            serde_json::to_vec_pretty(&manifest).map_err(|e| ApiError::internal(e.to_string()))?,
        );
        entries.insert(
            "keys.json".into(),
            serde_json::to_vec_pretty(&keys).map_err(|e| ApiError::internal(e.to_string()))?,
        );
        entries.insert("README.md".into(), README.as_bytes().to_vec());
        let zipped = tokio::task::spawn_blocking(move || portal_kit::archive::zip(&entries))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let file_id = Uuid::now_v7();
        let key = object_key("identity", report.tenant_id, file_id);
        let size = i64::try_from(zipped.len()).unwrap_or(i64::MAX);
        let sha256 = hex::encode(Sha256::digest(&zipped));
        self.files.put_bytes(&key, zipped).await?;
        let recorded = self
            .record(
                actor,
                meta,
                report,
                kind,
                (file_id, &key, size, &sha256),
                (rows, now),
            )
            .await;
        if !matches!(recorded, Ok(true)) {
            // Not recorded (an error, or another run finished first): the object would
            // have no row, so nothing would ever remove it.
            self.files.remove(&key).await.ok();
        }
        recorded.map(|_| ())
    }

    /// Records the stored report and makes it `READY`, in one transaction; whether it did
    /// (not when another run finished it first).
    async fn record(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        report: &compliance_report::Model,
        kind: ReportKind,
        (file_id, key, size, sha256): (Uuid, &str, i64, &str),
        (rows, now): (u64, DateTime<Utc>),
    ) -> ApiResult<bool> {
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        let claimed = compliance_report::Entity::update_many()
            .col_expr(
                compliance_report::Column::Status,
                Expr::value(status::READY),
            )
            .col_expr(compliance_report::Column::RowCount, Expr::value(rows))
            .col_expr(compliance_report::Column::FileId, Expr::value(file_id))
            .col_expr(compliance_report::Column::FinishedAt, Expr::value(now))
            .filter(compliance_report::Column::Id.eq(report.id))
            .filter(compliance_report::Column::Status.eq(status::RUNNING))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if claimed.rows_affected != 1 {
            return Ok(false);
        }
        file::ActiveModel {
            id: Set(file_id),
            tenant_id: Set(report.tenant_id),
            domain: Set("identity".to_owned()),
            owner_type: Set(FILE_OWNER.to_owned()),
            owner_id: Set(report.id),
            name: Set(format!(
                "{}-{}.zip",
                kind.file_stem(),
                report.period_from.format("%Y%m%d")
            )),
            content_type: Set("application/zip".to_owned()),
            size_bytes: Set(size),
            sha256: Set(sha256.to_owned()),
            row_count: Set(Some(rows)),
            storage_key: Set(key.to_owned()),
            access_selection: Set(None),
            created_by: Set(report.requested_by),
            created_at: Set(now),
            expires_at: Set(Some(now + self.files.retention())),
            key_version: Set(None),
            name_sealed: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        AuditEvent::success("compliance_report.complete", "compliance_report", report.id)
            .with_details(json!({
                "kind": kind.as_str(),
                "rows": rows,
                "fileId": file_id,
                "sha256": sha256,
            }))
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(true)
    }

    async fn fail(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        report: &compliance_report::Model,
        reason: &str,
    ) -> ApiResult<()> {
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let moved = compliance_report::Entity::update_many()
            .col_expr(
                compliance_report::Column::Status,
                Expr::value(status::FAILED),
            )
            .col_expr(compliance_report::Column::Failure, Expr::value(reason))
            .col_expr(
                compliance_report::Column::FinishedAt,
                Expr::value(Utc::now()),
            )
            .filter(compliance_report::Column::Id.eq(report.id))
            .filter(compliance_report::Column::Status.is_in([status::QUEUED, status::RUNNING]))
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if moved.rows_affected == 1 {
            AuditEvent::failure(
                "compliance_report.complete",
                "compliance_report",
                Some(report.id),
            )
            .with_details(json!({ "reason": reason }))
            .record(&txn, actor, meta)
            .await?;
        }
        txn.commit().await.map_err(ApiError::from_db)
    }
}

#[async_trait::async_trait]
impl JobHandler for ComplianceReportJob {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let retry = |err: ApiError| JobError::Retry(format!("{err:?}"));
        let id = job.required_id("reportId")?;
        let (Some(tenant), Some(actor)) = (job.tenant_id, job.principal.as_ref()) else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let meta = job.audit_meta();
        let report = match find(&self.db, tenant, id).await {
            Ok(report) => report,
            Err(ApiError::NotFound(_)) => {
                return Err(JobError::Permanent("the report no longer exists".into()));
            }
            Err(err) => return Err(retry(err)),
        };
        if report.status != status::QUEUED && report.status != status::RUNNING {
            return Ok(());
        }
        compliance_report::Entity::update_many()
            .col_expr(
                compliance_report::Column::Status,
                Expr::value(status::RUNNING),
            )
            .filter(compliance_report::Column::Id.eq(report.id))
            .filter(compliance_report::Column::Status.eq(status::QUEUED))
            .exec(&self.db)
            .await
            .map_err(|err| retry(ApiError::from_db(err)))?;
        match self.build(actor, &meta, &report).await {
            Ok(()) => Ok(()),
            // Too many events: retrying changes nothing.
            Err(ApiError::BadUserInput { message, .. }) => {
                self.fail(actor, &meta, &report, &message)
                    .await
                    .map_err(retry)?;
                Ok(())
            }
            Err(err) if job.attempt >= JOB_ATTEMPTS => {
                tracing::error!(report = %report.id, error = ?err, "a compliance report failed");
                self.fail(actor, &meta, &report, "the report could not be built")
                    .await
                    .map_err(retry)?;
                Ok(())
            }
            Err(err) => Err(retry(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_name_their_criteria() {
        for kind in ReportKind::ALL {
            assert_eq!(ReportKind::from_db(kind.as_str()), Some(kind));
            assert!(kind.criteria().starts_with("CC"));
        }
        assert_eq!(ReportKind::from_db("NOPE"), None);
    }
}
