//! Identity's wire types shared by its GraphQL modules: `User @key(fields: "id")` (with
//! the tombstone other subgraphs' stale references resolve to), `Role`, `Tenant`, the
//! user status enum, and the loaders behind them. A leaf of the GraphQL layer: the query
//! and mutation modules import it, never the other way round.

use async_graphql::{ComplexObject, Context, Enum, ID, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use portal_entities::identity::{role, tenant, user};
use portal_kit::context::db;
use portal_kit::loader::{BatchLoader, registered};
use portal_kit::pagination::Node;
use portal_kit::{ApiError, ApiResult};

use crate::domain::{self, UserStatus};
use crate::store;

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
    /// Days the tenant's stored files (exports, report files) are kept before they are
    /// deleted; null: the platform's default (`files.retention_days`).
    pub file_retention_days: Option<i32>,
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
            file_retention_days: row.file_retention_days,
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
            // An erased user reads as one that no longer exists: nothing of them is left.
            UserStatus::Erased => Self::Deleted,
        }
    }
}

impl UserStatusGql {
    /// The stored status a client may set, or `BAD_USER_INPUT` naming `field`.
    pub(crate) fn settable(self, field: &'static str) -> ApiResult<UserStatus> {
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
        // The anonymized row of an erased user reads as the tombstone of a deleted one.
        if UserStatus::from_db(&row.status) == UserStatus::Erased {
            return Self::tombstone(row.id, row.tenant_id);
        }
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
pub const DELETED_USER_NAME: &str = domain::DELETED_USER_NAME;

impl User {
    /// The tombstone of a user that no longer exists, as the caller's tenant sees it.
    pub(crate) fn tombstone(id: Uuid, tenant_id: Uuid) -> Self {
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
