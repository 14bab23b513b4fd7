//! The comparison: every model on the same splits, metrics per split, mean ± std, early
//! prediction (first k seconds), written to a results directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::baselines::lstm::{self, LstmParams};
use crate::baselines::Tabular;
use crate::data::{validate_runs, Run};
use crate::error::{io_err, Result, TrainError};
use crate::features::{self, FeatureSet, Table};
use crate::metrics::{self, compute, summarise, Metrics, Pred, Summary};
use crate::split::{app_infos, make_splits, AppInfo, Protocol, Split};

/// A model in the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSpec {
    Tabular(Tabular),
    Lstm,
    /// A CloudFormer variant, trained through [`SeqTrainer`].
    CloudFormer(String),
}

impl ModelSpec {
    pub fn name(&self) -> String {
        match self {
            ModelSpec::Tabular(t) => t.name().to_string(),
            ModelSpec::Lstm => "lstm".into(),
            ModelSpec::CloudFormer(v) => v.clone(),
        }
    }

    /// Parses `mean, lr, glm, dt, rf, rf-rich, gbdt, lstm` or a CloudFormer variant name
    /// (`cf`, `cf-permetric`, `cf-temporal`, `cf-system`).
    pub fn parse(s: &str) -> Result<ModelSpec> {
        if let Some(t) = Tabular::from_name(s) {
            return Ok(ModelSpec::Tabular(t));
        }
        match s {
            "lstm" => Ok(ModelSpec::Lstm),
            "cf" | "cf-permetric" | "cf-temporal" | "cf-system" => Ok(ModelSpec::CloudFormer(s.to_string())),
            o => Err(TrainError::Invalid(format!(
                "unknown model {o:?}; known: mean, lr, glm, dt, rf, rf-rich, gbdt, lstm, cf, cf-permetric, cf-temporal, cf-system"
            ))),
        }
    }
}

/// Something that trains a sequence model on runs and predicts P̂ for run prefixes
/// (implemented for CloudFormer by [`crate::cf`]).
pub trait SeqTrainer {
    /// Trains variant `variant` on `train`, early-stopping on `val`; `out` is a scratch directory
    /// for checkpoints and curves. Returns a predictor.
    fn fit(
        &mut self,
        variant: &str,
        train: &[&Run],
        val: &[&Run],
        seed: u64,
        out: &Path,
    ) -> Result<Box<dyn SeqPredictor>>;
}

