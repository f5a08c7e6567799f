//! Domain events in commit order: a `sequence` assigned after commit by one sequencer
//! (`portal_kit::events::sequence`), so that consumers which must see every event exactly
//! once — webhook deliveries, connectors, the audit chain — read by a cursor with no gaps
//! and no misses. Event ids are time-ordered UUIDv7 values, but transactions commit out of
//! order, so an id cursor could pass an event that commits later. Existing events are
//! numbered in id order; `event_cursors` keeps each consumer's position.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0054_event_sequence"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("domain_events")
                    .add_column(big_integer_null("sequence"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Both databases take this form (SQLite has had UPDATE … FROM and window
        // functions for years).
        db.execute_unprepared(
            "UPDATE domain_events SET sequence = numbered.n
             FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM domain_events) AS numbered
             WHERE domain_events.id = numbered.id",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX ux_domain_events_sequence ON domain_events (sequence)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_domain_events_unsequenced ON domain_events (id) WHERE sequence IS NULL",
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table("event_cursors")
                    .col(string_len("consumer", 100).primary_key())
                    .col(big_integer("sequence"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("event_cursors").to_owned())
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX ix_domain_events_unsequenced")
            .await?;
        db.execute_unprepared("DROP INDEX ux_domain_events_sequence")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("domain_events")
                    .drop_column("sequence")
                    .to_owned(),
            )
            .await
    }
}
