//! Field-level RBAC policies in the database: the seed in `policies/*.csv` (compiled into
//! the binary) is loaded on first start; gateways load the rows and reload them within a
//! second of any change (they poll the policy revision).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, Set, TransactionTrait};
use uuid::Uuid;

use portal_entities::platform::{casbin_rule, policy_revision};
use portal_gateway::authz::{Authorizer, Policies, PolicyError};

/// The Casbin model the policies follow.
pub const MODEL: &str = include_str!("../../policies/model.conf");

/// The seed policy files, by name.
pub const SEED: [(&str, &str); 10] = [
    ("roles.csv", include_str!("../../policies/roles.csv")),
    ("public.csv", include_str!("../../policies/public.csv")),
    (
        "authenticated.csv",
        include_str!("../../policies/authenticated.csv"),
    ),
    (
        "customer_user.csv",
        include_str!("../../policies/customer_user.csv"),
    ),
    (
        "billing_admin.csv",
        include_str!("../../policies/billing_admin.csv"),
    ),
    (
        "support_agent.csv",
        include_str!("../../policies/support_agent.csv"),
    ),
    (
        "integrator.csv",
        include_str!("../../policies/integrator.csv"),
    ),
    ("auditor.csv", include_str!("../../policies/auditor.csv")),
    (
        "tenant_admin.csv",
        include_str!("../../policies/tenant_admin.csv"),
    ),
    (
        "platform_admin.csv",
        include_str!("../../policies/platform_admin.csv"),
    ),
];

/// The seed as one policy (revision 0).
pub fn seed_policies() -> Result<Policies, PolicyError> {
    let text: String = SEED.iter().map(|(_, text)| format!("{text}\n")).collect();
    Policies::parse_csv(&text, 0)
}

/// The seed as rows: `[ptype, v0, …]`.
fn seed_rows() -> Vec<Vec<String>> {
    SEED.iter()
        .flat_map(|(_, text)| text.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(',').map(|f| f.trim().to_owned()).collect())
        .collect()
}

/// Loads the seed into an empty policy store. Several processes may race: the one that
/// creates the revision row seeds, the others find it and do nothing.
pub async fn seed_if_empty(db: &DatabaseConnection) -> Result<bool, DbErr> {
    if policy_revision::Entity::find_by_id(1)
        .one(db)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let txn = db.begin().await?;
    let claimed = policy_revision::ActiveModel {
        id: Set(1),
        revision: Set(1),
        updated_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await;
    if claimed.is_err() {
        return Ok(false);
    }
    for row in seed_rows() {
        let value = |i: usize| row.get(i).cloned().unwrap_or_default();
        casbin_rule::ActiveModel {
            id: Set(Uuid::now_v7()),
            ptype: Set(value(0)),
            v0: Set(value(1)),
            v1: Set(value(2)),
            v2: Set(value(3)),
            v3: Set(value(4)),
            v4: Set(value(5)),
            v5: Set(value(6)),
        }
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// The current revision (0 when nothing is stored yet).
pub async fn revision(db: &DatabaseConnection) -> Result<i64, DbErr> {
    Ok(policy_revision::Entity::find_by_id(1)
        .one(db)
        .await?
        .map_or(0, |r| r.revision))
}

/// Loads every stored rule.
pub async fn load(db: &DatabaseConnection) -> anyhow::Result<Policies> {
    portal_identity::policy_store::load(db)
        .await
        .map_err(|err| anyhow::anyhow!("loading policies: {err:?}"))
}

/// Publishes the field coordinates of the supergraph `gateway` serves, so that policy
/// edits are validated against them.
pub async fn publish_coordinates(
    db: &DatabaseConnection,
    gateway: &portal_gateway::gateway::Gateway,
) -> anyhow::Result<()> {
    let served = gateway.current();
    let coordinates = portal_gateway::authz::coordinates(served.supergraph.index())
        .into_iter()
        .map(|(t, f, action)| (format!("{t}.{f}"), action));
    portal_identity::policy_store::publish_coordinates(db, coordinates)
        .await
        .map_err(|err| anyhow::anyhow!("publishing coordinates: {err:?}"))
}

/// Keeps `authorizer` in step with the stored policies: polls the revision every
/// `interval` and reloads when it changed.
pub fn watch(
    db: DatabaseConnection,
    authorizer: Arc<Authorizer>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let current = authorizer.policies().revision;
            match revision(&db).await {
                Ok(stored) if stored != current => match load(&db).await {
                    Ok(policies) => {
                        tracing::info!(revision = policies.revision, "policies reloaded");
                        authorizer.replace(policies);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "reloading policies failed; keeping the old ones")
                    }
                },
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "polling the policy revision failed"),
            }
        }
    })
}

/// Seeds if needed, loads the policies into an authorizer in `mode`, and keeps it
/// current (polling every second).
pub async fn start(
    db: &DatabaseConnection,
    mode: portal_gateway::authz::Mode,
    check_introspection: bool,
) -> anyhow::Result<(Arc<Authorizer>, tokio::task::JoinHandle<()>)> {
    seed_if_empty(db).await?;
    let mut authorizer = Authorizer::new(mode, load(db).await?);
    if check_introspection {
        authorizer = authorizer.with_introspection_checks();
    }
    let authorizer = Arc::new(authorizer);
    let task = watch(db.clone(), authorizer.clone(), Duration::from_secs(1));
    Ok((authorizer, task))
}
