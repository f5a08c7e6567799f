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
        authentication: portal_gateway::auth::Authentication::anonymous_only().with_dev_headers(),
        limits: Default::default(),
        subgraphs: Default::default(),
        ide_headers: vec![("x-portal-user-id".into(), "demo-user-id".into())],
        authorizer: None,
        trusted_proxies: Vec::new(),
        override_labels: Default::default(),
        cors_origins: Vec::new(),
    };
    let (router, _) = portal::all_in_one_app(&db, &portal_tests::authenticator(&db), &options)?;
    let (addr, server) = portal_tests::serve(router).await?;
    portal::install_crypto_provider();
    let page = reqwest::Client::new()
        .get(format!("http://{addr}/graphql"))
        .header("accept", "text/html")
        .send()
        .await?
        .text()
        .await?;
    assert!(
        page.contains("x-portal-user-id") && page.contains("demo-user-id"),
        "{page}"
    );
    server.abort();
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
