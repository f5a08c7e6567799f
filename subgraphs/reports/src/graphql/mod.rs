//! Reports' GraphQL surface: `ReportDefinition` and `ReportRun` (`@key(fields: "id")`),
//! the `Account.reports` field it contributes to accounts' `Account`, and the report
//! queries and mutations.

mod access_log;
mod delivery;
mod federation;
mod loaders;
mod preview;
mod query_input;
mod subscriptions;
mod types;
mod visibility;

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object, Schema};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use uuid::Uuid;

use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta, references, tenant as tenant_of};
use portal_kit::error::MaskInternalErrors;
use portal_kit::gateway_client::LateGateway;
use portal_kit::input;
use portal_kit::loader::batch_loader;
use portal_kit::pagination::PageRequest;
use portal_kit::references::References;
use portal_kit::storage::FileStore;

use crate::domain::{self, ReportFormat, ReportKind};
use crate::store;

pub use query_input::{
    AggregateFunction, DatasetStep, ReportAggregate, ReportColumn, ReportQueryGql,
};

pub use delivery::{
    AddReportRecipientInput, ExternalDeliveryConsent, ReportDelivery, ReportDeliveryConnection,
    ReportRecipient,
};
pub use federation::{Account, User};
pub use loaders::{DefinitionsByAccount, DefinitionsById, RunsByDefinition, RunsById};
pub use types::{
    ReportDefinition, ReportDefinitionConnection, ReportDefinitionEdge, ReportFile,
    ReportFormatGql, ReportKindGql, ReportRun, ReportRunConnection, ReportRunEdge,
    ReportRunStatusGql,
};

/// The reports subgraph's executable schema.
pub type ReportsSchema = Schema<Query, Mutation, Subscription>;

pub use subscriptions::Subscription;

/// Builds the schema over `db`, checking references to other subgraphs' entities through
/// `references`, validating report queries against the supergraph through `gateway`,
/// linking run files kept in `files`, following runs' changes through `feed`, and opening
/// the personal data of its access log with the master key's `keys`; no socket needed
/// (tests call `execute` directly).
pub fn build_schema(
    db: DatabaseConnection,
    references: References,
    gateway: LateGateway,
    files: FileStore,
    feed: Arc<portal_kit::events::feed::EventFeed>,
    keys: Arc<dyn portal_kit::envelope::KeyProvider>,
) -> ReportsSchema {
    Schema::build(Query, Mutation, Subscription)
        .enable_federation()
        .enable_subscription_in_federation()
        .extension(MaskInternalErrors)
        .data(batch_loader::<DefinitionsById>(&db))
        .data(batch_loader::<RunsById>(&db))
        .data(batch_loader::<DefinitionsByAccount>(&db))
        .data(batch_loader::<RunsByDefinition>(&db))
        .data(batch_loader::<loaders::RecipientsByDefinition>(&db))
        .data(batch_loader::<loaders::DeliveriesByRun>(&db))
        .data(references)
        .data(gateway)
        .data(files)
        .data(feed)
        .data(keys)
        .data(db)
        .finish()
}

/// Reports queries.
pub struct Query;

#[Object]
impl Query {
    /// One report definition of the caller's tenant that the caller may read (its own;
    /// staff: any), or null.
    async fn report_definition(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<ReportDefinition>> {
        let id = input::id("id", &id)?;
        load_definition(ctx, id).await
    }

    /// Report definitions of the caller's tenant that the caller may read (its own;
    /// staff: all), oldest first.
    async fn report_definitions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ReportDefinitionConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let owner = visibility::owner_scope(ctx);
        let rows = store::list_definitions(db(ctx)?, tenant_of(ctx)?, owner, page).await?;
        Ok(rows.map(ReportDefinition::from).into())
    }

    /// A report's first rows (at most 100), read now as the caller within a time budget:
    /// of a definition the caller may read (`definitionId`), or of a query being written
    /// (`query`, as for a `CUSTOM` report). Field policies and row rules apply as to any
    /// query; a field the caller may not read is `BAD_USER_INPUT` naming it.
    async fn preview_report(
        &self,
        ctx: &Context<'_>,
        definition_id: Option<ID>,
        query: Option<ReportQueryGql>,
    ) -> ApiResult<preview::ReportPreview> {
        preview::preview(ctx, definition_id, query).await
    }

