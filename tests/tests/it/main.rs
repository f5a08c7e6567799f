//! Portal's integration tests: one binary, each test on its own fresh database
//! (SQLite by default, PostgreSQL when `PORTAL_TEST_DATABASE_URL` is set).

mod api_keys;
mod audit;
mod auth_helpers;
mod batching;
mod conformance;
mod cross_tenant;
mod dashboard;
mod demo;
mod docs_examples;
mod event_feed;
mod federation;
mod isolation;
mod jobs;
mod layouts;
mod ledger;
mod limits;
mod mail;
mod mfa;
mod migrations;
mod mutations;
mod policy;
mod rbac;
mod recovery;
mod references;
mod reload;
mod robustness;
mod row_rules;
mod schema_drift;
mod sessions;
mod sso;
mod subgraph_auth;
mod subgraphs;
mod subscriptions;
mod transport;
mod usage;
