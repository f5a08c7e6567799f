//! Accounts' subscription fields. The row rule of every read path holds per event: a
//! caller who loses sight of the account (removed as a member) gets `NOT_FOUND` and the
//! stream ends.

use async_graphql::{Context, ID, Subscription as SubscriptionRoot};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::accounts::account;
use portal_kit::context::{db, tenant as tenant_of};
use portal_kit::directives::events as event_source;
use portal_kit::subscription::{Updates, events, follow};
use portal_kit::{ApiError, ApiResult, input};

use super::types::{Account, load_visible, viewer};
use crate::domain::Viewer;
use crate::store;

/// Accounts subscriptions.
pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// The account `id` as it is after each change to it (name, status, members), for as
    /// long as the caller may see it. `NOT_FOUND` when it may not (now or later: the
    /// stream then ends).
    #[graphql(directive = event_source::apply("account".into(), "id".into(), None, None, None))]
    async fn account_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Updates<Account>, ApiError> {
        let id = input::id("id", &id)?;
        let subscribed = events(ctx)?;
        let tenant = tenant_of(ctx)?;
        if load_visible(ctx, id).await?.is_none() {
            return Err(ApiError::NotFound("account"));
        }
        let db = db(ctx)?.clone();
        let viewer = viewer(ctx);
        Ok(follow(
            subscribed,
            tenant,
            move |event| event.subject_type == "account" && event.subject_id == Some(id),
            move |_event| {
                let db = db.clone();
                async move {
                    match visible_now(&db, tenant, viewer, id).await? {
                        Some(row) => Ok(Some(Account::from(row))),
                        None => Err(ApiError::NotFound("account")),
                    }
                }
            },
        ))
    }
}

/// The account `id` as stored now, if `viewer` may see it (outside a request: no
/// DataLoader to batch through).
async fn visible_now(
    db: &DatabaseConnection,
    tenant: Uuid,
    viewer: Viewer,
    id: Uuid,
) -> ApiResult<Option<account::Model>> {
    let row = match store::account(db, tenant, id).await {
        Ok(row) => row,
        Err(ApiError::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err),
    };
    let members = match viewer {
        Viewer::Member(user) if row.owner_id != user => {
            store::members_of_accounts(db, tenant, [id])
                .await?
                .remove(&id)
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    Ok(viewer.sees(row.owner_id, &members).then_some(row))
}
