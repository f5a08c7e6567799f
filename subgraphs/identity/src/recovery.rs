//! Password reset and invitations: a random single-use token (stored as a hash) sent by
//! email through the outbox, redeemed by setting a new password.
//!
//! - A reset request answers the same whether or not the account exists, and the email
//!   leaves through the outbox, so neither the answer nor its timing tells.
//! - Links are built from the configured public URL, never from the request's Host.
//! - Completing a reset sets the password, ends every session of the user and does not
//!   sign in. Redeeming an invitation also activates the invited user.

use portal_kit::db::BeginWrite;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde_json::json;

use portal_entities::identity::{email_change, password_reset_token, tenant, user};
use portal_kit::audit::AuditEvent;
use portal_kit::mail::{self, Email};
use portal_kit::secret::{opaque_token, token_hash};
use portal_kit::{Actor, ApiError, ApiResult, RequestMeta};

use crate::credentials::{revoke_all_of_user, set_password_in};
use crate::domain::RevokeReason;
use crate::domain::UserStatus;
use crate::password::hash_password;
use crate::settings::IdentitySettings;
use crate::{password, throttle};

/// How long a reset link works.
pub const RESET_TTL: chrono::Duration = chrono::Duration::minutes(30);

/// How long an invitation link works.
pub const INVITE_TTL: chrono::Duration = chrono::Duration::hours(72);

/// At most 3 reset emails per account per hour, 20 per source address (beyond that the
/// request is answered the same and nothing is sent).
const ACCOUNT_REQUESTS: throttle::Policy = throttle::Policy {
    max_failures: 3,
    window: Duration::from_secs(3600),
    lockout: Duration::from_secs(3600),
};
const SOURCE_REQUESTS: throttle::Policy = throttle::Policy {
    max_failures: 20,
    window: Duration::from_secs(3600),
    lockout: Duration::from_secs(3600),
};

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Reset,
    Invite,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Invite => "invite",
        }
    }
}

