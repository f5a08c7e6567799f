//! Field-level RBAC policies in the database: the seed in `policies/*.csv` (compiled into
//! the binary) is loaded on first start; gateways load the rows and reload them within a
//! second of any change (they poll the policy revision).

use portal_kit::db::BeginWrite;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, Set};
use uuid::Uuid;

use portal_entities::platform::{casbin_rule, policy_revision};
use portal_gateway::authz::{Authorizer, Policies, PolicyError};

/// How often gateways look at the policy revision (well inside the one second a change
/// may take to reach every gateway).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

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
    let txn = db.begin_write().await?;
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
    let index = served.supergraph.index();
    let coordinates = portal_gateway::authz::coordinates(index)
        .into_iter()
        .chain(portal_gateway::authz::introspection_coordinates(index))
        .map(|(t, f, action)| (format!("{t}.{f}"), action));
    portal_identity::policy_store::publish_coordinates(db, coordinates)
        .await
        .map_err(|err| anyhow::anyhow!("publishing coordinates: {err:?}"))
}

/// Publishes the served supergraph's coordinates again whenever `gateway` swaps in a new
/// supergraph (hot reload), checking every second.
pub fn republish_on_reload(
    db: DatabaseConnection,
    gateway: Arc<portal_gateway::gateway::Gateway>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Holding the published one keeps its address from being reused by a new one.
        let mut published = gateway.current();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let current = gateway.current();
            if !Arc::ptr_eq(&current, &published) {
                match publish_coordinates(&db, &gateway).await {
                    Ok(()) => published = current,
                    Err(err) => tracing::warn!(%err, "republishing coordinates failed"),
                }
            }
        }
    })
}

/// The PostgreSQL channel policy changes are announced on.
pub const CHANNEL: &str = portal_identity::policy_store::CHANNEL;

/// Keeps `authorizer` in step with the stored policies: on PostgreSQL it reloads as soon
/// as a change is announced (`LISTEN`), and everywhere it also polls the revision every
/// `interval` (the only mechanism on SQLite, the fallback on PostgreSQL).
pub fn watch(
    db: DatabaseConnection,
    authorizer: Arc<Authorizer>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let wake = portal_kit::notify::wake_on_notify(&db, CHANNEL);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = wake.notified() => {}
            }
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
/// current ([`watch`]).
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
    let task = watch(db.clone(), authorizer.clone(), POLL_INTERVAL);
    Ok((authorizer, task))
}

/// Reads the policy files of `dir` (every `*.csv`, in name order).
pub fn read_dir(dir: &std::path::Path) -> anyhow::Result<Policies> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    let mut text = String::new();
    for file in files {
        text.push_str(&std::fs::read_to_string(&file)?);
        text.push('\n');
    }
    Ok(Policies::parse_csv(&text, 0)?)
}

/// A finding of [`lint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `error` or `warning`.
    pub severity: &'static str,
    /// What is wrong, naming the rule.
    pub message: String,
}

fn describe(rule: &portal_gateway::authz::Rule) -> String {
    format!(
        "p, {}, {}, {}, {}, {}",
        rule.role,
        rule.domain,
        rule.object,
        rule.action.as_str(),
        rule.effect.as_str()
    )
}

