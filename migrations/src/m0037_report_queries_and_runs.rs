//! Reports that run: a definition keeps its query (dataset, columns, grouping, limit),
//! validated against the supergraph when it is saved and compiled again against the
//! supergraph of the day at every run, with a version that changes with it; a run records its cause (asked for, or scheduled), the definition version and
//! format it produced, whom it ran as, its file and size, and the full error (the
//! `error` column keeps the message users see).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0037_report_queries_and_runs"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        let definitions = [json_null("query"), integer("version").default(1).to_owned()];
        for column in definitions {
            manager
                .alter_table(
                    Table::alter()
                        .table("report_definitions")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        let runs = [
            string_len("cause", 16).default("MANUAL").to_owned(),
            integer_null("definition_version"),
            string_len_null("format", 8),
            uuid_null("run_as"),
            uuid_null("file_id"),
            big_integer_null("bytes"),
            text_null("error_detail"),
        ];
        for column in runs {
            manager
                .alter_table(
                    Table::alter()
                        .table("report_runs")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("report_runs", "error_detail"),
            ("report_runs", "bytes"),
            ("report_runs", "file_id"),
            ("report_runs", "run_as"),
            ("report_runs", "format"),
            ("report_runs", "definition_version"),
            ("report_runs", "cause"),
            ("report_definitions", "version"),
            ("report_definitions", "query"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
