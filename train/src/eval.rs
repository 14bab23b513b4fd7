//! The comparison: every model on the same splits, metrics per split, mean ± std, early
//! prediction (first k seconds), written to a results directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::baselines::lstm::LstmParams;
use crate::baselines::Tabular;
use crate::data::{validate_runs, window_units_strided, Run};
use crate::error::{Result, TrainError};
use crate::features::{self, FeatureSet, Table};
use crate::folds::FoldStore;
use crate::metrics::{Metrics, Summary};
use crate::split::{app_infos, make_splits, AppInfo, Protocol, Split, SplitIdx};

mod aggregate;
mod fold;

use aggregate::aggregate;
use fold::FoldCtx;

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

    /// Parses `mean, lr, glm, dt, rf, rf-rich, gbdt, placement, cpu-share, lstm` or a CloudFormer variant name
    /// (`cf`, `cf-permetric`, `cf-temporal`, `cf-system`).
    pub fn parse(s: &str) -> Result<ModelSpec> {
        if let Some(t) = Tabular::from_name(s) {
            return Ok(ModelSpec::Tabular(t));
        }
        match s {
            "lstm" => Ok(ModelSpec::Lstm),
            "cf" | "cf-permetric" | "cf-temporal" | "cf-system" => Ok(ModelSpec::CloudFormer(s.to_string())),
            o => Err(TrainError::Invalid(format!(
                "unknown model {o:?}; known: mean, lr, glm, dt, rf, rf-rich, gbdt, placement, cpu-share, lstm, cf, cf-permetric, cf-temporal, cf-system"
            ))),
        }
    }
}

/// Something that trains a sequence model on runs and predicts P̂ for run prefixes
/// (implemented for CloudFormer by [`crate::cf`]).
pub trait SeqTrainer {
    /// Trains variant `variant` on `train`, early-stopping on `val`; `out` is a scratch directory
    /// for checkpoints and curves. Returns a predictor.
    /// The settings that make its results differ (recorded with an evaluation's folds).
    fn fingerprint(&self) -> Value {
        Value::Null
    }

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
    /// The evaluation unit: 0 = whole tenant-runs; W > 0 = every non-overlapping W-second
    /// window of each run, labelled with the mean per-second P over it
    /// ([`crate::data::window_units`]); every model trains and is tested on those windows.
    #[serde(default)]
    pub window_s: usize,
    /// With `window_s`: the training and validation applications' windows start every
    /// `train_stride` seconds (overlapping when below `window_s`; it must divide it), the test
    /// windows stay the non-overlapping ones ([`crate::data::window_units_strided`]). 0 = the
    /// non-overlapping windows only (left out of the plan then, so older folds still match).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub train_stride: usize,
    /// Validation applications per split (early stopping and the baselines' hyper-parameters;
    /// see [`crate::split`]). The default (1) is left out of the plan, so older folds still match.
    #[serde(
        default = "crate::split::default_val_count",
        skip_serializing_if = "crate::split::is_default_val_count"
    )]
    pub val_apps: usize,
    /// The tabular baselines, after choosing their hyper-parameters on the validation runs,
    /// are fitted again on training and validation runs together with them
    /// ([`crate::baselines::TabularModel::refit`]), as CloudFormer's `--refit` does. Left out
    /// of the plan when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub refit_baselines: bool,
    /// CloudFormer variants train this many members per fold, with the seeds
    /// [`member_seed`]`(split seed, j)`, and predict the mean of their P̂ (a seed ensemble, as a
    /// served model directory with `members/` answers). The default (1) is left out of the plan,
    /// so older folds still match.
    #[serde(default = "one_member", skip_serializing_if = "is_one_member")]
    pub members: usize,
    /// The command line, recorded in the results.
    pub command: String,
}

