//! Erasure of one person from identity: its side of a GDPR Art. 17 erasure, driven by the
//! privacy workflow through [`crate::privacy`].
//!
//! - **What lets them in goes**: their password hash, second factor and recovery codes,
//!   single sign-on links, role grants, sign-in challenges, reset and invitation links,
//!   email changes, refresh tokens, and the throttle counters kept under their addresses.
//! - **Their sessions end the way every revocation ends them**: each live one is revoked
//!   ([`crate::sessions::revoke_in`]), and gateways refuse its access tokens once their
//!   revocation feed ([`crate::feed`]) reads `revoked_at`. A revoked row must therefore
//!   outlive every token of it: sessions revoked longer ago than gateways remember
//!   ([`VERIFY_AFTER_RETIREMENT`]) are deleted; the others stay as bare revoked rows —
//!   no address, no user agent — that hold nothing but ids, times and the sign-in method.
//! - **What is the tenant's stays, without naming them**: the API keys they created
//!   belong to service accounts, but the person knew their secrets, so the keys still
//!   working are revoked (a key's revocation reaches every gateway within seconds); the
//!   evidence packs and the requests they filed for other people no longer name them.
//! - **Copies of their data made for their access requests** expire (the scheduled file
//!   purge deletes them); the requests about them are kept, as the record of what was
//!   asked and done (Art. 5(2), 12).
//! - **Their user row stays, anonymized**, as the deleted user other domains' records
//!   point to: `erased-<id>@erased.invalid`, "Deleted user", no time zone, status
//!   `ERASED`, which nothing signs in as, resets, re-enables or re-invites.
//!
//! One transaction, one audit event (`user.erase`: counts and ids, never a name or an
//! address). A second run finds nothing left.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::identity::{
    api_key, audit_evidence_export, auth_throttle, compliance_report, credential,
    data_subject_request, email_change, mfa_challenge, mfa_factor, password_reset_token,
    recovery_code, refresh_token, session, tenant, user, user_identity, user_role,
};
use portal_entities::platform::{audit_event, file};
use portal_kit::audit::{AuditEvent, personal};
use portal_kit::db::BeginWrite;
use portal_kit::envelope::KeyProvider;
use portal_kit::privacy::{DataSubject, Erasure};
use portal_kit::{ApiError, ApiResult};

use crate::domain::{self, RevokeReason, UserStatus};
use crate::keys::VERIFY_AFTER_RETIREMENT;
use crate::{SUBGRAPH_NAME, evidence_export, sessions, subject_requests, throttle};

/// Ids bound per statement.
const CHUNK: usize = 500;

/// Audit actions whose details hold earlier addresses or names of the user they are
/// about.
const PAST_PROFILE_ACTIONS: [&str; 3] = [
    "user.email_change",
    "user.email_change_request",
    "user.update",
];

/// What an erasure did, collection by collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Erased {
    /// Their user row, anonymized (0 when it was already).
    pub profile: u64,
    /// Live sessions revoked.
    pub sessions_revoked: u64,
    /// Sessions deleted: revoked before any access token of them could still be valid.
    pub sessions_deleted: u64,
    /// Sessions kept as bare revoked rows, their address and user agent removed.
    pub sessions_stripped: u64,
    /// Refresh tokens deleted.
    pub refresh_tokens: u64,
    /// Sign-ins waiting for a second factor, deleted.
    pub mfa_challenges: u64,
    /// Password reset and invitation links deleted.
    pub reset_links: u64,
    /// Email changes deleted.
    pub email_changes: u64,
    /// Password hashes deleted.
    pub credentials: u64,
    /// Second factors deleted.
    pub mfa_factors: u64,
    /// Recovery codes deleted.
    pub recovery_codes: u64,
    /// Single sign-on links deleted.
    pub sso_links: u64,
    /// Role grants deleted.
    pub role_grants: u64,
    /// Sign-in and reset throttle counters kept under their addresses, deleted.
    pub throttles: u64,
    /// API keys they created that still worked, revoked.
    pub api_keys_revoked: u64,
    /// API keys they created, no longer naming them.
    pub api_keys_unlinked: u64,
    /// Evidence pack exports and compliance reports they asked for, no longer naming them.
    pub evidence_exports: u64,
    /// Data-subject requests they filed for other people, no longer naming them.
    pub requests_filed: u64,
    /// Stored archives of their access requests, expired.
    pub access_archives: u64,
    /// Data-subject requests about them, kept.
    pub requests_kept: u64,
}

