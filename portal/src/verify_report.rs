//! `portal verify-report FILE`: checks a downloaded report file offline against its signed
//! integrity manifest and the published evidence keys — the file is the one the manifest
//! describes (size and SHA-256), the manifest was signed by a published evidence key while
//! that key was signing, and nothing in it changed since.

use portal_kit::evidence::{self, KeySet};
use portal_reports::domain::manifest;
use serde_json::Value;

/// What a verified file is.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// The evidence key that signed its manifest.
    pub key_id: String,
    /// The report's name and the definition version that produced the file.
    pub report: (String, i64),
    /// Data rows in the file.
    pub rows: i64,
    /// When it was produced.
    pub generated_at: String,
}

/// Why a file did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The manifest or key set is not JSON of the expected shape.
    #[error("{0}")]
    Unreadable(String),
    /// The manifest's signature does not hold.
    #[error("manifest: {0}")]
    Signature(#[from] evidence::EvidenceError),
    /// The file is not the one the manifest describes.
    #[error("file: {0}")]
    File(#[from] manifest::Mismatch),
}

/// Checks `file` against `manifest` (JSON text) and `keys` (the published key set, JSON).
pub fn verify(file: &[u8], manifest: &[u8], keys: &[u8]) -> Result<Verified, VerifyError> {
    let manifest: Value = serde_json::from_slice(manifest)
        .map_err(|err| VerifyError::Unreadable(format!("the manifest is not JSON: {err}")))?;
    let keys: KeySet = serde_json::from_slice(keys).map_err(|err| {
        VerifyError::Unreadable(format!("the evidence keys are not a key set: {err}"))
    })?;
    let key_id = evidence::verify(&manifest, &keys)?;
    manifest::check_file(&manifest, file)?;
    Ok(Verified {
        key_id,
        report: (
            manifest["report"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            manifest["report"]["definitionVersion"]
                .as_i64()
                .unwrap_or_default(),
        ),
        rows: manifest["file"]["rows"].as_i64().unwrap_or_default(),
        generated_at: manifest["generatedAt"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}
