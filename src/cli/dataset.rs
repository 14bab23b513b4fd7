//! `cloudformer dataset summary DIR`: per-application counts, P distribution, label noise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use dataset::columns::{self, ColumnStats};
use dataset::runs::{self, LabelVariety, RunKind, RunRecord};

#[derive(clap::Subcommand)]
pub enum DatasetCmd {
    /// Per-application counts, P distribution and label noise of a campaign directory
    #[command(after_help = "Example:\n  cloudformer dataset summary dataset/data")]
    Summary {
        /// Campaign directory (holding runs.parquet)
        dir: PathBuf,
    },
}

fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

pub fn run(cmd: DatasetCmd, _ctx: &super::Ctx) -> anyhow::Result<()> {
    match cmd {
        DatasetCmd::Summary { dir } => {
            let path = runs::runs_path(&dir);
            let rows = runs::read_runs(&path)
                .with_context(|| format!("reading the runs table of {}", dir.display()))?;
            print_out(&summary(&rows))?;
            print_out(&variety_summary(&rows))?;
            let mats = dataset::matrix::load_run_matrices(&dir)
                .with_context(|| format!("reading the samples of {}", dir.display()))?;
            let refs: Vec<&dataset::matrix::RunMatrix> = mats.iter().collect();
            let cat = dataset::catalogue::Catalogue::builtin();
            print_out(&columns_summary(&columns::column_stats(cat, &refs)))?;
            let steady = columns::column_stats_trimmed(cat, &refs, STEADY_SKIP.0, STEADY_SKIP.1);
            print_out(&steady_summary(&steady))?;
            print_out(&trivial_summary(&dir))
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) ends the output quietly.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// The summary text.
pub fn summary(rows: &[RunRecord]) -> String {
    let mut by_app: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for r in rows {
        by_app.entry(r.app.as_str()).or_default().push(r);
    }
    let mut s = String::new();
    s.push_str(&format!(
        "{:<16} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9}\n",
        "app",
        "rows",
        "coloc",
        "base",
        "failed",
        "P min",
        "P p50",
        "P mean",
        "P max",
        "noise",
        "foreign%"
    ));
    let mut all_p = Vec::new();
    for (app, rs) in &by_app {
        let mut p: Vec<f64> = rs
            .iter()
            .filter(|r| r.kind == RunKind::Colocated && r.is_ok() && r.p.is_finite())
            .map(|r| r.p)
            .collect();
        p.sort_by(|a, b| a.total_cmp(b));
        all_p.extend_from_slice(&p);
        let noise: Vec<f64> = rs
            .iter()
            .filter(|r| r.label_noise.is_finite())
            .map(|r| r.label_noise)
            .collect();
        let foreign: Vec<f64> = rs
            .iter()
            .filter(|r| r.foreign_cpu_pct.is_finite())
            .map(|r| r.foreign_cpu_pct)
            .collect();
        let mean = |v: &[f64]| {
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        s.push_str(&format!(
            "{:<16} {:>6} {:>6} {:>6} {:>6} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.1}% {:>9.1}\n",
            app,
            rs.len(),
            rs.iter().filter(|r| r.kind == RunKind::Colocated).count(),
            rs.iter().filter(|r| r.kind == RunKind::Baseline).count(),
            rs.iter().filter(|r| !r.is_ok()).count(),
            p.first().copied().unwrap_or(f64::NAN),
            quantile(&p, 0.5),
            mean(&p),
            p.last().copied().unwrap_or(f64::NAN),
            mean(&noise) * 100.0,
            mean(&foreign),
        ));
    }
    all_p.sort_by(|a, b| a.total_cmp(b));
    s.push_str(&format!(
        "labelled co-located tenant-runs: {}\nP histogram:\n",
        all_p.len()
    ));
    let edges = [0.0, 0.3, 0.5, 0.7, 0.9, 0.97, 1.0001];
    for w in edges.windows(2) {
        let n = all_p.iter().filter(|p| **p >= w[0] && **p < w[1]).count();
        s.push_str(&format!(
            "  [{:.2}, {:.2}) {:>6} {}\n",
            w[0],
            w[1].min(1.0),
            n,
            "#".repeat((n * 50).div_ceil(all_p.len().max(1)))
        ));
    }
    s
}

/// The feature-column section: per family, how many columns are null in every row, the mean
/// null share and the constant columns; then the names of the columns that hold nothing.
pub fn columns_summary(stats: &[ColumnStats]) -> String {
    let rows = stats.first().map(|s| s.rows).unwrap_or(0);
    let nbr_rows = (stats.iter().find(|s| s.name.starts_with("nbr.")))
        .map(|s| s.rows)
        .unwrap_or(0);
    let all_null: Vec<&str> = (stats.iter().filter(|s| s.all_null()))
        .map(|s| s.name.as_str())
        .collect();
    let constant = stats.iter().filter(|s| s.constant).count();
    let mut s = format!(
        "feature columns over {rows} labelled tenant-seconds ({nbr_rows} with neighbours, for \
         nbr.*; each run's first second left out): {} columns, {} null in every row, {constant} \
         constant\n",
        stats.len(),
        all_null.len(),
    );
    s.push_str(&format!(
        "  {:<18} {:>7} {:>9} {:>9} {:>9}\n",
        "family", "columns", "all-null", "constant", "null %"
    ));
    for (fam, (n, nulls, share)) in columns::family_summary(stats) {
        let consts = (stats.iter())
            .filter(|c| c.family == fam && c.constant)
            .count();
        s.push_str(&format!(
            "  {fam:<18} {n:>7} {nulls:>9} {consts:>9} {:>8.1}%\n",
            share * 100.0
        ));
    }
    if !all_null.is_empty() {
        s.push_str(&format!("null in every row: {}\n", all_null.join(", ")));
    }
    let live = stats.iter().filter(|c| !c.all_null()).count();
    let sparse: Vec<String> = (stats.iter())
        .filter(|c| !c.all_null() && c.null_share() > SPARSE_NULL_SHARE)
        .map(|c| format!("{} ({:.1} % null)", c.name, c.null_share() * 100.0))
        .collect();
    s.push_str(&format!(
        "columns with a value: {live}, of them non-null in at least {:.0} % of their rows: {}\n",
        (1.0 - SPARSE_NULL_SHARE) * 100.0,
        live - sparse.len()
    ));
    if !sparse.is_empty() {
        s.push_str(&format!("null more often: {}\n", sparse.join(", ")));
    }
    s
}

/// Seconds left out at the start and the end of every run for [`steady_summary`]: the warm-up
/// and first second (no load process yet, counters without a delta) and a tick after the load.
const STEADY_SKIP: (usize, usize) = (3, 1);

/// The live-column count again with [`STEADY_SKIP`] left out: what the sources give while the
/// load runs.
pub fn steady_summary(stats: &[ColumnStats]) -> String {
    let count = |nbr: bool| {
        let live: Vec<&ColumnStats> = (stats.iter())
            .filter(|c| !c.all_null() && c.name.starts_with("nbr.") == nbr)
            .collect();
        let filled = (live.iter())
            .filter(|c| c.null_share() <= SPARSE_NULL_SHARE)
            .count();
        (filled, live.len())
    };
    let ((own, own_n), (nbr, nbr_n)) = (count(false), count(true));
    format!(
        "while the load runs (each run's first {} s and last {} s left out), columns with a value \
         non-null in at least {:.0} % of their rows: own {own} of {own_n}, nbr.* {nbr} of {nbr_n} \
         (over the seconds with a neighbour present)\n",
        STEADY_SKIP.0,
        STEADY_SKIP.1,
        (1.0 - SPARSE_NULL_SHARE) * 100.0
    )
}

/// A column that has values but is null in more than this share of its rows is listed.
const SPARSE_NULL_SHARE: f64 = 0.05;

/// How much the labels vary ([`LabelVariety`]): what a model can learn interference from.
pub fn variety_summary(rows: &[RunRecord]) -> String {
    use dataset::runs::variety::{CHANGES, HEAVY_MAX, LIGHT, VARYING_STD};
    let v = LabelVariety::of(rows);
    let line =
        |what: String, n: usize| format!("  {what:<44} {n:>6}  {:>5.1} %\n", v.share(n) * 100.0);
    let mut s = format!(
        "label variety: {} labelled co-located tenant-runs of {} applications, {} labelled \
         tenant-seconds\n",
        v.tenant_runs, v.applications, v.labelled_seconds
    );
    s.push_str(&line(format!("P in ({}, {})", LIGHT.0, LIGHT.1), v.light));
    s.push_str(&line(format!("P in (0, {HEAVY_MAX}]"), v.heavy));
    s.push_str(&line(
        format!("per-second P with a std >= {VARYING_STD}"),
        v.varying,
    ));
    s.push_str(&line(
        format!(">= {CHANGES} neighbour changes during the run"),
        v.changing,
    ));
    s
}

/// The predictors that use no metric, and what the summary calls them.
const TRIVIAL: [(&str, &str); 3] = [
    ("mean", "training mean"),
    (
        "placement",
        "placement-only tree (tenants, placement, quota)",
    ),
    (
        "cpu-share",
        "CPU-share rule (own CPU usage / CPUs it may use)",
    ),
];

/// The predictors that use no metric, under leave-one-application-out: how far anyone gets
/// without the host's metrics (every model's result is read beside them).
pub fn trivial_summary(dir: &std::path::Path) -> String {
    use train::eval::{evaluate, EvalOptions, ModelSpec};
    let run = || -> anyhow::Result<train::eval::EvalResults> {
        let runs = train::data::load(dir)?;
        let models = TRIVIAL
            .iter()
            .map(|(n, _)| ModelSpec::parse(n))
            .collect::<Result<Vec<_>, _>>()?;
        let options = EvalOptions {
            command: "cloudformer dataset summary".into(),
            ..EvalOptions::new(train::split::Protocol::Loao, models)
        };
        let scratch = tempfile::tempdir()?;
        Ok(evaluate(
            &runs,
            &options,
            None,
            scratch.path(),
            &mut |_, _, _| {},
        )?)
    };
    let r = match run() {
        Ok(r) => r,
        Err(e) => return format!("trivial predictors: not computed ({e:#})\n"),
    };
    let mut s = format!(
        "trivial predictors, leave-one-application-out over {} applications (MAE of P × 100; \
         label-noise floor {:.2}):\n",
        r.apps.len(),
        r.noise_floor
    );
    for m in &r.models {
        let label = TRIVIAL
            .iter()
            .find(|w| w.0 == m.name)
            .map_or(m.name.as_str(), |w| w.1);
        s.push_str(&format!(
            "  {label:<50} {:>6.2} ± {:<5.2} isolated runs {:>6.2}\n",
            m.summary.mae_mean, m.summary.mae_std, m.isolated.mae_mean
        ));
    }
    s
}
