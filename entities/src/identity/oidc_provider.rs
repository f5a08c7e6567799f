//! Table `oidc_providers`: a tenant's OpenID Connect identity providers.

use sea_orm::entity::prelude::*;

/// One row of `oidc_providers`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "oidc_providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret_sealed: String,
    /// Space-separated.
    pub scopes: String,
    pub groups_claim: String,
    /// JSON object: provider group → portal role name.
    pub group_roles: String,
    /// Role names every SSO user gets, comma-separated.
    pub default_roles: String,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
