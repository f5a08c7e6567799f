//! What an erasure in progress must keep between its attempts: the person's identifiers,
//! gathered before anything was erased (a retry after their account was closed could no
//! longer read them), sealed under the data key and cleared when the request completes.
//! Its presence also marks that erasing began, so a retry finishes the work instead of
//! checking the legal holds again over a half-erased person.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0067_data_subject_request_erasure_state"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("data_subject_requests")
                    .add_column(ColumnDef::new("erasure_sealed").text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("data_subject_requests")
                    .drop_column("erasure_sealed")
                    .to_owned(),
            )
            .await
    }
}
