//! Identity's GraphQL surface: `Tenant`, `User @key(fields: "id")`, `Role`; the `me`,
//! `tenant`, `user`, `users` and `roles` queries (plus `auditEvents` from [`crate::audit`]);
//! create/update mutations, `createTenant` and role assignment.

use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, ID, InputObject, MaybeUndefined, MergedObject,
    Object, Schema, SimpleObject,
};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_entities::identity::{role, tenant, user};
use portal_kit::context::{actor, db, meta, tenant as tenant_of};
use portal_kit::error::MaskInternalErrors;
use portal_kit::input;
use portal_kit::loader::{BatchLoader, batch_loader, load, registered};
use portal_kit::pagination::{Node, PageRequest};
use portal_kit::{ApiError, ApiResult};

use crate::api_key_api::{ApiKeyMutation, ApiKeyQuery};
use crate::audit::AuditQuery;
use crate::domain::{self, UserStatus};
use crate::jobs_api::{JobMutation, JobQuery};
use crate::oidc_api::{OidcMutation, OidcQuery};
use crate::policy_api::{PolicyMutation, PolicyQuery};
use crate::session_api::{SessionMutation, SessionQuery};
use crate::sessions::Authenticator;
use crate::store;

/// The identity subgraph's executable schema.
pub type IdentitySchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema over `db`, signing in through `authenticator`; no socket needed
/// (tests call `execute` directly).
pub fn build_schema(db: DatabaseConnection, authenticator: Arc<Authenticator>) -> IdentitySchema {
    Schema::build_with_ignore_name_conflicts(
        Query::default(),
        Mutation::default(),
        EmptySubscription,
        portal_kit::scalars::SHARED_SCALARS,
    )
    .enable_federation()
    .extension(MaskInternalErrors)
    .data(authenticator)
    .data(batch_loader::<UsersById>(&db))
    .data(batch_loader::<RolesOfUsers>(&db))
    .data(db)
    .finish()
}

/// A customer organisation; every other object belongs to exactly one tenant.
#[derive(SimpleObject)]
pub struct Tenant {
    /// Stable id.
    pub id: ID,
    /// URL-safe unique name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// Seconds without activity after which a session ends.
    pub session_idle_timeout_seconds: i32,
    /// Seconds after sign-in after which a session ends however active.
    pub session_absolute_timeout_seconds: i32,
    /// Roles whose holders must sign in with a second factor.
    pub mfa_required_roles: Vec<String>,
    /// IANA time zone schedules, chart buckets and quiet hours are read in, unless a
    /// user sets their own.
    pub time_zone: String,
}

impl From<tenant::Model> for Tenant {
    fn from(row: tenant::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            slug: row.slug,
            name: row.name,
            created_at: row.created_at,
            session_idle_timeout_seconds: row.session_idle_timeout_secs,
            session_absolute_timeout_seconds: row.session_absolute_timeout_secs,
            mfa_required_roles: domain::role_list(&row.mfa_required_roles),
            time_zone: row.time_zone,
        }
    }
}

/// Lifecycle of a user.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "UserStatus")]
pub enum UserStatusGql {
    /// Invited, has not signed in yet.
    Invited,
    /// May sign in.
    Active,
    /// Deactivated.
    Disabled,
    /// No longer exists (erased, or unknown to identity): a tombstone that other
    /// subgraphs' references resolve to, so a stale reference never breaks a list.
    /// Never accepted as input.
    Deleted,
}

impl From<UserStatus> for UserStatusGql {
    fn from(status: UserStatus) -> Self {
        match status {
            UserStatus::Invited => Self::Invited,
            UserStatus::Active => Self::Active,
            UserStatus::Disabled => Self::Disabled,
        }
    }
}

impl UserStatusGql {
    /// The stored status a client may set, or `BAD_USER_INPUT` naming `field`.
    fn settable(self, field: &'static str) -> ApiResult<UserStatus> {
        match self {
            Self::Invited => Ok(UserStatus::Invited),
            Self::Active => Ok(UserStatus::Active),
            Self::Disabled => Ok(UserStatus::Disabled),
            Self::Deleted => Err(ApiError::invalid(
                field,
                "DELETED is not a status a user can be given",
            )),
        }
    }
}

