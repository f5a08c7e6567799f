//! Exports of the dashboard's KPIs, which cover every account the requester sees rather
//! than one: `account_exports.account_id` becomes nullable (null: a dashboard KPI).
//!
//! A file's `access_selection` becomes a selection at the root of the download's access
//! query (next to its owner's field, with `$id` its owner's id) rather than inside the
//! owner's field: a KPI export's access is the dashboard's field, not an account's. The
//! stored selections of account exports are wrapped in `accountExport(id: $id)`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0036_dashboard_exports"
    }
}

/// `account_exports` as m0032 made it, `account_id` nullable or not.
fn exports_table(name: &str, account_nullable: bool) -> TableCreateStatement {
    Table::create()
        .table(Alias::new(name))
        .col(pk_uuid("id"))
        .col(uuid("tenant_id"))
        .col(if account_nullable {
            uuid_null("account_id")
        } else {
            uuid("account_id")
        })
        .col(uuid("requested_by"))
        .col(string_len("dataset", 32))
        .col(string_len("format", 8))
        .col(json("parameters"))
        .col(string_len("status", 16))
        .col(big_integer_null("row_count"))
        .col(uuid_null("file_id"))
        .col(text_null("error"))
        .col(timestamp_with_time_zone("created_at"))
        .col(timestamp_with_time_zone_null("finished_at"))
        .to_owned()
}

/// SQLite cannot change a column's nullability: the table is rebuilt (same columns in
/// the same order, rows copied, indexes made again), in one batch on one connection.
async fn rebuild_on_sqlite(
    manager: &SchemaManager<'_>,
    account_nullable: bool,
) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let create = backend.build(&exports_table("account_exports_rebuilt", account_nullable));
    let index = |column| backend.build(&crate::tenant_index("account_exports", column));
    let batch = format!(
        "{};\n\
         INSERT INTO account_exports_rebuilt SELECT * FROM account_exports;\n\
         DROP TABLE account_exports;\n\
         ALTER TABLE account_exports_rebuilt RENAME TO account_exports;\n\
         {};\n{};",
        create.sql,
        index("account_id").sql,
        index("requested_by").sql,
    );
    manager.get_connection().execute_unprepared(&batch).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => rebuild_on_sqlite(manager, true).await?,
            _ => {
                manager
                    .get_connection()
                    .execute_unprepared(
                        "ALTER TABLE account_exports ALTER COLUMN account_id DROP NOT NULL",
                    )
                    .await?;
            }
        }
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE files SET access_selection = \
                 'accountExport(id: $id) { ' || access_selection || ' }' \
                 WHERE owner_type = 'AccountExport' AND access_selection IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // KPI exports have no account to keep.
        db.execute_unprepared("DELETE FROM account_exports WHERE account_id IS NULL")
            .await?;
        db.execute_unprepared(
            "UPDATE files SET access_selection = \
             substr(access_selection, 26, length(access_selection) - 27) \
             WHERE owner_type = 'AccountExport' \
             AND access_selection LIKE 'accountExport(id: $id) { %'",
        )
        .await?;
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => rebuild_on_sqlite(manager, false).await,
            _ => db
                .execute_unprepared(
                    "ALTER TABLE account_exports ALTER COLUMN account_id SET NOT NULL",
                )
                .await
                .map(|_| ()),
        }
    }
}
