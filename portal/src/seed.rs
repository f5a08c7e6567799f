//! Demo data: two tenants with users, roles, accounts, report definitions, threads and
//! integrations, written in one transaction on first start (or by `portal seed`).

use chrono::Utc;
use portal_kit::db::BeginWrite;
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait,
    Set,
};
use serde_json::json;
use uuid::Uuid;

use portal_entities::accounts::account;
use portal_entities::identity::{credential, role, tenant, user, user_role};
use portal_entities::integrations::{external_ref, integration, webhook_endpoint};
use portal_entities::messages::{message, thread, thread_participant};
use portal_entities::platform::audit_event;
use portal_entities::reports::report_definition;
use portal_identity::domain::{DEFAULT_ABSOLUTE_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS};

/// The password of every demo user (demo data only: never in production).
pub const DEMO_PASSWORD: &str = "portal demo passphrase";

/// One argon2id hash of [`DEMO_PASSWORD`] per process, shared by the demo users.
static DEMO_PASSWORD_HASH: std::sync::LazyLock<Result<String, String>> =
    std::sync::LazyLock::new(|| {
        portal_identity::password::hash(DEMO_PASSWORD).map_err(|err| err.to_string())
    });

/// Ids of the seeded demo objects, for printing and for tests.
#[derive(Clone, Debug)]
pub struct DemoSeed {
    /// The `acme` tenant.
    pub tenant_id: Uuid,
    /// Alice, tenant admin of `acme`.
    pub alice_id: Uuid,
    /// Bob, billing admin of `acme`.
    pub bob_id: Uuid,
    /// Carol, customer user of `acme`.
    pub carol_id: Uuid,
    /// The `globex` tenant (for isolation checks).
    pub other_tenant_id: Uuid,
    /// Globex's only user.
    pub other_user_id: Uuid,
}

/// Seeds the demo data unless some tenant already exists; returns what it created.
pub async fn seed_if_empty(db: &DatabaseConnection) -> Result<Option<DemoSeed>, DbErr> {
    if tenant::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    seed(db).await.map(Some)
}

/// The demo identities of a database seeded earlier (looked up by the demo tenant's slug
/// and the demo users' emails), or `None` when it holds no demo data.
pub async fn demo_identities(db: &DatabaseConnection) -> Result<Option<DemoSeed>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let tenant_by_slug = |slug: &'static str| {
        tenant::Entity::find()
            .filter(tenant::Column::Slug.eq(slug))
            .one(db)
    };
    let (Some(acme), Some(globex)) = (
        tenant_by_slug("acme").await?,
        tenant_by_slug("globex").await?,
    ) else {
        return Ok(None);
    };
    let user_by_email = |tenant_id: Uuid, email: &'static str| {
        user::Entity::find()
            .filter(user::Column::TenantId.eq(tenant_id))
            .filter(user::Column::Email.eq(email))
            .one(db)
    };
    let (Some(alice), Some(bob), Some(carol), Some(gina)) = (
        user_by_email(acme.id, "alice@acme.example").await?,
        user_by_email(acme.id, "bob@acme.example").await?,
        user_by_email(acme.id, "carol@acme.example").await?,
        user_by_email(globex.id, "gina@globex.example").await?,
    ) else {
        return Ok(None);
    };
    Ok(Some(DemoSeed {
        tenant_id: acme.id,
        alice_id: alice.id,
        bob_id: bob.id,
        carol_id: carol.id,
        other_tenant_id: globex.id,
        other_user_id: gina.id,
    }))
}

