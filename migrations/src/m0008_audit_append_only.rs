//! Makes the audit trail append-only in the database itself: updates and deletes of
//! `audit_events` rows are refused by triggers, whatever code path attempts them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_audit_append_only"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION portal_audit_events_append_only() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$ LANGUAGE plpgsql",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION portal_audit_events_append_only()",
                )
                .await?;
            }
            _ => {
                for operation in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER audit_events_no_{op} BEFORE {operation} ON audit_events \
                         BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
                        op = operation.to_lowercase()
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
                )
                .await?;
                db.execute_unprepared("DROP FUNCTION IF EXISTS portal_audit_events_append_only()")
                    .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS audit_events_no_update")
                    .await?;
                db.execute_unprepared("DROP TRIGGER IF EXISTS audit_events_no_delete")
                    .await?;
            }
        }
        Ok(())
    }
}
