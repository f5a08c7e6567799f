//! The GraphQL surface of sign-in and sessions: `signIn`, `refreshSession`, `signOut`,
//! `changePassword`, the `mySessions` query and session revocation.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use portal_entities::identity::session;
use portal_kit::context::{actor, db, meta};
use portal_kit::input;
use portal_kit::{ApiError, ApiResult};

use crate::mfa;
use crate::sessions::{Issued, RevokeReason, SignInOutcome, Which, authenticator, expiry};
use crate::store;
use crate::types::User;

/// One signed-in device.
#[derive(SimpleObject)]
pub struct Session {
    /// Stable id.
    pub id: ID,
    /// The client's user agent when it last refreshed.
    pub device: Option<String>,
    /// The client's address when it last refreshed.
    pub ip_address: Option<String>,
    /// How the user signed in (`password`, `sso`).
    pub auth_method: String,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last sign-in or refresh.
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless used again (idle or absolute timeout, whichever first).
    pub expires_at: DateTime<Utc>,
    /// Whether this is the session of the request asking.
    pub current: bool,
}

impl Session {
    fn new(row: session::Model, expires_at: DateTime<Utc>, current: Option<uuid::Uuid>) -> Self {
        Self {
            id: ID(row.id.to_string()),
            current: current == Some(row.id),
            device: row.user_agent,
            ip_address: row.source_ip,
            auth_method: row.auth_method,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at,
        }
    }
}

/// What a successful sign-in or refresh returns. Keep the refresh token secret: it is
/// shown once and works once.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for `Authorization: Bearer …` on every request.
    pub access_token: String,
    /// When the access token expires; refresh before.
    pub access_token_expires_at: DateTime<Utc>,
    /// Single-use token for `refreshSession`.
    pub refresh_token: String,
    /// The session.
    pub session: Session,
    /// The signed-in user.
    pub user: User,
    /// Recovery codes, only when this sign-in completed an MFA enrolment (shown once).
    pub recovery_codes: Option<Vec<String>>,
}

/// A new second factor to add to an authenticator app.
#[derive(SimpleObject)]
pub struct MfaEnrollment {
    /// The TOTP secret, base32 (for manual entry).
    pub secret: String,
    /// `otpauth://` URI (for a QR code).
    pub otpauth_uri: String,
}

impl From<mfa::Enrollment> for MfaEnrollment {
    fn from(enrollment: mfa::Enrollment) -> Self {
        Self {
            secret: enrollment.secret,
            otpauth_uri: enrollment.otpauth_uri,
        }
    }
}

/// The password was right; a second factor is needed to finish (`completeSignIn`).
#[derive(SimpleObject)]
pub struct MfaChallenge {
    /// Single-use token for `completeSignIn`.
    pub token: String,
    /// When it expires (five minutes).
    pub expires_at: DateTime<Utc>,
    /// Present when the user must first enrol this new factor (tenant policy); complete
    /// the sign-in with a code from it.
    pub enrollment: Option<MfaEnrollment>,
}

/// The answer to `signIn`: exactly one of `auth` and `mfa` is set.
#[derive(SimpleObject)]
pub struct SignInResult {
    /// Signed in.
    pub auth: Option<AuthPayload>,
    /// A second factor is needed.
    pub mfa: Option<MfaChallenge>,
}

/// Input of `signIn`.
#[derive(InputObject)]
pub struct SignInInput {
    /// The tenant's slug.
    pub tenant: String,
    /// The user's email.
    pub email: String,
    /// The password.
    pub password: String,
}

/// The GraphQL answer for freshly issued tokens.
pub async fn payload(ctx: &Context<'_>, issued: Issued) -> ApiResult<AuthPayload> {
    let db = db(ctx)?;
    let tenant = store::tenant(db, issued.session.tenant_id).await?;
    let user = store::user(db, tenant.id, issued.session.user_id).await?;
    let (expires_at, _) = expiry(&tenant, &issued.session);
    let session_id = issued.session.id;
    Ok(AuthPayload {
        access_token: issued.access_token,
        access_token_expires_at: issued.access_token_expires_at,
        refresh_token: issued.refresh_token,
        session: Session::new(issued.session, expires_at, Some(session_id)),
        user: user.into(),
        recovery_codes: None,
    })
}

