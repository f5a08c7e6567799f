//! Identity's side of the privacy contract ([`portal_kit::privacy`]): the person's
//! profile, roles, sessions (with the addresses and agents they signed in from), second
//! factors and single sign-on links, the API keys they created, and the audit events that
//! hold their personal data — opened, as the audit API shows them.
//!
//! Left out: password hashes, TOTP secrets, recovery codes and token hashes (secrets, not
//! information about the person), and other people's data in audit events about them (an
//! admin's address stays sealed to the admin).
//!
//! Erasure ([`crate::erasure`]): identity keeps the person's profile, so it names their
//! identifiers — addresses, past and present, and names. It erases what lets them sign
//! in, ends their sessions, revokes the API keys they created, keeps the requests about
//! them, and leaves their user row anonymized and `ERASED`, as the deleted user the other
//! domains' records point to.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use portal_entities::identity::{
    api_key, data_subject_request, email_change, mfa_factor, oidc_provider, role, session, user,
    user_identity, user_role,
};
use portal_entities::platform::audit_event;
use portal_kit::audit::personal;
use portal_kit::envelope::KeyProvider;
use portal_kit::privacy::{DataSubject, DomainErasure, DomainExport, Erasure, PrivacyDomain};
use portal_kit::{ApiError, ApiResult};

use crate::erasure::{self, Erased};

/// Identity's side of the privacy contract: export and erasure of a data subject.
pub struct Privacy {
    db: DatabaseConnection,
    keys: Arc<dyn KeyProvider>,
}

impl Privacy {
    /// Over `db`, opening audit events' personal data with the master key's `keys`.
    pub fn new(db: DatabaseConnection, keys: Arc<dyn KeyProvider>) -> Self {
        Self { db, keys }
    }

