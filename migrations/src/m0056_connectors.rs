//! Connectors: an integration gets its connector's configuration (settings, sealed
//! credentials), its health and circuit-breaker state and its sync position;
//! `integration_sync_runs` records every sync run (a job chain) with its counts and
//! `integration_sync_failures` the records a run skipped. External references are
//! generalized from "an account's id elsewhere" to (integration, external type, external
//! id) → (entity type, entity id), with the fingerprint of what was last synced.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0056_connectors"
    }
}

/// The external type an existing account link gets: the provider's name for an account.
const EXTERNAL_TYPE_OF_PROVIDER: &str = "CASE i.provider WHEN 'stripe' THEN 'customer' \
     WHEN 'hubspot' THEN 'company' ELSE 'account' END";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            json_null("settings"),
            text_null("credentials_sealed"),
            string_len("health", 12).default("UNKNOWN").to_owned(),
            text_null("last_error"),
            timestamp_with_time_zone_null("last_checked_at"),
            integer("consecutive_failures").default(0).to_owned(),
            timestamp_with_time_zone_null("circuit_open_until"),
            json_null("sync_cursor"),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table("integrations")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        generalize_external_refs(manager).await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_sync_runs")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("integration_id"))
                    .col(string_len("mode", 12))
                    .col(string_len("status", 12))
                    .col(json_null("from_cursor"))
                    .col(json_null("cursor"))
                    .col(integer("created").default(0))
                    .col(integer("updated").default(0))
                    .col(integer("unchanged").default(0))
                    .col(integer("deleted").default(0))
                    .col(integer("failed").default(0))
                    .col(integer("pages").default(0))
                    .col(json("requested_by"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .col(text_null("error"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("integration_sync_runs", "integration_id")
                            .to("integrations", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_integration_sync_runs_integration")
                    .table("integration_sync_runs")
                    .col("tenant_id")
                    .col("integration_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        // At most one run in progress per integration: a second start is a CONFLICT.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_integration_sync_runs_running ON integration_sync_runs \
                 (integration_id) WHERE status = 'RUNNING'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_sync_failures")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(uuid("run_id"))
                    .col(string_len("external_type", 64))
                    .col(string_len("external_id", 200))
                    .col(text("error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("integration_sync_failures", "run_id")
                            .to("integration_sync_runs", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_integration_sync_failures_run")
                    .table("integration_sync_failures")
                    .col("run_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        let mut rules = Vec::new();
        for role in ["tenant_admin", "integrator"] {
            for (object, action) in [
                ("Mutation.testIntegrationConnection", "write"),
                ("Mutation.startIntegrationSync", "write"),
                ("Mutation.cancelIntegrationSync", "write"),
                ("IntegrationConnectionCheck.*", "read"),
                ("IntegrationSyncRun.*", "read"),
                ("IntegrationSyncRunConnection.*", "read"),
                ("IntegrationSyncRunEdge.*", "read"),
                ("IntegrationSyncFailure.*", "read"),
                ("IntegrationFieldRule.*", "read"),
                ("Subscription.integrationStatusChanged", "read"),
            ] {
                rules.push((role, object, action));
            }
        }
        // Credentials are the tenant admins' to hand over.
        rules.push(("tenant_admin", "Mutation.configureIntegration", "write"));
        crate::seed_rules::add(manager, &rules).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["integration_sync_failures", "integration_sync_runs"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        narrow_external_refs(manager).await?;
        for column in [
            "sync_cursor",
            "circuit_open_until",
            "consecutive_failures",
            "last_checked_at",
            "last_error",
            "health",
            "credentials_sealed",
            "settings",
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("integrations")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Drops the indexes of `names` on `table`.
async fn drop_indexes(
    manager: &SchemaManager<'_>,
    table: &'static str,
    names: &[&'static str],
) -> Result<(), DbErr> {
    for name in names {
        manager
            .drop_index(Index::drop().name(*name).table(table).to_owned())
            .await?;
    }
    Ok(())
}

/// Rebuilds `external_refs` keyed by (integration, external type, external id) and
/// pointing at any entity; existing account links keep their ids.
async fn generalize_external_refs(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_indexes(
        manager,
        "external_refs",
        &[
            "ux_external_refs_integration_account",
            "ux_external_refs_integration_external",
            "ix_external_refs_tenant_account_id",
        ],
    )
    .await?;
    manager
        .rename_table(
            Table::rename()
                .table("external_refs", "external_refs_m0055")
                .to_owned(),
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table("external_refs")
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("integration_id"))
                .col(string_len("external_type", 64))
                .col(string_len("external_id", 200))
                .col(string_len("entity_type", 64))
                .col(uuid("entity_id"))
                .col(string_len_null("fingerprint", 64))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_external_refs_integration")
                        .from("external_refs", "integration_id")
                        .to("integrations", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    for (name, columns, unique) in [
        (
            "ux_external_refs_external",
            &["integration_id", "external_type", "external_id"][..],
            true,
        ),
        // Entity first: this index answers "which record is this entity linked to" and
        // can never be chosen for a lookup by external id — with the integration and
        // type leading both indexes, a planner with stale statistics chose it and scanned
        // every link of the type (a 100 000-invoice backfill slowed down quadratically).
        (
            "ux_external_refs_entity",
            &[
                "entity_id",
                "integration_id",
                "external_type",
                "entity_type",
            ][..],
            true,
        ),
        (
            "ix_external_refs_entity",
            &["tenant_id", "entity_type", "entity_id"][..],
            false,
        ),
    ] {
        let mut index = Index::create();
        index.name(name).table("external_refs");
        for column in columns {
            index.col(*column);
        }
        if unique {
            index.unique();
        }
        manager.create_index(index.to_owned()).await?;
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "INSERT INTO external_refs (id, tenant_id, integration_id, external_type, \
             external_id, entity_type, entity_id, fingerprint, created_at, updated_at) \
             SELECT r.id, r.tenant_id, r.integration_id, {EXTERNAL_TYPE_OF_PROVIDER}, \
             r.external_id, 'Account', r.account_id, NULL, r.created_at, r.created_at \
             FROM external_refs_m0055 r JOIN integrations i ON i.id = r.integration_id"
        ))
        .await?;
    manager
        .drop_table(Table::drop().table("external_refs_m0055").to_owned())
        .await
}

/// The way back: account links only (links to other entities are lost).
async fn narrow_external_refs(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    drop_indexes(
        manager,
        "external_refs",
        &[
            "ux_external_refs_external",
            "ux_external_refs_entity",
            "ix_external_refs_entity",
        ],
    )
    .await?;
    manager
        .rename_table(
            Table::rename()
                .table("external_refs", "external_refs_m0056")
                .to_owned(),
        )
        .await?;
    manager
        .create_table(
            Table::create()
                .table("external_refs")
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("integration_id"))
                .col(uuid("account_id"))
                .col(string_len("external_id", 200))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("external_refs", "integration_id")
                        .to("integrations", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .get_connection()
        .execute_unprepared(
            "INSERT INTO external_refs (id, tenant_id, integration_id, account_id, external_id, \
             created_at) SELECT id, tenant_id, integration_id, entity_id, external_id, created_at \
             FROM external_refs_m0056 WHERE entity_type = 'Account'",
        )
        .await?;
    manager
        .drop_table(Table::drop().table("external_refs_m0056").to_owned())
        .await?;
    manager
        .create_index(crate::tenant_index("external_refs", "account_id"))
        .await?;
    for (name, column) in [
        ("ux_external_refs_integration_account", "account_id"),
        ("ux_external_refs_integration_external", "external_id"),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table("external_refs")
                    .col("integration_id")
                    .col(column)
                    .unique()
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}
