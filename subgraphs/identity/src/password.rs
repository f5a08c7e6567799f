//! Passwords: the policy (NIST SP 800-63B: length over composition, no common or
//! context-derived passwords) and hashing with argon2id.
//!
//! Pure functions over plain values; the policy never stores or logs a password.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Fewest characters a password may have (800-63B requires at least 8; 12 is this
/// portal's floor for accounts that see financial data).
pub const MIN_LENGTH: usize = 12;
/// Most characters a password may have (800-63B: at least 64 must be allowed).
pub const MAX_LENGTH: usize = 128;

static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
});

/// Why a password is refused. Messages are safe to show to the user choosing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyViolation {
    /// Fewer than [`MIN_LENGTH`] characters.
    TooShort,
    /// More than [`MAX_LENGTH`] characters.
    TooLong,
    /// On the list of common passwords, or one of them with a short prefix or suffix.
    Common,
    /// Built from the user's own email or name.
    ContextSpecific,
    /// One character repeated, or a plain run such as `abcdef…`.
    Repetitive,
}

impl PolicyViolation {
    /// A message for the person choosing the password.
    pub fn message(self) -> &'static str {
        match self {
            Self::TooShort => "must be at least 12 characters long",
            Self::TooLong => "must be at most 128 characters long",
            Self::Common => "is too common; choose a longer passphrase",
            Self::ContextSpecific => "must not be based on your email address or name",
            Self::Repetitive => "must not be a repeated character or a simple sequence",
        }
    }
}

/// Checks `password` for the user with `email` and `display_name`. Any characters are
/// allowed (spaces and Unicode included); composition rules are deliberately absent.
pub fn check(password: &str, email: &str, display_name: &str) -> Result<(), PolicyViolation> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PolicyViolation::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PolicyViolation::TooLong);
    }
    let lowered = password.to_lowercase();
    let core = lowered.trim_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    if COMMON.contains(&lowered) || COMMON.contains(core) {
        return Err(PolicyViolation::Common);
    }
    let local_part = email.split('@').next().unwrap_or_default().to_lowercase();
    let name = display_name.to_lowercase().replace(' ', "");
    let contextual = [local_part.as_str(), name.as_str()].iter().any(|context| {
        context.len() >= 4
            && (core == *context || lowered.contains(*context) && core.len() <= context.len() + 4)
    });
    if contextual {
        return Err(PolicyViolation::ContextSpecific);
    }
    let chars: Vec<char> = lowered.chars().collect();
    let all_same = chars.windows(2).all(|w| w[0] == w[1]);
    // Ascending or descending runs; digits wrap around (`…7890123` is still a run).
    let ascending =
        |w: &[char]| (w[1] as u32).wrapping_sub(w[0] as u32) == 1 || (w[0] == '9' && w[1] == '0');
    let descending =
        |w: &[char]| (w[0] as u32).wrapping_sub(w[1] as u32) == 1 || (w[0] == '0' && w[1] == '9');
    let sequence = chars.windows(2).all(ascending) || chars.windows(2).all(descending);
    if all_same || sequence {
        return Err(PolicyViolation::Repetitive);
    }
    Ok(())
}

/// Why hashing or verifying failed (never because of a wrong password: see [`verify`]).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|_| HashError)
}

/// Whether `password` matches the PHC string `stored` (constant-time in the hash).
pub fn verify(password: &str, stored: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(stored).map_err(|_| HashError)?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// argon2id hash of `password`, off the async reactor.
pub async fn hash_password(password: &str) -> portal_kit::ApiResult<String> {
    use portal_kit::ApiError;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|_| ApiError::internal("hashing task failed"))?
        .map_err(|_| ApiError::internal("password hashing failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "carol.customer@acme.example";
    const NAME: &str = "Carol Customer";

    #[test]
    fn long_passphrases_of_any_characters_are_accepted() {
        for ok in [
            "correct horse battery staple",
            "Zürich im Frühling 2026!",
            "j8#Kd!p2@Lq9x",
        ] {
            assert_eq!(check(ok, EMAIL, NAME), Ok(()), "{ok}");
        }
    }

    #[test]
    fn short_long_common_contextual_and_repetitive_passwords_are_refused() {
        assert_eq!(
            check("short1!", EMAIL, NAME),
            Err(PolicyViolation::TooShort)
        );
        assert_eq!(
            check(&"x1".repeat(65), EMAIL, NAME),
            Err(PolicyViolation::TooLong)
        );
        assert_eq!(
            check("password1234", EMAIL, NAME),
            Err(PolicyViolation::Common)
        );
        assert_eq!(
            check("Password123!", EMAIL, NAME),
            Err(PolicyViolation::Common)
        );
        assert_eq!(
            check("123456789012", EMAIL, NAME),
            Err(PolicyViolation::Repetitive)
        );
        assert_eq!(
            check("qwerty123456!", EMAIL, NAME),
            Err(PolicyViolation::Common)
        );
        assert_eq!(
            check("carol.customer1", EMAIL, NAME),
            Err(PolicyViolation::ContextSpecific)
        );
        assert_eq!(
            check("CarolCustomer!!", EMAIL, NAME),
            Err(PolicyViolation::ContextSpecific)
        );
        assert_eq!(
            check("aaaaaaaaaaaaaa", EMAIL, NAME),
            Err(PolicyViolation::Repetitive)
        );
        assert_eq!(
            check("abcdefghijklmn", EMAIL, NAME),
            Err(PolicyViolation::Repetitive)
        );
    }

    #[test]
    fn hashes_verify_only_their_password_and_are_salted() {
        let first = hash("correct horse battery staple").expect("hashes");
        let second = hash("correct horse battery staple").expect("hashes");
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify("correct horse battery staple", &first).expect("verifies"));
        assert!(!verify("correct horse battery stable", &first).expect("verifies"));
        assert!(verify("anything", "not a phc string").is_err());
    }
}
