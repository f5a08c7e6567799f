//! Sign-in and sessions: password sign-in with throttling, sessions with idle and
//! absolute timeouts, short-lived access tokens, rotating refresh tokens with reuse
//! detection, and revocation.
//!
//! A session is one signed-in device and the family of its refresh tokens. Each refresh
//! token works once; presenting a used one again means it was copied, so the whole
//! session is revoked. Revocations are visible to gateways within a second
//! ([`crate::feed`]), so a revoked session stops working long before its last access
//! token would expire.

use portal_kit::db::BeginWrite;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::identity::{credential, mfa_challenge, refresh_token, session, tenant, user};
use portal_kit::access_token::{AUDIENCE, AccessClaims};
use portal_kit::audit::AuditEvent;
use portal_kit::secret::{opaque_token, token_hash};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

pub use crate::credentials::{revoke_all_of_user, set_password_in};
pub use crate::domain::RevokeReason;
use crate::domain::UserStatus;
use crate::keys::KeyRing;
pub use crate::password::hash_password;
pub use crate::settings::IdentitySettings;
use crate::{mfa, password, store, throttle};

/// Prefix of refresh tokens (`prt_…`).
pub const REFRESH_TOKEN_PREFIX: &str = "prt";

/// The message of every failed sign-in, whatever the reason.
const SIGN_IN_FAILED: &str = "invalid tenant, email or password";

/// The message of every refused refresh token, whatever the reason.
const REFRESH_FAILED: &str = "invalid or expired refresh token";

/// What sign-in and refresh hand out.
#[derive(Debug)]
pub struct Issued {
    /// The signed access token (JWT).
    pub access_token: String,
    /// When it expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// The new refresh token (shown once; only its hash is stored).
    pub refresh_token: String,
    /// The session.
    pub session: session::Model,
}

/// Prefix of sign-in challenge tokens (`pmc_…`), between password and second factor.
pub const CHALLENGE_PREFIX: &str = "pmc";

/// How long a sign-in challenge waits for its second factor.
const CHALLENGE_TTL: chrono::Duration = chrono::Duration::minutes(5);

/// The message of every refused second factor.
const CODE_FAILED: &str = "invalid or expired code";

/// What a correct password leads to.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in.
    SignedIn(Issued),
    /// A second factor is needed: `completeSignIn` with the challenge and a code. With
    /// `enrollment`, the user must first add this new factor (tenant policy).
    SecondFactor {
        /// Single-use challenge token.
        challenge: String,
        /// When it expires.
        expires_at: DateTime<Utc>,
        /// The factor to enrol, when the user has none yet but must.
        enrollment: Option<mfa::Enrollment>,
    },
}

/// The sign-in service: database, signing keys and settings.
pub struct Authenticator {
    db: DatabaseConnection,
    keys: KeyRing,
    settings: IdentitySettings,
    http: reqwest::Client,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.settings)
            .finish()
    }
}

/// The sign-in service of this schema (schema data).
pub fn authenticator<'c>(ctx: &'c async_graphql::Context<'_>) -> ApiResult<&'c Authenticator> {
    ctx.data::<std::sync::Arc<Authenticator>>()
        .map(|shared| shared.as_ref())
        .map_err(|_| ApiError::internal("authenticator missing from schema data"))
}

/// Verified against when the account does not exist, so that an unknown email costs the
/// same time as a wrong password.
static DUMMY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| password::hash("no account has this password, ever").ok());

/// Which of a user's sessions to revoke.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    /// Exactly this one.
    One(Uuid),
    /// All but this one (the caller's current session).
    AllBut(Uuid),
    /// All of them.
    All,
}

fn secs(value: i32) -> chrono::Duration {
    chrono::Duration::seconds(i64::from(value.max(0)))
}

/// When `session` ends by itself under `tenant`'s timeouts, and why.
pub fn expiry(tenant: &tenant::Model, session: &session::Model) -> (DateTime<Utc>, RevokeReason) {
    let idle = session.last_seen_at + secs(tenant.session_idle_timeout_secs);
    let absolute = session.created_at + secs(tenant.session_absolute_timeout_secs);
    if idle < absolute {
        (idle, RevokeReason::IdleTimeout)
    } else {
        (absolute, RevokeReason::AbsoluteTimeout)
    }
}