async fn issue_token(
    db: &impl ConnectionTrait,
    user: &user::Model,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> ApiResult<String> {
    let token = opaque_token("prs")?;
    let ttl = match purpose {
        Purpose::Reset => RESET_TTL,
        Purpose::Invite => INVITE_TTL,
    };
    password_reset_token::ActiveModel {
        token_hash: Set(token_hash(&token)),
        user_id: Set(user.id),
        tenant_id: Set(user.tenant_id),
        purpose: Set(purpose.as_str().into()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(ApiError::from_db)?;
    Ok(token)
}

fn link(settings: &IdentitySettings, path: &str, token: &str) -> String {
    format!(
        "{}/{path}?token={token}",
        settings.public_url.trim_end_matches('/')
    )
}

/// Writes an invitation for `user` of `tenant` to the outbox (in the caller's
/// transaction): a link to choose a password, valid for 72 hours.
pub async fn invite_in(
    db: &impl ConnectionTrait,
    settings: &IdentitySettings,
    tenant: &tenant::Model,
    user: &user::Model,
) -> ApiResult<()> {
    let token = issue_token(db, user, Purpose::Invite, settings.clock.now()).await?;
    let text = format!(
        "Hello {name},\n\nYou have been invited to the {tenant} portal. Choose your password \
         here (the link works once, for 72 hours):\n\n{link}\n\nIf you did not expect this, \
         ignore this email.\n",
        name = user.display_name,
        tenant = tenant.name,
        link = link(settings, "accept-invitation", &token),
    );
    mail::enqueue(
        db,
        &settings.data_key,
        Some(tenant.id),
        Email {
            to: user.email.clone(),
            subject: format!("Your invitation to {}", tenant.name),
            text,
            unsubscribe: None,
        },
    )
    .await
}

/// Handles a reset request: when the account exists (and the request is not throttled),
/// a token and an email are written in one transaction. Answers the same either way.
pub async fn request_reset(
    db: &DatabaseConnection,
    settings: &IdentitySettings,
    meta: &RequestMeta,
    tenant_slug: &str,
    email: &str,
) -> ApiResult<()> {
    let slug = tenant_slug.trim().to_lowercase();
    let email = email.trim().to_lowercase();
    let account_key = throttle::reset_key(&slug, &email);
    let source_key = meta
        .source_ip
        .as_ref()
        .map(|ip| format!("reset-source:{ip}"));
    let mut keys = vec![account_key.clone()];
    keys.extend(source_key.clone());
    let now = settings.clock.now();
    if throttle::ensure_open(db, &keys, now).await.is_err() {
        return Ok(());
    }
    // Every request counts, so the caps hold whether or not the account exists.
    throttle::record_failure(db, &account_key, ACCOUNT_REQUESTS, now).await?;
    if let Some(key) = &source_key {
        throttle::record_failure(db, key, SOURCE_REQUESTS, now).await?;
    }
    let Some(tenant) = tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(slug.as_str()))
        // An off-boarded tenant's tombstone is no tenant: nothing is recorded in its
        // closed audit log.
        .filter(tenant::Column::Status.ne(crate::offboarding::TENANT_DELETED))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
    else {
        return Ok(());
    };
    let found = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant.id))
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    // The address of an account that exists is that person's data, whatever its state:
    // the event is about them, so it is sealed to them (and erased with them).
    let about = found.as_ref().map(|u| u.id);
    let Some(user) = found.filter(|u| UserStatus::from_db(&u.status).may_recover()) else {
        AuditEvent::failure("auth.password_reset_request", "user", about)
            .in_tenant(tenant.id)
            .with_details(json!({ "email": email, "reason": "unknown_account" }))
            .record(db, &Actor::anonymous(), meta)
            .await?;
        return Ok(());
    };
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let token = issue_token(&txn, &user, Purpose::Reset, now).await?;
    let text = format!(
        "Hello {name},\n\nSomebody asked to reset the password of your {tenant} portal \
         account. Choose a new password here (the link works once, for 30 minutes):\n\n\
         {link}\n\nIf this was not you, ignore this email: your password stays as it is.\n",
        name = user.display_name,
        tenant = tenant.name,
        link = link(settings, "reset-password", &token),
    );
    mail::enqueue(
        &txn,
        &settings.data_key,
        Some(tenant.id),
        Email {
            to: user.email.clone(),
            subject: format!("Reset your {} portal password", tenant.name),
            text,
            unsubscribe: None,
        },
    )
    .await?;
    AuditEvent::success("auth.password_reset_request", "user", user.id)
        .in_tenant(tenant.id)
        .record(&txn, &Actor::anonymous(), meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// Redeems a reset or invitation token with a new password: sets it, ends every session
/// of the user, activates an invited user. Does not sign in.
pub async fn complete_reset(
    db: &DatabaseConnection,
    settings: &IdentitySettings,
    meta: &RequestMeta,
    token: &str,
    new_password: &str,
) -> ApiResult<()> {
    let invalid = || ApiError::invalid("token", "invalid or expired link; request a new one");
    let hash = token_hash(token.trim());
    let now = settings.clock.now();
    let found = password_reset_token::Entity::find_by_id(hash.clone())
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|t| t.used_at.is_none() && t.expires_at > now)
        .ok_or_else(invalid)?;
    let user = user::Entity::find_by_id(found.user_id)
        .filter(user::Column::TenantId.eq(found.tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|u| UserStatus::from_db(&u.status).may_recover())
        .ok_or_else(invalid)?;
    password::check(new_password, &user.email, &user.display_name)
        .map_err(|violation| ApiError::invalid("newPassword", violation.message()))?;
    let hash_of_password = hash_password(new_password).await?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    // Single use: claim this token, and retire every other outstanding one of the user.
    let claimed = password_reset_token::Entity::update_many()
        .col_expr(
            password_reset_token::Column::UsedAt,
            Expr::value(Utc::now()),
        )
        .filter(password_reset_token::Column::TokenHash.eq(hash))
        .filter(password_reset_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if claimed.rows_affected != 1 {
        return Err(invalid());
    }
    password_reset_token::Entity::update_many()
        .col_expr(
            password_reset_token::Column::UsedAt,
            Expr::value(Utc::now()),
        )
        .filter(password_reset_token::Column::UserId.eq(user.id))
        .filter(password_reset_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    set_password_in(&txn, &user, hash_of_password).await?;
    let revoked = revoke_all_of_user(&txn, user.id, RevokeReason::PasswordChanged).await?;
    let activated = UserStatus::from_db(&user.status) == UserStatus::Invited;
    if activated {
        let mut active: user::ActiveModel = user.clone().into();
        active.status = Set(UserStatus::Active.as_str().into());
        active.updated_at = Set(Utc::now());
        active.update(&txn).await.map_err(ApiError::from_db)?;
    }
    let actor = Actor::user(user.id, user.tenant_id, Vec::new());
    AuditEvent::success("auth.password_reset", "user", user.id)
        .with_details(json!({
            "purpose": found.purpose,
            "sessionsRevoked": revoked,
            "activated": activated,
        }))
        .record(&txn, &actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// How long a link confirming a new email works.
pub const EMAIL_CHANGE_TTL: chrono::Duration = chrono::Duration::hours(24);

/// Starts changing `user`'s sign-in email to `new_email` (already validated and checked
/// for a step-up): a single-use link goes to the new address — the change happens only
/// when it is used — and the old address is told.
pub async fn request_email_change(
    db: &DatabaseConnection,
    settings: &IdentitySettings,
    actor: &Actor,
    meta: &RequestMeta,
    tenant: &tenant::Model,
    user: &user::Model,
    new_email: &str,
) -> ApiResult<()> {
    let taken = user::Entity::find()
        .filter(user::Column::TenantId.eq(tenant.id))
        .filter(user::Column::Email.eq(new_email))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .is_some();
    if taken {
        return Err(ApiError::Conflict(
            "an object with these values already exists".into(),
        ));
    }
    let token = opaque_token("pec")?;
    let now = settings.clock.now();
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    email_change::ActiveModel {
        token_hash: Set(token_hash(&token)),
        user_id: Set(user.id),
        tenant_id: Set(tenant.id),
        new_email: Set(new_email.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + EMAIL_CHANGE_TTL),
        used_at: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(ApiError::from_db)?;
    let confirm = Email {
        to: new_email.to_owned(),
        subject: format!("Confirm your new {} portal email", tenant.name),
        text: format!(
            "Hello {name},\n\nConfirm that this address becomes the sign-in email of your \
             {tenant} portal account (the link works once, for 24 hours):\n\n{link}\n\n\
             If you did not ask for this, ignore this email.\n",
            name = user.display_name,
            tenant = tenant.name,
            link = link(settings, "confirm-email", &token),
        ),
        unsubscribe: None,
    };
    let notice = Email {
        to: user.email.clone(),
        subject: format!("Your {} portal email is about to change", tenant.name),
        text: format!(
            "Hello {name},\n\nSomebody signed in to your {tenant} portal account asked to \
             change its sign-in email to {new_email}. It changes once the new address \
             confirms. If this was not you, contact your administrator at once.\n",
            name = user.display_name,
            tenant = tenant.name,
        ),
        unsubscribe: None,
    };
    for email in [confirm, notice] {
        mail::enqueue(&txn, &settings.data_key, Some(tenant.id), email).await?;
    }
    AuditEvent::success("user.email_change_request", "user", user.id)
        .with_details(json!({ "to": new_email }))
        .record(&txn, actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)
}

/// Confirms an email change with the token from the link sent to the new address.
pub async fn confirm_email_change(
    db: &DatabaseConnection,
    settings: &IdentitySettings,
    meta: &RequestMeta,
    token: &str,
) -> ApiResult<user::Model> {
    let invalid = || ApiError::invalid("token", "invalid or expired link");
    let hash = token_hash(token.trim());
    let found = email_change::Entity::find_by_id(hash.clone())
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|c| c.used_at.is_none() && c.expires_at > settings.clock.now())
        .ok_or_else(invalid)?;
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let claimed = email_change::Entity::update_many()
        .col_expr(email_change::Column::UsedAt, Expr::value(Utc::now()))
        .filter(email_change::Column::TokenHash.eq(hash))
        .filter(email_change::Column::UsedAt.is_null())
        .exec(&txn)
        .await
        .map_err(ApiError::from_db)?;
    if claimed.rows_affected != 1 {
        return Err(invalid());
    }
    let user = user::Entity::find_by_id(found.user_id)
        .filter(user::Column::TenantId.eq(found.tenant_id))
        .one(&txn)
        .await
        .map_err(ApiError::from_db)?
        .ok_or_else(invalid)?;
    let before = user.email.clone();
    let mut active: user::ActiveModel = user.into();
    active.email = Set(found.new_email.clone());
    active.updated_at = Set(Utc::now());
    // A unique violation (the address was taken meanwhile) rolls everything back.
    let updated = active.update(&txn).await.map_err(ApiError::from_db)?;
    let actor = Actor::user(updated.id, updated.tenant_id, Vec::new());
    AuditEvent::success("user.email_change", "user", updated.id)
        .with_details(json!({ "before": before, "after": updated.email }))
        .record(&txn, &actor, meta)
        .await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(updated)
}
