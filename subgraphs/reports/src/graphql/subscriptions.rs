//! Reports' subscription fields: a run's progress as it happens. Event-driven
//! (`@events`): through the gateway each event is fetched as a `ReportRun` entity, as the
//! subscriber, so the row rule (the definition's owner, or the grant) holds per event.

use async_graphql::{Context, ID, Subscription as SubscriptionRoot};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::reports::report_run;
use portal_kit::context::{db, tenant as tenant_of};
use portal_kit::directives::events as event_source;
use portal_kit::subscription::{Updates, events, follow};
use portal_kit::{ApiError, ApiResult, input};

use super::types::ReportRun;
use super::visibility;
use crate::store;

/// Reports subscriptions.
pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// The run `id` as it is after each change: started, then succeeded (with its file) or
    /// failed (with why) — for as long as the caller may read its definition. `NOT_FOUND`
    /// when it may not.
    #[graphql(directive = event_source::apply("report_run".into(), "id".into(), None, None, None))]
    async fn report_run_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Updates<ReportRun>, ApiError> {
        let id = input::id("id", &id)?;
        let subscribed = events(ctx)?;
        let tenant = tenant_of(ctx)?;
        if visibility::load_readable_run(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("report run"));
        }
        let owner = visibility::owner_scope(ctx);
        let db = db(ctx)?.clone();
        Ok(follow(
            subscribed,
            tenant,
            move |event| event.subject_type == "report_run" && event.subject_id == Some(id),
            move |_event| {
                let db = db.clone();
                async move {
                    match readable_now(&db, tenant, owner, id).await? {
                        Some(row) => Ok(Some(ReportRun::from(row))),
                        None => Err(ApiError::NotFound("report run")),
                    }
                }
            },
        ))
    }
}

/// The run `id` as stored now, if its definition is owned by `owner` (`None`: anyone's).
async fn readable_now(
    db: &DatabaseConnection,
    tenant: Uuid,
    owner: Option<Uuid>,
    id: Uuid,
) -> ApiResult<Option<report_run::Model>> {
    let run = match store::run_in(db, tenant, id).await {
        Ok(run) => run,
        Err(ApiError::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err),
    };
    let definition = store::definition(db, tenant, run.definition_id).await?;
    Ok(owner
        .is_none_or(|o| o == definition.owner_id)
        .then_some(run))
}