impl Authenticator {
    /// The service over `db`.
    pub fn new(db: DatabaseConnection, settings: IdentitySettings) -> Self {
        Self {
            keys: KeyRing::new(settings.data_key.clone(), settings.key_rotation),
            db,
            settings,
            http: crate::oidc::http_client(),
        }
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The settings.
    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    /// Starts single sign-on at the tenant's provider: `(authorization URL, state)`.
    pub async fn start_sso(
        &self,
        tenant_slug: &str,
        provider: &str,
    ) -> ApiResult<(String, String)> {
        crate::oidc::start(&self.db, &self.http, &self.settings, tenant_slug, provider).await
    }

    /// Completes single sign-on with the provider's `code` for `state`, and signs in.
    pub async fn complete_sso(
        &self,
        meta: &RequestMeta,
        state: &str,
        code: &str,
    ) -> ApiResult<Issued> {
        let (tenant, user) =
            crate::oidc::complete(&self.db, &self.http, &self.settings, meta, state, code).await?;
        self.start_session(&tenant, &user, "sso", false, meta).await
    }

    /// Sends a reset link if the account exists; answers the same either way.
    pub async fn request_password_reset(
        &self,
        meta: &RequestMeta,
        tenant_slug: &str,
        email: &str,
    ) -> ApiResult<()> {
        crate::recovery::request_reset(&self.db, &self.settings, meta, tenant_slug, email).await
    }

    /// Redeems a reset or invitation link with a new password.
    pub async fn complete_password_reset(
        &self,
        meta: &RequestMeta,
        token: &str,
        new_password: &str,
    ) -> ApiResult<()> {
        crate::recovery::complete_reset(&self.db, &self.settings, meta, token, new_password).await
    }

    /// Signs in with a password. Every failure — unknown tenant or email, wrong password,
    /// inactive user — gets the same `UNAUTHENTICATED` answer after the same hashing work;
    /// a locked account or source gets `RATE_LIMITED` whether or not the account exists.
    pub async fn sign_in(
        &self,
        meta: &RequestMeta,
        tenant_slug: &str,
        email: &str,
        password: &str,
    ) -> ApiResult<SignInOutcome> {
        let slug = tenant_slug.trim().to_lowercase();
        let email = email.trim().to_lowercase();
        let mut throttle_keys = vec![throttle::account_key(&slug, &email)];
        if let Some(ip) = &meta.source_ip {
            throttle_keys.push(throttle::source_key(ip));
        }
        let tenant = tenant::Entity::find()
            .filter(tenant::Column::Slug.eq(slug.as_str()))
            // An off-boarded tenant's tombstone is no tenant: nothing is recorded in its
            // closed audit log.
            .filter(tenant::Column::Status.ne(crate::offboarding::TENANT_DELETED))
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let account = match &tenant {
            Some(tenant) => self.account(tenant.id, &email).await?,
            None => None,
        };
        let audit_failure = |reason: &'static str| {
            let tenant_id = tenant.as_ref().map(|t| t.id);
            let user_id = account.as_ref().map(|(u, _)| u.id);
            let email = email.clone();
            async move {
                let Some(tenant_id) = tenant_id else {
                    return Ok(());
                };
                AuditEvent::failure("auth.sign_in", "user", user_id)
                    .in_tenant(tenant_id)
                    .with_details(json!({ "email": email, "reason": reason }))
                    .record(&self.db, &Actor::anonymous(), meta)
                    .await
            }
        };
        // The account's attempt counts before the password is checked (concurrent guesses
        // cannot all pass under the limit); the source counts failures only.
        let open =
            match throttle::ensure_open(&self.db, &throttle_keys[1..], self.settings.clock.now())
                .await
            {
                Ok(()) => {
                    throttle::attempt(
                        &self.db,
                        &throttle_keys[0],
                        throttle::ACCOUNT,
                        self.settings.clock.now(),
                    )
                    .await
                }
                Err(err) => Err(err),
            };
        if let Err(err) = open {
            audit_failure("locked").await?;
            return Err(err);
        }
        let stored = account
            .as_ref()
            .and_then(|(_, credential)| credential.as_ref())
            .map(|c| c.password_hash.clone());
        let matches = verify_password(password, stored).await?;
        let usable = account.as_ref().filter(|(user, _)| {
            UserStatus::from_db(&user.status) == UserStatus::Active
                && tenant.as_ref().is_some_and(|t| t.status == "ACTIVE")
        });
        let (Some((user, _)), true) = (usable, matches) else {
            if let Some(key) = throttle_keys.get(1) {
                throttle::record_failure(
                    &self.db,
                    key,
                    throttle::SOURCE,
                    self.settings.clock.now(),
                )
                .await?;
            }
            let reason = match (&account, matches) {
                (None, _) => "unknown_account",
                (Some(_), false) => "wrong_password",
                (Some(_), true) => "inactive",
            };
            audit_failure(reason).await?;
            return Err(ApiError::AuthenticationFailed(SIGN_IN_FAILED));
        };
        let tenant = tenant.ok_or_else(|| ApiError::internal("tenant vanished"))?;
        let enrolled = mfa::is_enabled(&self.db, user.id).await?;
        if !enrolled && !self.mfa_required(&tenant, user.id).await? {
            throttle::clear(&self.db, &throttle_keys[0]).await?;
            return Ok(SignInOutcome::SignedIn(
                self.start_session(&tenant, user, "password", false, meta)
                    .await?,
            ));
        }
        let enrollment = if enrolled {
            None
        } else {
            Some(mfa::begin_enrollment(&self.db, &self.settings.data_key, user).await?)
        };
        let challenge = opaque_token(CHALLENGE_PREFIX)?;
        let now = self.settings.clock.now();
        mfa_challenge::ActiveModel {
            token_hash: Set(token_hash(&challenge)),
            user_id: Set(user.id),
            tenant_id: Set(tenant.id),
            created_at: Set(now),
            expires_at: Set(now + CHALLENGE_TTL),
            used_at: Set(None),
        }
        .insert(&self.db)
        .await
        .map_err(ApiError::from_db)?;
        Ok(SignInOutcome::SecondFactor {
            challenge,
            expires_at: now + CHALLENGE_TTL,
            enrollment,
        })
    }