pub trait SeqPredictor {
    /// P̂ for the first `k` seconds (0 = whole run) of each run.
    fn predict(&mut self, runs: &[&Run], k: usize) -> Result<Vec<f64>>;
    fn describe(&self) -> String;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOptions {
    pub protocol: Protocol,
    pub n_splits: usize,
    pub seed: u64,
    pub models: Vec<ModelSpec>,
    /// Early-prediction prefixes in seconds (0 is always evaluated: the whole run).
    pub early_ks: Vec<usize>,
    pub lstm: LstmParams,
    /// The command line, recorded in the results.
    pub command: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PredRow {
    pub split: String,
    pub model: String,
    /// Prefix length in seconds; 0 = the whole run.
    pub k: usize,
    pub key: String,
    pub app: String,
    pub p: f64,
    pub p_hat: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    pub name: String,
    pub per_split: Vec<Metrics>,
    pub summary: Summary,
    /// k → summary of the per-split metrics on the first k seconds.
    pub early: BTreeMap<usize, Summary>,
    /// The hyper-parameters chosen per split.
    pub chosen: Vec<String>,
    pub fit_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalResults {
    pub options: EvalOptions,
    pub apps: Vec<AppInfo>,
    pub n_runs: usize,
    pub splits: Vec<Split>,
    pub models: Vec<ModelResult>,
    /// Label-noise floor (points) over all test runs of all splits.
    pub noise_floor: f64,
    #[serde(skip)]
    pub predictions: Vec<PredRow>,
}

/// [`evaluate`] with an indicatif progress bar on stderr (hidden when `quiet`).
pub fn evaluate_with_bar(
    runs: &[Run],
    options: &EvalOptions,
    seq: Option<&mut dyn SeqTrainer>,
    scratch: &Path,
    quiet: bool,
) -> Result<EvalResults> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = |done: usize, total: usize, msg: &str| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(msg.to_string());
    };
    let res = evaluate(runs, options, seq, scratch, &mut progress);
    bar.finish_and_clear();
    res
}

/// Progress callback: (done, total, message).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// Per model: metrics per split, metrics per early-prediction k, descriptions, fit seconds.
type ModelAcc = (
    Vec<Metrics>,
    BTreeMap<usize, Vec<Metrics>>,
    Vec<String>,
    f64,
);

/// Runs the comparison. `seq` trains the CloudFormer variants (required when `options.models`
/// has any). `scratch` holds per-split checkpoints.
pub fn evaluate(
    runs: &[Run],
    options: &EvalOptions,
    mut seq: Option<&mut dyn SeqTrainer>,
    scratch: &Path,
    progress: Progress<'_>,
) -> Result<EvalResults> {
    validate_runs(runs, 2)?;
    let apps = app_infos(runs);
    let splits = make_splits(options.protocol, &apps, options.n_splits, options.seed)?;
    let mut ks: Vec<usize> = vec![0];
    ks.extend(options.early_ks.iter().copied().filter(|&k| k > 0));
    ks.sort_unstable();
    ks.dedup();
    // Per-run aggregates depend on one run only: compute once per (set, k).
    let mut tables: BTreeMap<(bool, usize), Table> = BTreeMap::new();
    let needs = |set: FeatureSet| {
        options
            .models
            .iter()
            .any(|m| matches!(m, ModelSpec::Tabular(t) if t.feature_set() == set))
    };
    for set in [FeatureSet::Mean, FeatureSet::Rich] {
        if needs(set) {
            for &k in &ks {
                tables.insert((set == FeatureSet::Rich, k), features::table(runs, set, k));
            }
        }
    }
    let total = splits.len() * options.models.len();
    let mut done = 0;
    let mut per_model: BTreeMap<String, ModelAcc> = BTreeMap::new();
    let mut predictions = Vec::new();
    let mut all_test_preds: Vec<Pred> = Vec::new();
    for split in &splits {
        let idx = split.indices(runs)?;
        let y = |ii: &[usize]| ii.iter().map(|&i| runs[i].p as f64).collect::<Vec<_>>();
        let (ytr, yva) = (y(&idx.train), y(&idx.val));
        for r in idx.test.iter().map(|&i| &runs[i]) {
            all_test_preds.push(Pred {
                key: r.key(),
                app: r.app.clone(),
                p: r.p as f64,
                p_hat: r.p as f64,
                label_noise: r.label_noise as f64,
            });
        }
        for model in &options.models {
            let name = model.name();
            progress(done, total, &format!("{} {name}", split.name));
            let t0 = std::time::Instant::now();
            let mut preds_by_k: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            let chosen;
            match model {
                ModelSpec::Tabular(t) => {
                    let rich = t.feature_set() == FeatureSet::Rich;
                    let full = &tables[&(rich, 0)];
                    let m = t.fit(
                        &full.select(&idx.train),
                        &ytr,
                        &full.select(&idx.val),
                        &yva,
                        split.seed,
                    )?;
                    chosen = m.describe();
                    for &k in &ks {
                        preds_by_k.insert(k, m.predict(&tables[&(rich, k)].select(&idx.test)));
                    }
                }
                ModelSpec::Lstm => {
                    let tr: Vec<&Run> = idx.train.iter().map(|&i| &runs[i]).collect();
                    let va: Vec<&Run> = idx.val.iter().map(|&i| &runs[i]).collect();
                    let te: Vec<&Run> = idx.test.iter().map(|&i| &runs[i]).collect();
                    let m = lstm::fit(&tr, &va, options.lstm, split.seed)?;
                    chosen = m.describe();
                    for &k in &ks {
                        preds_by_k.insert(k, m.predict(&te, k)?);
                    }
                }
                ModelSpec::CloudFormer(variant) => {
                    let trainer = seq.as_deref_mut().ok_or_else(|| {
                        TrainError::Invalid(format!(
                            "model {variant} needs the CloudFormer trainer"
                        ))
                    })?;
                    let tr: Vec<&Run> = idx.train.iter().map(|&i| &runs[i]).collect();
                    let va: Vec<&Run> = idx.val.iter().map(|&i| &runs[i]).collect();
                    let te: Vec<&Run> = idx.test.iter().map(|&i| &runs[i]).collect();
                    let dir = scratch.join(&split.name).join(variant);
                    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                    let mut m = trainer.fit(variant, &tr, &va, split.seed, &dir)?;
                    chosen = m.describe();
                    for &k in &ks {
                        preds_by_k.insert(k, m.predict(&te, k)?);
                    }
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            let entry = per_model.entry(name.clone()).or_default();
            entry.2.push(chosen);
            entry.3 += secs;
            for (k, ph) in preds_by_k {
                let preds: Vec<Pred> = idx
                    .test
                    .iter()
                    .zip(&ph)
                    .map(|(&i, &p_hat)| {
                        let r = &runs[i];
                        let p_hat = if p_hat.is_finite() {
                            p_hat.clamp(0.0, 1.0)
                        } else {
                            1.0
                        };
                        Pred {
                            key: r.key(),
                            app: r.app.clone(),
                            p: r.p as f64,
                            p_hat,
                            label_noise: r.label_noise as f64,
                        }
                    })
                    .collect();
                for p in &preds {
                    predictions.push(PredRow {
                        split: split.name.clone(),
                        model: name.clone(),
                        k,
                        key: p.key.clone(),
                        app: p.app.clone(),
                        p: p.p,
                        p_hat: p.p_hat,
                    });
                }
                let m = compute(&preds);
                if k == 0 {
                    entry.0.push(m);
                } else {
                    entry.1.entry(k).or_default().push(m);
                }
            }
            done += 1;
        }
    }
    progress(done, total, "done");
    let models = options
        .models
        .iter()
        .filter_map(|m| {
            let name = m.name();
            per_model
                .remove(&name)
                .map(|(per_split, early, chosen, secs)| ModelResult {
                    summary: summarise(&per_split),
                    early: early.into_iter().map(|(k, v)| (k, summarise(&v))).collect(),
                    name,
                    per_split,
                    chosen,
                    fit_seconds: secs,
                })
        })
        .collect();
    Ok(EvalResults {
        options: options.clone(),
        apps,
        n_runs: runs.len(),
        splits,
        models,
        noise_floor: metrics::noise_floor(&all_test_preds),
        predictions,
    })
}

fn fmt_pm(m: f64, s: f64) -> String {
    if m.is_finite() {
        format!("{m:.2} ± {s:.2}")
    } else {
        "n/a".into()
    }
}

impl EvalResults {
    /// The best model by mean MAE among those whose name does not start with `cf`.
    pub fn best_baseline(&self) -> Option<&ModelResult> {
        self.models
            .iter()
            .filter(|m| {
                !m.name.starts_with("cf") && m.name != "mean" && m.summary.mae_mean.is_finite()
            })
            .min_by(|a, b| a.summary.mae_mean.total_cmp(&b.summary.mae_mean))
    }

    /// The noise floor, the main table (MAE/MSE/error bands per model) and the goal lines:
    /// the part of `summary.md` that `cloudformer report --readme` copies into a README.
    pub fn headline_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Label-noise floor (mean label_noise of the test runs, points of P×100): **{:.2}**\n\n",
            self.noise_floor
        ));
        s.push_str("| model | MAE (mean ± std) | MSE (mean ± std) | <5 | 5-10 | 10-15 | 15-20 | 20-25 | >25 | fit s |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for m in &self.models {
            let b = m.summary.bands;
            s.push_str(&format!(
                "| {} | {} | {} | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.1} |\n",
                m.name,
                fmt_pm(m.summary.mae_mean, m.summary.mae_std),
                fmt_pm(m.summary.mse_mean, m.summary.mse_std),
                b[0] * 100.0,
                b[1] * 100.0,
                b[2] * 100.0,
                b[3] * 100.0,
                b[4] * 100.0,
                b[5] * 100.0,
                m.fit_seconds
            ));
        }
        if let Some(best) = self.best_baseline() {
            s.push_str(&format!(
                "\nBest baseline: **{}** (MAE {:.2}).\n",
                best.name, best.summary.mae_mean
            ));
            for cf in self.models.iter().filter(|m| m.name.starts_with("cf")) {
                let gain =
                    (best.summary.mae_mean - cf.summary.mae_mean) / best.summary.mae_mean * 100.0;
                s.push_str(&format!(
                    "- {}: MAE {:.2}, {:.1} % {} the best baseline (goal: ≥ 28 % below); {:.2}× the noise floor (goal ≤ 2×).\n",
                    cf.name,
                    cf.summary.mae_mean,
                    gain.abs(),
                    if gain >= 0.0 { "below" } else { "above" },
                    cf.summary.mae_mean / self.noise_floor
                ));
            }
        }
        s
    }

