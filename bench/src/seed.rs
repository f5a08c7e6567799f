//! The benchmark's data: the demo seed plus enough users and accounts for list scenarios.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, Set};
use uuid::Uuid;

use portal_entities::accounts::account;
use portal_entities::identity::user;

/// Who the benchmark acts as.
#[derive(Clone, Debug)]
pub struct Demo {
    /// The demo tenant.
    pub tenant_id: Uuid,
    /// The acting user (Carol).
    pub user_id: Uuid,
}

/// Migrates and seeds `url`, adding `accounts` accounts spread over 50 extra users.
pub async fn prepare(url: &str, accounts: usize) -> anyhow::Result<Demo> {
    let db = portal::connect_and_migrate(url, 4).await?;
    let seed = portal::seed::seed(&db).await?;
    let now = Utc::now();
    let mut owners = Vec::new();
    for i in 0..50 {
        let id = Uuid::now_v7();
        user::ActiveModel {
            id: Set(id),
            tenant_id: Set(seed.tenant_id),
            email: Set(format!("bench{i}@acme.example")),
            display_name: Set(format!("Bench User {i}")),
            status: Set("ACTIVE".into()),
            time_zone: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&db)
        .await?;
        owners.push(id);
    }
    for i in 0..accounts {
        let created = account::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(seed.tenant_id),
            owner_id: Set(owners[i % owners.len()]),
            number: Set(format!("BENCH-{i:05}")),
            name: Set(format!("Bench account {i}")),
            status: Set("OPEN".into()),
            currency: Set("USD".into()),
            balance_e4: Set(i as i64 * 12_345),
            idempotency_key: Set(None),
            request_hash: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&db)
        .await?;
        portal_accounts::store::ledger::insert_opening_balance(&db, &created).await?;
    }
    db.close().await?;
    Ok(Demo {
        tenant_id: seed.tenant_id,
        user_id: seed.carol_id,
    })
}
