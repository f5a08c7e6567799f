//! The row rule of reports, applied on every read path (by id, list, entity reference,
//! `Account.reports`, runs) and before changes: a caller reads the report definitions it
//! owns — and their runs —, or every definition of its tenant with the
//! `ReportDefinition.all` grant the policies give staff; and the runs delivered to it. Any
//! other reads as missing.

use async_graphql::Context;
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_run};
use portal_kit::context::actor;
use portal_kit::loader::load;
use portal_kit::policy::REPORTS_ALL;
use portal_kit::{ApiError, ApiResult};

use super::loaders::{DefinitionsById, RunsById};

/// Whose definitions the caller reads: `None` for everybody's (the grant), else the
/// caller's own (no principal: nobody's, as the nil id owns nothing).
pub fn owner_scope(ctx: &Context<'_>) -> Option<Uuid> {
    let actor = actor(ctx);
    if actor.has_grant(REPORTS_ALL) {
        None
    } else {
        Some(actor.id.unwrap_or(Uuid::nil()))
    }
}

/// Those of `rows` the caller may read.
pub fn readable(
    ctx: &Context<'_>,
    rows: Vec<report_definition::Model>,
) -> Vec<report_definition::Model> {
    match owner_scope(ctx) {
        None => rows,
        Some(owner) => rows.into_iter().filter(|d| d.owner_id == owner).collect(),
    }
}

/// The definition `id` of the caller's tenant, if the caller may read it.
pub async fn load_readable_definition(
    ctx: &Context<'_>,
    id: Uuid,
) -> ApiResult<Option<report_definition::Model>> {
    let found = load::<DefinitionsById>(ctx, id).await?;
    Ok(readable(ctx, found.into_iter().collect()).pop())
}

/// `NOT_FOUND` unless the caller may read the definition `id`.
pub async fn require_readable_definition(ctx: &Context<'_>, id: Uuid) -> ApiResult<()> {
    load_readable_definition(ctx, id)
        .await?
        .map(|_| ())
        .ok_or(ApiError::NotFound("report definition"))
}

/// The run `id` of the caller's tenant, if the caller may read its definition — or it is
/// a `DELIVERY` run produced for the caller (read as them).
pub async fn load_readable_run(
    ctx: &Context<'_>,
    id: Uuid,
) -> ApiResult<Option<report_run::Model>> {
    let Some(run) = load::<RunsById>(ctx, id).await? else {
        return Ok(None);
    };
    if run.cause == "DELIVERY" && run.run_as.is_some() && run.run_as == actor(ctx).id {
        return Ok(Some(run));
    }
    let definition = load_readable_definition(ctx, run.definition_id).await?;
    Ok(definition.map(|_| run))
}
