//! Typed access to what every resolver needs from the request: the actor, the request
//! facts and the database. A missing actor means an unauthenticated caller.

use async_graphql::Context;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::actor::{Actor, RequestMeta};
use crate::error::{ApiError, ApiResult};

static ANONYMOUS: std::sync::LazyLock<Actor> = std::sync::LazyLock::new(Actor::anonymous);
static NO_META: std::sync::LazyLock<RequestMeta> = std::sync::LazyLock::new(RequestMeta::default);

/// The actor of this request (anonymous when the transport named none).
pub fn actor<'c>(ctx: &'c Context<'_>) -> &'c Actor {
    ctx.data_opt::<Actor>().unwrap_or(&ANONYMOUS)
}

/// The tenant this request is confined to, or `UNAUTHENTICATED`.
pub fn tenant(ctx: &Context<'_>) -> ApiResult<Uuid> {
    actor(ctx).tenant()
}

/// Transport facts of this request, for audit events.
pub fn meta<'c>(ctx: &'c Context<'_>) -> &'c RequestMeta {
    ctx.data_opt::<RequestMeta>().unwrap_or(&NO_META)
}

/// The subgraph's database pool (schema data).
pub fn db<'c>(ctx: &'c Context<'_>) -> ApiResult<&'c DatabaseConnection> {
    ctx.data::<DatabaseConnection>()
        .map_err(|_| ApiError::internal("database missing from schema data"))
}

/// The owners of entities this subgraph references (schema data; see
/// [`crate::references`]).
pub fn references<'c>(ctx: &'c Context<'_>) -> ApiResult<&'c crate::references::References> {
    ctx.data::<crate::references::References>()
        .map_err(|_| ApiError::internal("references missing from schema data"))
}
