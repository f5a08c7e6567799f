//! Integrations' subscription field: an integration's state as it changes — health
//! (calls failing, the circuit breaker opening, credentials refused), sync runs starting
//! and finishing, configuration, status. Event-driven (`@events`): through the gateway
//! each event is fetched as an `Integration` entity, as the subscriber.

use async_graphql::{Context, ID, Subscription as SubscriptionRoot};

use portal_kit::context::{db, tenant as tenant_of};
use portal_kit::directives::events as event_source;
use portal_kit::loader::load;
use portal_kit::subscription::{Updates, events, follow};
use portal_kit::{ApiError, input};

use super::loaders::IntegrationsById;
use super::types::Integration;
use crate::store;

/// Integrations subscriptions.
pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// The integration `id` as it is after each change to its state: its health (a remote
    /// failing, the circuit breaker opening or closing, credentials refused), a sync run
    /// starting or finishing, its configuration or status. `NOT_FOUND` for an integration
    /// outside the caller's tenant.
    #[graphql(directive = event_source::apply("integration".into(), "id".into(), None, None, None))]
    async fn integration_status_changed(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Updates<Integration>, ApiError> {
        let id = input::id("id", &id)?;
        let subscribed = events(ctx)?;
        let tenant = tenant_of(ctx)?;
        if load::<IntegrationsById>(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("integration"));
        }
        let db = db(ctx)?.clone();
        Ok(follow(
            subscribed,
            tenant,
            move |event| event.subject_type == "integration" && event.subject_id == Some(id),
            move |_event| {
                let db = db.clone();
                async move {
                    match store::integration(&db, tenant, id).await {
                        Ok(row) => Ok(Some(Integration::from(row))),
                        Err(ApiError::NotFound(_)) => Err(ApiError::NotFound("integration")),
                        Err(err) => Err(err),
                    }
                }
            },
        ))
    }
}
