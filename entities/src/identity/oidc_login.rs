//! Table `oidc_logins`: SSO sign-ins in flight: state (hashed), nonce, sealed PKCE verifier.

use sea_orm::entity::prelude::*;

/// One row of `oidc_logins`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "oidc_logins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub state_hash: String,
    pub tenant_id: Uuid,
    pub provider_id: Uuid,
    pub nonce: String,
    pub code_verifier_sealed: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
