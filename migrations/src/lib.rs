//! Database migrations for every Portal table, on SQLite and PostgreSQL.
//!
//! Each domain owns its migrations; migrations never import `portal-entities` (table
//! definitions here are frozen history), and an applied migration is never edited —
//! changes come as new migrations.

use sea_orm_migration::prelude::*;

mod m0001_platform;
mod m0002_identity;
mod m0003_accounts;
mod m0004_reports;
mod m0005_messages;
mod m0006_integrations;
mod m0007_tenant_indexes;
mod m0008_audit_append_only;
mod m0009_audit_user_agent;
mod m0010_sessions;
mod m0011_api_keys;
mod m0012_mfa;
mod m0013_outbox_and_resets;
mod m0014_oidc;
mod m0015_policies;
mod m0016_policy_coordinates;
mod m0017_email_changes;
mod m0018_account_members;
mod m0019_domain_events;
mod m0020_jobs;
mod m0021_time_zones;
mod m0022_policy_rules_0_2;
mod m0023_policy_rules_subscriptions;
mod m0024_ledger;
mod m0025_policy_rules_ledger;
mod m0026_usage;
mod m0027_policy_rules_usage;
mod m0028_policy_rules_dashboard;
mod m0029_dashboard_layouts;
mod m0030_policy_rules_layouts;
mod m0031_ledger_rollups;
mod m0032_files_and_exports;
mod m0033_policy_rules_exports;
mod m0034_usage_daily_rollups;
mod m0035_usage_rollups_by_time;
mod m0036_dashboard_exports;
mod m0037_report_queries_and_runs;
mod m0038_policy_rules_report_runs;
mod m0039_report_schedules;
mod m0040_policy_rules_report_updates;
mod m0041_policy_rules_report_access_log;
mod m0042_evidence_manifests;
mod m0043_report_delivery;
mod m0044_policy_rules_monthly_reports;
mod m0045_tenant_file_retention;
mod m0046_secure_messages;
mod m0047_message_attachments;
mod m0048_message_search;
mod m0049_message_search_arrays;
mod m0050_message_notifications;
mod m0051_message_retention;
mod m0052_message_search_planning;
mod m0053_thread_subject_search;
mod m0054_event_sequence;
mod m0055_webhook_delivery;
mod m0056_connectors;
mod m0057_account_idempotency;
mod m0058_policy_rules_crm;
mod m0059_integration_monitoring;
mod m0060_webhook_attempt_stats;
mod m0061_audit_chain;
mod m0062_audit_evidence_exports;
mod m0063_policy_rules_audit_evidence;
mod m0064_data_subject_requests;
mod m0065_policy_rules_data_subject_requests;
mod m0066_policy_rules_data_erasure;
mod m0067_data_subject_request_erasure_state;
mod m0068_compliance_reports;
mod m0069_policy_rules_compliance_reports;
mod m0070_tenant_offboardings;
mod m0071_policy_rules_tenant_offboarding;
mod m0072_retention_settings;
mod m0073_policy_rules_retention;
mod m0074_job_traceparent;
mod seed_rules;

pub use sea_orm_migration::MigratorTrait;

