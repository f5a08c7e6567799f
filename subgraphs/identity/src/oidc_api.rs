//! The GraphQL surface of single sign-on: provider configuration for tenant admins, and
//! the two steps of an SSO sign-in.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use portal_entities::identity::oidc_provider;
use portal_kit::context::{actor, db, meta};
use portal_kit::input;
use portal_kit::{ApiError, ApiResult};

use crate::oidc::{self, ProviderInput};
use crate::session_api::{AuthPayload, payload};
use crate::sessions::authenticator;

/// One provider group and the portal role its members get.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "GroupRoleInput")]
pub struct GroupRole {
    /// The group as the provider names it.
    pub group: String,
    /// The portal role.
    pub role: String,
}

/// An OpenID Connect identity provider of the tenant (never its client secret).
#[derive(SimpleObject)]
pub struct OidcProvider {
    /// Stable id.
    pub id: ID,
    /// Short name used in `startSsoSignIn`.
    pub name: String,
    /// Issuer URL.
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
    /// The ID token claim that lists groups.
    pub groups_claim: String,
    /// Group → role mapping.
    pub group_roles: Vec<GroupRole>,
    /// Roles every user signing in through it gets.
    pub default_roles: Vec<String>,
    /// Whether it can be used.
    pub enabled: bool,
}

impl From<oidc_provider::Model> for OidcProvider {
    fn from(row: oidc_provider::Model) -> Self {
        let mapping: BTreeMap<String, String> =
            serde_json::from_str(&row.group_roles).unwrap_or_default();
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            issuer: row.issuer,
            client_id: row.client_id,
            groups_claim: row.groups_claim,
            group_roles: mapping
                .into_iter()
                .map(|(group, role)| GroupRole { group, role })
                .collect(),
            default_roles: crate::domain::role_list(&row.default_roles),
            enabled: row.enabled,
        }
    }
}

/// Input of `configureOidcProvider`.
#[derive(InputObject)]
pub struct ConfigureOidcProviderInput {
    /// Short name, unique in the tenant (`a-z`, `0-9`, `_`).
    pub name: String,
    /// Issuer URL (https; http only on the loopback interface).
    pub issuer: String,
    /// OAuth client id registered at the provider.
    pub client_id: String,
    /// OAuth client secret (stored sealed, never shown again).
    pub client_secret: String,
    /// The ID token claim that lists groups.
    #[graphql(default_with = "String::from(\"groups\")")]
    pub groups_claim: String,
    /// Group → role mapping.
    #[graphql(default)]
    pub group_roles: Vec<GroupRole>,
    /// Roles every user signing in through it gets.
    #[graphql(default)]
    pub default_roles: Vec<String>,
}

/// Where to send the browser to sign in at the provider.
#[derive(SimpleObject)]
pub struct SsoStart {
    /// The provider's authorization URL (with state, nonce and PKCE challenge).
    pub authorization_url: String,
    /// The state the provider will hand back; pass it to `completeSsoSignIn`.
    pub state: String,
    /// The redirect URI registered at the provider (`<public_url>/sso/callback`).
    pub redirect_uri: String,
}

/// SSO queries.
#[derive(Default)]
pub struct OidcQuery;

#[Object]
impl OidcQuery {
    /// The tenant's identity providers (tenant admins).
    async fn oidc_providers(&self, ctx: &Context<'_>) -> ApiResult<Vec<OidcProvider>> {
        let rows = oidc::providers(db(ctx)?, actor(ctx)).await?;
        Ok(rows.into_iter().map(OidcProvider::from).collect())
    }
}

/// SSO mutations.
#[derive(Default)]
pub struct OidcMutation;

#[Object]
impl OidcMutation {
    /// Creates or replaces an identity provider of the tenant (tenant admins, after a
    /// recent `stepUp`).
    async fn configure_oidc_provider(
        &self,
        ctx: &Context<'_>,
        input: ConfigureOidcProviderInput,
    ) -> ApiResult<OidcProvider> {
        let service = authenticator(ctx)?;
        let name = crate::domain::role_name("input.name", &input.name)?;
        let issuer = oidc::issuer_url("input.issuer", &input.issuer)?;
        let client_id = input::text("input.clientId", &input.client_id, 255)?;
        if input.client_secret.is_empty() || input.client_secret.len() > 1024 {
            return Err(ApiError::invalid(
                "input.clientSecret",
                "must be 1-1024 characters",
            ));
        }
        let groups_claim = input::text("input.groupsClaim", &input.groups_claim, 64)?;
        let mut group_roles = BTreeMap::new();
        for pair in input.group_roles {
            let group = input::text("input.groupRoles.group", &pair.group, 255)?;
            let role = crate::domain::role_name("input.groupRoles.role", &pair.role)?;
            group_roles.insert(group, role);
        }
        let default_roles = input
            .default_roles
            .iter()
            .map(|r| crate::domain::role_name("input.defaultRoles", r))
            .collect::<ApiResult<Vec<_>>>()?;
        let saved = oidc::configure(
            db(ctx)?,
            &service.settings().data_key,
            actor(ctx),
            meta(ctx),
            ProviderInput {
                name,
                issuer,
                client_id,
                client_secret: input.client_secret,
                groups_claim,
                group_roles,
                default_roles,
            },
        )
        .await?;
        Ok(saved.into())
    }

    /// Starts signing in through the tenant's identity provider `provider`.
    async fn start_sso_sign_in(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        provider: String,
    ) -> ApiResult<SsoStart> {
        if tenant.len() > 63 || provider.len() > 64 {
            return Err(ApiError::NotFound("identity provider"));
        }
        let service = authenticator(ctx)?;
        let (authorization_url, state) = service.start_sso(&tenant, &provider).await?;
        Ok(SsoStart {
            authorization_url,
            state,
            redirect_uri: oidc::redirect_uri(&service.settings().public_url),
        })
    }

    /// Completes an SSO sign-in with the `code` and `state` the provider redirected back
    /// with.
    async fn complete_sso_sign_in(
        &self,
        ctx: &Context<'_>,
        state: String,
        code: String,
    ) -> ApiResult<AuthPayload> {
        if state.len() > 256 || code.len() > 2048 {
            return Err(ApiError::AuthenticationFailed(
                "single sign-on failed; start again",
            ));
        }
        let issued = authenticator(ctx)?
            .complete_sso(meta(ctx), &state, &code)
            .await?;
        payload(ctx, issued).await
    }
}