/// Seeds the demo data.
pub async fn seed(db: &DatabaseConnection) -> Result<DemoSeed, DbErr> {
    let txn = db.begin_write().await?;
    let acme = create_tenant(&txn, "acme", "Acme Corporation", "Europe/Berlin").await?;
    let globex = create_tenant(&txn, "globex", "Globex Inc.", "America/New_York").await?;

    let mut roles = std::collections::HashMap::new();
    for (name, description) in [
        (
            "tenant_admin",
            "Administers the tenant: users, roles, integrations",
        ),
        ("billing_admin", "Manages billing data and balances"),
        ("support_agent", "Answers customer threads"),
        ("customer_user", "A customer's own view of the portal"),
        ("integrator", "Service accounts of integrations"),
        ("auditor", "Reads audit trails"),
    ] {
        roles.insert(name, create_role(&txn, acme, name, description).await?);
    }
    let globex_admin = create_role(&txn, globex, "tenant_admin", "Administers the tenant").await?;

    let alice = create_user(
        &txn,
        acme,
        "alice@acme.example",
        "Alice Admin",
        &[roles["tenant_admin"]],
    )
    .await?;
    let bob = create_user(
        &txn,
        acme,
        "bob@acme.example",
        "Bob Billing",
        &[roles["billing_admin"]],
    )
    .await?;
    let carol = create_user(
        &txn,
        acme,
        "carol@acme.example",
        "Carol Customer",
        &[roles["customer_user"]],
    )
    .await?;
    let gina = create_user(
        &txn,
        globex,
        "gina@globex.example",
        "Gina Globex",
        &[globex_admin],
    )
    .await?;

    let operating = create_account(
        &txn,
        acme,
        alice,
        "ACME-0001",
        "Operating",
        "USD",
        125_005_000,
    )
    .await?;
    let savings =
        create_account(&txn, acme, carol, "ACME-0002", "Savings", "EUR", 30_000_000).await?;
    let payroll = create_account(
        &txn,
        acme,
        carol,
        "ACME-0003",
        "Payroll",
        "USD",
        987_654_321,
    )
    .await?;
    let billing = create_account(&txn, acme, bob, "ACME-0004", "Billing float", "GBP", 0).await?;
    let globex_main =
        create_account(&txn, globex, gina, "GLX-0001", "Main", "USD", 50_000_000).await?;

    // Carol also sees Alice's operating account, which her welcome thread is about.
    portal_entities::accounts::account_member::ActiveModel {
        account_id: Set(operating),
        user_id: Set(carol),
        tenant_id: Set(acme),
        added_by: Set(alice),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;

    for (account, owner) in [
        (operating, alice),
        (savings, carol),
        (payroll, carol),
        (billing, bob),
        (globex_main, gina),
    ] {
        let tenant_id = if account == globex_main { globex } else { acme };
        create_report(
            &txn,
            tenant_id,
            account,
            owner,
            "Monthly statement",
            "ACCOUNT_STATEMENT",
            "PDF",
            Some("0 6 1 * *"),
        )
        .await?;
        create_report(
            &txn,
            tenant_id,
            account,
            owner,
            "Balance summary",
            "BALANCE_SUMMARY",
            "XLSX",
            None,
        )
        .await?;
    }

    let welcome = create_thread(
        &txn,
        acme,
        alice,
        Some(operating),
        "Welcome to the portal",
        &[carol],
        &[alice],
    )
    .await?;
    post(
        &txn,
        acme,
        welcome,
        alice,
        "Hi Carol, your accounts are now visible in the portal.",
    )
    .await?;
    post(&txn, acme, welcome, carol, "Thanks Alice, I can see them.").await?;
    let invoice = create_thread(
        &txn,
        acme,
        carol,
        Some(payroll),
        "Question about an invoice",
        &[bob],
        &[],
    )
    .await?;
    post(
        &txn,
        acme,
        invoice,
        carol,
        "Could you check invoice 2026-118?",
    )
    .await?;
    let globex_thread = create_thread(
        &txn,
        globex,
        gina,
        Some(globex_main),
        "Globex internal",
        &[],
        &[],
    )
    .await?;
    post(
        &txn,
        globex,
        globex_thread,
        gina,
        "Only Globex can read this.",
    )
    .await?;

    let crm = create_integration(&txn, acme, "CRM", "salesforce", "Salesforce").await?;
    let stripe = create_integration(&txn, acme, "BILLING", "stripe", "Stripe").await?;
    let globex_crm = create_integration(&txn, globex, "CRM", "hubspot", "HubSpot").await?;
    for (i, account) in [operating, savings, payroll, billing]
        .into_iter()
        .enumerate()
    {
        let salesforce = (crm, "account", format!("SF-{:04}", i + 1));
        link(&txn, acme, salesforce, account).await?;
        let customer = (stripe, "customer", format!("cus_acme{:04}", i + 1));
        link(&txn, acme, customer, account).await?;
    }
    let company = (globex_crm, "company", "HS-0001".to_owned());
    link(&txn, globex, company, globex_main).await?;
    webhook_endpoint::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(acme),
        url: Set("https://hooks.acme.example/portal".into()),
        description: Set("Acme's ERP".into()),
        event_types: Set(json!(["account.updated", "report_run.completed"])),
        enabled: Set(true),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
        // No signing secret and no owner: it delivers nothing until an admin rotates its
        // secret (and so becomes its owner).
        secret_sealed: Set(None),
        previous_secret_sealed: Set(None),
        previous_secret_until: Set(None),
        owner: Set(None),
        payload_mode: Set("FULL".into()),
        disabled_reason: Set(None),
        failing_since: Set(None),
    }
    .insert(&txn)
    .await?;

    audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(None),
        actor_kind: Set("system".into()),
        actor_id: Set(None),
        action: Set("platform.seed".into()),
        target_type: Set("tenant".into()),
        target_id: Set(Some(acme)),
        outcome: Set("success".into()),
        request_id: Set(None),
        source_ip: Set(None),
        user_agent: Set(None),
        details: Set(Some(json!({ "tenants": ["acme", "globex"] }))),
        created_at: Set(Utc::now()),
        chain_seq: Set(None),
        chain_prev: Set(None),
        chain_hash: Set(None),
        // No personal data: the platform's unattributed subject.
        subject_id: Set(Some(portal_kit::audit::personal::unattributed(None))),
        actor_personal: Set(None),
        subject_personal: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(DemoSeed {
        tenant_id: acme,
        alice_id: alice,
        bob_id: bob,
        carol_id: carol,
        other_tenant_id: globex,
        other_user_id: gina,
    })
}

