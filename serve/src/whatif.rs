//! How far a scheduler can trust `POST /v1/placement`: the what-if checked on recorded runs.
//!
//! For every co-located run of a dataset whose neighbours stayed throughout, each tenant's
//! *profile* is its isolated baseline (the first repeat of its baseline key: the tenant alone,
//! as another host would have profiled it). The host's seconds are rebuilt from the profiles
//! alone, second by second from the start, with the server's own code
//! ([`crate::rebuild::rebuilt_window`]), and the model predicts each tenant's P from that —
//! what the placement endpoint would have answered before the run. Beside it: the same model on
//! the tenant's real co-located window (what live mode answers once the run happens), and the
//! "no interference" answer P̂ = 1. Mean absolute errors against the label, × 100.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use dataset::catalogue::Catalogue;
use dataset::matrix::RunMatrix;
use dataset::runs::{BaselineKey, RunKind, RunRecord};

use crate::engine::WindowData;
use crate::live::{SecondOfHost, TenantSecond};
use crate::rebuild::rebuilt_window;

/// One co-located tenant-run, predicted both ways.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WhatIfRow {
    pub run_id: String,
    pub tenant: String,
    pub app: String,
    pub p_true: f32,
    /// The model on the tenant's co-located window.
    pub p_colocated: f32,
    /// The model on the window rebuilt from the run's baselines (profiles) alone.
    pub p_profiles: f32,
    /// Seconds of the rebuilt window (the shortest baseline of the run's tenants).
    pub t_profiles: usize,
}

/// The check over a dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WhatIfReport {
    pub rows: Vec<WhatIfRow>,
    /// Co-located runs left out, by reason.
    pub skipped: BTreeMap<String, usize>,
}

