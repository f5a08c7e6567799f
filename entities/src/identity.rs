//! Tables owned by the identity subgraph.

pub mod api_key;
pub mod audit_evidence_export;
pub mod auth_throttle;
pub mod compliance_report;
pub mod credential;
pub mod data_subject_request;
pub mod email_change;
pub mod mfa_challenge;
pub mod mfa_factor;
pub mod oidc_login;
pub mod oidc_provider;
pub mod password_reset_token;
pub mod recovery_code;
pub mod refresh_token;
pub mod role;
pub mod service_account;
pub mod session;
pub mod signing_key;
pub mod tenant;
pub mod tenant_offboarding;
pub mod user;
pub mod user_identity;
pub mod user_role;