    /// Whether the tenant requires a second factor of a holder of the user's roles.
    async fn mfa_required(&self, tenant: &tenant::Model, user_id: Uuid) -> ApiResult<bool> {
        let required = crate::domain::role_list(&tenant.mfa_required_roles);
        if required.is_empty() {
            return Ok(false);
        }
        let roles = store::roles_of_users(&self.db, tenant.id, [user_id])
            .await?
            .remove(&user_id)
            .unwrap_or_default();
        Ok(roles.iter().any(|role| required.contains(&role.name)))
    }

    /// Completes a sign-in that needs a second factor: a TOTP code (or a recovery code
    /// once a factor is active). Completing an enrolment activates the factor and returns
    /// the recovery codes, shown once. Wrong codes count against the account's throttle.
    pub async fn complete_sign_in(
        &self,
        meta: &RequestMeta,
        challenge: &str,
        code: &str,
    ) -> ApiResult<(Issued, Option<Vec<String>>)> {
        let hash = token_hash(challenge.trim());
        let found = mfa_challenge::Entity::find_by_id(hash.clone())
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .filter(|c| c.used_at.is_none() && c.expires_at > self.settings.clock.now())
            .ok_or(ApiError::AuthenticationFailed(CODE_FAILED))?;
        let tenant = store::tenant(&self.db, found.tenant_id).await?;
        let user = store::user(&self.db, tenant.id, found.user_id).await?;
        // Deactivated since the password step: no session.
        if UserStatus::from_db(&user.status) != UserStatus::Active || tenant.status != "ACTIVE" {
            return Err(ApiError::AuthenticationFailed(CODE_FAILED));
        }
        let key = throttle::account_key(&tenant.slug, &user.email);
        throttle::attempt(&self.db, &key, throttle::ACCOUNT, self.settings.clock.now()).await?;
        let factor = mfa::factor(&self.db, user.id).await?;
        let enrolling = factor.as_ref().is_some_and(|f| f.status == mfa::PENDING);
        let accepted = if enrolling {
            mfa::check_totp(&self.db, &self.settings.data_key, &user, code, true).await?
        } else {
            mfa::check_any(&self.db, &self.settings.data_key, &user, code).await?
        };
        let actor = Actor::user(user.id, tenant.id, Vec::new());
        if !accepted {
            AuditEvent::failure("auth.mfa", "user", Some(user.id))
                .with_details(json!({ "step": "sign_in" }))
                .record(&self.db, &actor, meta)
                .await?;
            return Err(ApiError::AuthenticationFailed(CODE_FAILED));
        }
        // Single use: of two concurrent completions only one claims the challenge.
        let claimed = mfa_challenge::Entity::update_many()
            .col_expr(
                mfa_challenge::Column::UsedAt,
                Expr::value(self.settings.clock.now()),
            )
            .filter(mfa_challenge::Column::TokenHash.eq(hash))
            .filter(mfa_challenge::Column::UsedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        if claimed.rows_affected != 1 {
            return Err(ApiError::AuthenticationFailed(CODE_FAILED));
        }
        throttle::clear(&self.db, &key).await?;
        let recovery_codes = if enrolling {
            let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
            let codes = mfa::activate(&txn, &user).await?;
            AuditEvent::success("mfa.enable", "user", user.id)
                .record(&txn, &actor, meta)
                .await?;
            txn.commit().await.map_err(ApiError::from_db)?;
            Some(codes)
        } else {
            None
        };
        let issued = self
            .start_session(&tenant, &user, "password", true, meta)
            .await?;
        Ok((issued, recovery_codes))
    }

    /// Confirms a second factor on the actor's session (step-up), for sensitive
    /// mutations in the next [`mfa::STEP_UP_WINDOW`]. Throttled like sign-in.
    pub async fn step_up(&self, actor: &Actor, meta: &RequestMeta, code: &str) -> ApiResult<()> {
        let (user, tenant) = self.actor_user(actor).await?;
        let session_id = actor.session_id.ok_or(ApiError::Unauthenticated)?;
        let key = throttle::account_key(&tenant.slug, &user.email);
        throttle::attempt(&self.db, &key, throttle::ACCOUNT, self.settings.clock.now()).await?;
        if !mfa::check_any(&self.db, &self.settings.data_key, &user, code).await? {
            AuditEvent::failure("auth.step_up", "session", Some(session_id))
                .record(&self.db, actor, meta)
                .await?;
            return Err(ApiError::AuthenticationFailed(CODE_FAILED));
        }
        throttle::clear(&self.db, &key).await?;
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        mark_mfa_verified(&txn, session_id).await?;
        AuditEvent::success("auth.step_up", "session", session_id)
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)
    }

