//! The host agent: tenant discovery, per-second sampling, feature rows (2 × the catalogue's
//! metrics), Parquet segments, and campaigns (real applications as tenants). See
//! `docs/architecture.md` and `docs/collector.md`.

pub mod agent;
pub mod campaign;
pub mod discover;
pub mod host;
pub mod parse;
pub mod perf;
pub mod priority;
pub mod prom;
pub mod specs;
pub mod taskstats;
pub mod tenant;
pub mod topdown;

pub use agent::{Agent, AgentConfig, AgentSummary, CollectError, TenantRow, Tick};
