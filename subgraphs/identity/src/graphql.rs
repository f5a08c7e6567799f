//! Identity's GraphQL surface (types in [`crate::types`]): the `me`,
//! `tenant`, `user`, `users` and `roles` queries (plus `auditEvents` from [`crate::audit`]);
//! create/update mutations, `createTenant` and role assignment.

use async_graphql::{
    Context, ID, InputObject, MaybeUndefined, MergedObject, MergedSubscription, Object, Schema,
};
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_kit::ApiResult;
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::error::MaskInternalErrors;
use portal_kit::events::feed::EventFeed;
use portal_kit::input;
use portal_kit::loader::{BatchLoader, batch_loader, load, registered};
use portal_kit::pagination::PageRequest;

use crate::api_key_api::{ApiKeyMutation, ApiKeyQuery};
use crate::audit::{AuditQuery, EvidenceMutation, EvidenceQuery};
use crate::compliance_report_api::{ComplianceReportMutation, ComplianceReportQuery};
use crate::domain;
use crate::jobs_api::{JobMutation, JobQuery, JobSubscription};
use crate::offboarding_api::{OffboardingMutation, OffboardingQuery};
use crate::oidc_api::{OidcMutation, OidcQuery};
use crate::policy_api::{PolicyMutation, PolicyQuery};
use crate::retention_api::{RetentionMutation, RetentionQuery};
use crate::session_api::{SessionMutation, SessionQuery};
use crate::sessions::Authenticator;
use crate::store;
use crate::subject_request_api::{SubjectRequestMutation, SubjectRequestQuery};
pub use crate::types::{
    DELETED_USER_NAME, Role, RoleConnection, RoleEdge, RolesOfUsers, Tenant, User, UserConnection,
    UserEdge, UserStatusGql, UsersById,
};

/// The identity subgraph's executable schema.
pub type IdentitySchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema over `db`, signing in through `authenticator`, following committed
/// changes through `feed`, linking evidence packs kept in `files` and keeping records for
/// as long as `retention` says; no socket needed (tests call `execute` directly).
pub fn build_schema(
    db: DatabaseConnection,
    authenticator: Arc<Authenticator>,
    feed: Arc<EventFeed>,
    (files, retention): (
        portal_kit::storage::FileStore,
        portal_kit::retention::Engine,
    ),
) -> IdentitySchema {
    Schema::build_with_ignore_name_conflicts(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
        portal_kit::scalars::SHARED_SCALARS,
    )
    .enable_federation()
    .enable_subscription_in_federation()
    .extension(MaskInternalErrors)
    .data(authenticator)
    .data(feed)
    .data(files)
    .data(retention)
    .data(batch_loader::<UsersById>(&db))
    .data(batch_loader::<RolesOfUsers>(&db))
    .data(db)
    .finish()
}

/// Identity queries: the core ones and the audit trail.
#[derive(MergedObject, Default)]
pub struct Query(
    CoreQuery,
    AuditQuery,
    EvidenceQuery,
    ComplianceReportQuery,
    OffboardingQuery,
    RetentionQuery,
    SubjectRequestQuery,
    SessionQuery,
    ApiKeyQuery,
    JobQuery,
    OidcQuery,
    PolicyQuery,
);

/// Identity subscriptions.
#[derive(MergedSubscription, Default)]
pub struct Subscription(JobSubscription);

/// Identity's own queries and entity resolvers.
#[derive(Default)]
pub struct CoreQuery;

