//! The seed policy rules of the account ledger (entries, invoices, payments), for
//! databases seeded before it: whoever reads an account reads its ledger — except support
//! staff, who never see money; billing admins and billing connectors post to it.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0025_policy_rules_ledger"
    }
}

/// `(role, object, action, effect)` for every tenant.
const ADDED: &[(&str, &str, &str, &str)] = &[
    ("customer_user", "Query.invoice", "read", "allow"),
    ("customer_user", "LedgerEntry.*", "read", "allow"),
    ("customer_user", "LedgerEntryConnection.*", "read", "allow"),
    ("customer_user", "LedgerEntryEdge.*", "read", "allow"),
    ("customer_user", "Invoice.*", "read", "allow"),
    ("customer_user", "InvoiceConnection.*", "read", "allow"),
    ("customer_user", "InvoiceEdge.*", "read", "allow"),
    ("customer_user", "Payment.*", "read", "allow"),
    ("customer_user", "PaymentConnection.*", "read", "allow"),
    ("customer_user", "PaymentEdge.*", "read", "allow"),
    (
        "billing_admin",
        "Mutation.postLedgerEntry",
        "write",
        "allow",
    ),
    ("billing_admin", "Mutation.issueInvoice", "write", "allow"),
    ("billing_admin", "Mutation.voidInvoice", "write", "allow"),
    ("billing_admin", "Mutation.recordPayment", "write", "allow"),
    ("integrator", "Query.invoice", "read", "allow"),
    ("integrator", "LedgerEntry.*", "read", "allow"),
    ("integrator", "LedgerEntryConnection.*", "read", "allow"),
    ("integrator", "LedgerEntryEdge.*", "read", "allow"),
    ("integrator", "Invoice.*", "read", "allow"),
    ("integrator", "InvoiceConnection.*", "read", "allow"),
    ("integrator", "InvoiceEdge.*", "read", "allow"),
    ("integrator", "Payment.*", "read", "allow"),
    ("integrator", "PaymentConnection.*", "read", "allow"),
    ("integrator", "PaymentEdge.*", "read", "allow"),
    ("integrator", "Mutation.postLedgerEntry", "write", "allow"),
    ("integrator", "Mutation.issueInvoice", "write", "allow"),
    ("integrator", "Mutation.voidInvoice", "write", "allow"),
    ("integrator", "Mutation.recordPayment", "write", "allow"),
    ("support_agent", "Account.ledgerEntries", "read", "deny"),
    ("support_agent", "Account.invoices", "read", "deny"),
    ("support_agent", "Account.payments", "read", "deny"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::seed_rules::add_with_effect(manager, ADDED).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Policy rules are data an administrator may have changed since: left as they are.
        Ok(())
    }
}
