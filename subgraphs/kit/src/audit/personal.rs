//! Personal data in audit events, sealed per data subject so that erasing a subject is
//! deleting a key (crypto-shredding): the events stay, and keep verifying, because the
//! audit chain covers the ciphertext, not the plaintext.
//!
//! - **Subjects.** The actor's request facts (address, user agent) belong to the actor: a
//!   user is their own subject; anonymous callers and service accounts share their tenant's
//!   *unattributed* subject ([`unattributed`]). Personal data inside an event's details (an
//!   e-mail address, a display name: [`split`] says which, by action) belongs to the user the
//!   event is about when its target is a user, else to the actor's subject.
//! - **Keys.** Each subject has an X25519 key pair (`audit_subject_keys`). Writers seal to
//!   the public half, so recording an event needs no secret at all; the private half is
//!   sealed to the *escrow* key (`audit_escrow_keys`, its private half wrapped by the
//!   master key's [`KeyProvider`], as tenant keys are), so only processes holding the master
//!   key can read. Shredding clears both halves
//!   and keeps the row: an erased subject never gets a new key, and what is recorded about
//!   it afterwards keeps no personal data.
//! - **Sealing** (ECIES): an ephemeral X25519 key agrees a secret with the recipient's
//!   public key; HKDF-SHA256 (salt: both public keys) derives a one-time AES-256-GCM key;
//!   the associated data binds the ciphertext to its row and role (`actor:<event id>`,
//!   `subject:<event id>`, `subject-key:<subject id>`). Stored form:
//!   `base64url(ephemeral public key ‖ ciphertext ‖ tag)`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hkdf::Hkdf;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Map, Value};
use sha2::Sha256;
use uuid::Uuid;
use x25519_dalek::{PublicKey, StaticSecret};

use portal_entities::platform::{audit_escrow_key, audit_event, audit_subject_key};

use crate::envelope::KeyProvider;
use crate::error::{ApiError, ApiResult};
use crate::secret::random_bytes;

/// What the escrow key's private half is wrapped for.
fn escrow_context(id: &str) -> String {
    format!("portal audit escrow key/{id}")
}

/// HKDF `info` of every seal.
const KDF_INFO: &[u8] = b"portal audit personal data v1";

/// The subject of a tenant's (or, with `None`, the platform's) anonymous callers and
/// service accounts.
pub fn unattributed(tenant_id: Option<Uuid>) -> Uuid {
    Uuid::new_v5(
        &tenant_id.unwrap_or(Uuid::nil()),
        b"portal.audit.unattributed",
    )
}

/// Whose personal data an actor's request facts are.
pub fn actor_subject(actor_kind: &str, actor_id: Option<Uuid>, tenant_id: Option<Uuid>) -> Uuid {
    match (actor_kind, actor_id) {
        ("user", Some(id)) => id,
        _ => unattributed(tenant_id),
    }
}

/// The keys of an event's details that are personal data, by action: top-level members,
/// and members of the `before` and `after` objects of updates.
fn personal_members(action: &str, target_type: &str) -> &'static [&'static str] {
    match (action, target_type) {
        // The old and new address of an e-mail change are the whole of `before`/`after`.
        ("user.email_change", _) => &["before", "after"],
        ("user.email_change_request", _) => &["to"],
        (_, "user") => &["email", "displayName", "name"],
        _ => &["email", "displayName"],
    }
}

/// Splits `details` into what may stay readable and the personal data to seal (`None`
/// when there is none). [`merge`] puts them back together.
pub fn split(action: &str, target_type: &str, details: Value) -> (Option<Value>, Option<Value>) {
    let Value::Object(mut members) = details else {
        return (Some(details), None);
    };
    let names = personal_members(action, target_type);
    let mut personal = Map::new();
    for name in names {
        if let Some(value) = members.remove(*name) {
            personal.insert((*name).to_owned(), value);
        }
    }
    for side in ["before", "after"] {
        if let Some(Value::Object(inner)) = members.get_mut(side) {
            let mut taken = Map::new();
            for name in names {
                if let Some(value) = inner.remove(*name) {
                    taken.insert((*name).to_owned(), value);
                }
            }
            if !taken.is_empty() {
                personal.insert(side.to_owned(), Value::Object(taken));
            }
        }
    }
    let personal = (!personal.is_empty()).then_some(Value::Object(personal));
    (Some(Value::Object(members)), personal)
}