#[Object]
impl CoreQuery {
    /// The signed-in user, or null for anonymous callers and service accounts.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        let actor = actor(ctx);
        let (Some(tenant_id), Some(id)) = (actor.tenant_id, actor.id) else {
            return Ok(None);
        };
        let found = registered::<BatchLoader<UsersById>>(ctx)?
            .load_one((tenant_id, id))
            .await?;
        Ok(found.map(User::from))
    }

    /// The caller's tenant.
    async fn tenant(&self, ctx: &Context<'_>) -> ApiResult<Tenant> {
        Ok(store::tenant(db(ctx)?, tenant_of(ctx)?).await?.into())
    }

    /// One user of the caller's tenant, or null.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<User>> {
        let id = input::id("id", &id)?;
        load_user(ctx, id).await
    }

    /// Users of the caller's tenant, oldest first; with `email`, the one signing in
    /// with that address (compared case-insensitively), if any.
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        email: Option<String>,
    ) -> ApiResult<UserConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let email = email.map(|raw| domain::email("email", &raw)).transpose()?;
        let rows = store::list_users(db(ctx)?, tenant_of(ctx)?, email.as_deref(), page).await?;
        Ok(rows.map(User::from).into())
    }

    /// Roles defined in the caller's tenant, oldest first.
    async fn roles(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<RoleConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = store::list_roles(db(ctx)?, tenant_of(ctx)?, page).await?;
        Ok(rows.map(Role::from).into())
    }

    /// Federation entity resolver for `User`, which other subgraphs' references reach:
    /// a user of the caller's tenant, or — for an id no user of that tenant has (erased,
    /// deleted behind the API, or never one of its users) — a tombstone (`DELETED`,
    /// "Deleted user"), so a stale reference reads as a deleted user instead of breaking
    /// the list it appears in. Anonymous callers get null.
    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<User>> {
        let (Ok(id), Some(tenant_id)) = (Uuid::parse_str(id.as_str()), actor(ctx).tenant_id) else {
            return Ok(None);
        };
        Ok(Some(
            load_user(ctx, id)
                .await?
                .unwrap_or_else(|| User::tombstone(id, tenant_id)),
        ))
    }
}

async fn load_user(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<User>> {
    Ok(load::<UsersById>(ctx, id).await?.map(User::from))
}

/// Checks the caller may change role assignments and parses the ids.
fn role_assignment(ctx: &Context<'_>, user_id: &ID, role_id: &ID) -> ApiResult<(Uuid, Uuid)> {
    let user_id = input::id("userId", user_id)?;
    let role_id = input::id("roleId", role_id)?;
    actor(ctx).tenant()?;
    Ok((user_id, role_id))
}

/// Input of `createUser`.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Sign-in email, unique within the tenant.
    pub email: String,
    /// Name shown to other users.
    pub display_name: String,
}

/// Input of `updateUser`; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateUserInput {
    /// New display name.
    pub display_name: Option<String>,
    /// New status (`DISABLED` deactivates the user).
    pub status: Option<UserStatusGql>,
    /// IANA time zone overriding the tenant's; `null` follows the tenant again.
    pub time_zone: MaybeUndefined<String>,
}

/// Input of `createRole`.
#[derive(InputObject)]
pub struct CreateRoleInput {
    /// Unique name: a-z, 0-9 and _.
    pub name: String,
    /// What the role is for.
    pub description: String,
}

/// Input of `updateRole`.
#[derive(InputObject)]
pub struct UpdateRoleInput {
    /// New description.
    pub description: String,
}

/// Input of `createTenant`.
#[derive(InputObject)]
pub struct CreateTenantInput {
    /// URL-safe unique name: 3-63 characters of a-z, 0-9 and -.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// Input of `updateTenant`; omitted fields keep their value.
#[derive(InputObject)]
pub struct UpdateTenantInput {
    /// New display name.
    pub name: Option<String>,
    /// Seconds without activity after which a session ends (300–86400).
    pub session_idle_timeout_seconds: Option<i32>,
    /// Seconds after sign-in after which a session ends however active (900–2592000).
    pub session_absolute_timeout_seconds: Option<i32>,
    /// Roles whose holders must sign in with a second factor (each must exist).
    pub mfa_required_roles: Option<Vec<String>>,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: Option<String>,
    /// Days stored files (exports, report files) are kept (1–3650); null returns to the
    /// platform's default. Applies to files made from then on.
    pub file_retention_days: MaybeUndefined<i32>,
}

/// Identity mutations. Each validates all input before writing anything and records an
/// audit event in the same transaction as the change.
#[derive(MergedObject, Default)]
pub struct Mutation(
    CoreMutation,
    EvidenceMutation,
    ComplianceReportMutation,
    OffboardingMutation,
    RetentionMutation,
    SubjectRequestMutation,
    SessionMutation,
    ApiKeyMutation,
    JobMutation,
    OidcMutation,
    PolicyMutation,
);

/// Users, roles and tenants.
#[derive(Default)]
pub struct CoreMutation;

#[Object]
impl CoreMutation {
    /// Invites a user into the caller's tenant (tenant admins): the user is `INVITED` and
    /// gets an email with a link to choose a password (valid 72 hours).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> ApiResult<User> {
        let new = store::NewUser {
            email: domain::email("input.email", &input.email)?,
            display_name: input::text("input.displayName", &input.display_name, 200)?,
        };
        let settings = crate::sessions::authenticator(ctx)?.settings();
        Ok(
            store::create_user(db(ctx)?, actor(ctx), meta(ctx), new, settings)
                .await?
                .into(),
        )
    }

