//! Data files on local disk — the SQLite database, generated keys, mail written to a
//! directory — are readable by the portal's own user only: directories are created 0700
//! and files 0600, and an existing database file that others may read is tightened.
//! (The database's `-wal` and `-shm` files inherit the database file's mode from SQLite.)

use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700 (existing ones are left as they
/// are: they may be shared, like `/var/lib`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Makes sure the file at `path` exists and only its owner may read or write it: created
/// empty with mode 0600 when missing, tightened to 0600 when group or others had access.
/// Returns whether an existing file had to be tightened.
pub fn ensure_private_file(path: &Path) -> io::Result<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700 | 0o600))?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes `contents` to a new file at `path` with mode 0600 (fails if it exists).
pub async fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(contents).await?;
    file.sync_all().await
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn data_files_and_directories_are_private() -> io::Result<()> {
        let root = std::env::temp_dir().join(format!("portal-files-{}", uuid::Uuid::now_v7()));
        let dir = root.join("data").join("mail");
        create_private_dir(&dir)?;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.join("data")), 0o700);

        let mail = dir.join("one.eml");
        write_private_file(&mail, b"hello").await?;
        assert_eq!(mode(&mail), 0o600);
        assert!(write_private_file(&mail, b"again").await.is_err());

        let db = root.join("data").join("portal.db");
        assert!(!ensure_private_file(&db)?);
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644))?;
        assert!(ensure_private_file(&db)?);
        assert_eq!(mode(&db), 0o600);
        std::fs::remove_dir_all(&root)
    }
}
