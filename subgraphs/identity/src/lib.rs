//! The identity subgraph: tenants, users and roles; sign-in, sessions and access tokens.
//!
//! Layers: [`graphql`] (wire types and resolvers) → [`domain`] (validated inputs, no
//! framework types) → [`store`] (sea-orm queries, always tenant-scoped).

pub mod api_key_api;
pub mod api_keys;
pub mod audit;
pub mod compliance_report_api;
pub mod compliance_reports;
pub mod credentials;
pub mod domain;
pub mod erasure;
pub mod evidence_export;
pub mod feed;
pub mod graphql;
pub mod jobs_api;
pub mod keys;
pub mod mfa;
pub mod offboarding;
pub mod offboarding_api;
pub mod oidc;
pub mod oidc_api;
pub mod password;
pub mod policy_api;
pub mod policy_store;
pub mod principals;
pub mod privacy;
pub mod recovery;
pub mod retention;
pub mod retention_api;
pub mod session_api;
pub mod sessions;
pub mod settings;
pub mod store;
pub mod subject_request_api;
pub mod subject_requests;
pub mod throttle;
pub mod types;

pub use graphql::{IdentitySchema, build_schema};
pub use sessions::{Authenticator, IdentitySettings};

/// Name of this subgraph in the supergraph.
pub const SUBGRAPH_NAME: &str = "identity";