/// Session queries.
#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The caller's live sessions, most recently used first.
    async fn my_sessions(&self, ctx: &Context<'_>) -> ApiResult<Vec<Session>> {
        let actor = actor(ctx);
        let (tenant_id, user_id) = (actor.tenant()?, actor.principal()?);
        let tenant = store::tenant(db(ctx)?, tenant_id).await?;
        let rows = authenticator(ctx)?.sessions_of(tenant_id, user_id).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let (ends, _) = expiry(&tenant, &row);
                Session::new(row, ends, actor.session_id)
            })
            .collect())
    }
}

/// Sign-in and session mutations.
#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Signs in with a password. Every failure answers `UNAUTHENTICATED` with the same
    /// message; repeated failures lock the account and the source (`RATE_LIMITED`). When
    /// the user has (or must enrol) a second factor, the answer is an `mfa` challenge.
    async fn sign_in(&self, ctx: &Context<'_>, input: SignInInput) -> ApiResult<SignInResult> {
        if input.password.len() > 1024 || input.email.len() > 320 || input.tenant.len() > 63 {
            return Err(ApiError::AuthenticationFailed(
                "invalid tenant, email or password",
            ));
        }
        let outcome = authenticator(ctx)?
            .sign_in(meta(ctx), &input.tenant, &input.email, &input.password)
            .await?;
        Ok(match outcome {
            SignInOutcome::SignedIn(issued) => SignInResult {
                auth: Some(payload(ctx, issued).await?),
                mfa: None,
            },
            SignInOutcome::SecondFactor {
                challenge,
                expires_at,
                enrollment,
            } => SignInResult {
                auth: None,
                mfa: Some(MfaChallenge {
                    token: challenge,
                    expires_at,
                    enrollment: enrollment.map(MfaEnrollment::from),
                }),
            },
        })
    }

    /// Finishes a sign-in with a second factor: a TOTP code, or a recovery code.
    async fn complete_sign_in(
        &self,
        ctx: &Context<'_>,
        challenge: String,
        code: String,
    ) -> ApiResult<AuthPayload> {
        if challenge.len() > 256 || code.len() > 64 {
            return Err(ApiError::AuthenticationFailed("invalid or expired code"));
        }
        let (issued, recovery_codes) = authenticator(ctx)?
            .complete_sign_in(meta(ctx), &challenge, &code)
            .await?;
        let mut payload = payload(ctx, issued).await?;
        payload.recovery_codes = recovery_codes;
        Ok(payload)
    }

    /// Confirms a second factor on this session; sensitive mutations (API keys, MFA
    /// changes) need one within the last ten minutes.
    async fn step_up(&self, ctx: &Context<'_>, code: String) -> ApiResult<bool> {
        if code.len() > 64 {
            return Err(ApiError::AuthenticationFailed("invalid or expired code"));
        }
        authenticator(ctx)?
            .step_up(actor(ctx), meta(ctx), &code)
            .await?;
        Ok(true)
    }

    /// Starts enrolling a TOTP second factor (the current password confirms it is you);
    /// confirm with `confirmMfaEnrollment`.
    async fn begin_mfa_enrollment(
        &self,
        ctx: &Context<'_>,
        current_password: Option<String>,
    ) -> ApiResult<MfaEnrollment> {
        if current_password.as_ref().is_some_and(|p| p.len() > 1024) {
            return Err(ApiError::invalid("currentPassword", "does not match"));
        }
        Ok(authenticator(ctx)?
            .begin_mfa_enrollment(actor(ctx), current_password.as_deref())
            .await?
            .into())
    }

    /// Activates the factor being enrolled with a first code; returns ten single-use
    /// recovery codes, shown this once. (Sensitive changes then need a `stepUp`.)
    async fn confirm_mfa_enrollment(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> ApiResult<Vec<String>> {
        if code.len() > 64 {
            return Err(ApiError::invalid("code", "invalid or expired code"));
        }
        authenticator(ctx)?
            .confirm_mfa_enrollment(actor(ctx), meta(ctx), &code)
            .await
    }

    /// Asks to change the caller's sign-in email (needs a recent `stepUp`): the new
    /// address gets a link to confirm (24 hours), the old one a notice. Nothing changes
    /// until the link is used (`confirmEmailChange`).
    async fn change_email(&self, ctx: &Context<'_>, new_email: String) -> ApiResult<bool> {
        let email = crate::domain::email("newEmail", &new_email)?;
        authenticator(ctx)?
            .change_email(actor(ctx), meta(ctx), email)
            .await?;
        Ok(true)
    }

    /// Completes an email change with the token from the confirmation link.
    async fn confirm_email_change(&self, ctx: &Context<'_>, token: String) -> ApiResult<User> {
        if token.len() > 256 {
            return Err(ApiError::invalid("token", "invalid or expired link"));
        }
        Ok(authenticator(ctx)?
            .confirm_email_change(meta(ctx), &token)
            .await?
            .into())
    }

    /// Turns the second factor off (needs a recent `stepUp`).
    async fn disable_mfa(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        authenticator(ctx)?
            .disable_mfa(actor(ctx), meta(ctx))
            .await?;
        Ok(true)
    }

    /// Replaces the recovery codes (needs a recent `stepUp`); the old ones stop working.
    async fn regenerate_recovery_codes(&self, ctx: &Context<'_>) -> ApiResult<Vec<String>> {
        authenticator(ctx)?
            .regenerate_recovery_codes(actor(ctx), meta(ctx))
            .await
    }

    /// Exchanges a refresh token (once) for a new access token and refresh token.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> ApiResult<AuthPayload> {
        if refresh_token.len() > 256 {
            return Err(ApiError::AuthenticationFailed(
                "invalid or expired refresh token",
            ));
        }
        let issued = authenticator(ctx)?
            .refresh(meta(ctx), &refresh_token)
            .await?;
        payload(ctx, issued).await
    }

    /// Emails a single-use link to choose a new password (valid 30 minutes) when the
    /// account exists. Always answers `true`, whether or not it does.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        email: String,
    ) -> ApiResult<bool> {
        if tenant.len() <= 63 && email.len() <= 320 {
            authenticator(ctx)?
                .request_password_reset(meta(ctx), &tenant, &email)
                .await?;
        }
        Ok(true)
    }

    /// Sets a new password with the token from a reset or invitation email. Ends every
    /// session of the user and does not sign in.
    async fn complete_password_reset(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> ApiResult<bool> {
        if token.len() > 256 {
            return Err(ApiError::invalid(
                "token",
                "invalid or expired link; request a new one",
            ));
        }
        authenticator(ctx)?
            .complete_password_reset(meta(ctx), &token, &new_password)
            .await?;
        Ok(true)
    }

    /// Ends the caller's current session.
    async fn sign_out(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let actor = actor(ctx);
        let current = actor.session_id.ok_or(ApiError::Unauthenticated)?;
        authenticator(ctx)?
            .revoke_own(actor, meta(ctx), Which::One(current), RevokeReason::SignOut)
            .await?;
        Ok(true)
    }

    /// Ends one of the caller's sessions.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let id = input::id("id", &id)?;
        authenticator(ctx)?
            .revoke_own(actor(ctx), meta(ctx), Which::One(id), RevokeReason::Revoked)
            .await?;
        Ok(true)
    }

    /// Ends all of the caller's sessions except the current one; returns how many ended.
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> ApiResult<u64> {
        let actor = actor(ctx);
        let current = actor.session_id.ok_or(ApiError::Unauthenticated)?;
        authenticator(ctx)?
            .revoke_own(
                actor,
                meta(ctx),
                Which::AllBut(current),
                RevokeReason::Revoked,
            )
            .await
    }

    /// Ends all of the caller's sessions, the current one included.
    async fn revoke_all_sessions(&self, ctx: &Context<'_>) -> ApiResult<u64> {
        authenticator(ctx)?
            .revoke_own(actor(ctx), meta(ctx), Which::All, RevokeReason::Revoked)
            .await
    }

    /// Ends all sessions of a user of the caller's tenant (tenant admins only).
    async fn revoke_user_sessions(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<u64> {
        let user_id = input::id("userId", &user_id)?;
        authenticator(ctx)?
            .revoke_for_user(actor(ctx), meta(ctx), user_id)
            .await
    }

    /// Changes the caller's password; every other session of the caller ends.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> ApiResult<bool> {
        if current_password.len() > 1024 {
            return Err(ApiError::invalid("currentPassword", "does not match"));
        }
        authenticator(ctx)?
            .change_password(actor(ctx), meta(ctx), &current_password, &new_password)
            .await?;
        Ok(true)
    }
}
