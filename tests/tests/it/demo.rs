//! The demo set-up: a restarted demo finds its identities again, and the IDE starts out
//! acting as the demo user.

use portal_tests::TestDb;

#[tokio::test]
async fn demo_identities_are_found_again_after_a_restart() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    assert!(portal::seed::demo_identities(&db).await?.is_none());
    let seeded = portal::seed::seed_if_empty(&db)
        .await?
        .expect("an empty database is seeded");
    assert!(
        portal::seed::seed_if_empty(&db).await?.is_none(),
        "seeded twice"
    );
    let found = portal::seed::demo_identities(&db)
        .await?
        .expect("demo data present");
    assert_eq!(
        (
            found.tenant_id,
            found.alice_id,
            found.bob_id,
            found.carol_id,
            found.other_tenant_id,
            found.other_user_id
        ),
        (
            seeded.tenant_id,
            seeded.alice_id,
            seeded.bob_id,
            seeded.carol_id,
            seeded.other_tenant_id,
            seeded.other_user_id
        )
    );
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ide_starts_with_the_configured_headers() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    let options = portal::GatewayOptions {
        rate_limiter: None,
        authentication: portal_gateway::auth::Authentication::anonymous_only().with_dev_headers(),
        limits: Default::default(),
        subgraphs: Default::default(),
        ide: Some(vec![("x-portal-user-id".into(), "demo-user-id".into())]),
        authorizer: None,
        trusted_proxies: Vec::new(),
        override_labels: Default::default(),
        cors_origins: Vec::new(),
        events: None,
        files: None,
        gateway_client: Default::default(),
        keys: None,
        connectors: Default::default(),
    };
    let (router, _) = portal::all_in_one_app(&db, &portal_tests::authenticator(&db), &options)?;
    let (addr, server) = portal_tests::serve(router).await?;
    portal::install_crypto_provider();
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/graphql"))
        .header("accept", "text/html")
        .send()
        .await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let page = response.text().await?;
    assert!(
        page.contains("x-portal-user-id") && page.contains("demo-user-id"),
        "{page}"
    );
    // Everything the page loads comes from the portal itself (no CDN: works offline).
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "{page}"
    );
    for src in page
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
    {
        let asset = client.get(format!("http://{addr}{src}")).send().await?;
        assert_eq!(asset.status(), 200, "{src}");
        assert!(asset.bytes().await?.len() > 100, "{src}");
    }
    server.abort();
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