    /// The comparison as a Markdown document.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let o = &self.options;
        s.push_str(&format!(
            "# CloudFormer comparison ({:?} protocol)\n\n{} tenant-runs, {} applications, {} splits, seed {}.\n\n",
            o.protocol,
            self.n_runs,
            self.apps.len(),
            self.splits.len(),
            o.seed
        ));
        s.push_str(&format!("Command: `{}`\n\n", o.command));
        s.push_str(&self.headline_markdown());
        // early prediction
        let ks: Vec<usize> = self
            .models
            .iter()
            .flat_map(|m| m.early.keys().copied())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !ks.is_empty() {
            s.push_str("\n## Early prediction: MAE using only the first k seconds\n\n| model |");
            for k in &ks {
                s.push_str(&format!(" k={k}s |"));
            }
            s.push_str(" whole run |\n|---|");
            for _ in 0..=ks.len() {
                s.push_str("---|");
            }
            s.push('\n');
            for m in &self.models {
                s.push_str(&format!("| {} |", m.name));
                for k in &ks {
                    match m.early.get(k) {
                        Some(e) => s.push_str(&format!(" {:.2} |", e.mae_mean)),
                        None => s.push_str(" |"),
                    }
                }
                s.push_str(&format!(" {:.2} |\n", m.summary.mae_mean));
            }
        }
        // per-app MAE
        s.push_str("\n## Per-application MAE (mean over the splits where the application was tested)\n\n| app | kind |");
        for m in &self.models {
            s.push_str(&format!(" {} |", m.name));
        }
        s.push_str("\n|---|---|");
        for _ in &self.models {
            s.push_str("---|");
        }
        s.push('\n');
        for a in &self.apps {
            s.push_str(&format!(
                "| {} | {} |",
                a.name,
                if a.dynamic { "dynamic" } else { "static" }
            ));
            for m in &self.models {
                match m.summary.per_app_mae.get(&a.name) {
                    Some(v) => s.push_str(&format!(" {v:.2} |")),
                    None => s.push_str(" |"),
                }
            }
            s.push('\n');
        }
        s.push_str(
            "\n## Splits\n\n| split | seed | test | validation | train |\n|---|---|---|---|---|\n",
        );
        for sp in &self.splits {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                sp.name,
                sp.seed,
                sp.test_apps.join(", "),
                if sp.val_apps.is_empty() {
                    format!(
                        "{:.0}% of training runs",
                        sp.val_from_train_runs.unwrap_or(0.0) * 100.0
                    )
                } else {
                    sp.val_apps.join(", ")
                },
                sp.train_apps.join(", ")
            ));
        }
        s.push_str("\n## Chosen hyper-parameters per split\n\n");
        for m in &self.models {
            s.push_str(&format!("- **{}**: {}\n", m.name, m.chosen.join("; ")));
        }
        s
    }

    /// Writes `results.json`, `predictions.csv`, `summary.md` and `command.txt` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let p = dir.join("results.json");
        let json = serde_json::to_string_pretty(self).map_err(|source| TrainError::Json {
            path: p.clone(),
            source,
        })?;
        std::fs::write(&p, json).map_err(io_err(&p))?;
        let p = dir.join("predictions.csv");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io_err(&p))?);
        writeln!(f, "split,model,k,key,app,p,p_hat").map_err(io_err(&p))?;
        for r in &self.predictions {
            writeln!(
                f,
                "{},{},{},{},{},{:.6},{:.6}",
                r.split,
                r.model,
                r.k,
                r.key.replace(',', ";"),
                r.app.replace(',', ";"),
                r.p,
                r.p_hat
            )
            .map_err(io_err(&p))?;
        }
        f.flush().map_err(io_err(&p))?;
        let p = dir.join("summary.md");
        std::fs::write(&p, self.markdown()).map_err(io_err(&p))?;
        let p = dir.join("command.txt");
        std::fs::write(&p, format!("{}\n", self.options.command)).map_err(io_err(&p))?;
        Ok(())
    }

    /// Reads `results.json` and `predictions.csv` back.
    pub fn read(dir: &Path) -> Result<EvalResults> {
        let p = dir.join("results.json");
        let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
        let mut r: EvalResults =
            serde_json::from_str(&text).map_err(|source| TrainError::Json {
                path: p.clone(),
                source,
            })?;
        let p = dir.join("predictions.csv");
        if let Ok(text) = std::fs::read_to_string(&p) {
            for (ln, line) in text.lines().enumerate().skip(1) {
                let c: Vec<&str> = line.split(',').collect();
                if c.len() != 7 {
                    return Err(TrainError::Invalid(format!(
                        "{}:{}: expected 7 columns",
                        p.display(),
                        ln + 1
                    )));
                }
                let num = |s: &str| {
                    s.parse::<f64>().map_err(|_| {
                        TrainError::Invalid(format!("{}:{}: bad number {s:?}", p.display(), ln + 1))
                    })
                };
                r.predictions.push(PredRow {
                    split: c[0].into(),
                    model: c[1].into(),
                    k: num(c[2])? as usize,
                    key: c[3].into(),
                    app: c[4].into(),
                    p: num(c[5])?,
                    p_hat: num(c[6])?,
                });
            }
        }
        Ok(r)
    }
}
