//! Policy rules of the HubSpot (CRM) connector: its service accounts (`integrator`) may
//! create accounts from CRM companies, add a contact's user to the accounts of its
//! companies, and find a user by email (ids only: `User.email` stays denied to them);
//! everyone who reads integrations reads the new-account defaults. Inviting users
//! (`createUser`) stays the tenant admins' unless a policy grants it, and so does
//! connecting an integration with OAuth (it hands over credentials, as configuring does).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0058_policy_rules_crm"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add(
            manager,
            &[
                ("tenant_admin", "IntegrationNewAccounts.*", "read"),
                // Connecting with OAuth hands over credentials: the tenant admins'.
                (
                    "tenant_admin",
                    "Mutation.startIntegrationAuthorization",
                    "write",
                ),
                (
                    "tenant_admin",
                    "Mutation.completeIntegrationAuthorization",
                    "write",
                ),
                ("tenant_admin", "IntegrationAuthorizationStart.*", "read"),
                ("integrator", "IntegrationNewAccounts.*", "read"),
                ("integrator", "Mutation.createAccount", "write"),
                ("integrator", "Mutation.addAccountMember", "write"),
                ("integrator", "Query.users", "read"),
                ("integrator", "UserConnection.*", "read"),
                ("integrator", "UserEdge.*", "read"),
                ("integrator", "User.id", "read"),
            ],
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Rules are data an admin may have edited since: left as they are.
        Ok(())
    }
}