/// `details` with the opened `personal` members put back (objects merged member by member).
pub fn merge(details: Option<Value>, personal: Value) -> Value {
    match (details, personal) {
        (Some(Value::Object(mut members)), Value::Object(extra)) => {
            for (name, value) in extra {
                let merged = match (members.remove(&name), value) {
                    (Some(existing @ Value::Object(_)), value @ Value::Object(_)) => {
                        merge(Some(existing), value)
                    }
                    (_, value) => value,
                };
                members.insert(name, merged);
            }
            Value::Object(members)
        }
        (None, personal) => personal,
        (Some(details), _) => details,
    }
}

fn aead_key(
    shared: &[u8; 32],
    ephemeral: &PublicKey,
    recipient: &PublicKey,
) -> ApiResult<LessSafeKey> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(KDF_INFO, &mut okm)
        .map_err(|_| ApiError::internal("key derivation failed"))?;
    let key = UnboundKey::new(&AES_256_GCM, &okm).map_err(|_| ApiError::internal("bad key"))?;
    Ok(LessSafeKey::new(key))
}

/// `plaintext` sealed to `recipient`, bound to `context`.
pub fn seal_to(recipient: &PublicKey, context: &str, plaintext: &[u8]) -> ApiResult<String> {
    let ephemeral = StaticSecret::from(random_bytes::<32>()?);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(recipient);
    if !shared.was_contributory() {
        return Err(ApiError::internal(
            "a subject key is not a valid X25519 key",
        ));
    }
    let key = aead_key(shared.as_bytes(), &ephemeral_public, recipient)?;
    let mut in_out = plaintext.to_vec();
    // Each key seals exactly one message, so a fixed nonce is safe.
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(context.as_bytes()),
        &mut in_out,
    )
    .map_err(|_| ApiError::internal("sealing failed"))?;
    let mut out = ephemeral_public.as_bytes().to_vec();
    out.extend_from_slice(&in_out);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// What [`seal_to`] sealed to `secret`'s public key for the same `context`; `None` when it
/// does not open.
pub fn open_with(secret: &StaticSecret, context: &str, sealed: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 32 + 16 {
        return None;
    }
    let (ephemeral, ciphertext) = bytes.split_at(32);
    let ephemeral = PublicKey::from(<[u8; 32]>::try_from(ephemeral).ok()?);
    let shared = secret.diffie_hellman(&ephemeral);
    let key = aead_key(shared.as_bytes(), &ephemeral, &PublicKey::from(secret)).ok()?;
    let mut in_out = ciphertext.to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(context.as_bytes()),
            &mut in_out,
        )
        .ok()?;
    Some(plain.to_vec())
}

fn public_key(encoded: &str) -> ApiResult<PublicKey> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ApiError::internal("a stored X25519 public key is malformed"))?;
    Ok(PublicKey::from(bytes))
}