impl EvalOptions {
    /// `models` under `protocol` on whole runs, every other option at its default: all of the
    /// protocol's splits (`n_splits` 0), the training seed's default, no early prefixes, the
    /// LSTM's defaults, one validation application, no refit, one member, no command line.
    /// Callers change what they need with struct update syntax.
    pub fn new(protocol: Protocol, models: Vec<ModelSpec>) -> Self {
        Self {
            protocol,
            n_splits: 0,
            seed: crate::cf::TrainOptions::default().seed,
            models,
            early_ks: Vec::new(),
            lstm: LstmParams::default(),
            window_s: 0,
            train_stride: 0,
            val_apps: crate::split::DEFAULT_VAL_APPS,
            refit_baselines: false,
            members: one_member(),
            command: String::new(),
        }
    }
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
    /// Seconds of all folds together.
    pub fit_seconds: f64,
    /// Seconds of each split's fold (fit and predictions), in split order.
    #[serde(default)]
    pub fold_seconds: Vec<f64>,
    /// The same metrics on the isolated test runs only (the tenant alone: P ≈ 1); splits
    /// without one count as NaN and are left out of the mean.
    #[serde(default)]
    pub isolated: Summary,
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

/// [`evaluate_in_parts`] with an indicatif progress bar on stderr (hidden when `quiet`).
pub fn evaluate_with_bar(
    runs: &[Run],
    options: &EvalOptions,
    seq: Option<&mut dyn SeqTrainer>,
    scratch: &Path,
    parts: &Parts<'_>,
    quiet: bool,
) -> Result<Outcome> {
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
    let res = evaluate_in_parts(runs, options, seq, scratch, parts, &mut progress);
    bar.finish_and_clear();
    res
}

/// Progress callback: (done, total, message).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// How [`evaluate_in_parts`] ended.
#[derive(Debug)]
pub enum Outcome {
    Complete(Box<EvalResults>),
    /// The time budget ran out at a fold boundary: `done` of `total` folds are in the store and
    /// the same call continues from them.
    Stopped {
        done: usize,
        total: usize,
    },
}

/// An evaluation in parts: folds are read from and written to `store`; once `deadline` has
/// passed, the evaluation stops before the next fold it would compute (every call computes at
/// least one, so it ends by the deadline plus one fold).
pub struct Parts<'a> {
    pub store: &'a FoldStore,
    pub deadline: Option<Instant>,
}

/// What the folds of an evaluation depend on, for [`FoldStore::open`]: the options (not the
/// command line), the sequence trainer's settings and the dataset's applications and runs.
pub fn plan(runs: &[Run], options: &EvalOptions, seq: Option<&dyn SeqTrainer>) -> Value {
    let mut o = serde_json::to_value(options).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut o {
        m.remove("command");
        // A fold depends on its split and model only: adding a model to an evaluation reuses
        // the folds of the others.
        m.remove("models");
    }
    let apps: BTreeMap<&str, usize> = runs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.app.as_str()).or_default() += 1;
        m
    });
    serde_json::json!({
        "options": o,
        "trainer": seq.map_or(Value::Null, |s| s.fingerprint()),
        "runs_per_app": apps,
    })
}

/// Runs the comparison. `seq` trains the CloudFormer variants (required when `options.models`
/// has any). `scratch` holds per-split checkpoints.
pub fn evaluate(
    runs: &[Run],
    options: &EvalOptions,
    seq: Option<&mut dyn SeqTrainer>,
    scratch: &Path,
    progress: Progress<'_>,
) -> Result<EvalResults> {
    match run_folds(runs, options, seq, scratch, None, progress)? {
        Outcome::Complete(r) => Ok(*r),
        Outcome::Stopped { .. } => Err(TrainError::Invalid(
            "the evaluation stopped without a time budget".into(),
        )),
    }
}

/// [`evaluate`] in parts: folds already in `parts.store` are taken as they are, each new fold
/// is written there as soon as it finishes, and the call stops at a fold boundary once
/// `parts.deadline` has passed.
pub fn evaluate_in_parts(
    runs: &[Run],
    options: &EvalOptions,
    seq: Option<&mut dyn SeqTrainer>,
    scratch: &Path,
    parts: &Parts<'_>,
    progress: Progress<'_>,
) -> Result<Outcome> {
    run_folds(runs, options, seq, scratch, Some(parts), progress)
}

