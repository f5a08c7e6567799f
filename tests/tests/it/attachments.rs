//! Message attachments through the gateway, policies enforced: declared with
//! `createAttachmentUpload`, sent with a plain `PUT` to a signed link (size limit, type
//! judged from the content), sealed at rest, scanned for malware (a ClamAV daemon the test
//! starts, with a signature the tests ship for the EICAR test string), attached to a
//! message, and downloaded through signed, re-checked, audited links.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use portal_entities::messages::message_attachment;
use portal_entities::platform::{audit_event, file};
use portal_kit::jobs::runner::JobHandler;
use portal_kit::scan::{Clamd, MalwareScanner, NotScanned};
use portal_tests::{Mode, TestPortal};

/// The EICAR anti-virus test string: harmless, detected by every scanner.
const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.4\n1 0 obj\n<< /Title ({text}) >>\nendobj\ntrailer\n<< >>\n%%EOF\n")
        .into_bytes()
}

async fn as_role(
    portal: &TestPortal,
    user: Uuid,
    role: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    portal
        .query_with_roles(portal.seed.tenant_id, user, &[role], query, variables)
        .await
}

fn base(portal: &TestPortal) -> String {
    portal.endpoint.trim_end_matches("/graphql").to_owned()
}

struct Declared {
    id: String,
    url: String,
    max_bytes: i64,
}

