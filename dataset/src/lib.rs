//! The dataset crate: the metric catalogue, the on-disk Parquet format, run labels, run
//! matrices, normalisation inputs and splits. See `docs/architecture.md` for the contracts.

pub mod catalogue;
pub mod columns;
pub mod cpulist;
pub mod matrix;
pub mod placement;
pub mod runs;
pub mod samples;
pub mod sliced;
pub mod zero_buffer;
