//! SOC 2 compliance reports through the gateway: an auditor (here a tenant admin, who
//! inherits the role) asks for an access review and a report of sign-in failures, and
//! downloads zips whose signed manifests verify against the keys the portal publishes;
//! customer users cannot ask, and another tenant's auditor does not find them.

use portal_tests::{Mode, TestPortal};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth_helpers::{code, sign_in};

const REQUEST: &str = "mutation($i: RequestComplianceReportInput!) { requestComplianceReport(input: $i) { id kind status format from to } }";
const FOLLOW: &str = "query($id: ID!) { complianceReport(id: $id) { id kind status rows failure file { name sha256 download { url } } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_get_signed_reports_of_access_and_sign_in_failures() -> anyhow::Result<()> {
    let portal = TestPortal::start_enforcing(Mode::AllInOne).await?;
    let seed = portal.seed.clone();
    let admin = |query: &'static str, variables: Value| {
        let portal = &portal;
        async move {
            portal
                .query_with_roles(
                    seed.tenant_id,
                    seed.alice_id,
                    &["tenant_admin"],
                    query,
                    variables,
                )
                .await
        }
    };
    // Something to report: a failed sign-in here, and one in another tenant.
    let failed = sign_in(&portal, "acme", "carol@acme.example", "not her password 1").await?;
    assert!(!failed["errors"].is_null(), "{failed}");
    let elsewhere = sign_in(
        &portal,
        "globex",
        "gina@globex.example",
        "not hers either 1",
    )
    .await?;
    assert!(!elsewhere["errors"].is_null(), "{elsewhere}");
    let now = chrono::Utc::now();
    let period = |kind: &str, format: &str| {
        json!({ "i": {
            "kind": kind,
            "from": (now - chrono::Duration::days(30)).to_rfc3339(),
            "to": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "format": format,
        }})
    };

    // Customer users may not ask; a bad period is refused before anything is queued.
    let refused = portal
        .query_with_roles(
            seed.tenant_id,
            seed.carol_id,
            &["customer_user"],
            REQUEST,
            period("ACCESS_REVIEW", "CSV"),
        )
        .await?;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let backwards = admin(
        REQUEST,
        json!({ "i": { "kind": "ACCESS_REVIEW", "from": now.to_rfc3339(), "to": (now - chrono::Duration::days(1)).to_rfc3339() } }),
    )
    .await?;
    assert_eq!(code(&backwards), "BAD_USER_INPUT", "{backwards}");

    let base = portal.endpoint.trim_end_matches("/graphql").to_owned();
    let mut reports = Vec::new();
    for (kind, format) in [
        ("ACCESS_REVIEW", "CSV"),
        ("SIGN_IN_FAILURES", "CSV"),
        ("PRIVILEGED_ACTIONS", "PDF"),
    ] {
        let requested = admin(REQUEST, period(kind, format)).await?;
        let id = requested["data"]["requestComplianceReport"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{requested}"))
            .to_owned();
        let mut report = Value::Null;
        for _ in 0..200 {
            report = admin(FOLLOW, json!({ "id": id })).await?["data"]["complianceReport"].clone();
            if report["status"] == "READY" || report["status"] == "FAILED" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(report["status"], "READY", "{report}");
        let url = report["file"]["download"]["url"]
            .as_str()
            .unwrap_or_default();
        let response = portal.http().get(format!("{base}{url}")).send().await?;
        assert_eq!(response.status().as_u16(), 200, "{report}");
        let files = portal_kit::archive::unzip(&response.bytes().await?, 1 << 28, |_| true)
            .map_err(anyhow::Error::msg)?;
        // The manifest is signed by a key the portal publishes, and names the report's
        // digest.
        let keys: portal_kit::evidence::KeySet = portal
            .http()
            .get(format!("{base}{}", portal_kit::evidence::KEYS_PATH))
            .send()
            .await?
            .json()
            .await?;
        let manifest: Value = serde_json::from_slice(&files["manifest.json"])?;
        portal_kit::evidence::verify(&manifest, &keys).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert_eq!(manifest["kind"], kind);
        assert_eq!(manifest["tenant"], seed.tenant_id.to_string());
        let name = manifest["file"]["name"].as_str().unwrap_or_default();
        let body = files
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no {name} in {:?}", files.keys()))?;
        assert_eq!(
            manifest["file"]["sha256"].as_str(),
            Some(hex::encode(Sha256::digest(body)).as_str())
        );
        assert_eq!(manifest["file"]["rows"], report["rows"], "{manifest}");
        assert!(files.contains_key("keys.json") && files.contains_key("README.md"));
        reports.push((id, name.to_owned(), body.clone()));
    }
    let text = |i: usize| String::from_utf8_lossy(&reports[i].2).into_owned();
    // The access review lists the tenant's users with their roles, nobody else's.
    let review = text(0);
    assert!(
        review.starts_with("userId,email,displayName,status,roles"),
        "{review}"
    );
    assert!(
        review
            .lines()
            .any(|l| l.contains("alice@acme.example") && l.contains("tenant_admin")),
        "{review}"
    );
    assert!(!review.contains("gina@globex.example"), "{review}");
    // The failure report holds the failed sign-in, its personal data still sealed.
    let failures = text(1);
    assert!(
        failures
            .lines()
            .any(|l| l.contains("auth.sign_in") && l.contains("failure")),
        "{failures}"
    );
    assert!(!failures.contains("carol@acme.example"), "{failures}");
    assert!(
        failures.contains(&seed.carol_id.to_string())
            && !failures.contains(&seed.other_user_id.to_string()),
        "only this tenant's events: {failures}"
    );
    assert!(reports[2].1.ends_with(".pdf") && reports[2].2.starts_with(b"%PDF"));

    // Another tenant's auditor does not find them.
    let other = portal
        .query_with_roles(
            seed.other_tenant_id,
            seed.other_user_id,
            &["auditor"],
            FOLLOW,
            json!({ "id": reports[0].0 }),
        )
        .await?;
    assert_eq!(code(&other), "NOT_FOUND", "{other}");
    Ok(())
}