    /// Starts enrolling a second factor for the signed-in actor, who must confirm the
    /// current password (when the account has one): a stolen session alone must not be
    /// able to attach the thief's authenticator.
    pub async fn begin_mfa_enrollment(
        &self,
        actor: &Actor,
        current_password: Option<&str>,
    ) -> ApiResult<mfa::Enrollment> {
        let (user, tenant) = self.actor_user(actor).await?;
        let stored = credential::Entity::find_by_id(user.id)
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .map(|c| c.password_hash);
        if stored.is_some() {
            let key = throttle::account_key(&tenant.slug, &user.email);
            throttle::attempt(&self.db, &key, throttle::ACCOUNT, self.settings.clock.now()).await?;
            let given = current_password.unwrap_or_default();
            if !verify_password(given, stored).await? {
                return Err(ApiError::invalid("currentPassword", "does not match"));
            }
            throttle::clear(&self.db, &key).await?;
        }
        mfa::begin_enrollment(&self.db, &self.settings.data_key, &user).await
    }

    /// Activates the pending factor with a first code; returns the recovery codes (shown
    /// once) and counts as a step-up of the current session.
    pub async fn confirm_mfa_enrollment(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        code: &str,
    ) -> ApiResult<Vec<String>> {
        let (user, tenant) = self.actor_user(actor).await?;
        let key = throttle::account_key(&tenant.slug, &user.email);
        throttle::attempt(&self.db, &key, throttle::ACCOUNT, self.settings.clock.now()).await?;
        let pending = mfa::factor(&self.db, user.id)
            .await?
            .is_some_and(|f| f.status == mfa::PENDING);
        if !pending {
            return Err(ApiError::Conflict("no enrolment in progress".into()));
        }
        if !mfa::check_totp(&self.db, &self.settings.data_key, &user, code, true).await? {
            return Err(ApiError::invalid("code", "invalid or expired code"));
        }
        throttle::clear(&self.db, &key).await?;
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        // Not a step-up: confirm with `stepUp` before sensitive changes.
        let codes = mfa::activate(&txn, &user).await?;
        AuditEvent::success("mfa.enable", "user", user.id)
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(codes)
    }

