//! Policy rules of erasure requests: everyone signed in may ask for their own data to be
//! erased (tenant admins on a user's behalf, through the grant of m0065). The request only
//! takes effect once the person confirms it through the link mailed to them.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0066_policy_rules_data_erasure"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(
            manager,
            &[("authenticated", "Mutation.requestDataErasure", "write")],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules are data an admin may have edited since: left as they are.
        Ok(())
    }
}
