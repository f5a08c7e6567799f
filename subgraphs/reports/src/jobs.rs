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

use portal_entities::reports::{report_definition, report_recipient};
use portal_kit::evidence::EvidenceSigner;
use portal_kit::export::Heading;
use portal_kit::gateway_client::GatewayClient;
use portal_kit::jobs::runner::{JobContext, JobError, JobHandler};
use portal_kit::mail::Email;
use portal_kit::principal::{Principal, Standing};
use portal_kit::secret::DataKey;
use portal_kit::storage::FileStore;
use portal_kit::{Actor, ActorKind, ApiError, RequestMeta};

use crate::domain::manifest;
use crate::domain::query::ReportQuery;
use crate::domain::{ReportFormat, ReportKind, ReportRunStatus};
use crate::engine::{self, Failure};
use crate::monthly;
use crate::store::{self, RUN_ATTEMPTS, RunFile, delivery};

/// Produces queued report runs.
pub struct RunReport {
    db: DatabaseConnection,
    gateway: Arc<dyn GatewayClient>,
    standing: Arc<dyn Standing>,
    files: FileStore,
    evidence: EvidenceSigner,
    mail_key: DataKey,
}

impl RunReport {
    /// The handler, over `db`, reading through `gateway` as owners `standing` vouches for,
    /// keeping files in `files`, signing their manifests with `evidence` and sealing the
    /// emails that deliver them with `mail_key`.
    pub fn new(
        db: DatabaseConnection,
        gateway: Arc<dyn GatewayClient>,
        standing: Arc<dyn Standing>,
        (files, evidence, mail_key): (FileStore, EvidenceSigner, DataKey),
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            gateway,
            standing,
            files,
            evidence,
            mail_key,
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
        let id = job.required_id("runId")?;
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
        // A delivery run reads as its recipient, any other as the owner.
        let recipient = match run.recipient_id {
            Some(id) => match delivery::recipient(&self.db, tenant, id).await {
                Ok(found) => Some(found),
                Err(ApiError::NotFound(_)) => {
                    let why = "the recipient no longer receives this report".to_owned();
                    return fail(why.clone(), why).await;
                }
                Err(err) => return Err(retry(err)),
            },
            None => None,
        };
        let (reader, who) = match recipient.as_ref().and_then(|r| r.user_id) {
            Some(user) => (user, "recipient"),
            None => (definition.owner_id, "owner"),
        };
        // As they stand now: a run never uses rights they have lost.
        let standing = self
            .standing
            .current(Principal {
                kind: ActorKind::User,
                tenant_id: tenant,
                id: reader,
                session: None,
                key_roles: &[],
            })
            .await
            .map_err(retry)?;
        let Some(standing) = standing else {
            let why = format!("the report's {who} is no longer active");
            return fail(why.clone(), why).await;
        };
        let actor = standing.delegated("reports", format!("report run {}", run.id));
        let format = ReportFormat::from_db(&definition.format);
        let table = engine::table_format(format);
        let kind = ReportKind::from_db(&definition.kind);
        // What the report reads, kept to leave out columns a recipient may not read.
        let mut full_query = None;
        let compiled = if kind.is_monthly() {
            None
        } else {
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
            full_query = crate::domain::kinds::query_of(
                kind,
                saved.clone(),
                definition.account_id,
                &definition.parameters,
            )
            .ok();
            match engine::compile_now(
                self.gateway.as_ref(),
                kind,
                saved,
                definition.account_id,
                &definition.parameters,
            )
            .await
            {
                Ok(compiled) => Some(compiled),
                Err(err) => {
                    let failure = Failure::from(&err);
                    if failure.transient && job.attempt < RUN_ATTEMPTS {
                        return Err(JobError::Retry(failure.detail));
                    }
                    return fail(failure.shown, failure.detail).await;
                }
            }
        };
        let zone: chrono_tz::Tz = definition.time_zone.parse().unwrap_or(chrono_tz::UTC);
        // The month a monthly document is about: the one before the occurrence's.
        let month = match kind.is_monthly() {
            true => match monthly::Month::to_report(run.created_at, zone, &definition.parameters) {
                Some(month) => Some(month),
                None => {
                    let why = "the month to report cannot be worked out".to_owned();
                    return fail(why.clone(), why).await;
                }
            },
            false => None,
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
        let mut heading = heading(&definition, Utc::now());
        let reader_of = (&actor, &meta);
        let mut access_selection = match (&compiled, kind) {
            (Some(compiled), _) => compiled.access_selection.clone(),
            (None, ReportKind::MonthlyStatements) => Some(monthly::STATEMENTS_ACCESS.to_owned()),
            (None, _) => Some(monthly::USAGE_ACCESS.to_owned()),
        };
        let produced = match (compiled, month) {
            (Some(compiled), _) => {
                let first = engine::produce(
                    self.gateway.as_ref(),
                    &self.files,
                    reader_of,
                    &compiled,
                    (table, heading.clone()),
                    (tenant, file_id),
                )
                .await;
                // A recipient gets the report without the columns they may not read (the
                // owner's own run fails instead: its columns are what the owner chose).
                let trimmed = match (&first, &recipient, &full_query) {
                    (Err(failure), Some(_), Some(query)) if !failure.denied.is_empty() => {
                        query.without_fields(&failure.denied)
                    }
                    _ => None,
                };
                match trimmed {
                    None => first,
                    Some((trimmed, left_out)) => {
                        let again = engine::compile_now(
                            self.gateway.as_ref(),
                            ReportKind::Custom,
                            Some(trimmed),
                            None,
                            &serde_json::Value::Null,
                        )
                        .await;
                        match again {
                            Ok(again) => {
                                access_selection = again.access_selection.clone();
                                heading.subtitle = Some(format!(
                                    "{} · left out, not visible to you: {}",
                                    heading.subtitle.unwrap_or_default(),
                                    left_out.join(", ")
                                ));
                                engine::produce(
                                    self.gateway.as_ref(),
                                    &self.files,
                                    reader_of,
                                    &again,
                                    (table, heading),
                                    (tenant, file_id),
                                )
                                .await
                            }
                            Err(err) => Err(Failure::from(&err)),
                        }
                    }
                }
            }
            (None, Some(month)) => {
                heading.subtitle = Some(format!(
                    "{} · {}",
                    month.label(),
                    heading.subtitle.unwrap_or_default()
                ));
                if kind == ReportKind::MonthlyStatements {
                    monthly::produce_statements(
                        self.gateway.as_ref(),
                        &self.files,
                        reader_of,
                        (&month, heading),
                        (tenant, file_id),
                    )
                    .await
                } else {
                    monthly::produce_usage_summary(
                        self.gateway.as_ref(),
                        &self.files,
                        reader_of,
                        (&month, heading, table),
                        (tenant, file_id),
                    )
                    .await
                }
            }
            (None, None) => Err(Failure {
                shown: "the report could not be produced".into(),
                detail: "neither a query nor a month".into(),
                transient: false,
                denied: Vec::new(),
            }),
        };
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
            run_as: reader,
            generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            file: (
                &name,
                table.content_type(),
                produced.stored.size,
                &produced.stored.sha256,
                rows,
            ),
        };
        let expires_at = match self.tenant_retention(&actor, &meta).await {
            Ok(Some(days)) => now + chrono::Duration::days(days),
            Ok(None) => now + self.files.retention(),
            Err(err) => {
                self.files.remove(&key).await.ok();
                return Err(retry(err));
            }
        };
        let signed = match self.evidence.sign(manifest::body(&facts)).await {
            Ok(signed) => signed.to_string(),
            Err(err) => {
                self.files.remove(&key).await.ok();
                return Err(retry(err));
            }
        };
        let sent = Sent {
            definition: &definition,
            cause: &run.cause,
            rows,
            generated: now,
            size: produced.stored.size,
            expires_at,
        };
        let planned = match self.plan_deliveries(&actor, &meta, recipient, &sent).await {
            Ok(planned) => planned,
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
                expires_at,
                manifest: signed,
                access_selection,
            },
            store::Deliver {
                planned,
                mail_key: &self.mail_key,
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

/// Largest file sent as an email attachment; larger ones are linked.
pub const ATTACH_MAX_BYTES: i64 = 5 * 1024 * 1024;

/// What a delivery says about the file it delivers.
struct Sent<'a> {
    definition: &'a report_definition::Model,
    cause: &'a str,
    rows: i64,
    generated: chrono::DateTime<Utc>,
    size: i64,
    expires_at: chrono::DateTime<Utc>,
}

impl RunReport {
    /// The tenant's file retention in days (identity's setting, read as the reader); `None`
    /// for the platform's default.
    async fn tenant_retention(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
    ) -> Result<Option<i64>, ApiError> {
        let read = self
            .gateway
            .query(
                actor,
                meta,
                "{ tenant { fileRetentionDays } }",
                Default::default(),
            )
            .await?;
        Ok(read
            .data
            .as_ref()
            .and_then(|data| data["tenant"]["fileRetentionDays"].as_i64())
            .filter(|days| *days > 0))
    }

    /// Who gets this run's file: a delivery run's recipient; for a scheduled run, the
    /// owner (when a recipient) and the external addresses (when a tenant admin allows
    /// them); nobody for a run someone asked for. Each user's address is read through the
    /// gateway as the reader (`me`), as identity shows it to them.
    async fn plan_deliveries(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        recipient: Option<report_recipient::Model>,
        sent: &Sent<'_>,
    ) -> Result<Vec<delivery::Planned>, ApiError> {
        let definition = sent.definition;
        let recipients = match (recipient, sent.cause) {
            (Some(recipient), _) => vec![recipient],
            (None, "SCHEDULED") => {
                delivery::recipients_of(&self.db, definition.tenant_id, &[definition.id])
                    .await?
                    .into_iter()
                    .filter(|r| {
                        r.user_id == Some(definition.owner_id)
                            || (r.email.is_some()
                                && definition.external_delivery_allowed_by.is_some())
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        if recipients.is_empty() {
            return Ok(Vec::new());
        }
        let me = self
            .gateway
            .query(
                actor,
                meta,
                "{ me { email displayName } }",
                Default::default(),
            )
            .await?;
        let me = me.data.unwrap_or_default();
        let reader_email = me["me"]["email"].as_str().map(str::to_owned);
        let reader_name = me["me"]["displayName"]
            .as_str()
            .unwrap_or("A colleague")
            .to_owned();
        let via = if sent.size <= ATTACH_MAX_BYTES {
            delivery::Via::Attachment
        } else {
            delivery::Via::Link
        };
        Ok(recipients
            .into_iter()
            .map(|recipient| {
                let id = Uuid::now_v7();
                let link = (via == delivery::Via::Link)
                    .then(|| self.files.delivery_link(id, sent.expires_at));
                let (to, shared_by) = match &recipient.email {
                    Some(address) => (Some(address.clone()), Some(reader_name.as_str())),
                    None => (reader_email.clone(), None),
                };
                let email = to.map(|to| Email {
                    to,
                    subject: format!("Report: {}", definition.name),
                    text: delivery_text(sent, shared_by, link.as_deref()),
                    unsubscribe: None,
                });
                delivery::Planned {
                    id,
                    recipient,
                    email,
                    via,
                }
            })
            .collect())
    }
}

/// The text of a delivery email.
fn delivery_text(sent: &Sent<'_>, shared_by: Option<&str>, link: Option<&str>) -> String {
    let definition = sent.definition;
    let zone: chrono_tz::Tz = definition.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let mut text = match shared_by {
        Some(owner) => format!(
            "{owner} shares the report \"{}\" with you.\n\n",
            definition.name
        ),
        None => format!("Your report \"{}\" is ready.\n\n", definition.name),
    };
    text.push_str(&format!(
        "Generated: {} ({})\nRows: {}\nDefinition version: {}\n\n",
        sent.generated.with_timezone(&zone).format("%Y-%m-%d %H:%M"),
        zone.name(),
        sent.rows,
        definition.version
    ));
    match link {
        Some(link) => text.push_str(&format!(
            "The file is too large to attach. Download it (until {} UTC):\n{link}\n\n",
            sent.expires_at.format("%Y-%m-%d %H:%M")
        )),
        None => text.push_str("The file is attached.\n\n"),
    }
    if shared_by.is_none() {
        text.push_str(
            "It is also in the portal under your report deliveries, with its signed \
             integrity manifest.\n",
        );
    }
    text.push_str("You receive this because you are a recipient of this report.\n");
    text
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
        let id = job.required_id("definitionId")?;
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
