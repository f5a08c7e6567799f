//! Account membership: users besides the owner who may see an account (and what hangs off
//! it). Managed by tenant admins; the owner is a member implicitly (`accounts.owner_id`).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0018_account_members"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("account_members")
                    .col(uuid("account_id"))
                    .col(uuid("user_id"))
                    .col(uuid("tenant_id"))
                    .col(uuid("added_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("account_id").col("user_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("account_members", "account_id")
                            .to("accounts", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::tenant_index("account_members", "user_id"))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("account_members").to_owned())
            .await
    }
}