async fn declare(
    portal: &TestPortal,
    user: Uuid,
    role: &str,
    thread: &Value,
    name: &str,
) -> anyhow::Result<Declared> {
    let declared = as_role(
        portal,
        user,
        role,
        "mutation($t: ID!, $n: String!) { createAttachmentUpload(input: { threadId: $t, fileName: $n }) { attachment { id state name } uploadUrl expiresAt maxBytes } }",
        json!({ "t": thread, "n": name }),
    )
    .await?;
    let upload = &declared["data"]["createAttachmentUpload"];
    anyhow::ensure!(
        upload["attachment"]["state"] == "AWAITING_UPLOAD",
        "{declared}"
    );
    anyhow::ensure!(upload["attachment"]["name"] == name, "{declared}");
    Ok(Declared {
        id: upload["attachment"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        url: format!(
            "{}{}",
            base(portal),
            upload["uploadUrl"].as_str().unwrap_or_default()
        ),
        max_bytes: upload["maxBytes"].as_i64().unwrap_or_default(),
    })
}

async fn put(url: &str, bytes: Vec<u8>) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new().put(url).body(bytes).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Runs the scan job of attachment `id` with `scanner`, as a worker would.
async fn scan(
    portal: &TestPortal,
    scanner: Arc<dyn MalwareScanner>,
    id: &str,
) -> anyhow::Result<()> {
    let handler = portal_messages::jobs::ScanAttachment::new(portal.messages_store(), scanner);
    let job = portal_tests::job(
        portal_messages::jobs::ScanAttachment::KIND,
        json!({ "attachmentId": id }),
        Some(portal.seed.tenant_id),
    );
    handler
        .run(&job)
        .await
        .map_err(|err| anyhow::anyhow!("scan: {err}"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

const ATTACHMENT: &str = "query($a: ID!) { attachment(id: $a) { name state contentType sizeBytes sha256 downloadUrl uploadedBy { displayName } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_checked_sealed_scanned_and_downloaded_through_checked_links()
-> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let (alice, carol) = (portal.seed.alice_id, portal.seed.carol_id);
    let created = as_role(
        &portal,
        carol,
        "customer_user",
        "mutation { createThread(input: { subject: \"Statement\", body: \"see attached\" }) { id } }",
        json!({}),
    )
    .await?;
    let thread = created["data"]["createThread"]["id"].clone();

    // A PDF: received, typed from its bytes, fingerprinted, sealed, awaiting the scan.
    let statement = declare(
        &portal,
        carol,
        "customer_user",
        &thread,
        "Flamingo statement.pdf",
    )
    .await?;
    assert_eq!(statement.max_bytes, 25 * 1024 * 1024);
    let content = pdf("flamingo ledger");
    let (status, body) = put(&statement.url, content.clone()).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "SCANNING");
    assert_eq!(body["contentType"], "application/pdf");
    assert_eq!(body["sha256"], hex::encode(Sha256::digest(&content)));
    let (again, body) = put(&statement.url, content.clone()).await?;
    assert_eq!(again, 409, "{body}");
    let (forged, _) = put(&format!("{}x", statement.url), content.clone()).await?;
    assert_eq!(forged, 403);

    // An executable named like a PDF, and a PNG named like one: refused, nothing stored.
    let fake = declare(&portal, carol, "customer_user", &thread, "invoice.pdf").await?;
    let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00 this program".to_vec();
    let (status, body) = put(&fake.url, exe).await?;
    assert_eq!(status, 415, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "UNSUPPORTED_MEDIA_TYPE"
    );
    let png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    let (status, _) = put(&fake.url, png).await?;
    assert_eq!(status, 415);
    let still = as_role(
        &portal,
        carol,
        "customer_user",
        ATTACHMENT,
        json!({ "a": fake.id }),
    )
    .await?;
    assert_eq!(
        still["data"]["attachment"]["state"], "AWAITING_UPLOAD",
        "{still}"
    );

    // The tenant's size limit, set by its admin (customers may not).
    let limit = "mutation($m: Int!) { updateMessagingSettings(input: { attachmentMaxBytes: $m }) { attachmentMaxBytes acceptedTypes } }";
    let refused = as_role(&portal, carol, "customer_user", limit, json!({ "m": 1000 })).await?;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let set = as_role(&portal, alice, "tenant_admin", limit, json!({ "m": 1000 })).await?;
    assert_eq!(
        set["data"]["updateMessagingSettings"]["attachmentMaxBytes"], 1000,
        "{set}"
    );
    let big = declare(&portal, carol, "customer_user", &thread, "big.txt").await?;
    assert_eq!(big.max_bytes, 1000);
    // Another tenant's limit is its own.
    let theirs = portal
        .query_with_roles(
            portal.seed.other_tenant_id,
            portal.seed.other_user_id,
            &["customer_user"],
            "{ messagingSettings { attachmentMaxBytes } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        theirs["data"]["messagingSettings"]["attachmentMaxBytes"],
        25 * 1024 * 1024,
        "{theirs}"
    );
    let (status, body) = put(&big.url, vec![b'a'; 2000]).await?;
    assert_eq!(status, 413, "{body}");

    // Not downloadable before the scan; clean after it.
    let before = as_role(
        &portal,
        carol,
        "customer_user",
        ATTACHMENT,
        json!({ "a": statement.id }),
    )
    .await?;
    assert_eq!(
        before["data"]["attachment"]["state"], "SCANNING",
        "{before}"
    );
    assert!(before["data"]["attachment"]["downloadUrl"].is_null());
    scan(&portal, Arc::new(NotScanned), &statement.id).await?;

    // Attaching: only received attachments the author uploaded to this thread.
    let post = "mutation($t: ID!, $a: [ID!]) { postMessage(input: { threadId: $t, body: \"attached\", attachmentIds: $a }) { id attachments { id name state } } }";
    let waiting = as_role(
        &portal,
        carol,
        "customer_user",
        post,
        json!({ "t": thread, "a": [fake.id] }),
    )
    .await?;
    assert_eq!(
        waiting["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{waiting}"
    );
    let posted = as_role(
        &portal,
        carol,
        "customer_user",
        post,
        json!({ "t": thread, "a": [statement.id] }),
    )
    .await?;
    let message = posted["data"]["postMessage"]["id"].clone();
    assert_eq!(
        posted["data"]["postMessage"]["attachments"],
        json!([{ "id": statement.id, "name": "Flamingo statement.pdf", "state": "CLEAN" }]),
        "{posted}"
    );
    let twice = as_role(
        &portal,
        carol,
        "customer_user",
        post,
        json!({ "t": thread, "a": [statement.id] }),
    )
    .await?;
    assert_eq!(
        twice["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{twice}"
    );

    // Download: a signed link, checked again and audited.
    let read = as_role(
        &portal,
        carol,
        "customer_user",
        ATTACHMENT,
        json!({ "a": statement.id }),
    )
    .await?;
    let link = read["data"]["attachment"]["downloadUrl"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no link: {read}"))?;
    let response = reqwest::get(format!("{}{link}", base(&portal))).await?;
    assert_eq!(response.status(), 200);
    let disposition = response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        disposition.contains("Flamingo%20statement.pdf"),
        "{disposition}"
    );
    assert_eq!(response.bytes().await?.to_vec(), content);
    let downloads = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("file.download"))
        .filter(audit_event::Column::Outcome.eq("success"))
        .all(&portal.db)
        .await?;
    assert_eq!(downloads.len(), 1);

    // Support (the queue grant) reads it too; a customer outside the thread does not.
    let dave = portal.create_user("dave@acme.example", "Dave").await?;
    let support = as_role(
        &portal,
        dave,
        "support_agent",
        ATTACHMENT,
        json!({ "a": statement.id }),
    )
    .await?;
    assert!(
        support["data"]["attachment"]["downloadUrl"].is_string(),
        "{support}"
    );
    let outsider = as_role(
        &portal,
        dave,
        "customer_user",
        ATTACHMENT,
        json!({ "a": statement.id }),
    )
    .await?;
    assert!(outsider["data"]["attachment"].is_null(), "{outsider}");
    // Another tenant neither.
    let foreign = portal
        .query_with_roles(
            portal.seed.other_tenant_id,
            portal.seed.other_user_id,
            &["tenant_admin"],
            ATTACHMENT,
            json!({ "a": statement.id }),
        )
        .await?;
    assert!(foreign["data"]["attachment"].is_null(), "{foreign}");

    // At rest: neither the name nor the content in the database or the object store.
    let id: Uuid = statement.id.parse()?;
    let row = message_attachment::Entity::find_by_id(id)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    let file_row = file::Entity::find_by_id(id)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no file row"))?;
    for stored in [format!("{row:?}"), format!("{file_row:?}")] {
        assert!(!stored.contains("Flamingo"), "{stored}");
    }
    assert!(!contains(&row.name_sealed, "Flamingo"));
    let row_key = row.storage_key.clone().unwrap_or_default();
    let object = std::fs::read(portal.files_dir.join(&row_key))?;
    assert!(!contains(&object, "flamingo"));
    assert!(!contains(&object, "%PDF"));

    // A key rotation re-seals name and content into a new object; downloads go on.
    let rotated = as_role(
        &portal,
        alice,
        "tenant_admin",
        "mutation { rotateTenantDataKey { version } }",
        json!({}),
    )
    .await?;
    assert_eq!(
        rotated["data"]["rotateTenantDataKey"]["version"], 2,
        "{rotated}"
    );
    let reseal = portal_messages::jobs::Reseal::new(portal.messages_store());
    let job = portal_tests::job(
        portal_messages::jobs::Reseal::KIND,
        json!({ "tenantId": portal.seed.tenant_id }),
        Some(portal.seed.tenant_id),
    );
    reseal
        .run(&job)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let resealed = message_attachment::Entity::find_by_id(id)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    assert_eq!(resealed.key_version, 2);
    let moved = resealed.storage_key.clone().unwrap_or_default();
    assert!(moved.contains(".v2."), "{moved}");
    assert!(
        !portal.files_dir.join(row_key.as_str()).exists(),
        "the old object is gone"
    );
    let read = as_role(
        &portal,
        carol,
        "customer_user",
        ATTACHMENT,
        json!({ "a": statement.id }),
    )
    .await?;
    assert_eq!(read["data"]["attachment"]["name"], "Flamingo statement.pdf");
    let link = read["data"]["attachment"]["downloadUrl"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no link: {read}"))?
        .to_owned();
    let again = reqwest::get(format!("{}{link}", base(&portal))).await?;
    assert_eq!(again.bytes().await?.to_vec(), content);

    // Deleting the message takes its attachments with it.
    let deleted = as_role(
        &portal,
        carol,
        "customer_user",
        "mutation($m: ID!) { deleteMessage(id: $m) { attachments { id } } }",
        json!({ "m": message }),
    )
    .await?;
    assert_eq!(
        deleted["data"]["deleteMessage"]["attachments"],
        json!([]),
        "{deleted}"
    );
    assert!(
        file::Entity::find_by_id(id)
            .one(&portal.db)
            .await?
            .is_none()
    );
    let gone = reqwest::get(format!("{}{link}", base(&portal))).await?;
    assert_eq!(gone.status(), 404);
    portal.stop().await;
    Ok(())
}

/// A ClamAV daemon on a free port with only the tests' signature file, stopped on drop.
struct ClamdProcess {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for ClamdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts clamd, or `None` where it is not installed and not required (CI sets
/// `PORTAL_TEST_CLAMD_REQUIRED`, and installs it).
async fn start_clamd() -> anyhow::Result<Option<ClamdProcess>> {
    let binary = ["/usr/sbin/clamd", "/usr/bin/clamd"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    let Some(binary) = binary else {
        anyhow::ensure!(
            std::env::var_os("PORTAL_TEST_CLAMD_REQUIRED").is_none(),
            "clamd (clamav-daemon) is required"
        );
        eprintln!("skipping the ClamAV scan: clamd is not installed");
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db)?;
    let signatures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clamav/portal-test.ndb");
    std::fs::copy(signatures, db.join("portal-test.ndb"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.path().join("clamd.conf");
    std::fs::write(
        &config,
        format!(
            "Foreground yes\nDatabaseDirectory {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLogFile {}\n",
            db.display(),
            dir.path().join("clamd.log").display()
        ),
    )?;
    let child = std::process::Command::new(binary)
        .arg("-c")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let address = format!("127.0.0.1:{port}");
    let process = ClamdProcess {
        child,
        address: address.clone(),
        _dir: dir,
    };
    let clamd = Clamd::new(address);
    for _ in 0..120 {
        if clamd.ping().await.is_ok() {
            return Ok(Some(process));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    anyhow::bail!("clamd did not start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_quarantines_an_infected_upload_before_anyone_can_download_it() -> anyhow::Result<()>
{
    let Some(clamd) = start_clamd().await? else {
        return Ok(());
    };
    let scanner: Arc<dyn MalwareScanner> = Arc::new(Clamd::new(clamd.address.clone()));
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let carol = portal.seed.carol_id;
    let created = as_role(
        &portal,
        carol,
        "customer_user",
        "mutation { createThread(input: { subject: \"Logs\", body: \"two files\" }) { id } }",
        json!({}),
    )
    .await?;
    let thread = created["data"]["createThread"]["id"].clone();

    let infected = declare(&portal, carol, "customer_user", &thread, "eicar.txt").await?;
    let (status, body) = put(&infected.url, EICAR.as_bytes().to_vec()).await?;
    assert_eq!(status, 201, "{body}");
    let clean = declare(&portal, carol, "customer_user", &thread, "notes.txt").await?;
    let (status, body) = put(&clean.url, b"all good\n".to_vec()).await?;
    assert_eq!(status, 201, "{body}");
    scan(&portal, scanner.clone(), &infected.id).await?;
    scan(&portal, scanner, &clean.id).await?;

    let read = "query($a: ID!) { attachment(id: $a) { state downloadUrl } }";
    let quarantined = as_role(
        &portal,
        carol,
        "customer_user",
        read,
        json!({ "a": infected.id }),
    )
    .await?;
    assert_eq!(
        quarantined["data"]["attachment"],
        json!({ "state": "QUARANTINED", "downloadUrl": null }),
        "{quarantined}"
    );
    let row = message_attachment::Entity::find_by_id(infected.id.parse::<Uuid>()?)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    assert_eq!(
        row.scan_detail.as_deref(),
        Some("Portal.Test.EICAR.UNOFFICIAL")
    );
    assert!(
        file::Entity::find_by_id(row.id)
            .one(&portal.db)
            .await?
            .is_none()
    );
    let fine = as_role(
        &portal,
        carol,
        "customer_user",
        read,
        json!({ "a": clean.id }),
    )
    .await?;
    assert_eq!(fine["data"]["attachment"]["state"], "CLEAN", "{fine}");
    assert!(fine["data"]["attachment"]["downloadUrl"].is_string());
    // A quarantined file cannot go out with a message either.
    let post = as_role(
        &portal,
        carol,
        "customer_user",
        "mutation($t: ID!, $a: [ID!]) { postMessage(input: { threadId: $t, body: \"x\", attachmentIds: $a }) { id } }",
        json!({ "t": thread, "a": [infected.id] }),
    )
    .await?;
    assert_eq!(
        post["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{post}"
    );
    let scans = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("attachment.scan"))
        .all(&portal.db)
        .await?;
    assert_eq!(scans.len(), 2);
    portal.stop().await;
    Ok(())
}

/// A service account (an integration) uploads what it declared; once disabled it uploads
/// nothing more, even with a link it was given before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_upload_what_they_declared_while_active() -> anyhow::Result<()> {
    use portal_entities::messages::thread;
    use portal_messages::domain::ParticipantKind;
    let portal = TestPortal::start(Mode::AllInOne).await?;
    let (tenant, alice) = (portal.seed.tenant_id, portal.seed.alice_id);
    let created = as_role(
        &portal,
        alice,
        "tenant_admin",
        "mutation { createServiceAccount(input: { name: \"document-sync\" }) { id } }",
        json!({}),
    )
    .await?;
    let service: Uuid = created["data"]["createServiceAccount"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let thread_id = thread::Entity::find()
        .filter(thread::Column::TenantId.eq(tenant))
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the seed has threads"))?
        .id;
    let store = portal.messages_store();
    let actor = portal_kit::Actor {
        kind: portal_kit::ActorKind::Service,
        id: Some(service),
        tenant_id: Some(tenant),
        roles: vec!["integrator".into()],
        session_id: None,
        grants: Vec::new(),
        delegation: None,
    };
    let meta = portal_kit::RequestMeta::default();
    let declare = || {
        portal_messages::store::attachments::declare(
            &store,
            &actor,
            &meta,
            thread_id,
            "contract.pdf",
            ParticipantKind::Staff,
        )
    };
    let first = declare().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let second = declare().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let url = |path: &str| format!("{}{path}", base(&portal));
    let (status, body) = put(&url(&first.upload_url), pdf("Signed contract")).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "SCANNING", "{body}");
    let disabled = as_role(
        &portal,
        alice,
        "tenant_admin",
        "mutation($id: ID!) { disableServiceAccount(id: $id) { status } }",
        json!({ "id": service }),
    )
    .await?;
    assert_eq!(
        disabled["data"]["disableServiceAccount"]["status"], "DISABLED",
        "{disabled}"
    );
    let (status, body) = put(&url(&second.upload_url), pdf("Signed contract")).await?;
    assert_eq!(status, 403, "{body}");
    let row = message_attachment::Entity::find_by_id(second.row.id)
        .one(&portal.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("declared"))?;
    assert_eq!(row.state, "AWAITING_UPLOAD");
    portal.stop().await;
    Ok(())
}
