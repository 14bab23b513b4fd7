//! Campaigns: real applications as tenants, alone and co-located, with labels.
//!
//! - [`plan`]: the TOML plan (applications are data), validated before any run;
//! - [`cgroup`]: tenant cgroups, always removed (drop, SIGINT/SIGTERM, stale at start);
//! - [`runner`]: baselines, co-located runs, labels, foreign load, resumable journal.

pub mod cgroup;
pub mod plan;
pub mod runner;

pub use plan::{App, Plan, PlanError};
pub use runner::{run_campaign, status, CampaignError, Options, Status, Summary};