    /// The reports delivered to the caller (scheduled runs of reports they receive, each
    /// read as them), oldest first: the in-app side of delivery.
    async fn report_deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ReportDeliveryConnection> {
        delivery::deliveries_to_caller(ctx, first, after).await
    }

    /// One report run of the caller's tenant, or null. Reading one is recorded in the
    /// report's access log (`reportAccessLog`).
    async fn report_run(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<ReportRun>> {
        let id = input::id("id", &id)?;
        let found = visibility::load_readable_run(ctx, id).await?;
        if let Some(run) = &found {
            let details = serde_json::json!({ "definitionId": run.definition_id });
            access_log::record(
                ctx,
                "report_run.view",
                ("report_run", Some(run.id)),
                details,
            )
            .await?;
        }
        Ok(found.map(ReportRun::from))
    }

    /// Who previewed a report, asked for its runs, viewed them and downloaded their
    /// files — when, from where, and whether a component acted for them — oldest first.
    /// For tenant admins and auditors (the policies decide); `NOT_FOUND` for a definition
    /// of another tenant.
    async fn report_access_log(
        &self,
        ctx: &Context<'_>,
        definition_id: ID,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<access_log::ReportAccessEntryConnection> {
        access_log::access_log(ctx, &definition_id, first, after).await
    }

    /// Federation entity resolver for `ReportDefinition`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_report_definition_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<ReportDefinition>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_definition(ctx, id).await
    }

    /// Federation entity resolver for `ReportRun`: null outside the caller's tenant.
    #[graphql(entity)]
    async fn find_report_run_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<Option<ReportRun>> {
        let Ok(id) = Uuid::parse_str(id.as_str()) else {
            return Ok(None);
        };
        load_run(ctx, id).await
    }

    /// Federation entity resolver for `Account` (only the key is known here).
    #[graphql(entity)]
    async fn find_account_by_id(&self, id: ID) -> Account {
        Account::from_key(id)
    }

    /// Federation entity resolver for `User` (only the key is known here).
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> User {
        User::from_key(id)
    }
}

async fn load_definition(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<ReportDefinition>> {
    let found = visibility::load_readable_definition(ctx, id).await?;
    Ok(found.map(ReportDefinition::from))
}

async fn load_run(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<ReportRun>> {
    let found = visibility::load_readable_run(ctx, id).await?;
    Ok(found.map(ReportRun::from))
}

/// Input of `createReportDefinition`.
#[derive(InputObject)]
pub struct CreateReportDefinitionInput {
    /// Display name.
    pub name: String,
    /// What the report is about.
    pub kind: ReportKindGql,
    /// Output format.
    pub format: ReportFormatGql,
    /// Cron expression of 5 space-separated fields (minute hour day month weekday; names
    /// such as `MON`, ranges, lists, steps); omit for on-demand reports.
    pub schedule: Option<String>,
    /// IANA time zone the schedule is read in (UTC when omitted): `0 6 * * MON` in
    /// `Europe/Berlin` runs at 06:00 Berlin time in summer and winter.
    pub time_zone: Option<String>,
    /// Kind-specific parameters: a JSON object of at most 10 KB; `{}` when omitted.
    pub parameters: Option<Json<Value>>,
    /// The account the report is about (accounts' id).
    pub account_id: Option<ID>,
    /// What a `CUSTOM` report reads (other kinds read their own): checked against the
    /// supergraph, and read once as the caller, before it is saved.
    pub query: Option<ReportQueryGql>,
}

/// Input of `updateReportDefinition`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateReportDefinitionInput {
    /// New display name.
    pub name: Option<String>,
    /// New output format.
    pub format: Option<ReportFormatGql>,
    /// New cron expression; `null` removes the schedule (the report becomes on-demand).
    pub schedule: MaybeUndefined<String>,
    /// New time zone of the schedule.
    pub time_zone: Option<String>,
    /// `true` pauses the schedule (it starts no runs and shows no next run), `false`
    /// resumes it from the next occurrence (missed ones are not caught up).
    pub paused: Option<bool>,
    /// New parameters: a JSON object of at most 10 KB.
    pub parameters: Option<Json<Value>>,
    /// New query (`CUSTOM` reports), checked as on creation.
    pub query: Option<ReportQueryGql>,
}

/// The monthly documents a tenant can switch on.
#[derive(async_graphql::Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "MonthlyReport")]
pub enum MonthlyReportGql {
    /// A statement of every account: opening balance, the month's entries, closing
    /// balance and open invoices (PDF).
    Statements,
    /// Every account's usage per metric (PDF).
    UsageSummary,
}

/// Reports mutations. Each validates all input before writing anything and records an
/// audit event in the same transaction as the change.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Saves a report definition in the caller's tenant, owned by the caller.
    async fn create_report_definition(
        &self,
        ctx: &Context<'_>,
        input: CreateReportDefinitionInput,
    ) -> ApiResult<ReportDefinition> {
        let kind = ReportKind::from(input.kind);
        let query = input
            .query
            .as_ref()
            .map(ReportQueryGql::to_domain)
            .transpose()?;
        if query.is_some() && kind != ReportKind::Custom {
            return Err(portal_kit::ApiError::invalid(
                "input.query",
                "only CUSTOM reports take a query (the other kinds read their own)",
            ));
        }
        let mut new = store::NewDefinition {
            name: input::text("input.name", &input.name, domain::NAME_MAX)?,
            kind,
            format: ReportFormat::from(input.format),
            schedule: input
                .schedule
                .map(|raw| domain::schedule("input.schedule", &raw))
                .transpose()?,
            parameters: domain::parameters("input.parameters", input.parameters.map(|p| p.0))?,
            account_id: input
                .account_id
                .map(|id| input::id("input.accountId", &id))
                .transpose()?,
            query: None,
            time_zone: input::zone(
                "input.timeZone",
                input.time_zone.as_deref().unwrap_or("UTC"),
            )?
            .name()
            .to_owned(),
        };
        domain::check_monthly(kind, new.format, &new.parameters)?;
        references(ctx)?
            .require(
                actor(ctx),
                meta(ctx),
                "input.accountId",
                &domain::OPEN_ACCOUNT,
                new.account_id.as_slice(),
            )
            .await?;
        new.query = query_input::check(ctx, kind, query, new.account_id, &new.parameters).await?;
        Ok(
            store::create_definition(db(ctx)?, actor(ctx), meta(ctx), new)
                .await?
                .into(),
        )
    }

    /// Renames a report definition or changes its format, schedule or parameters.
    async fn update_report_definition(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateReportDefinitionInput,
    ) -> ApiResult<ReportDefinition> {
        let id = input::id("id", &id)?;
        let current = visibility::load_readable_definition(ctx, id)
            .await?
            .ok_or(portal_kit::ApiError::NotFound("report definition"))?;
        let schedule = match input.schedule {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(raw) => Some(Some(domain::schedule("input.schedule", &raw)?)),
        };
        let mut changes = store::DefinitionChanges {
            name: input
                .name
                .map(|name| input::text("input.name", &name, domain::NAME_MAX))
                .transpose()?,
            format: input.format.map(ReportFormat::from),
            schedule,
            parameters: input
                .parameters
                .map(|p| domain::parameters("input.parameters", Some(p.0)))
                .transpose()?,
            query: None,
            time_zone: input
                .time_zone
                .as_deref()
                .map(|zone| input::zone("input.timeZone", zone).map(|z| z.name().to_owned()))
                .transpose()?,
            paused: input.paused,
        };
        let kind = ReportKind::from_db(&current.kind);
        domain::check_monthly(
            kind,
            changes
                .format
                .unwrap_or_else(|| ReportFormat::from_db(&current.format)),
            changes.parameters.as_ref().unwrap_or(&current.parameters),
        )?;
        let query = input
            .query
            .as_ref()
            .map(ReportQueryGql::to_domain)
            .transpose()?;
        if query.is_some() && kind != ReportKind::Custom {
            return Err(portal_kit::ApiError::invalid(
                "input.query",
                "only CUSTOM reports take a query (the other kinds read their own)",
            ));
        }
        // What it will read with the changes applied is checked before they are saved.
        if query.is_some() || changes.parameters.is_some() {
            let saved = match query {
                Some(query) => Some(query),
                None => current
                    .query
                    .clone()
                    .and_then(|q| serde_json::from_value(q).ok()),
            };
            let parameters = changes.parameters.as_ref().unwrap_or(&current.parameters);
            let checked =
                query_input::check(ctx, kind, saved, current.account_id, parameters).await?;
            if input.query.is_some() {
                changes.query = checked;
            }
        }
        let updated =
            store::update_definition(db(ctx)?, actor(ctx), meta(ctx), id, changes).await?;
        Ok(updated.into())
    }

    /// Queues a run of a report definition the caller may read (status `QUEUED`): a job
    /// produces it as the definition's owner — through the gateway, with the owner's
    /// current roles — and records its file (`ReportRun.file`).
    async fn request_report_run(
        &self,
        ctx: &Context<'_>,
        definition_id: ID,
    ) -> ApiResult<ReportRun> {
        let definition_id = input::id("definitionId", &definition_id)?;
        visibility::require_readable_definition(ctx, definition_id).await?;
        let run = store::request_run(
            db(ctx)?,
            actor(ctx),
            meta(ctx),
            definition_id,
            store::Cause::Manual,
        )
        .await?;
        Ok(run.into())
    }

    /// Adds a recipient of a report's scheduled runs: a user of the tenant (each run is
    /// also produced for them, read as them, and delivered in the app and by email) or an
    /// external address (it gets the owner's file by email; the report must allow external
    /// delivery, and only the owner may add one: they vouch for it). A recipient already
    /// there is `CONFLICT`; a report has at most 100.
    async fn add_report_recipient(
        &self,
        ctx: &Context<'_>,
        definition_id: ID,
        input: AddReportRecipientInput,
    ) -> ApiResult<ReportRecipient> {
        delivery::add(ctx, &definition_id, input).await
    }

    /// Removes a recipient: it receives nothing more, and links already sent to it stop
    /// working. Returns the definition's id.
    async fn remove_report_recipient(&self, ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
        delivery::remove(ctx, &id).await
    }

    /// Switches one of the tenant's monthly documents on or off: statements of every
    /// account (PDF) or the usage summary, made on the 1st of each month at 00:00 in
    /// `timeZone` (default: the tenant's time zone) for the month before. Switching on
    /// makes the caller its owner the first time (the documents read as the owner; pick
    /// further recipients with `addReportRecipient`) and resumes it afterwards; switching
    /// off pauses it (null when it was never on). A tenant admin's decision (the policies
    /// say who).
    async fn set_monthly_report(
        &self,
        ctx: &Context<'_>,
        kind: MonthlyReportGql,
        enabled: bool,
        time_zone: Option<String>,
    ) -> ApiResult<Option<ReportDefinition>> {
        let mut zone = time_zone
            .as_deref()
            .map(|zone| input::zone("timeZone", zone).map(|z| z.name().to_owned()))
            .transpose()?;
        if zone.is_none() && enabled {
            // The tenant's own time zone (identity's setting), read as the caller.
            let gateway = ctx
                .data::<LateGateway>()
                .map_err(|_| portal_kit::ApiError::internal("gateway client missing"))?;
            let caller = actor(ctx)
                .clone()
                .delegated("reports", "reading the tenant's time zone");
            let read = portal_kit::gateway_client::GatewayClient::query(
                gateway,
                &caller,
                meta(ctx),
                "{ tenant { timeZone } }",
                Default::default(),
            )
            .await?;
            zone = read
                .data
                .as_ref()
                .and_then(|data| data["tenant"]["timeZone"].as_str())
                .map(str::to_owned);
        }
        let kind = match kind {
            MonthlyReportGql::Statements => ReportKind::MonthlyStatements,
            MonthlyReportGql::UsageSummary => ReportKind::UsageSummary,
        };
        let switched =
            store::switch_monthly(db(ctx)?, actor(ctx), meta(ctx), kind, enabled, zone).await?;
        Ok(switched.map(ReportDefinition::from))
    }

    /// Allows (or stops) delivering one report to external addresses — a tenant admin's
    /// decision, report by report (the policies say who). Stopping keeps the external
    /// recipients listed but sends them nothing, and their links stop working.
    async fn set_external_report_delivery(
        &self,
        ctx: &Context<'_>,
        definition_id: ID,
        allowed: bool,
    ) -> ApiResult<ReportDefinition> {
        let definition_id = input::id("definitionId", &definition_id)?;
        visibility::require_readable_definition(ctx, definition_id).await?;
        let updated = store::delivery::set_external_delivery(
            db(ctx)?,
            actor(ctx),
            meta(ctx),
            definition_id,
            allowed,
        )
        .await?;
        Ok(updated.into())
    }
}
