//! Migrations apply, roll back and re-apply on the test database's backend.

use portal_migrations::{Migrator, MigratorTrait};
use portal_tests::TestDb;
use sea_orm::ConnectionTrait;

#[tokio::test]
async fn migrations_roll_back_and_apply_again() -> anyhow::Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.connect().await?;
    assert!(Migrator::get_pending_migrations(&db).await?.is_empty());
    Migrator::down(&db, None).await?;
    assert_eq!(
        Migrator::get_pending_migrations(&db).await?.len(),
        Migrator::migrations().len()
    );
    Migrator::up(&db, None).await?;
    assert!(Migrator::get_pending_migrations(&db).await?.is_empty());
    // The schema is usable after the round trip.
    db.execute_unprepared("SELECT count(*) FROM accounts")
        .await?;
    db.close().await?;
    test_db.cleanup().await;
    Ok(())
}
