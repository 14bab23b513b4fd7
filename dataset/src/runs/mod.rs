//! The runs table: one row per labelled **tenant-run** of a campaign (`DIR/runs.parquet`).
//!
//! A campaign run puts N tenants on the machine at once; every tenant gets its own row, with its
//! application's measured performance (`perf_actual`), the same application's performance when
//! it replays the same load alone (`perf_ideal`, the mean of ≥ 3 isolated repeats), and the
//! label P = ideal / actual (actual / ideal when higher is better) of the paper (§1, §3), clipped
//! into (0, 1] (`p_raw` keeps the unclipped ratio). Isolated baselines are rows too
//! ([`RunKind::Baseline`]), labelled against the mean of their own repeats; [`RunRecord::label`]
//! is the one place a row gets its label.
//!
//! Writing is append-safe: [`append_runs`] reads the table, adds the new rows (replacing rows
//! with the same `(run_id, tenant)`), writes a temporary file and renames it over the table, so a
//! crash leaves either the old or the new table, never a torn one.

use std::path::PathBuf;

use polars::prelude::PolarsError;

mod kinds;
mod label;
mod stays;
mod table;
pub mod variety;

pub use kinds::{Placement, RunKind, RunStatus, Scenario, UnknownValue};
pub use label::{label_p, spread, Baseline, BaselineKey};
pub use stays::{presence_per_second, schedule_from_json, schedule_to_json, NeighbourStay};
pub use table::{append_runs, from_frame, read_runs, runs_path, to_frame, write_runs};
pub use variety::LabelVariety;

/// File name of the runs table inside a campaign directory.
pub const RUNS_FILE: &str = "runs.parquet";

/// Sub-directory of a campaign directory holding the Hive-partitioned sample files.
pub const SAMPLES_DIR: &str = "samples";

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("cannot read runs table {path}: {source}")]
    Read { path: PathBuf, source: PolarsError },
    #[error("cannot write runs table {path}: {source}")]
    Write { path: PathBuf, source: PolarsError },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("runs table {path}: column `{column}` {why}")]
    Schema {
        path: PathBuf,
        column: String,
        why: String,
    },
    #[error("runs table {path}: row {row}: {source}")]
    Value {
        path: PathBuf,
        row: usize,
        source: UnknownValue,
    },
    #[error("cannot build the runs table: {0}")]
    Build(PolarsError),
}

/// One row of the runs table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunRecord {
    /// Unique id of the campaign run (all tenants of one co-located run share it).
    pub run_id: String,
    /// Tenant name exactly as it appears in the sample files' `tenant` column.
    pub tenant: String,
    /// Application name (from the plan).
    pub app: String,
    /// A baseline (the tenant alone) or co-located.
    pub kind: RunKind,
    /// The trace the tenant's load followed.
    pub scenario: Scenario,
    /// Load level name (from the plan).
    pub level: String,
    /// Trace id (scenario plus its parameters, e.g. `periodic-p20`), the baseline cache key part.
    pub trace: String,
    /// Where the run's tenants were placed (`alone` for baselines).
    pub placement: Placement,
    /// The tenant's cpuset (empty when unpinned).
    pub cpuset: String,
    /// CPU limit of the tenant, in vCPUs (0 = none).
    pub cpu_limit: f64,
    /// Memory limit of the tenant, MiB (0 = none).
    pub mem_limit_mb: f64,
    /// Neighbours, `app@level` of each other tenant, comma-separated (empty for baselines).
    pub neighbours: String,
    /// Number of tenants in the run (1 for baselines).
    pub n_tenants: u32,
    /// Repeat index (baselines: 0..repeats).
    pub repeat: u32,
    /// Name of the performance metric (from the plan, e.g. `requests_per_s`).
    pub perf_metric: String,
    pub higher_is_better: bool,
    /// The application's own reported performance over the run (NaN when failed).
    pub perf_actual: f64,
    /// The mean of the isolated baselines of (app, level, trace) (NaN when unknown).
    pub perf_ideal: f64,
    /// Label P in (0, 1] (NaN when failed).
    pub p: f64,
    /// The unclipped ratio.
    pub p_raw: f64,
    /// Per-second P where the application reports progress every second.
    pub p_per_second: Option<Vec<f32>>,
    /// The application's own per-second performance values.
    pub perf_per_second: Option<Vec<f32>>,
    /// Label noise: coefficient of variation (std / mean) of the isolated repeats.
    pub label_noise: f64,
    /// Mean CPU used outside the campaign's tenants during the run, in % of the machine.
    pub foreign_cpu_pct: f64,
    /// How the tenant-run ended.
    pub status: RunStatus,
    /// For failed runs: why, with the stderr tail.
    pub error: Option<String>,
    /// Catalogue hash of the sample files of the run.
    pub catalogue_hash: String,
    /// Sample directory of the run, relative to the campaign directory.
    pub samples_dir: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Plan seed.
    pub seed: u64,
    /// The machine the run was recorded on: CPU model and kernel release (`model; kernel`);
    /// empty in tables written before it was recorded.
    pub machine: String,
    /// A dynamic run's neighbours as they came and went ([`NeighbourStay`]s as JSON, see
    /// [`schedule_from_json`]); empty when they stayed throughout (and in older tables).
    pub neighbour_schedule: String,
    /// The tenant's VM shape (its quota, memory and CPU weight are in `cpu_limit`,
    /// `mem_limit_mb`), when the plan has shapes; empty otherwise (and in older tables).
    pub shape: String,
    /// Which of the campaign directory's hosts recorded the run: 0 for the first (and in older
    /// tables). A resume on a machine that the sentinel check finds different may start the
    /// next one (`campaign run --new-host`), which measures its own baselines, so that every row
    /// is labelled against baselines of the host it ran on.
    pub host: u32,
}

impl RunRecord {
    /// Key unique per row.
    pub fn key(&self) -> (String, String) {
        (self.run_id.clone(), self.tenant.clone())
    }

    /// The baseline this row is labelled against (and, for a baseline, the one it belongs to).
    pub fn baseline_key(&self) -> BaselineKey {
        BaselineKey::new(&self.app, &self.level, &self.trace, Some(&self.cpuset))
            .with_shape(Some(&self.shape))
            .on_host(self.host)
    }

    /// Whether the row ran and reported its performance.
    pub fn is_ok(&self) -> bool {
        self.status == RunStatus::Ok
    }
}
