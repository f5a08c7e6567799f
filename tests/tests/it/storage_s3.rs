//! The file store on an S3-compatible bucket: a local S3 server (`moto_server`, from PyPI's
//! `moto[server]`) takes a file in multipart upload parts, gives it back byte for byte,
//! and deletes it. CI installs the server and sets `PORTAL_TEST_S3_REQUIRED`, which makes
//! a missing server a failure; elsewhere the test says it is skipped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use portal_kit::secret::DataKey;
use portal_kit::storage::{FileStore, S3Location};
use sha2::{Digest, Sha256};

/// The server, killed when dropped.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `moto_server` on a free port, or `None` when it is not installed (and not
/// required).
async fn moto() -> anyhow::Result<Option<(Moto, String)>> {
    let port = free_port()?;
    let spawned = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(err) if std::env::var_os("PORTAL_TEST_S3_REQUIRED").is_none() => {
            eprintln!("skipped: no moto_server ({err}); `pip install 'moto[server]'` to run it");
            return Ok(None);
        }
        Err(err) => anyhow::bail!("PORTAL_TEST_S3_REQUIRED, but moto_server: {err}"),
    };
    let server = Moto(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http.get(&endpoint).send().await.is_ok() {
            return Ok(Some((server, endpoint)));
        }
        anyhow::ensure!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn files_round_trip_through_an_s3_bucket_in_parts() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let Some((_server, endpoint)) = moto().await? else {
        return Ok(());
    };
    // The bucket (moto takes unsigned administrative calls).
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/portal-files"))
        .send()
        .await?;
    anyhow::ensure!(
        created.status().is_success(),
        "creating the bucket: {}",
        created.status()
    );
    let mut location =
        S3Location::parse("s3://portal-files/exports").map_err(anyhow::Error::msg)?;
    location.endpoint = Some(endpoint.clone());
    location.access_key_id = Some("test".into());
    location.secret_access_key = Some("test".into());
    let scratch = std::env::temp_dir().join(format!("portal-s3-{}", uuid::Uuid::now_v7()));
    let key = DataKey::from_secret(b"a-test-data-key-a-test-data-key!");
    let store = FileStore::s3(&location, &scratch, &key).map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // 17 MiB: three parts of the multipart upload.
    let contents: Vec<u8> = (0..17 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let file = store.scratch("bin");
    std::fs::write(file.path(), &contents)?;
    let stored = store
        .put("accounts/t/f", file.path())
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(stored.size, contents.len() as i64);
    assert_eq!(stored.sha256, hex::encode(Sha256::digest(&contents)));
    // Under the prefix in the bucket, as S3 clients see it.
    let head = reqwest::Client::new()
        .head(format!("{endpoint}/portal-files/exports/accounts/t/f"))
        .send()
        .await?;
    assert!(head.status().is_success(), "{}", head.status());

    let row = portal_entities::platform::file::Model {
        id: uuid::Uuid::now_v7(),
        tenant_id: uuid::Uuid::now_v7(),
        domain: "accounts".into(),
        owner_type: "AccountExport".into(),
        owner_id: uuid::Uuid::now_v7(),
        name: "x.bin".into(),
        content_type: "application/octet-stream".into(),
        size_bytes: stored.size,
        sha256: stored.sha256.clone(),
        row_count: None,
        storage_key: stored.key.clone(),
        access_selection: None,
        created_by: None,
        created_at: chrono::Utc::now(),
        expires_at: None,
        key_version: None,
        name_sealed: None,
    };
    let chunks: Vec<_> = store
        .open(&row)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .try_collect()
        .await?;
    assert_eq!(chunks.concat(), contents);
    store
        .remove(&stored.key)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert!(store.open(&row).await.is_err());
    drop(file);
    std::fs::remove_dir_all(scratch)?;
    Ok(())
}
