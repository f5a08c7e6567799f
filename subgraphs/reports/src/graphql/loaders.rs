//! The batched queries behind the reports subgraph's DataLoaders (see
//! [`portal_kit::loader`]): each runs once per tenant (and page request) in a request tick.

use portal_entities::reports::{report_definition, report_delivery, report_recipient, report_run};

use crate::store;

portal_kit::fetch_by_ids!(
    /// Report definition lookups by `(tenant, id)`, batched into one query per tenant.
    pub DefinitionsById: report_definition::Model = store::definitions_by_ids
);

portal_kit::fetch_by_ids!(
    /// Report run lookups by `(tenant, id)`, batched into one query per tenant.
    pub RunsById: report_run::Model = store::runs_by_ids
);

portal_kit::fetch_pages!(
    /// `Account.reports` for many accounts (an `_entities` call), batched into one query
    /// per distinct `(tenant, page request)`.
    pub DefinitionsByAccount: report_definition::Model = store::pages_by_account
);

portal_kit::fetch_pages!(
    /// `ReportDefinition.runs` for many definitions (a list of definitions, or an
    /// `_entities` call), batched into one query per distinct `(tenant, page request)`.
    pub RunsByDefinition: report_run::Model = store::pages_by_definition
);

portal_kit::fetch_by_ids!(
    /// `ReportDefinition.recipients` for many definitions, in one query per tenant.
    pub RecipientsByDefinition: Vec<report_recipient::Model> =
        store::delivery::recipients_by_definition
);

portal_kit::fetch_by_ids!(
    /// `ReportRun.deliveries` for many runs, in one query per tenant.
    pub DeliveriesByRun: Vec<report_delivery::Model> = store::delivery::deliveries_by_run
);
