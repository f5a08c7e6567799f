//! The transactional outbox of domain events: one row per state change, written in the
//! same transaction as the change (and its audit row) by `portal_kit::audit`.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0019_domain_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("domain_events")
                    .col(pk_uuid("id"))
                    .col(uuid_null("tenant_id"))
                    .col(string_len("event_type", 64))
                    .col(string_len("subject_type", 64))
                    .col(uuid_null("subject_id"))
                    .col(string_len("actor_kind", 16))
                    .col(uuid_null("actor_id"))
                    .col(integer("schema_version"))
                    .col(json("payload"))
                    .col(timestamp_with_time_zone("occurred_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("domain_events", "id"))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_domain_events_subject")
                    .table("domain_events")
                    .col("subject_id")
                    .col("id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("domain_events").to_owned())
            .await
    }
}