/// The strings that identify `subject` in free-form copies: their address and name (not
/// the placeholders of an erased user), the addresses of their email changes, and the
/// earlier addresses and names their audit events record (opened with `keys`).
/// Addresses another user of the tenant signs in with now are left out: they identify
/// that user. Empty when the user row is gone.
pub async fn identifiers(
    db: &DatabaseConnection,
    keys: Arc<dyn KeyProvider>,
    subject: DataSubject,
) -> ApiResult<Vec<String>> {
    let (tenant_id, person) = (subject.tenant_id, subject.user_id);
    let Some(profile) = user::Entity::find_by_id(person)
        .filter(user::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?
    else {
        return Ok(Vec::new());
    };
    let mut addresses = Vec::new();
    let mut names = Vec::new();
    if UserStatus::from_db(&profile.status) != UserStatus::Erased {
        addresses.push(profile.email);
        names.push(profile.display_name);
    }
    addresses.extend(email_changes_of(db, subject).await?);
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant_id))
        .filter(audit_event::Column::TargetType.eq("user"))
        .filter(audit_event::Column::TargetId.eq(person))
        .filter(audit_event::Column::Action.is_in(PAST_PROFILE_ACTIONS))
        .order_by_asc(audit_event::Column::Id)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut reader = personal::Reader::new(keys);
    for row in &events {
        // Shredded already (a retry): nothing left to read.
        let Some(details) = reader.open(db, row).await?.details else {
            continue;
        };
        for side in ["before", "after"] {
            match row.action.as_str() {
                "user.update" => {
                    names.extend(text(details.get(side).and_then(|s| s.get("displayName"))))
                }
                "user.email_change" => addresses.extend(text(details.get(side))),
                _ => {}
            }
        }
        if row.action == "user.email_change_request" {
            addresses.extend(text(details.get("to")));
        }
    }
    let placeholder = domain::erased_email(person);
    let mut addresses: Vec<String> = addresses
        .iter()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty() && *a != placeholder)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let others = held_by_others(db, subject, &addresses).await?;
    addresses.retain(|a| !others.contains(a));
    // A name another user of the tenant goes by is theirs too: not scrubbed.
    let names: Vec<String> = names.into_iter().collect();
    let others_names = names_of_others(db, subject, &names).await?;
    let mut seen: BTreeSet<String> = addresses.iter().cloned().collect();
    let mut found = addresses;
    for name in names {
        let name = name.trim();
        let lower = name.to_lowercase();
        if !name.is_empty()
            && name != domain::DELETED_USER_NAME
            && !others_names.contains(&lower)
            && seen.insert(lower)
        {
            found.push(name.to_owned());
        }
    }
    Ok(found)
}

/// A string member of audit details.
fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// The new addresses of the person's email changes, pending or done.
async fn email_changes_of(
    db: &impl ConnectionTrait,
    subject: DataSubject,
) -> ApiResult<Vec<String>> {
    email_change::Entity::find()
        .select_only()
        .column(email_change::Column::NewEmail)
        .filter(email_change::Column::TenantId.eq(subject.tenant_id))
        .filter(email_change::Column::UserId.eq(subject.user_id))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)
}

/// Which of `names` (compared lower-cased) another user of the tenant goes by.
async fn names_of_others(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    names: &[String],
) -> ApiResult<BTreeSet<String>> {
    use sea_orm::sea_query::{ExprTrait, Func};
    let lowered: Vec<String> = names.iter().map(|n| n.trim().to_lowercase()).collect();
    let mut held = BTreeSet::new();
    for chunk in lowered.chunks(CHUNK) {
        let found: Vec<String> = user::Entity::find()
            .select_only()
            .column(user::Column::DisplayName)
            .filter(user::Column::TenantId.eq(subject.tenant_id))
            .filter(user::Column::Id.ne(subject.user_id))
            .filter(
                Expr::expr(Func::lower(Expr::col(user::Column::DisplayName)))
                    .is_in(chunk.iter().cloned()),
            )
            .into_tuple()
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        held.extend(found.into_iter().map(|n| n.trim().to_lowercase()));
    }
    Ok(held)
}

