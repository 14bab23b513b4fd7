//! The training input: labelled tenant-runs, as `dataset::matrix::RunMatrix` describes them
//! (docs/architecture.md), plus the checks every command runs before it trains or evaluates.

use std::collections::BTreeMap;

use dataset::runs::Placement;

use crate::error::{Result, TrainError};

mod repeat;
pub use repeat::repeat_dir;

/// One labelled tenant-run: a (T × F) matrix of per-second features (row-major, NaN = null) and
/// its degradation label P ∈ (0, 1]. Same fields as `dataset::matrix::RunMatrix`.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub tenant: String,
    pub app: String,
    pub scenario: String,
    pub t: usize,
    pub f: usize,
    pub x: Vec<f32>,
    pub p: f32,
    pub p_per_second: Option<Vec<f32>>,
    pub label_noise: f32,
    /// What the campaign knows about the run besides its metrics.
    pub context: RunContext,
}

/// What the campaign knows about a tenant-run besides its metrics: the placement facts the
/// trivial predictors use (a scheduler knows them too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunContext {
    /// Tenants in the run (1 = the tenant alone, an isolated baseline).
    pub n_tenants: u32,
    pub placement: Placement,
    /// CPU quota in vCPUs; `None` = unlimited.
    pub cpu_quota: Option<f32>,
    /// Size of the tenant's cpuset; `None` = unpinned (or unknown).
    pub cpuset_size: Option<u32>,
}

impl RunContext {
    /// From the runs table's columns (`cpu_limit` 0 = none, `cpuset` empty = unpinned; a cpu list
    /// that does not parse is unknown).
    pub fn from_table(n_tenants: u32, placement: Placement, cpu_limit: f64, cpuset: &str) -> Self {
        RunContext {
            n_tenants,
            placement,
            cpu_quota: (cpu_limit.is_finite() && cpu_limit > 0.0).then_some(cpu_limit as f32),
            cpuset_size: dataset::cpulist::parse_cpulist(cpuset)
                .ok()
                .map(|c| c.len() as u32),
        }
    }

    /// The tenant ran alone (a baseline run).
    pub fn is_isolated(&self) -> bool {
        self.n_tenants <= 1
    }

    /// CPUs the tenant may use: the smaller of its quota and its cpuset size; `None` when it
    /// has neither.
    pub fn cpu_capacity(&self) -> Option<f32> {
        model::derived::cpu_capacity(self.cpu_quota, self.cpuset_size.map(|c| c as f32))
    }
}

impl Run {
    /// The first `k` seconds (all of it when `k >= t` or `k == 0`), row-major.
    pub fn prefix(&self, k: usize) -> &[f32] {
        let t = self.prefix_len(k);
        &self.x[..t * self.f]
    }

    pub fn prefix_len(&self, k: usize) -> usize {
        if k == 0 {
            self.t
        } else {
            k.min(self.t)
        }
    }

    /// A unique key for a tenant-run (one run has one row per tenant).
    pub fn key(&self) -> String {
        format!("{}/{}", self.run_id, self.tenant)
    }

    /// Whether this run's scenario is a dynamic one (anything but `static`).
    pub fn is_dynamic(&self) -> bool {
        is_dynamic_scenario(&self.scenario)
    }
}

/// Every `w`-second window of each run (start every `stride` seconds; 0 = `w / 2`), as runs of
/// their own: label = the mean per-second P over the window where the run has a per-second
/// series covering it, the run's P otherwise. Runs shorter than `w` are left out. Window ids are
/// `<run_id>@<start>`; application and scenario are kept (splits stay leave-applications-out).
pub fn sliding_windows(runs: &[&Run], w: usize, stride: usize) -> Vec<Run> {
    let stride = if stride == 0 { (w / 2).max(1) } else { stride };
    let mut out = Vec::new();
    if w == 0 {
        return out;
    }
    for r in runs {
        if r.t < w {
            continue;
        }
        let mut start = 0;
        while start + w <= r.t {
            let p = r
                .p_per_second
                .as_ref()
                .filter(|ps| ps.len() >= start + w)
                .map(|ps| {
                    let win: Vec<f32> = ps[start..start + w]
                        .iter()
                        .copied()
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .collect();
                    if win.is_empty() {
                        r.p
                    } else {
                        (win.iter().sum::<f32>() / win.len() as f32).clamp(1e-3, 1.0)
                    }
                })
                .unwrap_or(r.p);
            out.push(Run {
                run_id: format!("{}@{start}", r.run_id),
                tenant: r.tenant.clone(),
                app: r.app.clone(),
                scenario: r.scenario.clone(),
                t: w,
                f: r.f,
                x: r.x[start * r.f..(start + w) * r.f].to_vec(),
                p,
                p_per_second: r
                    .p_per_second
                    .as_ref()
                    .and_then(|ps| (ps.len() >= start + w).then(|| ps[start..start + w].to_vec())),
                label_noise: r.label_noise,
                context: r.context.clone(),
            });
            start += stride;
        }
    }
    out
}

