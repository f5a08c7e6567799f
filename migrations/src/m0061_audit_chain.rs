//! The tamper-evident audit log and personal data sealed per data subject.
//!
//! - `audit_events` gains its place in its tenant's hash chain (`chain_seq`, `chain_prev`,
//!   `chain_hash`), written once, after commit, by the one sequencer
//!   (`portal_kit::audit::chain`); and personal data sealed per data subject
//!   (`subject_id`, `actor_personal`, `subject_personal`: see `portal_kit::audit::personal`).
//! - `audit_checkpoints`: signed (sequence, head hash, time) documents per chain.
//! - `audit_subject_keys`: one X25519 key pair per data subject (the private half sealed to
//!   the escrow key); erasing a subject deletes both halves. `audit_escrow_keys`: the X25519
//!   key the subjects' private halves are sealed to (its private half sealed with the data
//!   key).
//! - `audit_guard_lifts`: the only way past the append-only guard besides chaining a row.
//!   A rewrite (sealing legacy personal data, deleting a retention segment) inserts a lift in
//!   its own transaction, does its work, and closes the lift before it commits: other
//!   transactions never see an open lift, and the closed one stays as the record of what was
//!   done.
//!
//! The guard now lets exactly one kind of update through without a lift: setting a row's
//! chain fields once, with nothing else changed, to the next place of its chain (the
//! sequence after the chain's highest, `prev` the hash there). On PostgreSQL a lift left
//! open fails its transaction at commit, and TRUNCATE is refused.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0061_audit_chain"
    }
}

/// The `prev` of a chain's first event.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every column of `audit_events` apart from the chain fields.
const CONTENT_COLUMNS: [&str; 16] = [
    "id",
    "tenant_id",
    "actor_kind",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "request_id",
    "source_ip",
    "user_agent",
    "details",
    "created_at",
    "subject_id",
    "actor_personal",
    "subject_personal",
];

/// The highest sequence of the updated row's (`NEW`) chain, in a form both databases serve
/// from the partial chain indexes (`tenant_id = …` for a tenant's chain, `IS NULL` for the
/// platform's; `IS NOT DISTINCT FROM` would not use them).
fn chain_head() -> String {
    "(CASE WHEN NEW.tenant_id IS NULL \
       THEN (SELECT max(chain_seq) FROM audit_events WHERE tenant_id IS NULL \
             AND chain_seq IS NOT NULL) \
       ELSE (SELECT max(chain_seq) FROM audit_events WHERE tenant_id = NEW.tenant_id \
             AND chain_seq IS NOT NULL) \
     END)"
        .to_owned()
}

