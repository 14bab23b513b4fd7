//! `cloudformer whatif --model DIR --data DIR [--out FILE]`: how far `POST /v1/placement` can
//! be trusted — the model's P̂ from the tenants' isolated baselines (profiles) alone, against
//! the label and against the same model on the real co-located windows (`serve::whatif`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct WhatIfArgs {
    /// Model directory (a checkpoint trained on the built-in catalogue).
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// Dataset directory (campaign output: runs.parquet + samples/).
    #[arg(long)]
    pub data: PathBuf,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: WhatIfArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    // The server's own engine (the same MC-dropout passes as `serve`'s default).
    let mut engine = serve::engine::load_predictor(&args.model)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("loading the model {}", args.model.display()))?;
    let info = serve::Engine::info(&engine).clone();
    let names = dataset::catalogue::Catalogue::builtin().feature_names();
    anyhow::ensure!(
        info.feature_names == names,
        "the model {} reads {} features that are not the built-in catalogue's {}: the what-if rebuilds the catalogue's neighbour columns",
        args.model.display(),
        info.n_features(),
        names.len()
    );
    let host_cpus = collector::perf::online_cpus();
    let report = serve::whatif::check_dataset(&args.data, &host_cpus, |windows| {
        let ws: Vec<&serve::WindowData> = windows.iter().collect();
        serve::Engine::predict(&mut engine, &ws).map(|ps| ps.into_iter().map(|p| p.p).collect())
    })
    .map_err(anyhow::Error::msg)
    .with_context(|| format!("checking the what-if on {}", args.data.display()))?;
    anyhow::ensure!(
        !report.rows.is_empty(),
        "{} has no co-located run whose neighbours stayed throughout and whose tenants all have baselines (skipped: {:?})",
        args.data.display(),
        report.skipped
    );
    let text = markdown(&args, &info.model_id, &host_cpus, &report);
    print!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn markdown(
    args: &WhatIfArgs,
    model_id: &str,
    host_cpus: &[usize],
    r: &serve::whatif::WhatIfReport,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Placement what-if on recorded runs\n\n\
         - model `{model_id}` ({}), data `{}`; unpinned tenants on CPUs {host_cpus:?}\n\
         - rerun: `cloudformer whatif --model {} --data {}`\n\
         - {} co-located tenant-runs of {} runs (neighbours present throughout); skipped runs: {}\n",
        args.model.display(),
        args.data.display(),
        args.model.display(),
        args.data.display(),
        r.rows.len(),
        r.runs(),
        if r.skipped.is_empty() {
            "none".to_string()
        } else {
            r.skipped
                .iter()
                .map(|(why, n)| format!("{n} ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        s,
        "| P̂ from | MAE × 100 |\n|---|---:|\n\
         | the tenants' isolated baselines only (what `POST /v1/placement` answers before the run) | {:.2} |\n\
         | the real co-located window (what live mode answers once the run happens) | {:.2} |\n\
         | nothing: P̂ = 1 (no interference) | {:.2} |\n",
        r.mae_profiles(),
        r.mae_colocated(),
        r.mae_no_interference()
    );
    let mut by_app: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for row in &r.rows {
        let e = by_app.entry(row.app.as_str()).or_default();
        e.0 += 1;
        e.1 += (row.p_profiles - row.p_true).abs() as f64;
        e.2 += (row.p_colocated - row.p_true).abs() as f64;
    }
    let _ = writeln!(
        s,
        "| application | tenant-runs | MAE × 100 from baselines | MAE × 100 co-located |\n|---|---:|---:|---:|"
    );
    for (app, (n, a, b)) in by_app {
        let _ = writeln!(
            s,
            "| {app} | {n} | {:.2} | {:.2} |",
            100.0 * a / n as f64,
            100.0 * b / n as f64
        );
    }
    s
}