    /// Changes a user's display name or status.
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateUserInput,
    ) -> ApiResult<User> {
        let id = input::id("id", &id)?;
        let changes = store::UserChanges {
            display_name: input
                .display_name
                .map(|name| input::text("input.displayName", &name, 200))
                .transpose()?,
            status: input
                .status
                .map(|status| status.settable("input.status"))
                .transpose()?,
            time_zone: match input.time_zone {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(zone) => {
                    Some(Some(input::time_zone("input.timeZone", &zone)?))
                }
            },
        };
        Ok(
            store::update_user(db(ctx)?, actor(ctx), meta(ctx), id, changes)
                .await?
                .into(),
        )
    }

    /// Defines a role in the caller's tenant.
    async fn create_role(&self, ctx: &Context<'_>, input: CreateRoleInput) -> ApiResult<Role> {
        let name = domain::new_role_name("input.name", &input.name)?;
        let description = input::text("input.description", &input.description, 500)?;
        Ok(
            store::create_role(db(ctx)?, actor(ctx), meta(ctx), name, description)
                .await?
                .into(),
        )
    }

    /// Changes a role's description.
    async fn update_role(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateRoleInput,
    ) -> ApiResult<Role> {
        let id = input::id("id", &id)?;
        let description = input::text("input.description", &input.description, 500)?;
        Ok(
            store::update_role(db(ctx)?, actor(ctx), meta(ctx), id, description)
                .await?
                .into(),
        )
    }

    /// Creates a tenant (platform administrators only) with a `tenant_admin` role.
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        input: CreateTenantInput,
    ) -> ApiResult<Tenant> {
        let slug = domain::slug("input.slug", &input.slug)?;
        let name = input::text("input.name", &input.name, 200)?;
        Ok(
            store::create_tenant(db(ctx)?, actor(ctx), meta(ctx), slug, name)
                .await?
                .into(),
        )
    }

    /// Gives a user of the caller's tenant one of its roles (tenant admins only).
    async fn assign_role(&self, ctx: &Context<'_>, user_id: ID, role_id: ID) -> ApiResult<User> {
        let (user_id, role_id) = role_assignment(ctx, &user_id, &role_id)?;
        Ok(
            store::assign_role(db(ctx)?, actor(ctx), meta(ctx), user_id, role_id)
                .await?
                .into(),
        )
    }

    /// Takes a role from a user of the caller's tenant (tenant admins only).
    async fn unassign_role(&self, ctx: &Context<'_>, user_id: ID, role_id: ID) -> ApiResult<User> {
        let (user_id, role_id) = role_assignment(ctx, &user_id, &role_id)?;
        Ok(
            store::unassign_role(db(ctx)?, actor(ctx), meta(ctx), user_id, role_id)
                .await?
                .into(),
        )
    }

    /// Renames the caller's tenant or changes its session timeouts (tenant admins only).
    async fn update_tenant(
        &self,
        ctx: &Context<'_>,
        input: UpdateTenantInput,
    ) -> ApiResult<Tenant> {
        let changes = store::TenantChanges {
            name: input
                .name
                .map(|name| input::text("input.name", &name, 200))
                .transpose()?,
            timeouts: domain::session_timeouts(
                input.session_idle_timeout_seconds,
                input.session_absolute_timeout_seconds,
            )?,
            mfa_required_roles: input
                .mfa_required_roles
                .map(|roles| {
                    roles
                        .iter()
                        .map(|role| domain::role_name("input.mfaRequiredRoles", role))
                        .collect::<ApiResult<Vec<_>>>()
                })
                .transpose()?,
            time_zone: input
                .time_zone
                .map(|zone| input::time_zone("input.timeZone", &zone))
                .transpose()?,
            file_retention_days: match input.file_retention_days {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(days) => Some(Some(domain::retention_days(
                    "input.fileRetentionDays",
                    days,
                )?)),
            },
        };
        Ok(
            store::update_tenant(db(ctx)?, actor(ctx), meta(ctx), changes)
                .await?
                .into(),
        )
    }
}