/// All migrations in the order they apply.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_platform::Migration),
            Box::new(m0002_identity::Migration),
            Box::new(m0003_accounts::Migration),
            Box::new(m0004_reports::Migration),
            Box::new(m0005_messages::Migration),
            Box::new(m0006_integrations::Migration),
            Box::new(m0007_tenant_indexes::Migration),
            Box::new(m0008_audit_append_only::Migration),
            Box::new(m0009_audit_user_agent::Migration),
            Box::new(m0010_sessions::Migration),
            Box::new(m0011_api_keys::Migration),
            Box::new(m0012_mfa::Migration),
            Box::new(m0013_outbox_and_resets::Migration),
            Box::new(m0014_oidc::Migration),
            Box::new(m0015_policies::Migration),
            Box::new(m0016_policy_coordinates::Migration),
            Box::new(m0017_email_changes::Migration),
            Box::new(m0018_account_members::Migration),
            Box::new(m0019_domain_events::Migration),
            Box::new(m0020_jobs::Migration),
            Box::new(m0021_time_zones::Migration),
            Box::new(m0022_policy_rules_0_2::Migration),
            Box::new(m0023_policy_rules_subscriptions::Migration),
            Box::new(m0024_ledger::Migration),
            Box::new(m0025_policy_rules_ledger::Migration),
            Box::new(m0026_usage::Migration),
            Box::new(m0027_policy_rules_usage::Migration),
            Box::new(m0028_policy_rules_dashboard::Migration),
            Box::new(m0029_dashboard_layouts::Migration),
            Box::new(m0030_policy_rules_layouts::Migration),
            Box::new(m0031_ledger_rollups::Migration),
            Box::new(m0032_files_and_exports::Migration),
            Box::new(m0033_policy_rules_exports::Migration),
            Box::new(m0034_usage_daily_rollups::Migration),
            Box::new(m0035_usage_rollups_by_time::Migration),
            Box::new(m0036_dashboard_exports::Migration),
            Box::new(m0037_report_queries_and_runs::Migration),
            Box::new(m0038_policy_rules_report_runs::Migration),
            Box::new(m0039_report_schedules::Migration),
            Box::new(m0040_policy_rules_report_updates::Migration),
            Box::new(m0041_policy_rules_report_access_log::Migration),
            Box::new(m0042_evidence_manifests::Migration),
            Box::new(m0043_report_delivery::Migration),
            Box::new(m0044_policy_rules_monthly_reports::Migration),
            Box::new(m0045_tenant_file_retention::Migration),
            Box::new(m0046_secure_messages::Migration),
            Box::new(m0047_message_attachments::Migration),
            Box::new(m0048_message_search::Migration),
            Box::new(m0049_message_search_arrays::Migration),
            Box::new(m0050_message_notifications::Migration),
            Box::new(m0051_message_retention::Migration),
            Box::new(m0052_message_search_planning::Migration),
            Box::new(m0053_thread_subject_search::Migration),
            Box::new(m0054_event_sequence::Migration),
            Box::new(m0055_webhook_delivery::Migration),
            Box::new(m0056_connectors::Migration),
            Box::new(m0057_account_idempotency::Migration),
            Box::new(m0058_policy_rules_crm::Migration),
            Box::new(m0059_integration_monitoring::Migration),
            Box::new(m0060_webhook_attempt_stats::Migration),
            Box::new(m0061_audit_chain::Migration),
            Box::new(m0062_audit_evidence_exports::Migration),
            Box::new(m0063_policy_rules_audit_evidence::Migration),
            Box::new(m0064_data_subject_requests::Migration),
            Box::new(m0065_policy_rules_data_subject_requests::Migration),
            Box::new(m0066_policy_rules_data_erasure::Migration),
            Box::new(m0067_data_subject_request_erasure_state::Migration),
            Box::new(m0068_compliance_reports::Migration),
            Box::new(m0069_policy_rules_compliance_reports::Migration),
            Box::new(m0070_tenant_offboardings::Migration),
            Box::new(m0071_policy_rules_tenant_offboarding::Migration),
            Box::new(m0072_retention_settings::Migration),
            Box::new(m0073_policy_rules_retention::Migration),
            Box::new(m0074_job_traceparent::Migration),
        ]
    }
}

/// A `(tenant_id, <column>)` index, the access path of nearly every tenant-scoped query.
pub(crate) fn tenant_index(table: &'static str, column: &'static str) -> IndexCreateStatement {
    Index::create()
        .name(format!("ix_{table}_tenant_{column}"))
        .table(table)
        .col("tenant_id")
        .col(column)
        .to_owned()
}
