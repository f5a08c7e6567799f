//! A report run survives `kill -9` of the process producing it: the portal is killed while
//! the run reads its rows, a new portal process on the same database takes the job over
//! once its lease runs out, and the run ends `SUCCEEDED` once, with one file. On a SQLite
//! file, or a fresh PostgreSQL database when `PORTAL_TEST_DATABASE_URL` is set.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use chrono::Utc;
use common::{free_port, wait_healthy};
use portal_entities::accounts::{account, ledger_entry};
use portal_entities::platform::{file, job};
use portal_entities::reports::report_run;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "report-run-secret-report-run-secret!";

/// Entries loaded into the report's account: enough for the run to take a while.
const ENTRIES: i64 = 40_000;

struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The whole portal (gateway, subgraphs, worker) on `url`, trusting the demo headers.
fn portal(url: &str, dir: &std::path::Path, port: u16) -> anyhow::Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_portal"))
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("PORTAL_DATA_KEY", SECRET)
        .env("PORTAL_JOB_LEASE_SECS", "2")
        .env("PORTAL_FILES_DIR", dir.join("files"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .spawn()?)
}

async fn until(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !check().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_run_survives_kill_9_of_its_worker() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("portal-report-runs-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let url = common::database_url(&dir).await?;
    let db = portal::connect_and_migrate(&url, 2).await?;
    let seed = portal::seed::seed(&db).await?;
    let operating = account::Entity::find()
        .filter(account::Column::Number.eq("ACME-0001"))
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no ACME-0001"))?;
    let start = Utc::now() - chrono::Duration::days(30);
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(1_000) {
        let rows = chunk.iter().map(|i| ledger_entry::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(operating.tenant_id),
            account_id: Set(operating.id),
            kind: Set("CHARGE".into()),
            source: Set("MANUAL".into()),
            amount_e4: Set(-10_000),
            balance_after_e4: Set(-10_000 * (i + 1)),
            currency: Set(operating.currency.clone()),
            posted_at: Set(start + chrono::Duration::seconds(*i)),
            reference: Set(Some(format!("R-{i}"))),
            description: Set(None),
            invoice_id: Set(None),
            payment_id: Set(None),
            idempotency_key: Set(None),
            request_hash: Set(None),
            created_by: Set(None),
            created_at: Set(Utc::now()),
        });
        ledger_entry::Entity::insert_many(rows).exec(&db).await?;
    }
    let entries = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::AccountId.eq(operating.id))
        .count(&db)
        .await?;

    let http = reqwest::Client::new();
    let port = free_port();
    let mut first = Killed(Some(portal(&url, &dir, port)?));
    wait_healthy(&http, port, None).await;
    let ask = |port: u16, query: &'static str, variables: Value| {
        let http = http.clone();
        async move {
            let response = http
                .post(format!("http://127.0.0.1:{port}/graphql"))
                .header("x-portal-tenant-id", seed.tenant_id.to_string())
                .header("x-portal-user-id", seed.bob_id.to_string())
                .header("x-portal-roles", "billing_admin")
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await?;
            anyhow::Ok(response.json::<Value>().await?)
        }
    };
    let created = ask(
        port,
        "mutation($input: CreateReportDefinitionInput!) { createReportDefinition(input: $input) { id } }",
        json!({ "input": {
            "name": "Whole ledger", "kind": "CUSTOM", "format": "CSV",
            "query": {
                "dataset": [{ "field": "account", "arguments": { "id": operating.id } },
                            { "field": "ledgerEntries", "arguments": { "orderBy": "POSTED_AT_ASC" } }],
                "columns": [{ "path": "postedAt" }, { "path": "reference" }, { "path": "amount" },
                            { "path": "account.owner.displayName", "label": "owner" }],
                "limit": 100000
            }
        } }),
    )
    .await?;
    let definition = created["data"]["createReportDefinition"]["id"].clone();
    anyhow::ensure!(definition.is_string(), "{created}");
    let requested = ask(
        port,
        "mutation($d: ID!) { requestReportRun(definitionId: $d) { id } }",
        json!({ "d": definition }),
    )
    .await?;
    let run_id: Uuid = requested["data"]["requestReportRun"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let status = async || -> anyhow::Result<String> {
        Ok(report_run::Entity::find_by_id(run_id)
            .one(&db)
            .await?
            .map(|r| r.status)
            .unwrap_or_default())
    };
    until("the run to start", Duration::from_secs(60), async || {
        Ok(status().await? == "RUNNING")
    })
    .await?;
    // SIGKILL while it reads: nothing is recorded.
    if let Some(mut child) = first.0.take() {
        child.kill()?;
        child.wait()?;
    }
    assert_eq!(
        status().await?,
        "RUNNING",
        "the run finished before the kill"
    );

    let port = free_port();
    let _second = Killed(Some(portal(&url, &dir, port)?));
    wait_healthy(&http, port, None).await;
    until("the run to finish", Duration::from_secs(120), async || {
        Ok(matches!(status().await?.as_str(), "SUCCEEDED" | "FAILED"))
    })
    .await?;
    let run = report_run::Entity::find_by_id(run_id)
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run gone"))?;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert_eq!(run.row_count, Some(i64::try_from(entries)?));
    let files = file::Entity::find()
        .filter(file::Column::OwnerId.eq(run_id))
        .all(&db)
        .await?;
    assert_eq!(files.len(), 1, "{files:?}");
    let jobs = job::Entity::find()
        .filter(job::Column::Kind.eq("reports.run"))
        .all(&db)
        .await?;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(jobs[0].attempts >= 2, "{jobs:?}");
    // The file on disk is the recorded one, whole.
    let stored = dir.join("files").join(&files[0].storage_key);
    let bytes = std::fs::read(&stored)?;
    assert_eq!(i64::try_from(bytes.len())?, files[0].size_bytes);
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(lines as u64, entries + 1);

    // Downloaded with its manifest and the published keys, it verifies offline — and a
    // copy with one byte changed does not.
    let keys = http
        .get(format!(
            "http://127.0.0.1:{port}/.well-known/portal-evidence-keys.json"
        ))
        .send()
        .await?
        .bytes()
        .await?;
    let copy = dir.join("ledger.csv");
    std::fs::write(&copy, &bytes)?;
    std::fs::write(
        dir.join("ledger.csv.manifest.json"),
        run.manifest.clone().unwrap_or_default(),
    )?;
    std::fs::write(dir.join("keys.json"), &keys)?;
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_portal"))
            .arg("verify-report")
            .arg(&copy)
            .arg("--keys")
            .arg(dir.join("keys.json"))
            .output()
    };
    let checked = verify()?;
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        said.starts_with("OK ") && said.contains(&format!("{entries} rows")),
        "{said}"
    );
    let mut altered = bytes.clone();
    if let Some(last_digit) = altered.iter().rposition(u8::is_ascii_digit) {
        altered[last_digit] = if altered[last_digit] == b'9' {
            b'8'
        } else {
            b'9'
        };
    }
    std::fs::write(&copy, &altered)?;
    let checked = verify()?;
    assert_eq!(checked.status.code(), Some(1));
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        said.contains("NOT VERIFIED") && said.contains("SHA-256"),
        "{said}"
    );
    db.close().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
