//! The host agent: tenant discovery, per-second sampling, 206-feature rows, Parquet segments,
//! and campaigns (real applications as tenants). See `docs/architecture.md`.

pub mod campaign;