/// Which of `addresses` (lower-cased) another user of the tenant signs in with.
async fn held_by_others(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    addresses: &[String],
) -> ApiResult<BTreeSet<String>> {
    let mut held = BTreeSet::new();
    for chunk in addresses.chunks(CHUNK) {
        let found: Vec<String> = user::Entity::find()
            .select_only()
            .column(user::Column::Email)
            .filter(user::Column::TenantId.eq(subject.tenant_id))
            .filter(user::Column::Id.ne(subject.user_id))
            .filter(user::Column::Email.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        held.extend(found);
    }
    Ok(held)
}

/// Erases `subject` from identity in one transaction (see the module docs), audited as
/// `user.erase` by `erasure.actor`.
pub async fn erase_user(
    db: &DatabaseConnection,
    subject: DataSubject,
    erasure: &Erasure,
) -> ApiResult<Erased> {
    let txn = db.begin_write().await.map_err(ApiError::from_db)?;
    let erased = erase_in(&txn, subject, erasure, Utc::now()).await?;
    txn.commit().await.map_err(ApiError::from_db)?;
    Ok(erased)
}

/// [`erase_user`] at `now` in the caller's transaction, which commits it: for a caller
/// that records more in the same transaction (the request's completion).
pub async fn erase_in(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    erasure: &Erasure,
    now: DateTime<Utc>,
) -> ApiResult<Erased> {
    let (tenant_id, person) = (subject.tenant_id, subject.user_id);
    let profile = user::Entity::find_by_id(person)
        .filter(user::Column::TenantId.eq(tenant_id))
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    let mut erased = Erased {
        // Keyed by address: forgotten while the addresses are still known.
        throttles: forget_throttles(db, subject, profile.as_ref(), &erasure.identifiers).await?,
        ..Erased::default()
    };
    end_sessions(db, subject, now, &mut erased).await?;
    erased.mfa_challenges = delete_theirs::<mfa_challenge::Entity>(
        db,
        subject,
        mfa_challenge::Column::TenantId,
        mfa_challenge::Column::UserId,
    )
    .await?;
    erased.reset_links = delete_theirs::<password_reset_token::Entity>(
        db,
        subject,
        password_reset_token::Column::TenantId,
        password_reset_token::Column::UserId,
    )
    .await?;
    erased.email_changes = delete_theirs::<email_change::Entity>(
        db,
        subject,
        email_change::Column::TenantId,
        email_change::Column::UserId,
    )
    .await?;
    erased.recovery_codes = delete_theirs::<recovery_code::Entity>(
        db,
        subject,
        recovery_code::Column::TenantId,
        recovery_code::Column::UserId,
    )
    .await?;
    erased.mfa_factors = delete_theirs::<mfa_factor::Entity>(
        db,
        subject,
        mfa_factor::Column::TenantId,
        mfa_factor::Column::UserId,
    )
    .await?;
    erased.credentials = delete_theirs::<credential::Entity>(
        db,
        subject,
        credential::Column::TenantId,
        credential::Column::UserId,
    )
    .await?;
    erased.sso_links = delete_theirs::<user_identity::Entity>(
        db,
        subject,
        user_identity::Column::TenantId,
        user_identity::Column::UserId,
    )
    .await?;
    erased.role_grants = delete_theirs::<user_role::Entity>(
        db,
        subject,
        user_role::Column::TenantId,
        user_role::Column::UserId,
    )
    .await?;
    let revoked_keys = untie_api_keys(db, subject, now, &mut erased).await?;
    erased.evidence_exports = audit_evidence_export::Entity::update_many()
        .col_expr(
            audit_evidence_export::Column::RequestedBy,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(audit_evidence_export::Column::TenantId.eq(tenant_id))
        .filter(audit_evidence_export::Column::RequestedBy.eq(person))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    // So do the compliance reports they asked for.
    erased.evidence_exports += compliance_report::Entity::update_many()
        .col_expr(
            compliance_report::Column::RequestedBy,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(compliance_report::Column::TenantId.eq(tenant_id))
        .filter(compliance_report::Column::RequestedBy.eq(person))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    // The packs' and reports' stored files name who asked too.
    file::Entity::update_many()
        .col_expr(file::Column::CreatedBy, Expr::value(Option::<Uuid>::None))
        .filter(file::Column::TenantId.eq(tenant_id))
        .filter(file::Column::Domain.eq(SUBGRAPH_NAME))
        .filter(file::Column::OwnerType.is_in([
            evidence_export::FILE_OWNER,
            crate::compliance_reports::FILE_OWNER,
        ]))
        .filter(file::Column::CreatedBy.eq(person))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?;
    erased.requests_filed = data_subject_request::Entity::update_many()
        .col_expr(
            data_subject_request::Column::RequestedBy,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(data_subject_request::Column::TenantId.eq(tenant_id))
        .filter(data_subject_request::Column::RequestedBy.eq(person))
        .filter(data_subject_request::Column::SubjectId.ne(person))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    let about: Vec<Uuid> = data_subject_request::Entity::find()
        .select_only()
        .column(data_subject_request::Column::Id)
        .filter(data_subject_request::Column::TenantId.eq(tenant_id))
        .filter(data_subject_request::Column::SubjectId.eq(person))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    erased.requests_kept = about.len() as u64;
    for chunk in about.chunks(CHUNK) {
        erased.access_archives += file::Entity::update_many()
            .col_expr(file::Column::ExpiresAt, Expr::value(now))
            .filter(file::Column::TenantId.eq(tenant_id))
            .filter(file::Column::Domain.eq(SUBGRAPH_NAME))
            .filter(file::Column::OwnerType.eq(subject_requests::FILE_OWNER))
            .filter(file::Column::OwnerId.is_in(chunk.iter().copied()))
            .filter(
                Condition::any()
                    .add(file::Column::ExpiresAt.is_null())
                    .add(file::Column::ExpiresAt.gt(now)),
            )
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    erased.profile = user::Entity::update_many()
        .col_expr(
            user::Column::Email,
            Expr::value(domain::erased_email(person)),
        )
        .col_expr(
            user::Column::DisplayName,
            Expr::value(domain::DELETED_USER_NAME),
        )
        .col_expr(user::Column::TimeZone, Expr::value(Option::<String>::None))
        .col_expr(
            user::Column::Status,
            Expr::value(UserStatus::Erased.as_str()),
        )
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::TenantId.eq(tenant_id))
        .filter(user::Column::Id.eq(person))
        .filter(user::Column::Status.ne(UserStatus::Erased.as_str()))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    AuditEvent::success("user.erase", "user", person)
        .in_tenant(tenant_id)
        .with_details(json!({
            "profile": erased.profile,
            "sessionsRevoked": erased.sessions_revoked,
            "sessionsDeleted": erased.sessions_deleted,
            "sessionsStripped": erased.sessions_stripped,
            "refreshTokens": erased.refresh_tokens,
            "signInChallenges": erased.mfa_challenges,
            "passwordResetLinks": erased.reset_links,
            "emailChanges": erased.email_changes,
            "credentials": erased.credentials,
            "secondFactors": erased.mfa_factors,
            "recoveryCodes": erased.recovery_codes,
            "singleSignOn": erased.sso_links,
            "roleGrants": erased.role_grants,
            "signInThrottles": erased.throttles,
            "apiKeysRevoked": revoked_keys,
            "apiKeysUnlinked": erased.api_keys_unlinked,
            "auditEvidenceExports": erased.evidence_exports,
            "dataSubjectRequestsFiled": erased.requests_filed,
            "accessArchives": erased.access_archives,
            "dataSubjectRequestsKept": erased.requests_kept,
        }))
        .record(db, &erasure.actor, &erasure.meta)
        .await?;
    Ok(erased)
}

/// Deletes the rows of `E` whose tenant and user columns (`tenant_column`, `user_column`)
/// are the person's; how many.
async fn delete_theirs<E: EntityTrait>(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    tenant_column: E::Column,
    user_column: E::Column,
) -> ApiResult<u64> {
    Ok(E::delete_many()
        .filter(tenant_column.eq(subject.tenant_id))
        .filter(user_column.eq(subject.user_id))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected)
}

/// Deletes the sign-in and reset throttle counters kept under the person's addresses
/// (`profile`'s, their email changes', and the address `identifiers`) — not those of an
/// address another user of the tenant signs in with now. `auth_throttles` has no tenant
/// column: the tenant is part of each key. How many.
async fn forget_throttles(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    profile: Option<&user::Model>,
    identifiers: &[String],
) -> ApiResult<u64> {
    let Some(tenant) = tenant::Entity::find_by_id(subject.tenant_id)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
    else {
        return Ok(0);
    };
    let current = profile
        .filter(|p| UserStatus::from_db(&p.status) != UserStatus::Erased)
        .map(|p| p.email.clone());
    let mut addresses: BTreeSet<String> = identifiers
        .iter()
        .filter(|id| id.contains('@'))
        .cloned()
        .chain(email_changes_of(db, subject).await?)
        .chain(current)
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    let listed: Vec<String> = addresses.iter().cloned().collect();
    for held in held_by_others(db, subject, &listed).await? {
        addresses.remove(&held);
    }
    let keys: Vec<String> = addresses
        .iter()
        .flat_map(|a| {
            [
                throttle::account_key(&tenant.slug, a),
                throttle::reset_key(&tenant.slug, a),
            ]
        })
        .collect();
    let mut count = 0;
    for chunk in keys.chunks(CHUNK) {
        count += auth_throttle::Entity::delete_many()
            .filter(auth_throttle::Column::Key.is_in(chunk.iter().cloned()))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    Ok(count)
}

/// Ends the person's sessions: their refresh tokens go; each live session is revoked as
/// every revocation is (gateways read `revoked_at` within a second); sessions revoked
/// longer ago than gateways remember revocations — longer than any access token lives —
/// are deleted, the others kept without their address and user agent, so that gateways
/// go on refusing their tokens.
async fn end_sessions(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    now: DateTime<Utc>,
    erased: &mut Erased,
) -> ApiResult<()> {
    let (tenant_id, person) = (subject.tenant_id, subject.user_id);
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .column(session::Column::RevokedAt)
        .filter(session::Column::TenantId.eq(tenant_id))
        .filter(session::Column::UserId.eq(person))
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    for chunk in ids.chunks(CHUNK) {
        // Refresh tokens have no tenant column: their sessions are the tenant's.
        erased.refresh_tokens += refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::SessionId.is_in(chunk.iter().copied()))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    let remembered = portal_kit::chrono_duration(VERIFY_AFTER_RETIREMENT);
    if let Some(forgotten) = now.checked_sub_signed(remembered) {
        erased.sessions_deleted = session::Entity::delete_many()
            .filter(session::Column::TenantId.eq(tenant_id))
            .filter(session::Column::UserId.eq(person))
            .filter(session::Column::RevokedAt.lt(forgotten))
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    erased.sessions_stripped = session::Entity::update_many()
        .col_expr(
            session::Column::UserAgent,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            session::Column::SourceIp,
            Expr::value(Option::<String>::None),
        )
        .filter(session::Column::TenantId.eq(tenant_id))
        .filter(session::Column::UserId.eq(person))
        .filter(
            Condition::any()
                .add(session::Column::RevokedAt.is_null())
                .add(session::Column::UserAgent.is_not_null())
                .add(session::Column::SourceIp.is_not_null()),
        )
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    let live: Vec<Uuid> = rows
        .iter()
        .filter(|(_, revoked)| revoked.is_none())
        .map(|(id, _)| *id)
        .collect();
    for chunk in live.chunks(CHUNK) {
        sessions::revoke_in(db, chunk, RevokeReason::UserErased).await?;
    }
    erased.sessions_revoked = live.len() as u64;
    Ok(())
}

/// Revokes the API keys the person created that still work and unlinks all of them from
/// the person; the ids of the keys revoked.
async fn untie_api_keys(
    db: &impl ConnectionTrait,
    subject: DataSubject,
    now: DateTime<Utc>,
    erased: &mut Erased,
) -> ApiResult<Vec<Uuid>> {
    let (tenant_id, person) = (subject.tenant_id, subject.user_id);
    let working: Vec<Uuid> = api_key::Entity::find()
        .select_only()
        .column(api_key::Column::Id)
        .filter(api_key::Column::TenantId.eq(tenant_id))
        .filter(api_key::Column::CreatedBy.eq(person))
        .filter(api_key::Column::RevokedAt.is_null())
        .into_tuple()
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    for chunk in working.chunks(CHUNK) {
        erased.api_keys_revoked += api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now))
            .filter(api_key::Column::TenantId.eq(tenant_id))
            .filter(api_key::Column::Id.is_in(chunk.iter().copied()))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(db)
            .await
            .map_err(ApiError::from_db)?
            .rows_affected;
    }
    erased.api_keys_unlinked = api_key::Entity::update_many()
        .col_expr(
            api_key::Column::CreatedBy,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(api_key::Column::TenantId.eq(tenant_id))
        .filter(api_key::Column::CreatedBy.eq(person))
        .exec(db)
        .await
        .map_err(ApiError::from_db)?
        .rows_affected;
    Ok(working)
}
