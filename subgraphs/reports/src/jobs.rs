//! The reports subgraph's jobs: producing a report run (`reports.run`), and starting one
//! when a definition's schedule comes due (`reports.scheduled`).
//!
//! A run reads as the report's owner *as they stand when it runs*: identity is asked for
//! their current status and roles (an owner who left, or whose tenant is suspended, gets
//! nothing: the run fails closed saying so), and the rows are read through the gateway
//! with a delegated credential — the owner's field policies, tenant and memberships apply
//! exactly as in the UI, and audit events of the run name the delegation. The run is
//! marked `RUNNING` before reading and `SUCCEEDED` only with its file recorded; a worker
//! killed mid-way leaves the job leased, and the next worker to pick it up after the lease
//! produces the run again from the start.

use std::sync::Arc;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::reports::report_definition;
use portal_kit::evidence::EvidenceSigner;
use portal_kit::export::Heading;
use portal_kit::gateway_client::GatewayClient;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::principal::{Principal, Standing};
use portal_kit::storage::FileStore;
use portal_kit::{ActorKind, ApiError};

use crate::domain::manifest;
use crate::domain::query::ReportQuery;
use crate::domain::{ReportFormat, ReportKind, ReportRunStatus};
use crate::engine::{self, Failure};
use crate::store::{self, RUN_ATTEMPTS, RunFile};

/// Produces queued report runs.
pub struct RunReport {
    db: DatabaseConnection,
    gateway: Arc<dyn GatewayClient>,
    standing: Arc<dyn Standing>,
    files: FileStore,
    evidence: EvidenceSigner,
}

impl RunReport {
    /// The handler, over `db`, reading through `gateway` as owners `standing` vouches for,
    /// keeping files in `files` and signing their manifests with `evidence`.
    pub fn new(
        db: DatabaseConnection,
        gateway: Arc<dyn GatewayClient>,
        standing: Arc<dyn Standing>,
        (files, evidence): (FileStore, EvidenceSigner),
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            gateway,
            standing,
            files,
            evidence,
        })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = store::RUN_JOB;
}

fn retry(err: ApiError) -> JobError {
    JobError::Retry(format!("{err:?}"))
}

/// The download name: `<report name>-<UTC date and time>.<ext>`, reduced to characters
/// safe in any file system and header.
fn file_name(report: &str, extension: &str, at: chrono::DateTime<Utc>) -> String {
    let name: String = report
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{name}-{}.{extension}", at.format("%Y%m%dT%H%M%SZ"))
}