async fn create_tenant(
    txn: &DatabaseTransaction,
    slug: &str,
    name: &str,
    time_zone: &str,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    tenant::ActiveModel {
        id: Set(id),
        slug: Set(slug.into()),
        name: Set(name.into()),
        status: Set("ACTIVE".into()),
        session_idle_timeout_secs: Set(DEFAULT_IDLE_TIMEOUT_SECS),
        session_absolute_timeout_secs: Set(DEFAULT_ABSOLUTE_TIMEOUT_SECS),
        mfa_required_roles: Set(String::new()),
        time_zone: Set(time_zone.into()),
        file_retention_days: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    Ok(id)
}

async fn create_role(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    name: &str,
    description: &str,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    role::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        name: Set(name.into()),
        description: Set(description.into()),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    Ok(id)
}

async fn create_user(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    email: &str,
    name: &str,
    roles: &[Uuid],
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    user::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        email: Set(email.into()),
        display_name: Set(name.into()),
        status: Set("ACTIVE".into()),
        time_zone: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    let hash = DEMO_PASSWORD_HASH.clone().map_err(DbErr::Custom)?;
    credential::ActiveModel {
        user_id: Set(id),
        tenant_id: Set(tenant_id),
        password_hash: Set(hash),
        updated_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    for role_id in roles {
        user_role::ActiveModel {
            user_id: Set(id),
            role_id: Set(*role_id),
            tenant_id: Set(tenant_id),
            created_at: Set(Utc::now()),
        }
        .insert(txn)
        .await?;
    }
    Ok(id)
}

async fn create_account(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    owner: Uuid,
    number: &str,
    name: &str,
    currency: &str,
    balance_e4: i64,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    let created = account::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        owner_id: Set(owner),
        number: Set(number.into()),
        name: Set(name.into()),
        status: Set("OPEN".into()),
        currency: Set(currency.into()),
        balance_e4: Set(balance_e4),
        idempotency_key: Set(None),
        request_hash: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    portal_accounts::store::ledger::insert_opening_balance(txn, &created).await?;
    Ok(id)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one row's columns, named at the call site"
)]
async fn create_report(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    account: Uuid,
    owner: Uuid,
    name: &str,
    kind: &str,
    format: &str,
    schedule: Option<&str>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    report_definition::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        account_id: Set(Some(account)),
        owner_id: Set(owner),
        name: Set(name.into()),
        kind: Set(kind.into()),
        format: Set(format.into()),
        schedule: Set(schedule.map(str::to_owned)),
        parameters: Set(json!({})),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
        query: Set(None),
        version: Set(1),
        time_zone: Set("UTC".into()),
        paused: Set(false),
        external_delivery_allowed_by: Set(None),
        external_delivery_allowed_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(id)
}

/// A thread with its participants (`staff` among them join as staff). Demo text is written
/// as plaintext from before encryption (the seed holds no keys): the worker's re-seal sweep
/// seals it at start, the path an upgraded database takes.
async fn create_thread(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    creator: Uuid,
    account: Option<Uuid>,
    subject: &str,
    others: &[Uuid],
    staff: &[Uuid],
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    thread::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        account_id: Set(account),
        created_by: Set(creator),
        status: Set("OPEN".into()),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
        legacy_subject: Set(Some(subject.into())),
        subject_sealed: Set(None),
        key_version: Set(None),
        assignee_id: Set(None),
    }
    .insert(txn)
    .await?;
    for participant in std::iter::once(&creator).chain(others) {
        thread_participant::ActiveModel {
            thread_id: Set(id),
            user_id: Set(*participant),
            tenant_id: Set(tenant_id),
            created_at: Set(Utc::now()),
            last_read_at: Set(None),
            kind: Set(if staff.contains(participant) {
                "STAFF".into()
            } else {
                "CUSTOMER".into()
            }),
        }
        .insert(txn)
        .await?;
    }
    Ok(id)
}