/// Makes the escrow key when there is none (every process that holds the data key calls
/// this at start; concurrent starts agree on one).
pub async fn ensure_escrow(db: &impl ConnectionTrait, provider: &dyn KeyProvider) -> ApiResult<()> {
    if escrow(db).await?.is_some() {
        return Ok(());
    }
    let secret = StaticSecret::from(random_bytes::<32>()?);
    let public = PublicKey::from(&secret);
    // One escrow key: the id is fixed, so a concurrent start's insert loses and both use
    // the winner's.
    let id = "escrow-1";
    let sealed = provider
        .wrap(&escrow_context(id), secret.as_bytes())
        .await?;
    audit_escrow_key::Entity::insert(audit_escrow_key::ActiveModel {
        id: Set(id.into()),
        public_key: Set(URL_SAFE_NO_PAD.encode(public.as_bytes())),
        private_key_sealed: Set(sealed),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(audit_escrow_key::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await
    .map_err(ApiError::from_db)?;
    Ok(())
}

async fn escrow(db: &impl ConnectionTrait) -> ApiResult<Option<audit_escrow_key::Model>> {
    audit_escrow_key::Entity::find()
        .order_by_desc(audit_escrow_key::Column::CreatedAt)
        .one(db)
        .await
        .map_err(ApiError::from_db)
}

/// The public key to seal `subject`'s personal data to: made on first use, `None` once
/// the subject is shredded (nothing personal is recorded about it any more).
pub async fn subject_key(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
    subject: Uuid,
) -> ApiResult<Option<PublicKey>> {
    if let Some(row) = audit_subject_key::Entity::find_by_id(subject)
        .one(db)
        .await
        .map_err(ApiError::from_db)?
    {
        return row.public_key.as_deref().map(public_key).transpose();
    }
    let escrow = escrow(db).await?.ok_or_else(|| {
        ApiError::internal("the audit escrow key is missing: start the portal with its data key")
    })?;
    let secret = StaticSecret::from(random_bytes::<32>()?);
    let public = PublicKey::from(&secret);
    let sealed_private = seal_to(
        &public_key(&escrow.public_key)?,
        &format!("subject-key:{subject}"),
        secret.as_bytes(),
    )?;
    audit_subject_key::Entity::insert(audit_subject_key::ActiveModel {
        subject_id: Set(subject),
        tenant_id: Set(tenant_id),
        escrow_key_id: Set(Some(escrow.id)),
        public_key: Set(Some(URL_SAFE_NO_PAD.encode(public.as_bytes()))),
        private_key_sealed: Set(Some(sealed_private)),
        created_at: Set(Utc::now()),
        shredded_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(audit_subject_key::Column::SubjectId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await
    .map_err(ApiError::from_db)?;
    // A concurrent first event of the same subject may have won: use the stored key.
    let row = audit_subject_key::Entity::find_by_id(subject)
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    row.and_then(|r| r.public_key)
        .as_deref()
        .map(public_key)
        .transpose()
}

/// `value` sealed to `subject` for `context`; `None` when the subject is shredded.
pub async fn seal_for(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
    subject: Uuid,
    context: &str,
    value: &Value,
) -> ApiResult<Option<String>> {
    let Some(key) = subject_key(db, tenant_id, subject).await? else {
        return Ok(None);
    };
    let bytes = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.to_string()))?;
    seal_to(&key, context, &bytes).map(Some)
}

/// Shreds `subject`'s key: everything sealed to it becomes unreadable, everywhere, at
/// once. Returns whether there was a key to shred. The caller records the erasure.
pub async fn shred(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
    subject: Uuid,
) -> ApiResult<bool> {
    let now = Utc::now();
    let existed = audit_subject_key::Entity::find_by_id(subject)
        .one(db)
        .await
        .map_err(ApiError::from_db)?;
    match existed {
        Some(row) if row.shredded_at.is_some() => Ok(false),
        Some(_) => {
            audit_subject_key::Entity::update_many()
                .col_expr(
                    audit_subject_key::Column::PublicKey,
                    sea_orm::sea_query::Expr::value(Option::<String>::None),
                )
                .col_expr(
                    audit_subject_key::Column::PrivateKeySealed,
                    sea_orm::sea_query::Expr::value(Option::<String>::None),
                )
                .col_expr(
                    audit_subject_key::Column::ShreddedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(audit_subject_key::Column::SubjectId.eq(subject))
                .exec(db)
                .await
                .map_err(ApiError::from_db)?;
            Ok(true)
        }
        None => {
            // Never had a key: keep a shredded row so none is made later.
            audit_subject_key::Entity::insert(audit_subject_key::ActiveModel {
                subject_id: Set(subject),
                tenant_id: Set(tenant_id),
                escrow_key_id: Set(None),
                public_key: Set(None),
                private_key_sealed: Set(None),
                created_at: Set(now),
                shredded_at: Set(Some(now)),
            })
            .exec_without_returning(db)
            .await
            .map_err(ApiError::from_db)?;
            Ok(false)
        }
    }
}

/// How many of the tenant's audit events are about `subject` (theirs to read: as the
/// subject of their details, or as the actor of their request facts).
pub async fn count_about(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    subject: Uuid,
) -> ApiResult<u64> {
    use sea_orm::{Condition, PaginatorTrait};
    audit_event::Entity::find()
        .filter(audit_event::Column::TenantId.eq(tenant_id))
        .filter(
            Condition::any()
                .add(audit_event::Column::SubjectId.eq(subject))
                .add(audit_event::Column::ActorId.eq(subject)),
        )
        .count(db)
        .await
        .map_err(ApiError::from_db)
}

/// An event's personal data, opened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Opened {
    /// The actor's address.
    pub source_ip: Option<String>,
    /// The actor's user agent.
    pub user_agent: Option<String>,
    /// The details with their personal members put back where they could be opened.
    pub details: Option<Value>,
    /// Whether some personal data was recorded but can no longer be read (its subject was
    /// erased).
    pub erased: bool,
}

/// Opens personal data for readers holding the data key (the audit API, exports), keeping
/// the subject keys it opened for its own lifetime (one page, one export).
pub struct Reader {
    provider: Arc<dyn KeyProvider>,
    escrows: HashMap<String, StaticSecret>,
    subjects: HashMap<Uuid, Option<StaticSecret>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit::personal::Reader")
    }
}

impl Reader {
    /// A reader opening subject keys through the escrow key that `provider` unwraps.
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self {
            provider,
            escrows: HashMap::new(),
            subjects: HashMap::new(),
        }
    }

    async fn escrow_secret(
        &mut self,
        db: &impl ConnectionTrait,
        id: &str,
    ) -> ApiResult<StaticSecret> {
        if let Some(secret) = self.escrows.get(id) {
            return Ok(secret.clone());
        }
        let row = audit_escrow_key::Entity::find_by_id(id.to_owned())
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .ok_or_else(|| ApiError::internal("a subject key names an unknown escrow key"))?;
        // A key that does not unwrap is a wrong master key or an unreachable key service:
        // an error, never "erased".
        let bytes = self
            .provider
            .unwrap(&escrow_context(&row.id), &row.private_key_sealed)
            .await?;
        let secret = <[u8; 32]>::try_from(bytes)
            .map(StaticSecret::from)
            .map_err(|_| ApiError::internal("the audit escrow key is malformed"))?;
        self.escrows.insert(id.to_owned(), secret.clone());
        Ok(secret)
    }

    /// The subject's private key; `None` only when it was shredded.
    async fn subject_secret(
        &mut self,
        db: &impl ConnectionTrait,
        subject: Uuid,
    ) -> ApiResult<Option<StaticSecret>> {
        if let Some(known) = self.subjects.get(&subject) {
            return Ok(known.clone());
        }
        let row = audit_subject_key::Entity::find_by_id(subject)
            .one(db)
            .await
            .map_err(ApiError::from_db)?
            .ok_or_else(|| {
                ApiError::internal("personal data is sealed to a subject with no key")
            })?;
        let secret = match (
            &row.shredded_at,
            &row.private_key_sealed,
            &row.escrow_key_id,
        ) {
            (Some(_), _, _) => None,
            (None, Some(sealed), Some(escrow_id)) => {
                let escrow = self.escrow_secret(db, escrow_id).await?;
                let bytes = open_with(&escrow, &format!("subject-key:{subject}"), sealed)
                    .ok_or_else(|| ApiError::internal("a subject key does not open"))?;
                Some(
                    <[u8; 32]>::try_from(bytes)
                        .map(StaticSecret::from)
                        .map_err(|_| ApiError::internal("a subject key is malformed"))?,
                )
            }
            _ => return Err(ApiError::internal("a subject key row is incomplete")),
        };
        self.subjects.insert(subject, secret.clone());
        Ok(secret)
    }

    async fn open_value(
        &mut self,
        db: &impl ConnectionTrait,
        subject: Uuid,
        context: &str,
        sealed: &str,
    ) -> ApiResult<Option<Value>> {
        let Some(secret) = self.subject_secret(db, subject).await? else {
            return Ok(None);
        };
        open_with(&secret, context, sealed)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::internal("sealed personal data does not open: altered?"))
    }

    /// `row`'s personal data, opened where its subjects' keys still exist (`erased` where a
    /// key was shredded). A key or ciphertext that should open and does not is an error.
    pub async fn open(
        &mut self,
        db: &impl ConnectionTrait,
        row: &audit_event::Model,
    ) -> ApiResult<Opened> {
        let mut opened = Opened {
            source_ip: row.source_ip.clone(),
            user_agent: row.user_agent.clone(),
            details: row.details.clone(),
            erased: false,
        };
        if let Some(sealed) = &row.actor_personal {
            let subject = actor_subject(&row.actor_kind, row.actor_id, row.tenant_id);
            match self
                .open_value(db, subject, &format!("actor:{}", row.id), sealed)
                .await?
            {
                Some(value) => {
                    let text =
                        |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
                    opened.source_ip = text("sourceIp");
                    opened.user_agent = text("userAgent");
                }
                None => opened.erased = true,
            }
        }
        if let (Some(sealed), Some(subject)) = (&row.subject_personal, row.subject_id) {
            match self
                .open_value(db, subject, &format!("subject:{}", row.id), sealed)
                .await?
            {
                Some(value) => opened.details = Some(merge(opened.details.take(), value)),
                None => opened.erased = true,
            }
        }
        Ok(opened)
    }
}

impl Reader {
    /// Each row of `page` with its personal data opened, converted by `into`.
    pub async fn open_page<T>(
        &mut self,
        db: &impl ConnectionTrait,
        page: crate::pagination::Page<audit_event::Model>,
        into: impl Fn(audit_event::Model, Opened) -> T,
    ) -> ApiResult<crate::pagination::Page<T>> {
        let mut items = Vec::with_capacity(page.items.len());
        for row in page.items {
            let opened = self.open(db, &row).await?;
            items.push(into(row, opened));
        }
        Ok(crate::pagination::Page {
            items,
            has_next_page: page.has_next_page,
        })
    }
}

/// The sealed request facts of an actor (`None` when there are none or the subject is
/// shredded).
pub(crate) async fn seal_request(
    db: &impl ConnectionTrait,
    tenant_id: Option<Uuid>,
    subject: Uuid,
    event_id: Uuid,
    source_ip: Option<&str>,
    user_agent: Option<&str>,
) -> ApiResult<Option<String>> {
    if source_ip.is_none() && user_agent.is_none() {
        return Ok(None);
    }
    let value = serde_json::json!({ "sourceIp": source_ip, "userAgent": user_agent });
    seal_for(db, tenant_id, subject, &format!("actor:{event_id}"), &value).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_seal_opens_only_with_its_key_and_context() -> ApiResult<()> {
        let secret = StaticSecret::from(random_bytes::<32>()?);
        let public = PublicKey::from(&secret);
        let sealed = seal_to(&public, "actor:1", b"203.0.113.9")?;
        assert_eq!(
            open_with(&secret, "actor:1", &sealed).as_deref(),
            Some(&b"203.0.113.9"[..])
        );
        assert_eq!(open_with(&secret, "actor:2", &sealed), None);
        let other = StaticSecret::from(random_bytes::<32>()?);
        assert_eq!(open_with(&other, "actor:1", &sealed), None);
        // Two seals of the same value differ (a fresh ephemeral key each time).
        assert_ne!(seal_to(&public, "actor:1", b"203.0.113.9")?, sealed);
        Ok(())
    }

    #[test]
    fn personal_members_are_split_off_and_merged_back() {
        let details = json!({
            "before": { "displayName": "Bob", "status": "active" },
            "after": { "displayName": "Robert", "status": "active" },
            "sessionsRevoked": 0,
        });
        let (kept, personal) = split("user.update", "user", details.clone());
        assert_eq!(
            kept,
            Some(
                json!({ "before": { "status": "active" }, "after": { "status": "active" }, "sessionsRevoked": 0 })
            )
        );
        assert_eq!(
            personal,
            Some(
                json!({ "before": { "displayName": "Bob" }, "after": { "displayName": "Robert" } })
            )
        );
        assert_eq!(merge(kept, personal.unwrap_or_default()), details);
        // An account's name is not personal data; a user's is.
        let (kept, personal) = split("account.create", "account", json!({ "name": "Acme" }));
        assert_eq!((kept, personal), (Some(json!({ "name": "Acme" })), None));
        let (_, personal) = split(
            "user.email_change",
            "user",
            json!({ "before": "a@x.test", "after": "b@x.test" }),
        );
        assert_eq!(
            personal,
            Some(json!({ "before": "a@x.test", "after": "b@x.test" }))
        );
    }
}
