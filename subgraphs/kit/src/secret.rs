//! Secrets at rest and on the wire: random opaque tokens that are stored only as hashes,
//! and the data key that seals secrets the server must read back (signing keys, later
//! TOTP seeds and connector credentials) with AES-256-GCM.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|err| ApiError::internal(format!("getrandom: {err}")))?;
    Ok(bytes)
}

/// A fresh opaque token `<prefix>_<43 base64url characters>` carrying 256 random bits.
/// The prefix tells humans and secret scanners what the token is.
pub fn opaque_token(prefix: &str) -> Result<String, ApiError> {
    let bytes = random_bytes::<32>()?;
    Ok(format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of an opaque token: lower-case hex SHA-256. Tokens carry 256 random
/// bits, so a fast hash is enough (no dictionary to attack) and lookups stay indexed.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Why a sealed secret could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Not produced by [`DataKey::seal`], or sealed with another key or purpose.
    #[error("sealed secret cannot be opened with this data key")]
    Unopenable,
}

/// The key that seals secrets at rest. Derived from a configured secret; its `Debug`
/// never shows key material.
#[derive(Clone)]
pub struct DataKey {
    key: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// Derives the key from `secret` (at least 32 bytes of high-entropy configuration).
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"portal data key v1\0");
        hasher.update(secret);
        Self {
            key: hasher.finalize().into(),
        }
    }

    /// A 32-byte key for `purpose` derived from this one (HMAC-SHA256 of the purpose), for
    /// MACs that must verify in every process holding the data key (e.g. file links).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
        let tag = ring::hmac::sign(&key, purpose.as_bytes());
        let mut out = [0_u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn cipher(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        let unbound = UnboundKey::new(&AES_256_GCM, &self.key).expect("AES-256 key is 32 bytes");
        LessSafeKey::new(unbound)
    }

    /// Seals `plaintext` for `purpose` (authenticated, so a secret sealed for one purpose
    /// cannot be opened as another): `base64url(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Result<String, ApiError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut in_out = plaintext.to_vec();
        self.cipher()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(purpose.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| ApiError::internal("sealing failed"))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens what [`DataKey::seal`] produced for the same `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Unopenable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Unopenable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unopenable)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .cipher()
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Unopenable)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_tokens_are_unique_prefixed_and_hash_stably() -> Result<(), ApiError> {
        let a = opaque_token("prt")?;
        let b = opaque_token("prt")?;
        assert_ne!(a, b);
        assert!(a.starts_with("prt_") && a.len() == 4 + 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 64);
        Ok(())
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_purpose() -> Result<(), ApiError> {
        let key = DataKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let sealed = key.seal("signing-key", b"private")?;
        assert_eq!(
            key.open("signing-key", &sealed).as_deref(),
            Ok(&b"private"[..])
        );
        assert_ne!(
            sealed,
            key.seal("signing-key", b"private")?,
            "fresh nonce each time"
        );
        assert_eq!(key.open("totp", &sealed), Err(SealError::Unopenable));
        let other = DataKey::from_secret(b"another secret another secret 32");
        assert_eq!(
            other.open("signing-key", &sealed),
            Err(SealError::Unopenable)
        );
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert_eq!(
            key.open("signing-key", &tampered),
            Err(SealError::Unopenable)
        );
        assert_eq!(key.open("signing-key", "x"), Err(SealError::Unopenable));
        Ok(())
    }
}
