//! Evidence: the Ed25519 keys that sign report manifests (and, later, audit checkpoints),
//! kept for ever so that what they signed keeps verifying; each report run's signed
//! integrity manifest; and the seed policy rule that lets customers (and the roles that
//! inherit theirs) read a run's manifest wherever they read its file.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0042_evidence_manifests"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("evidence_keys")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("algorithm", 16))
                    .col(string_len("public_key", 128))
                    .col(text("private_key_sealed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("retired_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("report_runs")
                    .add_column(text_null("manifest"))
                    .to_owned(),
            )
            .await?;
        crate::seed_rules::add_with_effect(
            manager,
            &[("customer_user", "ReportRun.manifest", "read", "allow")],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("report_runs")
                    .drop_column("manifest")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table("evidence_keys").to_owned())
            .await
    }
}
