//! Evidence: documents the portal signs so that anyone can check them later, offline and
//! without the portal — report files' integrity manifests now, the audit log's checkpoints
//! next.
//!
//! - **The evidence key** is an Ed25519 key pair of its own (table `evidence_keys`; the
//!   private half sealed with the data key), not the access-token key: access-token keys
//!   rotate away within days, evidence must verify for years. Every evidence key ever used
//!   stays published (`/.well-known/portal-evidence-keys.json`, see [`published`]) with the
//!   time it started signing and, once rotated, the time it stopped.
//! - **A signed document** is a JSON object with a `signature` member:
//!   `{"algorithm": "Ed25519", "keyId": …, "value": base64url}`. The signature covers the
//!   document without `signature`, in the JSON Canonicalization Scheme (RFC 8785: object
//!   members sorted by name, no insignificant whitespace; the documents hold only strings,
//!   integers, booleans, arrays and objects, so no number formatting is involved). Its
//!   `signedAt` must fall in the key's published signing period.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use portal_entities::platform::evidence_key;

use crate::actor::{Actor, RequestMeta};
use crate::audit::AuditEvent;
use crate::db::BeginWrite;
use crate::error::{ApiError, ApiResult};
use crate::secret::{DataKey, random_bytes};

/// The only signature algorithm.
pub const ALGORITHM: &str = "Ed25519";

/// The purpose private evidence keys are sealed for.
const SEAL_PURPOSE: &str = "platform.evidence_key";

/// How long after a key's retirement a signature it made still counts: a signing that was
/// under way while the key was rotated.
const ROTATION_GRACE_SECS: i64 = 300;

/// Where the published keys are served.
pub const KEYS_PATH: &str = "/.well-known/portal-evidence-keys.json";

/// `value` in the JSON Canonicalization Scheme (RFC 8785) for documents of strings,
/// integers, booleans, null, arrays and objects.
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => {
            let mut names: Vec<&String> = members.keys().collect();
            // RFC 8785 orders names by their UTF-16 code units.
            names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (n, name) in names.into_iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(name.clone()), out);
                out.push(b':');
                if let Some(member) = members.get(name) {
                    write_canonical(member, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Number(number) if number.is_f64() => {
            out.extend_from_slice(number_text(number.as_f64().unwrap_or(0.0)).as_bytes());
        }
        // serde_json escapes strings as RFC 8785 does (`\b \t \n \f \r \" \\`, other
        // controls as lower-case `\u00xx`, everything else literal); integers are plain.
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// A non-integer number as RFC 8785 writes it (ECMAScript's `Number.prototype.toString`):
/// the shortest digits that read back to the same value, plain between 1e-6 and 1e21,
/// else in exponent form with a signed exponent (`1e+21`, `1.5e-7`); `-0` is `0`.
fn number_text(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        // JSON has no infinities or NaN; serde_json never holds them.
        return "0".to_owned();
    }
    let magnitude = value.abs();
    if (1e-6..1e21).contains(&magnitude) {
        // Rust's shortest round-trip form, never in exponent notation in this range;
        // an integral value prints without `.0`, as ECMAScript does.
        let text = format!("{value}");
        return text.strip_suffix(".0").map(str::to_owned).unwrap_or(text);
    }
    // `{:e}` gives the shortest digits as `d.ddde-7` / `1e21`: add the exponent's sign.
    let text = format!("{value:e}");
    match text.split_once('e') {
        Some((digits, exponent)) if !exponent.starts_with('-') => format!("{digits}e+{exponent}"),
        _ => text,
    }
}

/// One published evidence key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedKey {
    /// Its id, named by the signatures it made.
    pub key_id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The raw 32-byte public key, base64url without padding.
    pub public_key: String,
    /// When it started signing.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing (it still verifies what it signed before); `None` while active.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The published key set: every evidence key ever used, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// The keys.
    pub keys: Vec<PublishedKey>,
}