/// The prefixes evaluated: 0 (the whole run) and the early-prediction ks (those shorter than
/// the window in a per-window evaluation).
fn prefix_ks(options: &EvalOptions) -> Vec<usize> {
    let mut ks: Vec<usize> = vec![0];
    let fits = |k: usize| options.window_s == 0 || k < options.window_s;
    ks.extend(
        options
            .early_ks
            .iter()
            .copied()
            .filter(|&k| k > 0 && fits(k)),
    );
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// Per-run tables of the tabular models, keyed by (feature set, k): each depends on one run
/// only, so they are computed once for every split.
fn tabular_tables(
    runs: &[Run],
    options: &EvalOptions,
    ks: &[usize],
) -> BTreeMap<(FeatureSet, usize), Table> {
    let mut tables = BTreeMap::new();
    for m in &options.models {
        if let ModelSpec::Tabular(t) = m {
            let set = t.feature_set();
            for &k in ks {
                tables
                    .entry((set, k))
                    .or_insert_with(|| features::table(runs, set, k));
            }
        }
    }
    tables
}

fn run_folds(
    runs: &[Run],
    options: &EvalOptions,
    mut seq: Option<&mut dyn SeqTrainer>,
    scratch: &Path,
    parts: Option<&Parts<'_>>,
    progress: Progress<'_>,
) -> Result<Outcome> {
    if options.train_stride > 0 && options.window_s == 0 {
        return Err(TrainError::Invalid(format!(
            "--train-stride {} needs a per-window evaluation (--per-window W): whole runs have \
             no windows to overlap",
            options.train_stride
        )));
    }
    let windows;
    let (runs, n_test) = if options.window_s > 0 {
        windows = window_units_strided(runs, options.window_s, options.train_stride)?;
        (&windows.0[..], windows.1)
    } else {
        (runs, runs.len())
    };
    validate_runs(runs, 2)?;
    // The units tested come first; the splits and the results are the same as without
    // overlapping training windows.
    let tested = &runs[..n_test];
    let splits = make_splits(
        options.protocol,
        &app_infos(tested),
        options.n_splits,
        options.seed,
        options.val_apps,
    )?;
    let ks = prefix_ks(options);
    let tables = tabular_tables(runs, options, &ks);
    let total = splits.len() * options.models.len();
    let mut folds = Vec::with_capacity(total);
    let mut computed = 0;
    for split in &splits {
        let idx = fold_indices(split, runs, n_test)?;
        let keys: Vec<String> = idx.test.iter().map(|&i| runs[i].key()).collect();
        for model in &options.models {
            let name = model.name();
            progress(folds.len(), total, &format!("{} {name}", split.name));
            if let Some(p) = parts {
                if let Some(f) = p.store.load(&split.name, &name, &keys)? {
                    folds.push(f);
                    continue;
                }
                let over = p.deadline.is_some_and(|d| Instant::now() >= d);
                if over && computed > 0 {
                    return Ok(Outcome::Stopped {
                        done: folds.len(),
                        total,
                    });
                }
            }
            let ctx = FoldCtx {
                runs,
                split,
                idx: &idx,
                ks: &ks,
                tables: &tables,
                options,
                scratch,
            };
            let fold = ctx.run(model, keys.clone(), seq.as_deref_mut())?;
            computed += 1;
            if let Some(p) = parts {
                p.store.save(&fold)?;
            }
            folds.push(fold);
        }
    }
    progress(total, total, "done");
    Ok(Outcome::Complete(Box::new(aggregate(
        tested, options, splits, &folds,
    )?)))
}

/// The split's indices into `runs`, of which the first `n_test` may be tested (the others are
/// overlapping training windows). Overlapping windows cannot go with validation runs drawn
/// from the training runs: a validation window would share seconds with training ones.
fn fold_indices(split: &Split, runs: &[Run], n_test: usize) -> Result<SplitIdx> {
    if n_test < runs.len() && split.val_from_train_runs.is_some() {
        return Err(TrainError::Invalid(format!(
            "--train-stride: split {} has no validation application (it draws validation runs \
             from the training runs, whose overlapping windows would leak into them); evaluate \
             without --train-stride or with more applications",
            split.name
        )));
    }
    let mut idx = split.indices(runs)?;
    idx.test.retain(|&i| i < n_test);
    Ok(idx)
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn one_member() -> usize {
    1
}

fn is_one_member(v: &usize) -> bool {
    *v == 1
}

/// The seed of member `j` of a fold whose split has seed `seed`: member 0 keeps the split's
/// seed (so one member is the single model of before), the others are spread by a large odd
/// constant.
pub fn member_seed(seed: u64, j: usize) -> u64 {
    seed.wrapping_add((j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}