/// The units of a per-window evaluation (`cloudformer eval --per-window W`): every
/// non-overlapping `w`-second window of each run ([`sliding_windows`] with stride `w`), each a
/// tenant-run of its own for training and test. Errors when no run is `w` seconds long.
pub fn window_units(runs: &[Run], w: usize) -> Result<Vec<Run>> {
    let all: Vec<&Run> = runs.iter().collect();
    let units = sliding_windows(&all, w, w);
    if units.is_empty() {
        return Err(no_window_of(runs, w));
    }
    Ok(units)
}

fn no_window_of(runs: &[Run], w: usize) -> TrainError {
    let longest = runs.iter().map(|r| r.t).max().unwrap_or(0);
    TrainError::Invalid(format!(
        "--per-window {w}: no run is that long (the longest has {longest} s); \
         choose a window of at most {longest} s"
    ))
}

/// The units of a per-window evaluation whose training windows overlap
/// (`cloudformer eval --per-window W --train-stride S`): first the non-overlapping windows of
/// [`window_units`] (the only ones tested, and the only ones when `stride` is 0 or `w`), then
/// every other window starting each `stride` seconds, which only training and validation see.
/// Returns the units and how many of them come first (the test units). `stride` must divide `w`
/// so that the test windows are among the strided ones.
pub fn window_units_strided(runs: &[Run], w: usize, stride: usize) -> Result<(Vec<Run>, usize)> {
    if stride == 0 || stride == w {
        let units = window_units(runs, w)?;
        let n_test = units.len();
        return Ok((units, n_test));
    }
    if stride > w || !w.is_multiple_of(stride) {
        return Err(TrainError::Invalid(format!(
            "--train-stride {stride}: it must divide the window (--per-window {w}), so that the \
             non-overlapping test windows are among the training windows' starts; e.g. {}",
            (1..=w / 2)
                .rev()
                .find(|s| w.is_multiple_of(*s) && *s <= stride.max(1))
                .unwrap_or(1)
        )));
    }
    // One pass per run: a window starting on a multiple of `w` is a test unit, in the order
    // `window_units` gives them; the others go after.
    let (mut units, mut extra) = (Vec::new(), Vec::new());
    for r in runs {
        for (j, u) in sliding_windows(&[r], w, stride).into_iter().enumerate() {
            if (j * stride).is_multiple_of(w) {
                units.push(u);
            } else {
                extra.push(u);
            }
        }
    }
    if units.is_empty() {
        return Err(no_window_of(runs, w));
    }
    let n_test = units.len();
    units.append(&mut extra);
    Ok((units, n_test))
}

/// A scenario is static when it is named `static` (or empty / `constant`); `increasing`,
/// `decreasing`, `periodic`, `random`, … are dynamic.
pub fn is_dynamic_scenario(s: &str) -> bool {
    let s = s.trim().to_ascii_lowercase();
    !(s.is_empty() || s == "static" || s == "constant" || s.starts_with("static"))
}