/// Every evidence key ever used, oldest first (what [`KEYS_PATH`] serves).
pub async fn published(db: &DatabaseConnection) -> ApiResult<KeySet> {
    let rows = evidence_key::Entity::find()
        .order_by_asc(evidence_key::Column::CreatedAt)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(KeySet {
        keys: rows
            .into_iter()
            .map(|row| PublishedKey {
                key_id: row.id,
                algorithm: row.algorithm,
                public_key: row.public_key,
                created_at: row.created_at,
                retired_at: row.retired_at,
            })
            .collect(),
    })
}

/// Signs evidence with the active evidence key (creating the first one when there is none).
#[derive(Clone)]
pub struct EvidenceSigner {
    db: DatabaseConnection,
    data_key: DataKey,
}

impl std::fmt::Debug for EvidenceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvidenceSigner")
    }
}

impl EvidenceSigner {
    /// A signer over the keys in `db`, sealed with `data_key`.
    pub fn new(db: DatabaseConnection, data_key: DataKey) -> Self {
        Self { db, data_key }
    }

    /// `document` (a JSON object without `signature`) with `signedAt` (now) and its
    /// `signature` added.
    pub async fn sign(&self, document: Map<String, Value>) -> ApiResult<Value> {
        Ok(self.active_key().await?.sign(document))
    }

    /// The active key (the first one made when there is none), to sign with later without
    /// reading the database — inside a transaction that holds the write lock, say.
    pub async fn active_key(&self) -> ApiResult<ActiveKey> {
        let (key_id, key) = self.active().await?;
        Ok(ActiveKey { key_id, key })
    }

    /// Retires the active key and starts a new one; the new key's id. Retired keys stay
    /// published: what they signed keeps verifying.
    pub async fn rotate(&self) -> ApiResult<String> {
        let now = Utc::now();
        let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
        let retired: Vec<String> = evidence_key::Entity::find()
            .filter(evidence_key::Column::RetiredAt.is_null())
            .all(&txn)
            .await
            .map_err(ApiError::from_db)?
            .into_iter()
            .map(|row| row.id)
            .collect();
        evidence_key::Entity::update_many()
            .col_expr(evidence_key::Column::RetiredAt, Expr::value(now))
            .filter(evidence_key::Column::RetiredAt.is_null())
            .exec(&txn)
            .await
            .map_err(ApiError::from_db)?;
        let (id, _) = self
            .create(&txn, now, "evidence_key.rotate", retired)
            .await?;
        txn.commit().await.map_err(ApiError::from_db)?;
        Ok(id)
    }

    async fn active(&self) -> ApiResult<(String, SigningKey)> {
        let current = evidence_key::Entity::find()
            .filter(evidence_key::Column::RetiredAt.is_null())
            .order_by_desc(evidence_key::Column::CreatedAt)
            .one(&self.db)
            .await
            .map_err(ApiError::from_db)?;
        match current {
            Some(row) => {
                let seed = self
                    .data_key
                    .open(SEAL_PURPOSE, &row.private_key_sealed)
                    .map_err(|_| {
                        ApiError::internal("the evidence key cannot be opened with this data key")
                    })?;
                let seed: [u8; 32] = seed
                    .try_into()
                    .map_err(|_| ApiError::internal("the stored evidence key is malformed"))?;
                Ok((row.id, SigningKey::from_bytes(&seed)))
            }
            None => {
                let txn = self.db.begin_write().await.map_err(ApiError::from_db)?;
                let created = self
                    .create(&txn, Utc::now(), "evidence_key.create", Vec::new())
                    .await?;
                txn.commit().await.map_err(ApiError::from_db)?;
                Ok(created)
            }
        }
    }