    async fn audit_events(&self, subject: DataSubject) -> ApiResult<Vec<Value>> {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::TenantId.eq(subject.tenant_id))
            // What holds their personal data, what they did, and what was done to them.
            .filter(
                Condition::any()
                    .add(audit_event::Column::SubjectId.eq(subject.user_id))
                    .add(audit_event::Column::ActorId.eq(subject.user_id))
                    .add(
                        Condition::all()
                            .add(audit_event::Column::TargetType.eq("user"))
                            .add(audit_event::Column::TargetId.eq(subject.user_id)),
                    ),
            )
            .order_by_asc(audit_event::Column::Id)
            .all(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        let mut reader = personal::Reader::new(self.keys.clone());
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let opened = reader.open(&self.db, &row).await?;
            // The address and agent are the actor's: theirs only when they acted. Personal
            // details belong to the event's subject: theirs only when it is them.
            let own = row.actor_id == Some(subject.user_id);
            let details = if row.subject_id == Some(subject.user_id) {
                opened.details
            } else {
                row.details.clone()
            };
            out.push(json!({
                "id": row.id.to_string(),
                "at": row.created_at,
                "action": row.action,
                "outcome": row.outcome,
                "actorKind": row.actor_kind,
                "actorId": row.actor_id.map(|a| a.to_string()),
                "targetType": row.target_type,
                "targetId": row.target_id.map(|t| t.to_string()),
                "sourceIp": if own { opened.source_ip } else { None },
                "userAgent": if own { opened.user_agent } else { None },
                "details": details,
            }));
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl PrivacyDomain for Privacy {
    fn name(&self) -> &'static str {
        "identity"
    }

    async fn export_tenant(&self, tenant: Uuid) -> ApiResult<DomainExport> {
        portal_kit::privacy::tenant::export(&self.db, tenant, &tenant_tables()).await
    }

    async fn erase_tenant(
        &self,
        tenant: Uuid,
        by: &portal_kit::privacy::TenantErasure,
    ) -> ApiResult<DomainErasure> {
        crate::offboarding::erase_tenant(&self.db, tenant, &tenant_tables(), by).await
    }

    async fn export(&self, subject: DataSubject) -> ApiResult<DomainExport> {
        let db = &self.db;
        let (tenant, person) = (subject.tenant_id, subject.user_id);
        let profile = user::Entity::find_by_id(person)
            .filter(user::Column::TenantId.eq(tenant))
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .ok_or(ApiError::NotFound("user"))?;
        let held = user_role::Entity::find()
            .filter(user_role::Column::TenantId.eq(tenant))
            .filter(user_role::Column::UserId.eq(person))
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let role_names: HashMap<Uuid, String> = role::Entity::find()
            .filter(role::Column::TenantId.eq(tenant))
            .filter(role::Column::Id.is_in(held.iter().map(|h| h.role_id)))
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        let sessions = session::Entity::find()
            .filter(session::Column::TenantId.eq(tenant))
            .filter(session::Column::UserId.eq(person))
            .order_by_asc(session::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let factors = mfa_factor::Entity::find()
            .filter(mfa_factor::Column::TenantId.eq(tenant))
            .filter(mfa_factor::Column::UserId.eq(person))
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let identities = user_identity::Entity::find()
            .filter(user_identity::Column::TenantId.eq(tenant))
            .filter(user_identity::Column::UserId.eq(person))
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let providers: HashMap<Uuid, String> = oidc_provider::Entity::find()
            .filter(oidc_provider::Column::TenantId.eq(tenant))
            .filter(oidc_provider::Column::Id.is_in(identities.iter().map(|i| i.provider_id)))
            .all(db)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        let keys = api_key::Entity::find()
            .filter(api_key::Column::TenantId.eq(tenant))
            .filter(api_key::Column::CreatedBy.eq(person))
            .order_by_asc(api_key::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let email_changes = email_change::Entity::find()
            .filter(email_change::Column::TenantId.eq(tenant))
            .filter(email_change::Column::UserId.eq(person))
            .order_by_asc(email_change::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let requests = data_subject_request::Entity::find()
            .filter(data_subject_request::Column::TenantId.eq(tenant))
            .filter(data_subject_request::Column::SubjectId.eq(person))
            .order_by_asc(data_subject_request::Column::CreatedAt)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        let data = json!({
            "profile": {
                "id": profile.id.to_string(),
                "email": profile.email,
                "displayName": profile.display_name,
                "status": profile.status,
                "timeZone": profile.time_zone,
                "createdAt": profile.created_at,
                "updatedAt": profile.updated_at,
            },
            "roles": held.into_iter().map(|held| json!({
                "roleId": held.role_id.to_string(),
                "name": role_names.get(&held.role_id),
                "since": held.created_at,
            })).collect::<Vec<_>>(),
            "sessions": sessions.into_iter().map(|s| json!({
                "id": s.id.to_string(),
                "method": s.auth_method,
                "sourceIp": s.source_ip,
                "userAgent": s.user_agent,
                "createdAt": s.created_at,
                "lastSeenAt": s.last_seen_at,
                "mfaVerifiedAt": s.mfa_verified_at,
                "revokedAt": s.revoked_at,
                "revokedReason": s.revoked_reason,
            })).collect::<Vec<_>>(),
            "secondFactors": factors.into_iter().map(|f| json!({
                "kind": "totp",
                "status": f.status,
                "createdAt": f.created_at,
                "activatedAt": f.activated_at,
            })).collect::<Vec<_>>(),
            "singleSignOn": identities.into_iter().map(|link| json!({
                "providerId": link.provider_id.to_string(),
                "provider": providers.get(&link.provider_id),
                "subject": link.subject,
                "linkedAt": link.created_at,
            })).collect::<Vec<_>>(),
            "apiKeysCreated": keys.into_iter().map(|k| json!({
                "id": k.id.to_string(),
                "name": k.name,
                "prefix": k.prefix,
                "serviceAccountId": k.service_account_id.to_string(),
                "createdAt": k.created_at,
                "expiresAt": k.expires_at,
                "lastUsedAt": k.last_used_at,
                "revokedAt": k.revoked_at,
            })).collect::<Vec<_>>(),
            "emailChanges": email_changes.into_iter().map(|c| json!({
                "newEmail": c.new_email,
                "requestedAt": c.created_at,
                "expiresAt": c.expires_at,
                "confirmedAt": c.used_at,
            })).collect::<Vec<_>>(),
            "dataSubjectRequests": requests.into_iter().map(|r| json!({
                "id": r.id.to_string(),
                "kind": r.kind,
                "status": r.status,
                "requestedBy": r.requested_by.map(|b| b.to_string()),
                "requestedAt": r.created_at,
                "verifiedAt": r.verified_at,
                "dueAt": r.due_at,
                "completedAt": r.completed_at,
            })).collect::<Vec<_>>(),
            "auditEvents": self.audit_events(subject).await?,
        });
        Ok(DomainExport {
            data,
            files: Vec::new(),
        })
    }

    async fn identifiers(&self, subject: DataSubject) -> ApiResult<Vec<String>> {
        erasure::identifiers(&self.db, self.keys.clone(), subject).await
    }

    async fn erase(&self, subject: DataSubject, erasure: &Erasure) -> ApiResult<DomainErasure> {
        let done = erasure::erase_user(&self.db, subject, erasure).await?;
        Ok(report(&done))
    }
}

/// What an erasure did, as the request's result says it.
fn report(done: &Erased) -> DomainErasure {
    let mut out = DomainErasure::default();
    out.anonymized(
        "profile",
        done.profile,
        "their user row stays as the deleted user other records point to: address, name \
         and time zone replaced, status ERASED; it can never sign in again",
    )
    .erased(
        "sessions",
        done.sessions_deleted,
        "their past sign-ins, with the addresses and user agents they came from",
    )
    .anonymized(
        "recentSessions",
        done.sessions_stripped,
        "their recent sign-ins, the open ones revoked: addresses and user agents removed; \
         the bare revoked row stays for the two hours gateways need to go on refusing its \
         tokens",
    )
    .erased(
        "refreshTokens",
        done.refresh_tokens,
        "the tokens that kept their sign-ins going",
    )
    .erased(
        "signInChallenges",
        done.mfa_challenges,
        "sign-ins waiting for their second factor",
    )
    .erased(
        "passwordResetLinks",
        done.reset_links,
        "their password reset and invitation links",
    )
    .erased(
        "emailChanges",
        done.email_changes,
        "their email changes, with the addresses",
    )
    .erased("credentials", done.credentials, "their password hash")
    .erased(
        "secondFactors",
        done.mfa_factors,
        "their authenticator (TOTP) secret",
    )
    .erased("recoveryCodes", done.recovery_codes, "their recovery codes")
    .erased(
        "singleSignOn",
        done.sso_links,
        "the links between their accounts at identity providers and the portal",
    )
    .erased("roles", done.role_grants, "the roles they held")
    .erased(
        "signInThrottles",
        done.throttles,
        "failed sign-in and reset counters kept under their addresses",
    )
    .erased(
        "apiKeysRevoked",
        done.api_keys_revoked,
        "API keys they created that still worked: revoked, since they knew the secrets",
    )
    .anonymized(
        "apiKeysCreated",
        done.api_keys_unlinked,
        "API keys they created stay with their service accounts, no longer naming who \
         created them",
    )
    .anonymized(
        "auditEvidenceExports",
        done.evidence_exports,
        "evidence packs and compliance reports they asked for stay the tenant's audit \
         evidence, no longer naming who asked (access reviews made before the erasure \
         still list them as they were: SOC 2 evidence kept for its retention, Art. \
         17(3)(b), (e))",
    )
    .anonymized(
        "dataSubjectRequestsFiled",
        done.requests_filed,
        "requests they filed for other people stay those people's record, no longer naming \
         who filed them",
    )
    .erased(
        "accessArchives",
        done.access_archives,
        "copies of their data prepared for their access requests: expired, and deleted \
         from storage by the scheduled purge",
    )
    .kept(
        "dataSubjectRequests",
        done.requests_kept,
        "what they asked for and what was done, this erasure included: the controller \
         must be able to show it (GDPR Art. 5(2) accountability, Art. 12)",
    );
    out
}

/// Identity's tables of a tenant, children before parents (the tenant's own row stays, as
/// the off-boarded tombstone its audit log and off-boarding record name). Secrets — hashes,
/// sealed keys and tokens — are left out of exports.
fn tenant_tables() -> Vec<Box<dyn portal_kit::privacy::tenant::TenantTable>> {
    use portal_entities::identity::{
        audit_evidence_export, compliance_report, credential, mfa_challenge, oidc_login,
        password_reset_token, recovery_code, service_account,
    };
    use portal_kit::privacy::tenant::table;
    vec![
        table::<user_role::Entity>(user_role::Column::TenantId, &[]),
        table::<credential::Entity>(credential::Column::TenantId, &["password_hash"]),
        table::<recovery_code::Entity>(recovery_code::Column::TenantId, &["code_hash"]),
        table::<mfa_challenge::Entity>(mfa_challenge::Column::TenantId, &["token_hash"]),
        table::<mfa_factor::Entity>(mfa_factor::Column::TenantId, &["secret_sealed"]),
        table::<password_reset_token::Entity>(
            password_reset_token::Column::TenantId,
            &["token_hash"],
        ),
        table::<email_change::Entity>(email_change::Column::TenantId, &["token_hash"]),
        table::<user_identity::Entity>(user_identity::Column::TenantId, &[]),
        table::<oidc_login::Entity>(
            oidc_login::Column::TenantId,
            &["state_hash", "code_verifier_sealed"],
        ),
        table::<session::Entity>(session::Column::TenantId, &[]),
        table::<api_key::Entity>(api_key::Column::TenantId, &["secret_hash"]),
        table::<service_account::Entity>(service_account::Column::TenantId, &[]),
        table::<oidc_provider::Entity>(oidc_provider::Column::TenantId, &["client_secret_sealed"]),
        table::<data_subject_request::Entity>(
            data_subject_request::Column::TenantId,
            &["verification_hash", "erasure_sealed"],
        ),
        table::<compliance_report::Entity>(compliance_report::Column::TenantId, &[]),
        table::<audit_evidence_export::Entity>(audit_evidence_export::Column::TenantId, &[]),
        table::<user::Entity>(user::Column::TenantId, &[]),
        table::<role::Entity>(role::Column::TenantId, &[]),
    ]
}
