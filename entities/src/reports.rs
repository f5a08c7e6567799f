//! Tables owned by the reports subgraph.

pub mod report_definition;
pub mod report_run;
