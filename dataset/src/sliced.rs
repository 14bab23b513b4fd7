//! Per-process columns of tenants whose load ran in 1-s slices are read as missing.
//!
//! A plan application with `slices = true` (stress-ng, fio, wrk, redis-benchmark: tools that
//! report only at their end) runs as a chain of 1-s processes. The agent's `proc` and
//! `proc.sched` families sum `/proc/PID/*` over the processes alive at both ends of a second,
//! so for such a tenant they miss almost all of its work (`proc.utime_pct` ≈ 0 and
//! `proc.sched_run_pct` ≈ 0.01 for a stress-ng at 60 % of a CPU) — a tenant no VM resembles: a
//! VM is one long-lived process whose `proc.utime_pct` follows its `cpu.usage_pct`. A model
//! that learns from those rows reads a live VM's real per-process values as something it never
//! saw (on 2026-12-06 the bundled model moved by 0.07 when an idle neighbour joined a live
//! stress-ng; with the proc columns as the sliced training rows have them, by 0.01). So, when
//! loading, those columns are set to null: the tenant's own when its application is sliced, and
//! the neighbour means (`nbr.proc.*`) when any of its neighbours' is.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::catalogue::Catalogue;
use crate::matrix::{MatrixError, RunMatrix};

/// The metric families whose values are per-process sums.
pub const PROCESS_FAMILIES: [&str; 2] = ["proc", "proc.sched"];

/// The plan file a campaign copies into its directory.
pub const PLAN_FILE: &str = "plan.toml";

#[derive(Deserialize)]
struct Plan {
    #[serde(default)]
    app: Vec<PlanApp>,
}

#[derive(Deserialize)]
struct PlanApp {
    name: String,
    #[serde(default)]
    slices: bool,
}

/// The applications of the campaign directory `dir` that ran in 1-s slices, from its
/// `plan.toml`; none when it has no plan (a directory written before plans were copied).
pub fn sliced_apps(dir: &Path) -> Result<BTreeSet<String>, MatrixError> {
    let path = dir.join(PLAN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(source) => return Err(MatrixError::Io { path, source }),
    };
    let plan: Plan = toml::from_str(&text).map_err(|e| MatrixError::BadSampleFile {
        path: path.clone(),
        why: format!("not a readable campaign plan ({e})"),
    })?;
    Ok(plan
        .app
        .into_iter()
        .filter(|a| a.slices)
        .map(|a| a.name)
        .collect())
}

/// The feature indices of the process families: `(own, nbr)`.
pub fn process_features(cat: &Catalogue) -> (Vec<usize>, Vec<usize>) {
    let n = cat.n_metrics();
    let own: Vec<usize> = (0..n)
        .filter(|&i| {
            cat.feature_metric(i)
                .is_some_and(|m| PROCESS_FAMILIES.contains(&m.family.as_str()))
        })
        .collect();
    let nbr = own.iter().map(|i| i + n).collect();
    (own, nbr)
}

/// Sets `m`'s process columns to null where they describe sliced loads: its own when its
/// application is in `sliced`, the neighbour means when any neighbour's (`app@level`) is.
/// Returns whether anything was blanked.
pub fn blank_sliced_process_columns(
    m: &mut RunMatrix,
    sliced: &BTreeSet<String>,
    cols: &(Vec<usize>, Vec<usize>),
) -> bool {
    let own = sliced.contains(&m.app);
    let nbr = m
        .neighbours
        .iter()
        .any(|n| sliced.contains(n.split('@').next().unwrap_or(n)));
    for (blank, idx) in [(own, &cols.0), (nbr, &cols.1)] {
        if !blank {
            continue;
        }
        for row in m.x.chunks_mut(m.f) {
            for &j in idx {
                row[j] = f32::NAN;
            }
        }
    }
    own || nbr
}
