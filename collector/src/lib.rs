//! The host agent: tenant discovery, per-second sampling, feature rows (2 × the catalogue's
//! metrics), Parquet segments and the `/metrics` endpoint. Campaigns live in the `campaign` crate. See
//! `docs/architecture.md` and `docs/collector.md`.

pub mod agent;
pub mod discover;
pub mod host;
pub mod neighbours;
pub mod parse;
pub mod perf;
pub mod priority;
pub mod prom;
pub mod settings;
pub mod specs;
pub mod taskstats;
pub mod tenant;
#[doc(hidden)]
pub mod testing;
pub mod tick;
pub mod topdown;

pub use agent::{Agent, AgentConfig, AgentSummary, CollectError};
pub use tick::{TenantRow, Tick};
