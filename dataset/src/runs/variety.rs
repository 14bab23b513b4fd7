//! How much a dataset's labels vary, over its labelled co-located tenant-runs: how many seconds
//! carry a label, how many runs sit in the lightly and in the heavily degraded range, how many
//! change within the run (per-second P), and how many saw their neighbours change. A model
//! learns interference only from labels that vary; dataset v2 is collected until these are
//! large enough (`dataset/data/README.md`).

use super::{presence_per_second, schedule_from_json, RunKind, RunRecord};

/// Lightly degraded: P in (`LIGHT.0`, `LIGHT.1`) — open at both ends, so a run at P = 1 (no
/// measurable interference) is not counted.
pub const LIGHT: (f64, f64) = (0.7, 1.0);
/// Heavily degraded: P in (0, `HEAVY_MAX`].
pub const HEAVY_MAX: f64 = 0.5;
/// A run varies within itself when the standard deviation of its per-second P is at least this.
pub const VARYING_STD: f64 = 0.05;
/// A run's neighbours changed when at least this many arrivals, departures or level changes
/// happened during it.
pub const CHANGES: usize = 2;

/// Counts over the labelled co-located tenant-runs (status ok, P finite).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelVariety {
    /// Distinct applications among them.
    pub applications: usize,
    pub tenant_runs: usize,
    /// Seconds with a per-second label, summed over them.
    pub labelled_seconds: usize,
    /// P in [`LIGHT`].
    pub light: usize,
    /// P in (0, [`HEAVY_MAX`]].
    pub heavy: usize,
    /// Per-second P with a standard deviation ≥ [`VARYING_STD`].
    pub varying: usize,
    /// ≥ [`CHANGES`] neighbour changes during the run.
    pub changing: usize,
}

impl LabelVariety {
    /// The counts of `rows` (every kind; only labelled co-located rows count).
    pub fn of(rows: &[RunRecord]) -> LabelVariety {
        let labelled: Vec<&RunRecord> = rows
            .iter()
            .filter(|r| r.kind == RunKind::Colocated && r.is_ok() && r.p.is_finite())
            .collect();
        let mut apps: Vec<&str> = labelled.iter().map(|r| r.app.as_str()).collect();
        apps.sort_unstable();
        apps.dedup();
        let per_second = |r: &RunRecord| r.p_per_second.as_deref().unwrap_or(&[]).to_vec();
        LabelVariety {
            applications: apps.len(),
            tenant_runs: labelled.len(),
            labelled_seconds: labelled.iter().map(|r| per_second(r).len()).sum(),
            light: labelled
                .iter()
                .filter(|r| r.p > LIGHT.0 && r.p < LIGHT.1)
                .count(),
            heavy: labelled
                .iter()
                .filter(|r| r.p > 0.0 && r.p <= HEAVY_MAX)
                .count(),
            varying: labelled
                .iter()
                .filter(|r| std_dev(&per_second(r)).is_some_and(|s| s >= VARYING_STD))
                .count(),
            changing: labelled
                .iter()
                .filter(|r| neighbour_changes(r) >= CHANGES)
                .count(),
        }
    }

    /// `n` as a share of the tenant-runs (0 when there are none).
    pub fn share(&self, n: usize) -> f64 {
        if self.tenant_runs == 0 {
            0.0
        } else {
            n as f64 / self.tenant_runs as f64
        }
    }
}

/// Population standard deviation of the finite values of `v` (`None` below two of them).
pub fn std_dev(v: &[f32]) -> Option<f64> {
    let x: Vec<f64> = v
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| x as f64)
        .collect();
    if x.len() < 2 {
        return None;
    }
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    Some((x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt())
}

/// How many times the set of neighbours present (as `app@level`) changed from one second to
/// the next during a dynamic run (its `neighbour_schedule`); 0 for a run whose neighbours stayed
/// throughout, or whose schedule does not parse.
pub fn neighbour_changes(r: &RunRecord) -> usize {
    let Ok(stays) = schedule_from_json(&r.neighbour_schedule) else {
        return 0;
    };
    let end = stays.iter().map(|s| s.to_s).max().unwrap_or(0);
    let mut presence = presence_per_second(&stays, end + 1);
    for p in presence.iter_mut() {
        p.sort_unstable();
    }
    presence.windows(2).filter(|w| w[0] != w[1]).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::stays::tests::stay;
    use crate::runs::{schedule_to_json, RunStatus};

    fn row(app: &str, p: f64, per_second: &[f32]) -> RunRecord {
        RunRecord {
            kind: RunKind::Colocated,
            app: app.into(),
            p,
            p_per_second: Some(per_second.to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn neighbour_changes_count_arrivals_departures_and_level_changes() {
        let mut r = row("a", 0.8, &[]);
        assert_eq!(neighbour_changes(&r), 0, "a static run");
        // Slot 1 arrives at 5, changes level at 9 and leaves at 12; slot 2 is there from the
        // start and leaves at 7.
        r.neighbour_schedule = schedule_to_json(&[
            stay(1, 5, 12, &[("low", 5, 9), ("high", 9, 12)]),
            stay(2, 0, 7, &[("low", 0, 7)]),
        ]);
        assert_eq!(neighbour_changes(&r), 4);
        r.neighbour_schedule = "{not json".into();
        assert_eq!(neighbour_changes(&r), 0);
    }

    #[test]
    fn variety_counts_labelled_colocated_runs_only() {
        let mut changing = row("b", 0.4, &[0.2, 0.6, 0.4]);
        changing.neighbour_schedule = schedule_to_json(&[
            stay(1, 2, 5, &[("low", 2, 5)]),
            stay(2, 0, 3, &[("x", 0, 3)]),
        ]);
        let mut failed = row("c", 0.3, &[0.3]);
        failed.status = RunStatus::Failed;
        let mut baseline = row("d", 0.8, &[0.8, 0.8]);
        baseline.kind = RunKind::Baseline;
        let rows = vec![
            row("a", 0.8, &[0.8, 0.8, 0.81]),
            row("a", 1.0, &[1.0, 1.0]),
            changing,
            row("b", 0.5, &[0.5]),
            failed,
            baseline,
            row("e", f64::NAN, &[]),
        ];
        let v = LabelVariety::of(&rows);
        assert_eq!(
            v,
            LabelVariety {
                applications: 2,
                tenant_runs: 4,
                labelled_seconds: 9,
                light: 1,
                heavy: 2,
                varying: 1,
                changing: 1,
            }
        );
        assert_eq!(v.share(v.heavy), 0.5);
        assert_eq!(LabelVariety::default().share(0), 0.0);
        assert!(std_dev(&[1.0]).is_none());
        assert!((std_dev(&[0.2, 0.6, 0.4]).unwrap() - 0.1633).abs() < 1e-3);
    }
}
