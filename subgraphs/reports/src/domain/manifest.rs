//! Integrity manifests: for every report file, a document saying what the file is (its
//! SHA-256, size and rows), which report and definition version produced it, for whom and
//! when — signed with the evidence key (`portal_kit::evidence`), so that a downloaded file
//! can be checked offline, years later, with `portal verify-report`.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The manifest's `type`.
pub const TYPE: &str = "portal.report-manifest";
/// The manifest's `version`.
pub const VERSION: i64 = 1;

/// What a manifest describes.
pub struct Facts<'a> {
    /// The tenant the report belongs to.
    pub tenant_id: Uuid,
    /// The run.
    pub run_id: Uuid,
    /// The definition and the version of it that ran.
    pub definition: (Uuid, i32),
    /// The report's name.
    pub name: &'a str,
    /// `MANUAL` or `SCHEDULED`.
    pub cause: &'a str,
    /// Whom the data was read as.
    pub run_as: Uuid,
    /// When the file was finished (RFC 3339).
    pub generated_at: String,
    /// The file: download name, media type, bytes, SHA-256 (hex), rows.
    pub file: (&'a str, &'a str, i64, &'a str, i64),
}

/// The unsigned manifest of `facts`.
pub fn body(facts: &Facts<'_>) -> Map<String, Value> {
    let (name, content_type, bytes, sha256, rows) = facts.file;
    let value = json!({
        "type": TYPE,
        "version": VERSION,
        "tenantId": facts.tenant_id,
        "report": {
            "definitionId": facts.definition.0,
            "definitionVersion": facts.definition.1,
            "name": facts.name,
            "runId": facts.run_id,
            "cause": facts.cause,
        },
        "runAs": facts.run_as,
        "generatedAt": facts.generated_at,
        "file": {
            "name": name,
            "contentType": content_type,
            "bytes": bytes,
            "sha256": sha256,
            "rows": rows,
        },
    });
    match value {
        Value::Object(members) => members,
        _ => Map::new(),
    }
}

/// Why a file does not match its manifest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mismatch {
    /// The document is not a report manifest this version understands.
    #[error("not a report manifest (type {0})")]
    NotAManifest(String),
    /// The file's size differs.
    #[error("the file has {actual} bytes, the manifest says {expected}")]
    Size {
        /// Per the manifest.
        expected: i64,
        /// Of the file.
        actual: i64,
    },
    /// The file's content differs.
    #[error("the file's SHA-256 is {actual}, the manifest says {expected}")]
    Digest {
        /// Per the manifest.
        expected: String,
        /// Of the file.
        actual: String,
    },
}

/// Checks that `file` is the file `manifest` describes (not its signature: see
/// `portal_kit::evidence::verify`).
pub fn check_file(manifest: &Value, file: &[u8]) -> Result<(), Mismatch> {
    let kind = manifest["type"].as_str().unwrap_or_default();
    if kind != TYPE || manifest["version"].as_i64() != Some(VERSION) {
        return Err(Mismatch::NotAManifest(kind.to_owned()));
    }
    let expected = manifest["file"]["bytes"].as_i64().unwrap_or(-1);
    let actual = i64::try_from(file.len()).unwrap_or(i64::MAX);
    if expected != actual {
        return Err(Mismatch::Size { expected, actual });
    }
    let expected = manifest["file"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let actual = hex::encode(Sha256::digest(file));
    if expected != actual {
        return Err(Mismatch::Digest { expected, actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_matches_its_manifest_and_a_changed_one_does_not() {
        let file = b"number,balance\r\nA-1,10.00\r\n";
        let sha = hex::encode(Sha256::digest(file));
        let manifest = Value::Object(body(&Facts {
            tenant_id: Uuid::nil(),
            run_id: Uuid::nil(),
            definition: (Uuid::nil(), 3),
            name: "Balances",
            cause: "MANUAL",
            run_as: Uuid::nil(),
            generated_at: "2026-12-06T12:00:00Z".into(),
            file: ("b.csv", "text/csv", file.len() as i64, &sha, 1),
        }));
        assert_eq!(check_file(&manifest, file), Ok(()));
        assert!(matches!(
            check_file(&manifest, b"number,balance\r\nA-1,99.00\r\n"),
            Err(Mismatch::Digest { .. })
        ));
        assert!(matches!(
            check_file(&manifest, b"short"),
            Err(Mismatch::Size { .. })
        ));
        assert!(matches!(
            check_file(&json!({ "type": "other" }), file),
            Err(Mismatch::NotAManifest(_))
        ));
    }
}