/// Checks a set of runs before training: non-empty, consistent feature count, shapes, finite
/// labels in (0, 1], and at least `min_apps` applications. Errors name the offending run.
pub fn validate_runs(runs: &[Run], min_apps: usize) -> Result<()> {
    let first = runs
        .first()
        .ok_or_else(|| TrainError::EmptyDataset(String::new()))?;
    for r in runs {
        if r.f != first.f {
            return Err(TrainError::FeatureMismatch {
                first_id: first.key(),
                first: first.f,
                run_id: r.key(),
                f: r.f,
            });
        }
        if r.t == 0 {
            return Err(TrainError::BadRun {
                run_id: r.key(),
                why: "it has 0 seconds".into(),
            });
        }
        if r.x.len() != r.t * r.f {
            return Err(TrainError::BadRun {
                run_id: r.key(),
                why: format!("x has {} values, expected T×F = {}×{}", r.x.len(), r.t, r.f),
            });
        }
        if !(r.p.is_finite() && r.p > 0.0 && r.p <= 1.0 + 1e-6) {
            return Err(TrainError::BadRun {
                run_id: r.key(),
                why: format!("label P = {} is not in (0, 1]", r.p),
            });
        }
        if r.app.is_empty() {
            return Err(TrainError::BadRun {
                run_id: r.key(),
                why: "empty application name".into(),
            });
        }
    }
    let apps = apps_of(runs);
    if apps.len() < min_apps {
        return Err(TrainError::TooFewApps {
            n: apps.len(),
            apps: apps.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(())
}

/// Number of runs per application, sorted by name.
pub fn apps_of(runs: &[Run]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in runs {
        *m.entry(r.app.clone()).or_insert(0) += 1;
    }
    m
}

impl From<dataset::matrix::RunMatrix> for Run {
    fn from(m: dataset::matrix::RunMatrix) -> Run {
        Run {
            run_id: m.run_id,
            tenant: m.tenant,
            app: m.app,
            scenario: m.scenario.to_string(),
            t: m.t,
            f: m.f,
            x: m.x,
            p: m.p,
            p_per_second: m.p_per_second,
            label_noise: m.label_noise,
            context: RunContext::from_table(m.n_tenants, m.placement, m.cpu_limit, &m.cpuset),
        }
    }
}

/// The run-id prefix [`load_many`] gives the runs of the directory named `name` (`idle:`).
fn dir_prefix(name: &str) -> String {
    format!("{name}:")
}

/// Loads the labelled tenant-runs of one or more dataset directories (e.g. `dataset/data` and
/// `dataset/idle`, collected on different hosts with their own baselines) as one training set.
/// With more than one directory every run id is prefixed with its directory's name
/// (`idle:d00003`), so runs of different campaigns never share a key; applications keep their
/// names, so the same application in two directories is one application to the splits. No
/// directory, or the same one twice, is an error naming it.
pub fn load_many(dirs: &[std::path::PathBuf]) -> Result<Vec<Run>> {
    if dirs.is_empty() {
        return Err(TrainError::Dataset("no dataset directory given".into()));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        if !names.insert(name.clone()) {
            return Err(TrainError::Dataset(format!(
                "{} is given twice (or two directories share the name {name:?}, which keeps \
                 their run ids apart)",
                dir.display()
            )));
        }
        let mut runs = load(dir)?;
        if dirs.len() > 1 {
            for r in &mut runs {
                r.run_id = format!("{}{}", dir_prefix(&name), r.run_id);
            }
        }
        all.extend(runs);
    }
    validate_runs(&all, 1)?;
    Ok(all)
}

/// Loads a dataset directory's labelled tenant-runs (campaign output: `runs.parquet` +
/// `samples/`) through `dataset::matrix`, and checks them ([`validate_runs`] with one app).
/// An empty dataset is an error naming the directory.
pub fn load(dir: &std::path::Path) -> Result<Vec<Run>> {
    if !dir.exists() {
        return Err(TrainError::Dataset(format!(
            "{} does not exist",
            dir.display()
        )));
    }
    let mats =
        dataset::matrix::load_run_matrices(dir).map_err(|e| TrainError::Dataset(e.to_string()))?;
    let runs: Vec<Run> = mats.into_iter().map(Run::from).collect();
    if runs.is_empty() {
        return Err(TrainError::EmptyDataset(format!(" in {}", dir.display())));
    }
    validate_runs(&runs, 1)?;
    let n = dataset::catalogue::Catalogue::builtin().n_features();
    if runs[0].f != n {
        return Err(TrainError::Catalogue(format!(
            "the runs have {} features but the built-in catalogue ({}) has {n}",
            runs[0].f,
            dataset::catalogue::Catalogue::builtin().hash()
        )));
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: usize, p_ps: Option<Vec<f32>>) -> Run {
        Run {
            run_id: "c1".into(),
            tenant: "t0".into(),
            app: "a".into(),
            scenario: "static".into(),
            t,
            f: 2,
            x: (0..t * 2).map(|i| i as f32).collect(),
            p: 0.5,
            p_per_second: p_ps,
            label_noise: 0.01,
            context: RunContext::default(),
        }
    }

    #[test]
    fn run_context_from_the_runs_table() {
        let c = RunContext::from_table(2, Placement::SameCore, 0.0, "0");
        assert_eq!((c.cpu_quota, c.cpuset_size), (None, Some(1)));
        assert_eq!(c.cpu_capacity(), Some(1.0));
        assert!(!c.is_isolated());
        let c = RunContext::from_table(1, Placement::Alone, 0.5, "0-3");
        assert_eq!(c.cpu_capacity(), Some(0.5));
        assert!(c.is_isolated());
        let c = RunContext::from_table(1, Placement::Alone, 0.0, "");
        assert_eq!(c.cpu_capacity(), None);
        assert_eq!(
            RunContext::from_table(3, Placement::Unpinned, 2.0, "").cpu_capacity(),
            Some(2.0)
        );
    }

    #[test]
    fn sliding_windows_slice_rows_and_average_per_second_labels() {
        let with = run(6, Some(vec![1.0, 0.8, 0.6, 0.4, 0.2, 0.2]));
        let without = run(5, None);
        let short = run(2, None);
        let w = sliding_windows(&[&with, &without, &short], 4, 2);
        // 6 s → starts 0, 2; 5 s → start 0; 2 s → none.
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].run_id, "c1@0");
        assert_eq!(w[1].run_id, "c1@2");
        assert_eq!(w[1].t, 4);
        assert_eq!(w[1].x, (4..12).map(|i| i as f32).collect::<Vec<_>>());
        assert!((w[0].p - 0.7).abs() < 1e-6, "{}", w[0].p);
        assert!((w[1].p - 0.35).abs() < 1e-6, "{}", w[1].p);
        assert_eq!(w[2].p, 0.5, "no per-second series: the run's P");
        assert_eq!(
            w[1].p_per_second.as_deref(),
            Some(&[0.6, 0.4, 0.2, 0.2][..])
        );
        // default stride = w / 2; w = 0 gives nothing
        assert_eq!(sliding_windows(&[&with], 4, 0).len(), 2);
        assert!(sliding_windows(&[&with], 0, 0).is_empty());
    }

    #[test]
    fn strided_window_units_put_the_non_overlapping_ones_first() {
        let long = run(12, None);
        let (units, n_test) = window_units_strided(std::slice::from_ref(&long), 4, 2).unwrap();
        let ids: Vec<&str> = units.iter().map(|u| u.run_id.as_str()).collect();
        assert_eq!(n_test, 3);
        assert_eq!(ids, ["c1@0", "c1@4", "c1@8", "c1@2", "c1@6"]);
        // Over several runs the test units are window_units' own, in its order.
        let runs = [run(9, Some(vec![0.5; 9])), run(3, None), long.clone()];
        let (units, n_test) = window_units_strided(&runs, 4, 2).unwrap();
        let plain = window_units(&runs, 4).unwrap();
        assert_eq!(n_test, plain.len());
        for (a, b) in units.iter().zip(&plain) {
            assert_eq!((&a.run_id, a.p, &a.x), (&b.run_id, b.p, &b.x));
        }
        assert_eq!(
            units.len(),
            n_test + 1 + 2,
            "c1@2 of the 9-s run, then the 12-s run's two"
        );
        let e = window_units_strided(&runs[1..2], 4, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no run is that long"), "{e}");
        // stride 0 or w: the non-overlapping windows only
        for stride in [0, 4] {
            let (units, n_test) =
                window_units_strided(std::slice::from_ref(&long), 4, stride).unwrap();
            assert_eq!((units.len(), n_test), (3, 3), "stride {stride}");
        }
        let e = window_units_strided(std::slice::from_ref(&long), 4, 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--train-stride 3") && e.contains("divide"),
            "{e}"
        );
    }
}
