//! Field-level RBAC policies in Casbin's table layout (`casbin_rule`: ptype, v0…v5), and a
//! revision that every change bumps so gateways know when to reload.

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0015_policies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut table = Table::create();
        table
            .table("casbin_rule")
            .col(pk_uuid("id"))
            .col(string_len("ptype", 8));
        for column in ["v0", "v1", "v2", "v3", "v4", "v5"] {
            table.col(string_len(column, 500).default(""));
        }
        manager.create_table(table.to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_casbin_rule_ptype_v1")
                    .table("casbin_rule")
                    .col("ptype")
                    .col("v1")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("policy_revisions")
                    .col(integer("id").primary_key())
                    .col(big_integer("revision"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["policy_revisions", "casbin_rule"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