/// Checks `policies` against the supergraph `index`: objects that name no field (error),
/// rules whose action no matching field has (error), the same rule twice (warning), allow
/// and deny of the same object for the same role (conflict: deny wins; warning), allows
/// made unreachable by a deny of the same role on a wider object (warning), and roles
/// that appear in no rule but are inherited (warning).
pub fn lint(policies: &Policies, index: &portal_gateway::schema::SchemaIndex) -> Vec<Finding> {
    use portal_gateway::authz::{Effect, coordinates, introspection_coordinates, key_match};
    let mut all = coordinates(index);
    all.extend(introspection_coordinates(index));
    // Grants are objects too (`grant:Thread.all`), with their own action.
    all.extend(portal_kit::policy::GRANTS.iter().map(|(name, action, _)| {
        let (subject, power) = name.split_once('.').unwrap_or((name, ""));
        (
            format!("{}{subject}", portal_kit::policy::GRANT_PREFIX),
            power.to_owned(),
            *action,
        )
    }));
    let mut findings = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for rule in &policies.rules {
        let matching: Vec<_> = all
            .iter()
            .filter(|(t, f, _)| key_match(&format!("{t}.{f}"), &rule.object))
            .collect();
        if matching.is_empty() {
            findings.push(Finding {
                severity: "error",
                message: format!(
                    "unknown coordinate: `{}` names no field of the supergraph",
                    describe(rule)
                ),
            });
        } else if !matching.iter().any(|(_, _, action)| *action == rule.action) {
            findings.push(Finding {
                severity: "error",
                message: format!(
                    "wrong action: no field matched by `{}` is used for {}",
                    describe(rule),
                    rule.action.as_str()
                ),
            });
        }
        if !seen.insert(rule.clone()) {
            findings.push(Finding {
                severity: "warning",
                message: format!("duplicate rule: `{}`", describe(rule)),
            });
        }
        if rule.effect == Effect::Allow {
            let shadow = policies.rules.iter().find(|other| {
                other.effect == Effect::Deny
                    && other.role == rule.role
                    && other.action == rule.action
                    && (other.domain == rule.domain || other.domain == "*")
                    && key_match(&rule.object.replace('*', ""), &other.object)
                    && (other.object.ends_with('*') || other.object == rule.object)
            });
            if let Some(deny) = shadow {
                let kind = if deny.object == rule.object {
                    "conflict"
                } else {
                    "unreachable"
                };
                findings.push(Finding {
                    severity: "warning",
                    message: format!(
                        "{kind}: `{}` never applies, `{}` denies it",
                        describe(rule),
                        describe(deny)
                    ),
                });
            }
        }
    }
    let with_rules: std::collections::BTreeSet<&str> =
        policies.rules.iter().map(|r| r.role.as_str()).collect();
    for link in &policies.inheritance {
        if !with_rules.contains(link.inherits.as_str())
            && !policies.inheritance.iter().any(|l| l.role == link.inherits)
        {
            findings.push(Finding {
                severity: "warning",
                message: format!(
                    "`g, {}, {}, {}` inherits a role that has no rules",
                    link.role, link.inherits, link.domain
                ),
            });
        }
    }
    findings
}

/// Runs policy assertions, one per line: `can <role> read|write <Type.field>` or `cannot
/// …`, optionally ending `in <tenant id>`. Roles get the implicit roles (`public`, and
/// `authenticated` unless the role is `public`). Returns the failed lines.
pub fn check_assertions(policies: &Policies, text: &str) -> Result<Vec<String>, String> {
    use portal_gateway::authz::{Action, PUBLIC_ROLE, with_implicit_roles};
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (expect, role, action, coordinate, domain) = match words.as_slice() {
            [verb, role, action, coordinate] => (*verb, *role, *action, *coordinate, "any-tenant"),
            [verb, role, action, coordinate, "in", domain] => {
                (*verb, *role, *action, *coordinate, *domain)
            }
            _ => {
                return Err(format!(
                    "line {}: expected `can|cannot ROLE read|write Type.field [in TENANT]`",
                    i + 1
                ));
            }
        };
        let expected = match expect {
            "can" => true,
            "cannot" => false,
            _ => return Err(format!("line {}: start with can or cannot", i + 1)),
        };
        let action = match action {
            "read" => Action::Read,
            "write" => Action::Write,
            _ => return Err(format!("line {}: action is read or write", i + 1)),
        };
        let roles = if role == PUBLIC_ROLE {
            with_implicit_roles(&[], false)
        } else {
            with_implicit_roles(&[role.to_owned()], true)
        };
        let held = policies.closure(&roles, domain);
        if policies.allows(&held, domain, coordinate, action) != expected {
            let why = policies.explain(&roles, domain, coordinate, action);
            failures.push(format!(
                "line {}: `{line}` does not hold — {}",
                i + 1,
                why.reason
            ));
        }
    }
    Ok(failures)
}
