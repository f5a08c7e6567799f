//! Tenant off-boardings (`offboardTenant`): a platform table — its rows outlive the tenant
//! they are about — recording each off-boarding's progress (export, waiting, deletion), the
//! handed-over archive and evidence pack (files of the operator's tenant), the final signed
//! checkpoint of the tenant's audit log and what was deleted.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0070_tenant_offboardings"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("tenant_offboardings")
                    .col(uuid("id").primary_key())
                    .col(uuid("tenant_id"))
                    .col(string_len("tenant_slug", 64))
                    .col(string_len("tenant_name", 200))
                    .col(uuid("operator_tenant_id"))
                    .col(uuid("requested_by"))
                    .col(string_len("status", 24))
                    .col(timestamp_with_time_zone("delete_after"))
                    .col(uuid_null("archive_file_id"))
                    .col(uuid_null("evidence_file_id"))
                    .col(big_integer_null("final_sequence"))
                    .col(string_len_null("final_head_hash", 64))
                    .col(uuid_null("final_checkpoint_id"))
                    .col(json_null("result"))
                    .col(text_null("failure"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("exported_at"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("tenant_offboardings", "created_at"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("tenant_offboardings").to_owned())
            .await
    }
}
