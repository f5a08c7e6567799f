//! Recipients and deliveries on the wire: who receives a report's scheduled runs, the
//! tenant admin's consent to external addresses, what was delivered where, and the
//! caller's own deliveries (the in-app inbox).

use async_graphql::{ComplexObject, Context, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::reports::{report_definition, report_delivery, report_recipient};
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiError, ApiResult, input};

use super::federation::User;
use super::types::ReportRun;
use super::{references, visibility};
use crate::domain;
use crate::store::delivery::{self as store, NewRecipient};

/// Someone who receives a report's scheduled runs.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ReportRecipient {
    /// Its id (for `removeReportRecipient`).
    pub id: ID,
    /// An external address (null for a user of the tenant). It receives the owner's run,
    /// exactly what the owner may see, while a tenant admin allows external delivery.
    pub email: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    user_id: Option<Uuid>,
    #[graphql(skip)]
    created_by: Uuid,
    #[graphql(skip)]
    vouched_by: Option<Uuid>,
}

impl From<report_recipient::Model> for ReportRecipient {
    fn from(row: report_recipient::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            email: row.email,
            created_at: row.created_at,
            user_id: row.user_id,
            created_by: row.created_by,
            vouched_by: row.vouched_by,
        }
    }
}

#[ComplexObject]
impl ReportRecipient {
    /// A user of the tenant (each scheduled run is produced for them, read as them: they
    /// receive only what they may see); null for an external address.
    async fn user(&self) -> Option<User> {
        self.user_id.map(User::stub)
    }

    /// Who added it.
    async fn added_by(&self) -> User {
        User::stub(self.created_by)
    }

    /// The owner who vouched for an external address.
    async fn vouched_by(&self) -> Option<User> {
        self.vouched_by.map(User::stub)
    }
}

/// A tenant admin's consent to deliver one report to external addresses.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ExternalDeliveryConsent {
    /// When it was given.
    pub allowed_at: DateTime<Utc>,
    #[graphql(skip)]
    allowed_by: Uuid,
}

#[ComplexObject]
impl ExternalDeliveryConsent {
    /// The tenant admin who gave it.
    async fn allowed_by(&self) -> User {
        User::stub(self.allowed_by)
    }
}

/// The consent recorded on a definition, if any.
pub fn consent(row: &report_definition::Model) -> Option<ExternalDeliveryConsent> {
    Some(ExternalDeliveryConsent {
        allowed_at: row.external_delivery_allowed_at?,
        allowed_by: row.external_delivery_allowed_by?,
    })
}

/// One run's file sent to one recipient.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct ReportDelivery {
    /// Its id.
    pub id: ID,
    /// The address the email went to (null when the user has none).
    pub email: Option<String>,
    /// `ATTACHMENT` (the file was in the email) or `LINK` (too large: the email linked to it).
    pub via: String,
    /// When it was sent.
    pub delivered_at: DateTime<Utc>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    run_id: Uuid,
    #[graphql(skip)]
    user_id: Option<Uuid>,
}

impl From<report_delivery::Model> for ReportDelivery {
    fn from(row: report_delivery::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            email: row.email,
            via: row.via,
            delivered_at: row.created_at,
            uuid: row.id,
            run_id: row.run_id,
            user_id: row.user_id,
        }
    }
}

impl Node for ReportDelivery {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl ReportDelivery {
    /// The user it went to (null for an external address).
    async fn user(&self) -> Option<User> {
        self.user_id.map(User::stub)
    }

    /// The run delivered — its file downloads in the app (null if the caller may not read
    /// it).
    async fn run(&self, ctx: &Context<'_>) -> ApiResult<Option<ReportRun>> {
        let found = visibility::load_readable_run(ctx, self.run_id).await?;
        Ok(found.map(ReportRun::from))
    }
}

portal_kit::connection!(ReportDeliveryConnection, ReportDeliveryEdge, ReportDelivery);

/// `Query.reportDeliveries`: what was delivered to the caller, oldest first.
pub async fn deliveries_to_caller(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<ReportDeliveryConnection> {
    let page = PageRequest::parse(first, after.as_deref())?;
    let caller = actor(ctx).principal()?;
    let rows = store::deliveries_to(db(ctx)?, tenant_of(ctx)?, caller, page).await?;
    Ok(rows.map(ReportDelivery::from).into())
}

/// Input of `addReportRecipient`: exactly one of `userId` and `email`.
#[derive(InputObject)]
pub struct AddReportRecipientInput {
    /// A user of the tenant.
    pub user_id: Option<ID>,
    /// An external address (the report must allow external delivery, and only its owner
    /// may add one: they vouch for it).
    pub email: Option<String>,
}

/// `Mutation.addReportRecipient`.
pub async fn add(
    ctx: &Context<'_>,
    definition_id: &ID,
    input: AddReportRecipientInput,
) -> ApiResult<ReportRecipient> {
    let definition_id = input::id("definitionId", definition_id)?;
    visibility::require_readable_definition(ctx, definition_id).await?;
    let who = match (input.user_id, input.email) {
        (Some(user), None) => {
            let user = input::id("input.userId", &user)?;
            references(ctx)?
                .require(
                    actor(ctx),
                    meta(ctx),
                    "input.userId",
                    &portal_kit::references::CURRENT_USER,
                    &[user],
                )
                .await?;
            NewRecipient::User(user)
        }
        (None, Some(email)) => NewRecipient::Email(domain::recipient_email("input.email", &email)?),
        _ => {
            return Err(ApiError::invalid(
                "input",
                "give exactly one of `userId` and `email`",
            ));
        }
    };
    let created = store::add_recipient(db(ctx)?, actor(ctx), meta(ctx), definition_id, who).await?;
    Ok(created.into())
}

/// `Mutation.removeReportRecipient`: the recipient's definition must be readable.
pub async fn remove(ctx: &Context<'_>, id: &ID) -> ApiResult<ID> {
    let id = input::id("id", id)?;
    let found = store::recipient(db(ctx)?, tenant_of(ctx)?, id).await?;
    visibility::require_readable_definition(ctx, found.definition_id).await?;
    store::remove_recipient(db(ctx)?, actor(ctx), meta(ctx), &found).await?;
    Ok(ID(found.definition_id.to_string()))
}