#[async_trait::async_trait]
impl JobHandler for RunReport {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let id = job
            .payload
            .get("runId")
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or_else(|| JobError::Permanent("the job names no report run".into()))?;
        let (Some(tenant), Some(requester)) = (job.tenant_id, job.principal.as_ref()) else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let meta = job.audit_meta();
        let run = match store::run_in(&self.db, tenant, id).await {
            Ok(run) => run,
            Err(ApiError::NotFound(_)) => {
                return Err(JobError::Permanent(
                    "the report run no longer exists".into(),
                ));
            }
            Err(err) => return Err(retry(err)),
        };
        if !matches!(
            ReportRunStatus::from_db(&run.status),
            ReportRunStatus::Queued | ReportRunStatus::Running
        ) {
            // Finished by an earlier attempt.
            return Ok(());
        }
        let fail = |shown: String, detail: String| {
            let (db, run, meta) = (&self.db, &run, &meta);
            async move {
                store::fail_run(db, requester, meta, run, &shown, &detail)
                    .await
                    .map_err(retry)?;
                Err::<(), _>(JobError::Permanent(shown))
            }
        };
        let definition = match store::definition(&self.db, tenant, run.definition_id).await {
            Ok(found) => found,
            Err(ApiError::NotFound(_)) => {
                let why = "the report definition no longer exists".to_owned();
                return fail(why.clone(), why).await;
            }
            Err(err) => return Err(retry(err)),
        };
        // The owner as they stand now: a run never uses rights they have lost.
        let owner = self
            .standing
            .current(Principal {
                kind: ActorKind::User,
                tenant_id: tenant,
                id: definition.owner_id,
                session: None,
                key_roles: &[],
            })
            .await
            .map_err(retry)?;
        let Some(owner) = owner else {
            let why = "the report's owner is no longer active".to_owned();
            return fail(why.clone(), why).await;
        };
        let actor = owner.delegated("reports", format!("report run {}", run.id));
        let format = ReportFormat::from_db(&definition.format);
        let table = engine::table_format(format);
        let saved: Option<ReportQuery> = match &definition.query {
            Some(value) => match serde_json::from_value(value.clone()) {
                Ok(query) => Some(query),
                Err(err) => {
                    return fail(
                        "the report's saved query cannot be read".into(),
                        err.to_string(),
                    )
                    .await;
                }
            },
            None => None,
        };
        let compiled = match engine::compile_now(
            self.gateway.as_ref(),
            ReportKind::from_db(&definition.kind),
            saved,
            definition.account_id,
            &definition.parameters,
        )
        .await
        {
            Ok(compiled) => compiled,
            Err(err) => {
                let failure = Failure::from(&err);
                if failure.transient && job.attempt < RUN_ATTEMPTS {
                    return Err(JobError::Retry(failure.detail));
                }
                return fail(failure.shown, failure.detail).await;
            }
        };
        let started = store::start_run(
            &self.db,
            &actor,
            &meta,
            &run,
            (definition.version, format.as_str()),
        )
        .await
        .map_err(retry)?;
        if !started {
            return Ok(());
        }
        let file_id = Uuid::now_v7();
        let produced = engine::produce(
            self.gateway.as_ref(),
            &self.files,
            (&actor, &meta),
            &compiled,
            (table, heading(&definition, Utc::now())),
            (tenant, file_id),
        )
        .await;
        let produced = match produced {
            Ok(produced) => produced,
            Err(failure) if failure.transient && job.attempt < RUN_ATTEMPTS => {
                return Err(JobError::Retry(failure.detail));
            }
            Err(failure) => return fail(failure.shown, failure.detail).await,
        };
        let now = Utc::now();
        let key = produced.stored.key.clone();
        let name = file_name(&definition.name, table.extension(), now);
        let rows = i64::try_from(produced.rows).unwrap_or(i64::MAX);
        let facts = manifest::Facts {
            tenant_id: tenant,
            run_id: run.id,
            definition: (definition.id, definition.version),
            name: &definition.name,
            cause: &run.cause,
            run_as: definition.owner_id,
            generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            file: (
                &name,
                table.content_type(),
                produced.stored.size,
                &produced.stored.sha256,
                rows,
            ),
        };
        let signed = match self.evidence.sign(manifest::body(&facts)).await {
            Ok(signed) => signed.to_string(),
            Err(err) => {
                self.files.remove(&key).await.ok();
                return Err(retry(err));
            }
        };
        let recorded = store::complete_run(
            &self.db,
            &actor,
            &meta,
            &run,
            RunFile {
                id: file_id,
                name,
                content_type: table.content_type().to_owned(),
                stored: produced.stored,
                rows,
                expires_at: now + self.files.retention(),
                manifest: signed,
            },
        )
        .await;
        match recorded {
            Ok(true) => Ok(()),
            outcome => {
                // Not recorded: the object would have no row, so nothing would delete it.
                self.files.remove(&key).await.ok();
                outcome.map(|_| ()).map_err(retry)
            }
        }
    }
}

/// What a PDF says above its table: the report's name, and when (in the report's time
/// zone) and from which version of its definition it was made.
fn heading(definition: &report_definition::Model, now: chrono::DateTime<Utc>) -> Heading {
    let generated = match definition.time_zone.parse::<chrono_tz::Tz>() {
        Ok(zone) => format!(
            "{} ({})",
            now.with_timezone(&zone).format("%Y-%m-%d %H:%M"),
            zone.name()
        ),
        Err(_) => now.format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    Heading {
        title: definition.name.clone(),
        subtitle: Some(format!(
            "Generated {generated} · definition version {}",
            definition.version
        )),
    }
}

/// Starts a run of a definition whose schedule came due: records it (`SCHEDULED`, asked
/// for by nobody) and enqueues its `reports.run` job, which reads as the owner. A paused
/// or unscheduled definition (changed since the occurrence was enqueued) starts nothing.
pub struct ScheduledReport {
    db: DatabaseConnection,
}

impl ScheduledReport {
    /// The handler, over `db`.
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { db })
    }

    /// The job kind it handles.
    pub const KIND: &'static str = store::SCHEDULE_JOB;
}

#[async_trait::async_trait]
impl JobHandler for ScheduledReport {
    async fn run(&self, job: &JobContext) -> Result<(), JobError> {
        let id = job
            .payload
            .get("definitionId")
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or_else(|| JobError::Permanent("the job names no report definition".into()))?;
        let (Some(tenant), Some(owner)) = (job.tenant_id, job.principal.as_ref()) else {
            return Err(JobError::Permanent("the job acts for nobody".into()));
        };
        let definition = match store::definition(&self.db, tenant, id).await {
            Ok(found) => found,
            Err(ApiError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(retry(err)),
        };
        if definition.paused || definition.schedule.is_none() {
            return Ok(());
        }
        store::request_run(
            &self.db,
            owner,
            &job.audit_meta(),
            id,
            store::Cause::Scheduled,
        )
        .await
        .map(|_| ())
        .map_err(retry)
    }
}