    /// Starts changing the actor's sign-in email (needs a recent step-up): the new address
    /// gets a confirmation link, the old one a notice; see [`crate::recovery`].
    pub async fn change_email(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        new_email: String,
    ) -> ApiResult<()> {
        let (user, tenant) = self.actor_user(actor).await?;
        mfa::require_step_up(&self.db, actor).await?;
        if user.email == new_email {
            return Ok(());
        }
        crate::recovery::request_email_change(
            &self.db,
            &self.settings,
            actor,
            meta,
            &tenant,
            &user,
            &new_email,
        )
        .await
    }

    /// Confirms an email change with the token of the link sent to the new address.
    pub async fn confirm_email_change(
        &self,
        meta: &RequestMeta,
        token: &str,
    ) -> ApiResult<user::Model> {
        crate::recovery::confirm_email_change(&self.db, &self.settings, meta, token).await
    }

    /// Turns the actor's second factor off (needs a recent step-up).
    pub async fn disable_mfa(&self, actor: &Actor, meta: &RequestMeta) -> ApiResult<()> {
        let (user, _) = self.actor_user(actor).await?;
        mfa::require_step_up(&self.db, actor).await?;
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        mfa::remove(&txn, user.id).await?;
        AuditEvent::success("mfa.disable", "user", user.id)
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)
    }

    /// Replaces the actor's recovery codes (needs a recent step-up).
    pub async fn regenerate_recovery_codes(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
    ) -> ApiResult<Vec<String>> {
        let (user, _) = self.actor_user(actor).await?;
        if !mfa::is_enabled(&self.db, user.id).await? {
            return Err(ApiError::Conflict("no active second factor".into()));
        }
        mfa::require_step_up(&self.db, actor).await?;
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let codes = mfa::new_recovery_codes(&txn, &user).await?;
        AuditEvent::success("mfa.recovery_codes", "user", user.id)
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(codes)
    }

    async fn actor_user(&self, actor: &Actor) -> ApiResult<(user::Model, tenant::Model)> {
        if actor.kind != portal_kit::ActorKind::User {
            return Err(ApiError::Unauthenticated);
        }
        let tenant = store::tenant(&self.db, actor.tenant()?).await?;
        let user = store::user(&self.db, tenant.id, actor.principal()?).await?;
        Ok((user, tenant))
    }

    async fn account(
        &self,
        tenant_id: Uuid,
        email: &str,
    ) -> ApiResult<Option<(user::Model, Option<credential::Model>)>> {
        let found = user::Entity::find()
            .filter(user::Column::TenantId.eq(tenant_id))
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let Some(user) = found else {
            return Ok(None);
        };
        let credential = credential::Entity::find_by_id(user.id)
            .filter(credential::Column::TenantId.eq(tenant_id))
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        Ok(Some((user, credential)))
    }

    async fn start_session(
        &self,
        tenant: &tenant::Model,
        user: &user::Model,
        method: &'static str,
        mfa: bool,
        meta: &RequestMeta,
    ) -> ApiResult<Issued> {
        let now = self.settings.clock.now();
        let refresh_token = opaque_token(REFRESH_TOKEN_PREFIX)?;
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let session = session::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant.id),
            user_id: Set(user.id),
            auth_method: Set(method.to_owned()),
            user_agent: Set(meta.user_agent.clone()),
            source_ip: Set(meta.source_ip.clone()),
            created_at: Set(now),
            last_seen_at: Set(now),
            mfa_verified_at: Set(mfa.then_some(now)),
            revoked_at: Set(None),
            revoked_reason: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(ApiError::from_db)?;
        insert_refresh_token(&txn, session.id, &refresh_token).await?;
        let actor = Actor {
            session_id: Some(session.id),
            ..Actor::user(user.id, tenant.id, Vec::new())
        };
        AuditEvent::success("auth.sign_in", "session", session.id)
            .with_details(json!({ "method": method, "mfa": mfa, "userId": user.id }))
            .record(&txn, &actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        self.issue(tenant, session, refresh_token).await
    }

    async fn issue(
        &self,
        tenant: &tenant::Model,
        session: session::Model,
        refresh_token: String,
    ) -> ApiResult<Issued> {
        let key = self.keys.signing_key(&self.db).await?;
        self.issue_with(&key, tenant, session, refresh_token).await
    }

    async fn issue_with(
        &self,
        key: &portal_kit::access_token::SigningKey,
        tenant: &tenant::Model,
        session: session::Model,
        refresh_token: String,
    ) -> ApiResult<Issued> {
        let roles = store::roles_of_users(&self.db, tenant.id, [session.user_id])
            .await?
            .remove(&session.user_id)
            .unwrap_or_default()
            .into_iter()
            .map(|role| role.name)
            .collect();
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.settings.access_token_ttl)
            .map_err(|_| ApiError::internal("access token ttl out of range"))?;
        let (ends, _) = expiry(tenant, &session);
        let expires_at = (now + ttl).min(ends);
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: session.user_id,
            tid: tenant.id,
            sid: session.id,
            roles,
            amr: amr(&session),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: Uuid::now_v7(),
        };
        Ok(Issued {
            access_token: key.sign(&claims)?,
            access_token_expires_at: expires_at,
            refresh_token,
            session,
        })
    }

    /// Exchanges a refresh token for a new access token and a new refresh token. A used,
    /// unknown, revoked or timed-out token gets `UNAUTHENTICATED`; a used one also
    /// revokes its whole session.
    pub async fn refresh(&self, meta: &RequestMeta, presented: &str) -> ApiResult<Issued> {
        let hash = token_hash(presented.trim());
        // Taken before the transaction: creating or rotating a key writes, and the new
        // tokens are signed before the rotation commits (so a failure after the commit
        // cannot lose the new refresh token and make the retry look like theft).
        let key = self.keys.signing_key(&self.db).await?;
        // An unknown token (anyone can send one) is refused before taking the write lock.
        let known = refresh_token::Entity::find_by_id(hash.clone())
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        if known.is_none() {
            return Err(ApiError::AuthenticationFailed(REFRESH_FAILED));
        }
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let Some(token) = refresh_token::Entity::find_by_id(hash.clone())
            .one(&txn)
            .await
            .map_err(ApiError::from_db)?
        else {
            return Err(ApiError::AuthenticationFailed(REFRESH_FAILED));
        };
        let session = session::Entity::find_by_id(token.session_id)
            .one(&txn)
            .await
            .map_err(ApiError::from_db)?
            .ok_or(ApiError::AuthenticationFailed(REFRESH_FAILED))?;
        let tenant = store::tenant(&txn, session.tenant_id).await?;
        let actor = Actor {
            session_id: Some(session.id),
            ..Actor::user(session.user_id, session.tenant_id, Vec::new())
        };
        // Claim the token atomically: of two concurrent uses, exactly one wins.
        let claimed = refresh_token::Entity::update_many()
            .col_expr(
                refresh_token::Column::UsedAt,
                Expr::value(self.settings.clock.now()),
            )
            .filter(refresh_token::Column::TokenHash.eq(hash))
            .filter(refresh_token::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        let refusal = if claimed.rows_affected == 0 {
            Some(RevokeReason::RefreshReuse)
        } else if session.revoked_at.is_some() {
            None
        } else {
            let (ends, reason) = expiry(&tenant, &session);
            (ends <= self.settings.clock.now()).then_some(reason)
        };
        if session.revoked_at.is_some() || refusal.is_some() {
            if let Some(reason) = refusal
                && session.revoked_at.is_none()
            {
                revoke_in(&txn, &[session.id], reason).await?;
                let action = match reason {
                    RevokeReason::RefreshReuse => "auth.refresh_reuse",
                    _ => "session.expire",
                };
                AuditEvent::success(action, "session", session.id)
                    .with_details(json!({ "reason": reason.as_str() }))
                    .record(&txn, &actor, meta)
                    .await?;
            }
            txn.commit().await.map_err(ApiError::from_db)?;
            return Err(ApiError::AuthenticationFailed(REFRESH_FAILED));
        }
        let user = user::Entity::find_by_id(session.user_id)
            .one(&txn)
            .await
            .map_err(ApiError::from_db)?;
        if !user.is_some_and(|u| UserStatus::from_db(&u.status) == UserStatus::Active) {
            txn.commit().await.map_err(ApiError::from_db)?;
            return Err(ApiError::AuthenticationFailed(REFRESH_FAILED));
        }
        let next = opaque_token(REFRESH_TOKEN_PREFIX)?;
        insert_refresh_token(&txn, session.id, &next).await?;
        let mut active: session::ActiveModel = session.into();
        active.last_seen_at = Set(self.settings.clock.now());
        if meta.source_ip.is_some() {
            active.source_ip = Set(meta.source_ip.clone());
        }
        if meta.user_agent.is_some() {
            active.user_agent = Set(meta.user_agent.clone());
        }
        let session = active.update(&txn).await.map_err(ApiError::from_db)?;
        let issued = self.issue_with(&key, &tenant, session, next).await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(issued)
    }

    /// The actor's live sessions, newest first.
    pub async fn sessions_of(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> ApiResult<Vec<session::Model>> {
        let tenant = store::tenant(&self.db, tenant_id).await?;
        let now = self.settings.clock.now();
        let rows = session::Entity::find()
            .filter(session::Column::TenantId.eq(tenant_id))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null())
            .order_by_desc(session::Column::LastSeenAt)
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        Ok(rows
            .into_iter()
            .filter(|s| expiry(&tenant, s).0 > now)
            .collect())
    }

    /// Revokes the actor's own sessions: `which` of them. Returns how many ended.
    pub async fn revoke_own(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        which: Which,
        reason: RevokeReason,
    ) -> ApiResult<u64> {
        let tenant_id = actor.tenant()?;
        let user_id = actor.principal()?;
        self.revoke_user_sessions(actor, meta, tenant_id, user_id, which, reason)
            .await
    }

    /// Revokes all sessions of `user_id`, a user of the actor's tenant (who may: the
    /// policies' decision on `Mutation.revokeUserSessions`).
    pub async fn revoke_for_user(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        user_id: Uuid,
    ) -> ApiResult<u64> {
        let tenant_id = actor.tenant()?;
        store::user(&self.db, tenant_id, user_id).await?;
        self.revoke_user_sessions(
            actor,
            meta,
            tenant_id,
            user_id,
            Which::All,
            RevokeReason::Revoked,
        )
        .await
    }

    async fn revoke_user_sessions(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        tenant_id: Uuid,
        user_id: Uuid,
        which: Which,
        reason: RevokeReason,
    ) -> ApiResult<u64> {
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let mut select = session::Entity::find()
            .filter(session::Column::TenantId.eq(tenant_id))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null());
        select = match which {
            Which::One(id) => select.filter(session::Column::Id.eq(id)),
            Which::AllBut(id) => select.filter(session::Column::Id.ne(id)),
            Which::All => select,
        };
        let ids: Vec<Uuid> = select
            .all(&txn)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|s| s.id)
            .collect();
        if let Which::One(_) = which
            && ids.is_empty()
        {
            return Err(ApiError::NotFound("session"));
        }
        revoke_in(&txn, &ids, reason).await?;
        for id in &ids {
            let action = if reason == RevokeReason::SignOut {
                "auth.sign_out"
            } else {
                "session.revoke"
            };
            AuditEvent::success(action, "session", *id)
                .with_details(json!({ "reason": reason.as_str(), "userId": user_id }))
                .record(&txn, actor, meta)
                .await?;
        }
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(ids.len() as u64)
    }

    /// Changes the actor's password after checking the current one (throttled like
    /// sign-in) and the policy; ends every other session of the user.
    pub async fn change_password(
        &self,
        actor: &Actor,
        meta: &RequestMeta,
        current: &str,
        new: &str,
    ) -> ApiResult<()> {
        let tenant_id = actor.tenant()?;
        let user = store::user(&self.db, tenant_id, actor.principal()?).await?;
        let tenant = store::tenant(&self.db, tenant_id).await?;
        let key = throttle::account_key(&tenant.slug, &user.email);
        throttle::attempt(&self.db, &key, throttle::ACCOUNT, self.settings.clock.now()).await?;
        let stored = credential::Entity::find_by_id(user.id)
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?
            .map(|c| c.password_hash);
        if !verify_password(current, stored).await? {
            AuditEvent::failure("user.password_change", "user", Some(user.id))
                .record(&self.db, actor, meta)
                .await?;
            return Err(ApiError::invalid("currentPassword", "does not match"));
        }
        throttle::clear(&self.db, &key).await?;
        password::check(new, &user.email, &user.display_name)
            .map_err(|violation| ApiError::invalid("newPassword", violation.message()))?;
        let hash = hash_password(new).await?;
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        set_password_in(&txn, &user, hash).await?;
        let others = session::Entity::find()
            .filter(session::Column::UserId.eq(user.id))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::Id.ne(actor.session_id.unwrap_or_default()))
            .all(&txn)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>();
        revoke_in(&txn, &others, RevokeReason::PasswordChanged).await?;
        AuditEvent::success("user.password_change", "user", user.id)
            .with_details(json!({ "sessionsRevoked": others.len() }))
            .record(&txn, actor, meta)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(())
    }
}

