//! Second factors: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew)
//! and single-use recovery codes.
//!
//! - Enrolment creates a *pending* factor and hands out its secret (base32 and an
//!   `otpauth://` URI); only a correct code activates it, together with ten recovery
//!   codes shown once.
//! - A code is accepted once: the factor remembers the last accepted time step and a
//!   code of that step or an earlier one is refused (replay), atomically across processes.
//! - Recovery codes (`XXXX-XXXX-XXXX-XXXX`, 80 random bits) are stored as SHA-256 hashes
//!   and each works once.
//! - Step-up: sensitive mutations need a second factor confirmed on the current session
//!   within [`STEP_UP_WINDOW`].

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use totp_rs::{Builder, Totp};
use uuid::Uuid;

use portal_entities::identity::{mfa_factor, recovery_code, session, user};
use portal_kit::secret::{DataKey, random_bytes, token_hash};
use portal_kit::{Actor, ApiError, ApiResult};

/// How recent a confirmed second factor must be for a sensitive mutation.
pub const STEP_UP_WINDOW: chrono::Duration = chrono::Duration::minutes(10);

/// Recovery codes handed out at a time.
pub const RECOVERY_CODES: usize = 10;

/// The issuer shown in authenticator apps.
const ISSUER: &str = "Portal";

/// The purpose TOTP secrets are sealed for.
const SEAL_PURPOSE: &str = "identity.totp_secret";

/// Factor states.
pub const PENDING: &str = "PENDING";
/// An active factor.
pub const ACTIVE: &str = "ACTIVE";

fn totp(secret: Vec<u8>, account: &str) -> ApiResult<Totp> {
    Builder::new()
        .with_secret(secret)
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|err| ApiError::internal(format!("building TOTP: {err:?}")))
}

/// What a user needs to add the factor to an authenticator app.
#[derive(Clone, Debug)]
pub struct Enrollment {
    /// The secret, base32 without padding.
    pub secret: String,
    /// `otpauth://totp/Portal:<email>?secret=…&issuer=Portal…`.
    pub otpauth_uri: String,
}

/// The user's factor, if any.
pub async fn factor(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> ApiResult<Option<mfa_factor::Model>> {
    mfa_factor::Entity::find_by_id(user_id)
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// Whether the user has an active factor.
pub async fn is_enabled(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<bool> {
    Ok(factor(db, user_id)
        .await?
        .is_some_and(|f| f.status == ACTIVE))
}

/// Starts (or restarts) enrolment: a new pending factor with a fresh 160-bit secret.
/// `CONFLICT` when an active factor exists (disable it first).
pub async fn begin_enrollment(
    db: &impl ConnectionTrait,
    data_key: &DataKey,
    user: &user::Model,
) -> ApiResult<Enrollment> {
    let existing = factor(db, user.id).await?;
    if existing.as_ref().is_some_and(|f| f.status == ACTIVE) {
        return Err(ApiError::Conflict(
            "a second factor is already active; disable it first".into(),
        ));
    }
    let secret = random_bytes::<20>()?.to_vec();
    let code = totp(secret.clone(), &user.email)?;
    let enrollment = Enrollment {
        secret: code.secret().to_base32(),
        otpauth_uri: code
            .to_url()
            .map_err(|err| ApiError::internal(format!("otpauth URI: {err:?}")))?,
    };
    let row = mfa_factor::ActiveModel {
        user_id: Set(user.id),
        tenant_id: Set(user.tenant_id),
        secret_sealed: Set(data_key.seal(SEAL_PURPOSE, &secret)?),
        status: Set(PENDING.into()),
        last_used_step: Set(None),
        created_at: Set(Utc::now()),
        activated_at: Set(None),
    };
    if existing.is_some() {
        row.update(db).await.map_err(ApiError::from_db)?;
    } else {
        row.insert(db).await.map_err(ApiError::from_db)?;
    }
    Ok(enrollment)
}

/// Checks a TOTP `code` against the user's factor (active, or pending when
/// `pending_ok`), consuming its time step. `false` for a wrong or replayed code.
pub async fn check_totp(
    db: &impl ConnectionTrait,
    data_key: &DataKey,
    user: &user::Model,
    code: &str,
    pending_ok: bool,
) -> ApiResult<bool> {
    let Some(factor) = factor(db, user.id).await? else {
        return Ok(false);
    };
    if factor.status != ACTIVE && !(pending_ok && factor.status == PENDING) {
        return Ok(false);
    }
    let secret = data_key
        .open(SEAL_PURPOSE, &factor.secret_sealed)
        .map_err(|_| ApiError::internal("TOTP secret cannot be opened with the data key"))?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Ok(false);
    }
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
    let Some(step) = totp(secret, &user.email)?.check(&code, now) else {
        return Ok(false);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    // Consume the step: of two uses of one code (or any code of an earlier step), only
    // the first gets here with rows_affected = 1.
    let consumed = mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::LastUsedStep, Expr::value(step))
        .filter(mfa_factor::Column::UserId.eq(user.id))
        .filter(
            mfa_factor::Column::LastUsedStep
                .is_null()
                .or(mfa_factor::Column::LastUsedStep.lt(step)),
        )
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(consumed.rows_affected == 1)
}

/// Activates the user's pending factor and issues fresh recovery codes (returned once).
pub async fn activate(db: &impl ConnectionTrait, user: &user::Model) -> ApiResult<Vec<String>> {
    mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::Status, Expr::value(ACTIVE))
        .col_expr(mfa_factor::Column::ActivatedAt, Expr::value(Utc::now()))
        .filter(mfa_factor::Column::UserId.eq(user.id))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    new_recovery_codes(db, user).await
}

/// Removes the user's factor and recovery codes.
pub async fn remove(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<()> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    mfa_factor::Entity::delete_many()
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(())
}

fn normalize_recovery_code(raw: &str) -> String {
    raw.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Replaces the user's recovery codes with [`RECOVERY_CODES`] new ones (returned once).
pub async fn new_recovery_codes(
    db: &impl ConnectionTrait,
    user: &user::Model,
) -> ApiResult<Vec<String>> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user.id))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        // 16 characters of a 32-letter alphabet: 80 random bits.
        let raw: String = random_bytes::<16>()?
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
            .collect();
        let code = format!(
            "{}-{}-{}-{}",
            &raw[0..4],
            &raw[4..8],
            &raw[8..12],
            &raw[12..16]
        );
        recovery_code::ActiveModel {
            code_hash: Set(token_hash(&normalize_recovery_code(&code))),
            user_id: Set(user.id),
            tenant_id: Set(user.tenant_id),
            created_at: Set(Utc::now()),
            used_at: Set(None),
        }
        .insert(db)
        .await
        .map_err(ApiError::from_db)?;
        codes.push(code);
    }
    Ok(codes)
}