async fn post(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    thread: Uuid,
    author: Uuid,
    body: &str,
) -> Result<(), DbErr> {
    message::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        thread_id: Set(thread),
        author_id: Set(author),
        created_at: Set(Utc::now()),
        edited_at: Set(None),
        legacy_body: Set(Some(body.into())),
        body_sealed: Set(None),
        key_version: Set(None),
        reply_to_id: Set(None),
        deleted_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(())
}

async fn create_integration(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    kind: &str,
    provider: &str,
    name: &str,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    integration::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant_id),
        kind: Set(kind.into()),
        provider: Set(provider.into()),
        name: Set(name.into()),
        status: Set("ACTIVE".into()),
        last_sync_at: Set(Some(Utc::now())),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
        settings: Set(None),
        credentials_sealed: Set(None),
        health: Set("UNKNOWN".into()),
        last_error: Set(None),
        last_checked_at: Set(None),
        consecutive_failures: Set(0),
        circuit_open_until: Set(None),
        sync_cursor: Set(None),
        last_success_at: Set(None),
        last_error_kind: Set(None),
        synced_through: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(id)
}

/// Links `account` to `(integration, external type, external id)`.
async fn link(
    txn: &DatabaseTransaction,
    tenant_id: Uuid,
    (integration, external_type, external_id): (Uuid, &str, String),
    account: Uuid,
) -> Result<(), DbErr> {
    external_ref::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        integration_id: Set(integration),
        external_type: Set(external_type.into()),
        external_id: Set(external_id),
        entity_type: Set("Account".into()),
        entity_id: Set(account),
        fingerprint: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(txn)
    .await?;
    Ok(())
}