/// The hash of the event before the updated row's new place in its chain.
fn previous_hash() -> String {
    "(CASE WHEN NEW.tenant_id IS NULL \
       THEN (SELECT chain_hash FROM audit_events WHERE tenant_id IS NULL \
             AND chain_seq = NEW.chain_seq - 1) \
       ELSE (SELECT chain_hash FROM audit_events WHERE tenant_id = NEW.tenant_id \
             AND chain_seq = NEW.chain_seq - 1) \
     END)"
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [
            big_integer_null("chain_seq"),
            text_null("chain_prev"),
            text_null("chain_hash"),
            uuid_null("subject_id"),
            text_null("actor_personal"),
            text_null("subject_personal"),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table("audit_events")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        for sql in [
            "CREATE UNIQUE INDEX ux_audit_events_chain ON audit_events (tenant_id, chain_seq) \
             WHERE tenant_id IS NOT NULL AND chain_seq IS NOT NULL",
            "CREATE UNIQUE INDEX ux_audit_events_platform_chain ON audit_events (chain_seq) \
             WHERE tenant_id IS NULL AND chain_seq IS NOT NULL",
            "CREATE INDEX ix_audit_events_unchained ON audit_events (id) WHERE chain_seq IS NULL",
            "CREATE INDEX ix_audit_events_subject ON audit_events (subject_id) \
             WHERE subject_id IS NOT NULL",
        ] {
            db.execute_unprepared(sql).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("audit_checkpoints")
                    .col(uuid("id").primary_key())
                    .col(uuid_null("tenant_id"))
                    .col(big_integer("sequence"))
                    .col(string_len("head_hash", 64))
                    .col(string_len("kind", 16))
                    .col(string_len("key_id", 64))
                    .col(text("document"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_checkpoints_tenant_sequence")
                    .table("audit_checkpoints")
                    .col("tenant_id")
                    .col("sequence")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_subject_keys")
                    .col(uuid("subject_id").primary_key())
                    .col(uuid_null("tenant_id"))
                    .col(string_len_null("escrow_key_id", 64))
                    .col(string_len_null("public_key", 64))
                    .col(text_null("private_key_sealed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("shredded_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_escrow_keys")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("public_key", 64))
                    .col(text("private_key_sealed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_guard_lifts")
                    .col(uuid("id").primary_key())
                    .col(string_len("reason", 200))
                    .col(big_integer("rows_changed"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .to_owned(),
            )
            .await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                let unchanged = CONTENT_COLUMNS
                    .iter()
                    // `json` has no equality operator: compare its text.
                    .map(|c| match *c {
                        "details" => format!("NEW.{c}::text IS NOT DISTINCT FROM OLD.{c}::text"),
                        _ => format!("NEW.{c} IS NOT DISTINCT FROM OLD.{c}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let (head, prev) = (chain_head(), previous_hash());
                db.execute_unprepared(&format!(
                    "CREATE OR REPLACE FUNCTION portal_audit_events_append_only() RETURNS trigger AS $$ \
                     BEGIN \
                       IF EXISTS (SELECT 1 FROM audit_guard_lifts WHERE finished_at IS NULL) THEN \
                         IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; \
                         RETURN NEW; \
                       END IF; \
                       IF TG_OP = 'UPDATE' AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL \
                          AND NEW.chain_hash IS NOT NULL AND NEW.chain_prev IS NOT NULL \
                          AND {unchanged} \
                          AND NEW.chain_seq = 1 + COALESCE({head}, 0) \
                          AND NEW.chain_prev = COALESCE({prev}, '{GENESIS}') THEN \
                         RETURN NEW; \
                       END IF; \
                       RAISE EXCEPTION 'audit events are append-only'; \
                     END $$ LANGUAGE plpgsql"
                ))
                .await?;
                db.execute_unprepared(
                    "CREATE FUNCTION portal_audit_append_only() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'the audit log is append-only'; END \
                     $$ LANGUAGE plpgsql",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE \
                     ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION portal_audit_append_only()",
                )
                .await?;
                // A lift may be closed once, by the transaction that opened it.
                db.execute_unprepared(
                    "CREATE FUNCTION portal_audit_guard_lifts_close_once() RETURNS trigger AS $$ \
                     BEGIN \
                       IF TG_OP = 'UPDATE' AND OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL \
                          AND NEW.id = OLD.id AND NEW.reason = OLD.reason \
                          AND NEW.started_at = OLD.started_at THEN RETURN NEW; END IF; \
                       RAISE EXCEPTION 'audit checkpoints and guard lifts are append-only'; \
                     END $$ LANGUAGE plpgsql",
                )
                .await?;
                // TRUNCATE skips row triggers: refused on all three tables.
                for table in ["audit_events", "audit_checkpoints", "audit_guard_lifts"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} \
                         FOR EACH STATEMENT EXECUTE FUNCTION portal_audit_append_only()"
                    ))
                    .await?;
                }
                // A lift must be closed by the transaction that opened it: checked at commit.
                db.execute_unprepared(
                    "CREATE FUNCTION portal_audit_guard_lifts_closed() RETURNS trigger AS $$ \
                     BEGIN \
                       IF EXISTS (SELECT 1 FROM audit_guard_lifts WHERE id = NEW.id \
                                  AND finished_at IS NULL) THEN \
                         RAISE EXCEPTION 'an audit guard lift must be closed before commit'; \
                       END IF; \
                       RETURN NULL; \
                     END $$ LANGUAGE plpgsql",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE CONSTRAINT TRIGGER audit_guard_lifts_closed AFTER INSERT \
                     ON audit_guard_lifts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW \
                     EXECUTE FUNCTION portal_audit_guard_lifts_closed()",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_guard_lifts_append_only BEFORE UPDATE OR DELETE \
                     ON audit_guard_lifts FOR EACH ROW \
                     EXECUTE FUNCTION portal_audit_guard_lifts_close_once()",
                )
                .await?;
            }
            _ => {
                let unchanged = CONTENT_COLUMNS
                    .iter()
                    .map(|c| format!("NEW.{c} IS OLD.{c}"))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let lifted = "EXISTS (SELECT 1 FROM audit_guard_lifts WHERE finished_at IS NULL)";
                let (head, prev) = (chain_head(), previous_hash());
                let mut batch = vec![
                    "DROP TRIGGER audit_events_no_update".to_owned(),
                    "DROP TRIGGER audit_events_no_delete".to_owned(),
                    format!(
                        "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events \
                         WHEN NOT ({lifted} OR (OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL \
                           AND NEW.chain_hash IS NOT NULL AND NEW.chain_prev IS NOT NULL AND {unchanged} \
                           AND NEW.chain_seq = 1 + COALESCE({head}, 0) \
                           AND NEW.chain_prev = COALESCE({prev}, '{GENESIS}'))) \
                         BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END"
                    ),
                    format!(
                        "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
                         WHEN NOT {lifted} \
                         BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END"
                    ),
                ];
                for operation in ["UPDATE", "DELETE"] {
                    batch.push(format!(
                        "CREATE TRIGGER audit_checkpoints_no_{op} BEFORE {operation} \
                         ON audit_checkpoints \
                         BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END",
                        op = operation.to_lowercase()
                    ));
                }
                batch.push(
                    "CREATE TRIGGER audit_guard_lifts_no_update BEFORE UPDATE ON audit_guard_lifts \
                     WHEN NOT (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL \
                       AND NEW.id IS OLD.id AND NEW.reason IS OLD.reason \
                       AND NEW.started_at IS OLD.started_at) \
                     BEGIN SELECT RAISE(ABORT, 'audit guard lifts are append-only'); END"
                        .to_owned(),
                );
                batch.push(
                    "CREATE TRIGGER audit_guard_lifts_no_delete BEFORE DELETE ON audit_guard_lifts \
                     BEGIN SELECT RAISE(ABORT, 'audit guard lifts are append-only'); END"
                        .to_owned(),
                );
                // One batch, so one connection of the pool: a drop and the create of the
                // same name on two connections can see two versions of the schema.
                db.execute_unprepared(&batch.join(";\n")).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Back to m0008's guard. Personal data sealed since is not unsealed: a database
        // that must keep it readable is restored from a backup instead.
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for sql in [
                    "DROP TRIGGER audit_events_no_truncate ON audit_events",
                    "DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints",
                    "DROP TRIGGER audit_guard_lifts_no_truncate ON audit_guard_lifts",
                    "DROP TRIGGER audit_guard_lifts_closed ON audit_guard_lifts",
                    "DROP FUNCTION portal_audit_guard_lifts_closed()",
                    "DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints",
                    "DROP TRIGGER audit_guard_lifts_append_only ON audit_guard_lifts",
                    "DROP FUNCTION portal_audit_append_only()",
                    "DROP FUNCTION portal_audit_guard_lifts_close_once()",
                    "CREATE OR REPLACE FUNCTION portal_audit_events_append_only() RETURNS trigger \
                     AS $$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$ \
                     LANGUAGE plpgsql",
                ] {
                    db.execute_unprepared(sql).await?;
                }
            }
            _ => {
                let mut batch: Vec<String> = [
                    "audit_events_no_update",
                    "audit_events_no_delete",
                    "audit_checkpoints_no_update",
                    "audit_checkpoints_no_delete",
                    "audit_guard_lifts_no_update",
                    "audit_guard_lifts_no_delete",
                ]
                .iter()
                .map(|name| format!("DROP TRIGGER {name}"))
                .collect();
                for operation in ["UPDATE", "DELETE"] {
                    batch.push(format!(
                        "CREATE TRIGGER audit_events_no_{op} BEFORE {operation} ON audit_events \
                         BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
                        op = operation.to_lowercase()
                    ));
                }
                db.execute_unprepared(&batch.join(";\n")).await?;
            }
        }
        for table in [
            "audit_guard_lifts",
            "audit_escrow_keys",
            "audit_subject_keys",
            "audit_checkpoints",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for index in [
            "ix_audit_events_subject",
            "ix_audit_events_unchained",
            "ux_audit_events_platform_chain",
            "ux_audit_events_chain",
        ] {
            db.execute_unprepared(&format!("DROP INDEX {index}"))
                .await?;
        }
        for column in [
            "subject_personal",
            "actor_personal",
            "subject_id",
            "chain_hash",
            "chain_prev",
            "chain_seq",
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("audit_events")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