/// Consumes one of the user's recovery codes; `false` when unknown or already used.
pub async fn use_recovery_code(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    code: &str,
) -> ApiResult<bool> {
    let normalized = normalize_recovery_code(code);
    if normalized.len() != 16 {
        return Ok(false);
    }
    let used = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(Utc::now()))
        .filter(recovery_code::Column::CodeHash.eq(token_hash(&normalized)))
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(used.rows_affected == 1)
}

/// A TOTP code of the active factor, or a recovery code.
pub async fn check_any(
    db: &impl ConnectionTrait,
    data_key: &DataKey,
    user: &user::Model,
    code: &str,
) -> ApiResult<bool> {
    if code.trim().len() <= 8 {
        check_totp(db, data_key, user, code, false).await
    } else {
        use_recovery_code(db, user.id, code).await
    }
}

/// `STEP_UP_REQUIRED` unless the actor's session confirmed a second factor within
/// [`STEP_UP_WINDOW`].
pub async fn require_step_up(db: &DatabaseConnection, actor: &Actor) -> ApiResult<()> {
    let Some(session_id) = actor.session_id else {
        return Err(ApiError::StepUpRequired);
    };
    let confirmed: Option<DateTime<Utc>> = session::Entity::find_by_id(session_id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .filter(|s| s.revoked_at.is_none() && Some(s.user_id) == actor.id)
        .and_then(|s| s.mfa_verified_at);
    match confirmed {
        Some(at) if at > Utc::now() - STEP_UP_WINDOW => Ok(()),
        _ => Err(ApiError::StepUpRequired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vectors_for_sha1_hold() -> ApiResult<()> {
        // RFC 6238 appendix B, SHA-1, truncated to the 6 digits we use.
        let code = totp(b"12345678901234567890".to_vec(), "a@b.c")?;
        for (time, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code.generate(time).to_string(), expected, "t={time}");
        }
        Ok(())
    }

    #[test]
    fn recovery_codes_normalize_forgivingly() {
        assert_eq!(
            normalize_recovery_code("abcd-efgh ijkl-mnop"),
            "ABCDEFGHIJKLMNOP"
        );
    }
}