impl WhatIfReport {
    fn mae(&self, f: impl Fn(&WhatIfRow) -> f32) -> f64 {
        if self.rows.is_empty() {
            return f64::NAN;
        }
        let s: f64 = self
            .rows
            .iter()
            .map(|r| (f(r) - r.p_true).abs() as f64)
            .sum();
        100.0 * s / self.rows.len() as f64
    }
    /// MAE × 100 of the model on the co-located windows.
    pub fn mae_colocated(&self) -> f64 {
        self.mae(|r| r.p_colocated)
    }
    /// MAE × 100 of the model on windows rebuilt from profiles.
    pub fn mae_profiles(&self) -> f64 {
        self.mae(|r| r.p_profiles)
    }
    /// MAE × 100 of answering P̂ = 1 (no interference).
    pub fn mae_no_interference(&self) -> f64 {
        self.mae(|_| 1.0)
    }
    /// Runs checked.
    pub fn runs(&self) -> usize {
        let mut ids: Vec<&str> = self.rows.iter().map(|r| r.run_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

/// The windows of one co-located run: for each tenant, its co-located window and the one
/// rebuilt from `profiles` (each tenant's baseline matrix and CPUs, in the run's tenant order).
pub fn run_windows(
    tenants: &[&RunMatrix],
    profiles: &[(&RunMatrix, Vec<usize>)],
    cat: &Catalogue,
) -> Vec<(WindowData, WindowData)> {
    let f = cat.n_features();
    let t = profiles.iter().map(|(b, _)| b.t).min().unwrap_or(0);
    let seconds: Vec<SecondOfHost> = (0..t)
        .map(|s| SecondOfHost {
            ts_ns: s as i64,
            rows: tenants
                .iter()
                .zip(profiles)
                .map(|(m, (b, cpus))| TenantSecond {
                    tenant: m.tenant.clone(),
                    features: b.x[s * f..(s + 1) * f].to_vec(),
                    cpus: cpus.clone(),
                })
                .collect(),
        })
        .collect();
    tenants
        .iter()
        .map(|m| {
            let real = WindowData {
                id: Some(m.tenant.clone()),
                t: m.t,
                data: m.x.clone(),
            };
            (real, rebuilt_window(&m.tenant, &seconds, cat, |_| true))
        })
        .collect()
}

/// Checks the what-if on every co-located run of the dataset at `dir` whose neighbours stayed
/// throughout. `host_cpus`: the CPUs of an unpinned tenant (the machine the data was recorded
/// on). `predict` answers P̂ for a batch of windows.
pub fn check_dataset(
    dir: &Path,
    host_cpus: &[usize],
    mut predict: impl FnMut(&[WindowData]) -> Result<Vec<f32>, String>,
) -> Result<WhatIfReport, String> {
    let cat = Catalogue::builtin();
    let records =
        dataset::runs::read_runs(&dataset::runs::runs_path(dir)).map_err(|e| e.to_string())?;
    let mats = dataset::matrix::load_run_matrices(dir).map_err(|e| e.to_string())?;
    let rec: HashMap<(&str, &str), &RunRecord> = records
        .iter()
        .map(|r| ((r.run_id.as_str(), r.tenant.as_str()), r))
        .collect();
    let record_of = |m: &RunMatrix| rec.get(&(m.run_id.as_str(), m.tenant.as_str())).copied();
    // The first repeat of each baseline key.
    let mut baselines: BTreeMap<BaselineKey, (u32, &RunMatrix)> = BTreeMap::new();
    for m in mats.iter().filter(|m| m.kind == RunKind::Baseline) {
        let Some(r) = record_of(m) else { continue };
        let e = baselines.entry(r.baseline_key()).or_insert((r.repeat, m));
        if r.repeat < e.0 {
            *e = (r.repeat, m);
        }
    }
    let mut runs: BTreeMap<&str, Vec<&RunMatrix>> = BTreeMap::new();
    for m in mats.iter().filter(|m| m.kind != RunKind::Baseline) {
        runs.entry(m.run_id.as_str()).or_default().push(m);
    }
    let mut rows = Vec::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut skip = |why: &str| *skipped.entry(why.to_string()).or_default() += 1;
    for tenants in runs.values() {
        let recs: Option<Vec<&RunRecord>> = tenants.iter().map(|&m| record_of(m)).collect();
        let Some(recs) = recs else {
            skip("a tenant has no row in the runs table");
            continue;
        };
        if recs.iter().any(|r| !r.neighbour_schedule.trim().is_empty()) {
            skip("neighbours came and went (dynamic run)");
            continue;
        }
        if recs.iter().any(|r| r.n_tenants as usize != tenants.len()) {
            skip("not every tenant of the run is labelled");
            continue;
        }
        let profiles: Option<Vec<(&RunMatrix, Vec<usize>)>> = recs
            .iter()
            .map(|r| {
                let b = baselines.get(&r.baseline_key())?.1;
                let cpus = dataset::cpulist::parse_cpulist(&r.cpuset)
                    .ok()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| host_cpus.to_vec());
                Some((b, cpus))
            })
            .collect();
        let Some(profiles) = profiles else {
            skip("a tenant has no labelled baseline");
            continue;
        };
        if profiles.iter().any(|(b, _)| b.t < 3) {
            skip("a baseline is shorter than 3 s");
            continue;
        }
        let pairs = run_windows(tenants, &profiles, cat);
        let windows: Vec<WindowData> = pairs
            .into_iter()
            .flat_map(|(real, rebuilt)| [real, rebuilt])
            .collect();
        let p = predict(&windows)?;
        if p.len() != windows.len() {
            return Err(format!(
                "the model answered {} of {} windows",
                p.len(),
                windows.len()
            ));
        }
        for (i, m) in tenants.iter().enumerate() {
            rows.push(WhatIfRow {
                run_id: m.run_id.clone(),
                tenant: m.tenant.clone(),
                app: m.app.clone(),
                p_true: m.p,
                p_colocated: p[2 * i],
                p_profiles: p[2 * i + 1],
                t_profiles: windows[2 * i + 1].t,
            });
        }
    }
    Ok(WhatIfReport { rows, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::runs::{Placement, Scenario};

    fn matrix(cat: &Catalogue, tenant: &str, usage: f32, t: usize, kind: RunKind) -> RunMatrix {
        let f = cat.n_features();
        let mut x = vec![f32::NAN; t * f];
        let k = cat.index_of("cpu.usage_pct").unwrap();
        for s in 0..t {
            x[s * f + k] = usage;
        }
        RunMatrix {
            run_id: "r".into(),
            tenant: tenant.into(),
            app: tenant.into(),
            scenario: Scenario::Static,
            t,
            f,
            x,
            p: 0.5,
            p_per_second: None,
            label_noise: 0.0,
            kind,
            level: "l".into(),
            trace: "static".into(),
            placement: Placement::default(),
            neighbours: Vec::new(),
            n_tenants: 2,
            cpuset: String::new(),
            cpu_limit: 0.0,
            ts_ns: (0..t as i64).collect(),
        }
    }

    #[test]
    fn profiles_rebuild_the_neighbour_columns_each_tenant_would_have_met() {
        let cat = Catalogue::builtin();
        let nm = cat.n_metrics();
        let usage = cat.index_of("cpu.usage_pct").unwrap();
        let contending = cat.index_of("placement.contending_cpu_pct").unwrap();
        let a = matrix(cat, "a", 90.0, 6, RunKind::Colocated);
        let b = matrix(cat, "b", 40.0, 6, RunKind::Colocated);
        // Their baselines: a alone at 100 % for 5 s, b alone at 60 % for 4 s.
        let a0 = matrix(cat, "a", 100.0, 5, RunKind::Baseline);
        let b0 = matrix(cat, "b", 60.0, 4, RunKind::Baseline);
        let w = run_windows(&[&a, &b], &[(&a0, vec![0]), (&b0, vec![0, 1])], cat);
        assert_eq!(w.len(), 2);
        let (real, rebuilt) = &w[0];
        assert_eq!(real.t, 6);
        assert_eq!(real.data.len(), a.x.len());
        assert!(real
            .data
            .iter()
            .zip(&a.x)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(rebuilt.t, 4, "the shortest baseline");
        let f = cat.n_features();
        assert_eq!(
            rebuilt.data[usage], 100.0,
            "a's own columns from its baseline"
        );
        assert_eq!(
            rebuilt.data[nm + usage],
            60.0,
            "its neighbour is b's baseline"
        );
        assert_eq!(rebuilt.data[contending], 60.0, "b may run on a's CPU");
        let (_, rebuilt_b) = &w[1];
        assert_eq!(rebuilt_b.data[3 * f + nm + usage], 100.0);
        assert_eq!(
            rebuilt_b.data[contending], 50.0,
            "a runs on one of b's two CPUs: half its demand lands there"
        );
    }

    #[test]
    fn the_report_scores_both_predictions_against_the_label() {
        let row = |p_true: f32, p_colocated: f32, p_profiles: f32, run: &str| WhatIfRow {
            run_id: run.into(),
            tenant: "t".into(),
            app: "x".into(),
            p_true,
            p_colocated,
            p_profiles,
            t_profiles: 20,
        };
        let r = WhatIfReport {
            rows: vec![
                row(0.5, 0.6, 0.8, "a"),
                row(1.0, 0.9, 1.0, "b"),
                row(0.8, 0.8, 0.6, "b"),
            ],
            skipped: BTreeMap::new(),
        };
        assert!((r.mae_colocated() - 100.0 * 0.2 / 3.0).abs() < 1e-4);
        assert!((r.mae_profiles() - 100.0 * 0.5 / 3.0).abs() < 1e-4);
        assert!((r.mae_no_interference() - 100.0 * 0.7 / 3.0).abs() < 1e-4);
        assert_eq!(r.runs(), 2);
        let empty = WhatIfReport {
            rows: vec![],
            skipped: BTreeMap::new(),
        };
        assert!(empty.mae_profiles().is_nan());
    }
}
