//! Entity resolution batches through DataLoaders: the number of SQL statements an
//! operation costs does not grow with the number of entities it touches.

use chrono_free::now;
use portal_entities::accounts::account;
use portal_entities::identity::user;
use portal_tests::{Mode, TestDb, TestPortal, connect_counting};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;
use uuid::Uuid;

mod chrono_free {
    /// The current time as sea-orm's `DateTimeUtc`.
    pub fn now() -> sea_orm::prelude::DateTimeUtc {
        sea_orm::prelude::DateTimeUtc::from(std::time::SystemTime::now())
    }
}

const USERS_WITH_EVERYTHING: &str = r#"{
  users(first: 100) {
    edges { node {
      email
      roles { name }
      accounts { edges { node {
        number
        owner { displayName }
        reports { edges { node { name } } }
        externalRefs { externalId integration { name } }
      } } }
      threads { edges { node { subject } } }
    } }
  }
}"#;

async fn add_users(
    db: &sea_orm::DatabaseConnection,
    tenant: Uuid,
    count: usize,
) -> anyhow::Result<()> {
    for i in 0..count {
        let id = Uuid::now_v7();
        user::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant),
            email: Set(format!("extra{i}@acme.example")),
            display_name: Set(format!("Extra {i}")),
            status: Set("ACTIVE".into()),
            time_zone: Set(None),
            created_at: Set(now()),
            updated_at: Set(now()),
        }
        .insert(db)
        .await?;
        account::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            owner_id: Set(id),
            number: Set(format!("EXTRA-{i:04}")),
            name: Set("Extra".into()),
            status: Set("OPEN".into()),
            currency: Set("USD".into()),
            balance_e4: Set(0),
            idempotency_key: Set(None),
            request_hash: Set(None),
            created_at: Set(now()),
            updated_at: Set(now()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

async fn statements_for(extra_users: usize) -> anyhow::Result<(usize, usize)> {
    let test_db = TestDb::new().await?;
    let (db, counter) = connect_counting(&test_db).await?;
    let seed = portal::seed::seed(&db).await?;
    add_users(&db, seed.tenant_id, extra_users).await?;
    let portal = TestPortal::start_on(Mode::AllInOne, db, seed).await?;
    // Background pollers (session feed, mail outbox) share the counted connection: the
    // fewest statements over a few runs is the query's own cost.
    let mut statements = usize::MAX;
    let mut response = json!(null);
    for _ in 0..5 {
        let before = counter.get();
        response = portal
            .query_as_carol(USERS_WITH_EVERYTHING, json!({}))
            .await?;
        statements = statements.min(counter.get() - before);
    }
    assert_eq!(response.get("errors"), None, "{response}");
    let users = response["data"]["users"]["edges"]
        .as_array()
        .map_or(0, Vec::len);
    portal.stop().await;
    test_db.cleanup().await;
    Ok((users, statements))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_resolution_is_batched_not_one_query_per_entity() -> anyhow::Result<()> {
    let (few_users, few_statements) = statements_for(0).await?;
    let (many_users, many_statements) = statements_for(25).await?;
    assert_eq!((few_users, many_users), (3, 28));
    assert_eq!(
        few_statements, many_statements,
        "statements grew with the number of users: {few_statements} for {few_users} users, {many_statements} for {many_users}"
    );
    Ok(())
}
