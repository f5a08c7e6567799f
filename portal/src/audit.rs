//! `portal audit`: verify the tamper-evident audit log (in the database, or an evidence
//! pack offline) and export evidence packs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use portal_kit::audit::pack;
use portal_kit::audit::verify::Report;

/// Reads an evidence pack from a directory, or from the zip archive a download gives.
pub fn read_pack(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    if dir.is_file() {
        let bytes = std::fs::read(dir).with_context(|| format!("reading {}", dir.display()))?;
        return pack::unzip(&bytes).map_err(anyhow::Error::msg);
    }
    let mut files = BTreeMap::new();
    for name in pack::FILES {
        let path = dir.join(name);
        if path.exists() {
            files.insert(
                name.to_owned(),
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            );
        }
    }
    Ok(files)
}

/// Writes an evidence pack's files into `dir` (created if missing).
pub fn write_pack(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Verifies the pack in `dir` (a directory or a zip archive) with the evidence keys in the
/// file `keys` (as saved from the portal's `/.well-known/portal-evidence-keys.json`), else
/// with the pack's own.
pub fn verify_pack(dir: &Path, keys: Option<&Path>) -> anyhow::Result<Report> {
    let trusted = match keys {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_slice::<portal_kit::evidence::KeySet>(&bytes)
                    .with_context(|| format!("{} is not an evidence key set", path.display()))?,
            )
        }
        None => None,
    };
    pack::verify_files(&read_pack(dir)?, trusted.as_ref()).map_err(anyhow::Error::msg)
}

/// Verifies the chains in the database: `tenant`'s, or every chain when `None`.
pub async fn verify_database(
    db: &DatabaseConnection,
    tenant: Option<Uuid>,
    unchained_bound: chrono::Duration,
) -> anyhow::Result<Vec<Report>> {
    let chains = match tenant {
        Some(tenant) => vec![Some(tenant)],
        None => pack::chains(db)
            .await
            .map_err(|err| anyhow::anyhow!("listing the audit chains: {err:?}"))?,
    };
    let mut reports = Vec::new();
    for chain in chains {
        reports.push(
            pack::verify_database(db, chain, unchained_bound, chrono::Utc::now())
                .await
                .map_err(|err| anyhow::anyhow!("verifying the audit chain: {err:?}"))?,
        );
    }
    Ok(reports)
}
