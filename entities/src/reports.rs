//! Tables owned by the reports subgraph.

pub mod report_definition;
pub mod report_delivery;
pub mod report_recipient;
pub mod report_run;