/// The `amr` claim of a session's tokens (RFC 8176 values).
fn amr(session: &session::Model) -> Vec<String> {
    let first = match session.auth_method.as_str() {
        "password" => "pwd",
        other => other,
    };
    let mut amr = vec![first.to_owned()];
    if session.mfa_verified_at.is_some() {
        amr.push("otp".into());
        amr.push("mfa".into());
    }
    amr
}

async fn mark_mfa_verified(db: &impl ConnectionTrait, session_id: Uuid) -> ApiResult<()> {
    session::Entity::update_many()
        .col_expr(session::Column::MfaVerifiedAt, Expr::value(Utc::now()))
        .filter(session::Column::Id.eq(session_id))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

async fn insert_refresh_token(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    token: &str,
) -> ApiResult<()> {
    refresh_token::ActiveModel {
        token_hash: Set(token_hash(token)),
        session_id: Set(session_id),
        created_at: Set(Utc::now()),
        used_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    Ok(())
}

/// Marks `ids` revoked for `reason` (already revoked ones keep their first reason).
pub async fn revoke_in(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    reason: RevokeReason,
) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(Utc::now()))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::Id.is_in(ids.iter().copied()))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

/// Whether `password` matches `stored`; with no stored hash, verifies against a dummy so
/// the time taken does not tell whether the account exists.
async fn verify_password(password: &str, stored: Option<String>) -> ApiResult<bool> {
    let password = password.to_owned();
    let known = stored.is_some();
    let target = stored
        .or_else(|| DUMMY_HASH.clone())
        .ok_or_else(|| ApiError::internal("dummy hash unavailable"))?;
    let matches = tokio::task::spawn_blocking(move || password::verify(&password, &target))
        .await
        .map_err(|_| ApiError::internal("verification task failed"))?
        .map_err(|_| ApiError::internal("stored password hash unreadable"))?;
    Ok(known && matches)
}
