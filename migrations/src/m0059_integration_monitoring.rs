//! Integration monitoring: when the remote last answered well (`last_success_at`), what
//! kind of error it last gave (`last_error_kind`: auth revoked, rate limited, remote
//! down, bad data), and the start of the last successful sync run (`synced_through`:
//! every remote change made before it is in the portal) — the sync lag.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0059_integration_monitoring"
    }
}

const COLUMNS: [&str; 3] = ["last_success_at", "last_error_kind", "synced_through"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in [
            timestamp_with_time_zone_null("last_success_at"),
            string_len_null("last_error_kind", 16),
            timestamp_with_time_zone_null("synced_through"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("integrations")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in COLUMNS {
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