    /// A new key, audited as `action` (by the platform: no user asks for it).
    async fn create(
        &self,
        txn: &DatabaseTransaction,
        now: DateTime<Utc>,
        action: &'static str,
        retired: Vec<String>,
    ) -> ApiResult<(String, SigningKey)> {
        let seed = random_bytes::<32>()?;
        let key = SigningKey::from_bytes(&seed);
        let public = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let id = Uuid::now_v7();
        evidence_key::ActiveModel {
            id: Set(id.to_string()),
            algorithm: Set(ALGORITHM.to_owned()),
            public_key: Set(public.clone()),
            private_key_sealed: Set(self.data_key.seal(SEAL_PURPOSE, &seed)?),
            created_at: Set(now),
            retired_at: Set(None),
        }
        .insert(txn)
        .await
        .map_err(ApiError::from_db)?;
        AuditEvent::success(action, "evidence_key", id)
            .with_details(json!({ "publicKey": public, "retired": retired }))
            .record(txn, &Actor::anonymous(), &RequestMeta::default())
            .await?;
        Ok((id.to_string(), key))
    }
}

/// An evidence key read once, signing without the database.
pub struct ActiveKey {
    key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl ActiveKey {
    /// `document` (a JSON object without `signature`) with `signedAt` (now) and its
    /// `signature` added.
    pub fn sign(&self, document: Map<String, Value>) -> Value {
        let mut document = document;
        document.insert(
            "signedAt".into(),
            Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
        document.remove("signature");
        let signature = self.key.sign(&canonical(&Value::Object(document.clone())));
        document.insert(
            "signature".into(),
            json!({
                "algorithm": ALGORITHM,
                "keyId": self.key_id,
                "value": URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            }),
        );
        Value::Object(document)
    }
}

/// Why a signed document does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceError {
    /// It is not a JSON object with a well-formed `signature` and `signedAt`.
    #[error("not a signed document: {0}")]
    Malformed(String),
    /// Its key is not among the published keys.
    #[error("signed with key {0}, which is not among the published evidence keys")]
    UnknownKey(String),
    /// Its `signedAt` is outside the key's signing period.
    #[error("signed at {at} with key {key}, which did not sign then")]
    OutsideKeyPeriod {
        /// The key.
        key: String,
        /// When the document says it was signed.
        at: String,
    },
    /// The signature does not match the document: it was changed after signing.
    #[error("the signature does not match the document: it was altered after signing")]
    BadSignature,
}

/// Checks `document`'s signature against `keys`; the id of the key that signed it.
pub fn verify(document: &Value, keys: &KeySet) -> Result<String, EvidenceError> {
    let malformed = |what: &str| EvidenceError::Malformed(what.to_owned());
    let Value::Object(members) = document else {
        return Err(malformed("not a JSON object"));
    };
    let signature = members
        .get("signature")
        .ok_or_else(|| malformed("no `signature`"))?;
    let field = |name: &str| {
        signature
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(&format!("no `signature.{name}`")))
    };
    if field("algorithm")? != ALGORITHM {
        return Err(malformed("the signature algorithm is not Ed25519"));
    }
    let key_id = field("keyId")?;
    let value = URL_SAFE_NO_PAD
        .decode(field("value")?)
        .map_err(|_| malformed("`signature.value` is not base64url"))?;
    let signature = Signature::from_slice(&value).map_err(|_| EvidenceError::BadSignature)?;
    let signed_at = members
        .get("signedAt")
        .and_then(Value::as_str)
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| malformed("no RFC 3339 `signedAt`"))?;

    let key = keys
        .keys
        .iter()
        .find(|key| key.key_id == key_id && key.algorithm == ALGORITHM)
        .ok_or_else(|| EvidenceError::UnknownKey(key_id.to_owned()))?;
    // Second precision: `signedAt` is written in whole seconds.
    let started = key.created_at.timestamp();
    let stopped = key
        .retired_at
        .map(|at| at.timestamp() + ROTATION_GRACE_SECS);
    if signed_at.timestamp() < started || stopped.is_some_and(|end| signed_at.timestamp() > end) {
        return Err(EvidenceError::OutsideKeyPeriod {
            key: key_id.to_owned(),
            at: signed_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
    }
    let public: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&key.public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| malformed("the published key is not 32 base64url bytes"))?;
    let public = VerifyingKey::from_bytes(&public).map_err(|_| EvidenceError::BadSignature)?;
    let mut unsigned = members.clone();
    unsigned.remove("signature");
    public
        .verify(&canonical(&Value::Object(unsigned)), &signature)
        .map_err(|_| EvidenceError::BadSignature)?;
    Ok(key_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_integers_are_written_as_ecmascript_does() {
        let cases = [
            (1.5, "1.5"),
            (1.0, "1"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (value, text) in cases {
            assert_eq!(number_text(value), text, "{value}");
        }
    }

    #[test]
    fn canonical_form_sorts_members_and_drops_whitespace() {
        let value: Value = serde_json::from_str(
            r#"{ "b": [1, {"z": null, "a": true}], "a": "x\u0001\n\u00e9€", "": -5 }"#,
        )
        .unwrap_or_default();
        assert_eq!(
            String::from_utf8(canonical(&value)).unwrap_or_default(),
            "{\"\":-5,\"a\":\"x\\u0001\\né€\",\"b\":[1,{\"a\":true,\"z\":null}]}"
        );
        // RFC 8785 §3.2.3: names sort by UTF-16 code units, not by code points.
        let value = json!({ "\u{e000}": 1, "\u{1f600}": 2 });
        let text = String::from_utf8(canonical(&value)).unwrap_or_default();
        assert!(text.find('\u{1f600}') < text.find('\u{e000}'), "{text}");
    }

    fn signed(key: &SigningKey, key_id: &str, document: Value) -> Value {
        let mut members = document.as_object().cloned().unwrap_or_default();
        members.insert("signedAt".into(), json!("2026-12-06T12:00:00Z"));
        let signature = key.sign(&canonical(&Value::Object(members.clone())));
        members.insert(
            "signature".into(),
            json!({ "algorithm": "Ed25519", "keyId": key_id,
                    "value": URL_SAFE_NO_PAD.encode(signature.to_bytes()) }),
        );
        Value::Object(members)
    }

    fn key_set(key: &SigningKey, retired: Option<&str>) -> KeySet {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&Utc))
                .unwrap_or_default()
        };
        KeySet {
            keys: vec![PublishedKey {
                key_id: "k1".into(),
                algorithm: ALGORITHM.into(),
                public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
                created_at: at("2026-01-01T00:00:00Z"),
                retired_at: retired.map(at),
            }],
        }
    }

    #[test]
    fn a_signed_document_verifies_and_any_change_is_caught() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let document = signed(
            &key,
            "k1",
            json!({ "file": { "sha256": "ab", "bytes": 10 } }),
        );
        assert_eq!(verify(&document, &key_set(&key, None)), Ok("k1".into()));
        // Member order does not matter; content does.
        let reordered: Value = serde_json::from_str(&document.to_string()).unwrap_or_default();
        assert!(verify(&reordered, &key_set(&key, None)).is_ok());
        let mut altered = document.clone();
        altered["file"]["bytes"] = json!(11);
        assert_eq!(
            verify(&altered, &key_set(&key, None)),
            Err(EvidenceError::BadSignature)
        );
        let mut redated = document.clone();
        redated["signedAt"] = json!("2026-12-07T12:00:00Z");
        assert_eq!(
            verify(&redated, &key_set(&key, None)),
            Err(EvidenceError::BadSignature)
        );
        let mut other_key = document.clone();
        other_key["signature"]["keyId"] = json!("k2");
        assert_eq!(
            verify(&other_key, &key_set(&key, None)),
            Err(EvidenceError::UnknownKey("k2".into()))
        );
        // A key that had stopped signing by then.
        assert!(matches!(
            verify(&document, &key_set(&key, Some("2026-06-01T00:00:00Z"))),
            Err(EvidenceError::OutsideKeyPeriod { .. })
        ));
        let forged = signed(
            &SigningKey::from_bytes(&[8; 32]),
            "k1",
            json!({ "file": {} }),
        );
        assert_eq!(
            verify(&forged, &key_set(&key, None)),
            Err(EvidenceError::BadSignature)
        );
        assert!(matches!(
            verify(&json!({ "file": {} }), &key_set(&key, None)),
            Err(EvidenceError::Malformed(_))
        ));
    }
}