/// A person who signs in to the portal.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct User {
    /// Stable id.
    pub id: ID,
    /// Sign-in email, unique within the tenant. Nullable: roles without business reading
    /// personal data get `null` (with a `FORBIDDEN` error) instead of losing the user.
    pub email: Option<String>,
    /// Name shown to other users.
    pub display_name: String,
    /// Lifecycle status.
    pub status: UserStatusGql,
    /// When the user was created; null for a deleted user (a tombstone).
    pub created_at: Option<DateTime<Utc>>,
    /// The user's own IANA time zone; null when the user follows the tenant's.
    pub time_zone: Option<String>,
    #[graphql(skip)]
    uuid: Uuid,
    #[graphql(skip)]
    tenant_id: Uuid,
}

impl From<user::Model> for User {
    fn from(row: user::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            email: Some(row.email),
            display_name: row.display_name,
            status: UserStatus::from_db(&row.status).into(),
            created_at: Some(row.created_at),
            time_zone: row.time_zone,
            uuid: row.id,
            tenant_id: row.tenant_id,
        }
    }
}

/// Name a deleted user is shown with.
pub const DELETED_USER_NAME: &str = "Deleted user";

impl User {
    /// The tombstone of a user that no longer exists, as the caller's tenant sees it.
    fn tombstone(id: Uuid, tenant_id: Uuid) -> Self {
        Self {
            id: ID(id.to_string()),
            email: None,
            display_name: DELETED_USER_NAME.to_owned(),
            status: UserStatusGql::Deleted,
            created_at: None,
            time_zone: None,
            uuid: id,
            tenant_id,
        }
    }

    fn is_tombstone(&self) -> bool {
        self.status == UserStatusGql::Deleted
    }
}

impl Node for User {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

#[ComplexObject]
impl User {
    /// Whether the user signs in with a second factor.
    async fn mfa_enabled(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        if self.is_tombstone() {
            return Ok(false);
        }
        crate::mfa::is_enabled(db(ctx)?, self.uuid).await
    }

    /// The tenant the user belongs to.
    async fn tenant(&self, ctx: &Context<'_>) -> ApiResult<Tenant> {
        Ok(store::tenant(db(ctx)?, self.tenant_id).await?.into())
    }

    /// Roles the user holds in its tenant.
    async fn roles(&self, ctx: &Context<'_>) -> ApiResult<Vec<Role>> {
        if self.is_tombstone() {
            return Ok(Vec::new());
        }
        let loader = registered::<BatchLoader<RolesOfUsers>>(ctx)?
            .load_one((self.tenant_id, self.uuid))
            .await?;
        Ok(loader
            .unwrap_or_default()
            .into_iter()
            .map(Role::from)
            .collect())
    }
}

portal_kit::connection!(UserConnection, UserEdge, User);

/// A named set of permissions within a tenant (enforced by the gateway's policies).
#[derive(SimpleObject, Clone)]
pub struct Role {
    /// Stable id.
    pub id: ID,
    #[graphql(skip)]
    uuid: Uuid,
    /// Unique name within the tenant, e.g. `billing_admin`.
    pub name: String,
    /// What the role is for.
    pub description: String,
}

impl From<role::Model> for Role {
    fn from(row: role::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            uuid: row.id,
            name: row.name,
            description: row.description,
        }
    }
}

impl Node for Role {
    fn cursor_id(&self) -> Uuid {
        self.uuid
    }
}

portal_kit::connection!(RoleConnection, RoleEdge, Role);

portal_kit::fetch_by_ids!(
    /// User lookups by `(tenant, id)`, batched into one query per tenant.
    pub UsersById: user::Model = store::users_by_ids
);

portal_kit::fetch_by_ids!(
    /// The roles of users by `(tenant, user id)`, batched into two queries per tenant.
    pub RolesOfUsers: Vec<role::Model> = store::roles_of_users
);

/// Identity queries: the core ones and the audit trail.
#[derive(MergedObject, Default)]
pub struct Query(
    CoreQuery,
    AuditQuery,
    SessionQuery,
    ApiKeyQuery,
    JobQuery,
    OidcQuery,
    PolicyQuery,
);

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

    /// Users of the caller's tenant, oldest first.
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<UserConnection> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let rows = store::list_users(db(ctx)?, tenant_of(ctx)?, page).await?;
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
}

/// Identity mutations. Each validates all input before writing anything and records an
/// audit event in the same transaction as the change.
#[derive(MergedObject, Default)]
pub struct Mutation(
    CoreMutation,
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
        };
        Ok(
            store::update_tenant(db(ctx)?, actor(ctx), meta(ctx), changes)
                .await?
                .into(),
        )
    }
}
