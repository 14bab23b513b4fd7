//! CloudFormer training through the `model` crate: normaliser fitted on the training
//! applications only, log-cosh (default) on P, Adam with linear warm-up + cosine decay, length-
//! bucketed batches with padding masks, early stopping on the validation applications,
//! checkpoints every epoch and `--resume`. The training loop itself is [`crate::fit`]
//! (re-exported here as [`train_on`]).

use std::path::Path;

use dataset::catalogue::Catalogue;
use model::{Checkpoint, Config, DerivedKind, Normalizer, Predictor, Variant, Window};
use serde::{Deserialize, Serialize};

use crate::data::{apps_of, validate_runs, Run};
use crate::error::{Result, TrainError};
use crate::eval::{SeqPredictor, SeqTrainer};
use crate::select::{SelectOptions, Selection};
use crate::split::{app_infos, train_only_split, train_val_indices};

pub use crate::fit::train_on;

pub(crate) fn merr(e: model::ModelError) -> TrainError {
    TrainError::Model(e.to_string())
}

/// Every training flag, written into the model directory's `train.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainOptions {
    /// cf | cf-permetric | cf-temporal | cf-system
    pub variant: String,
    pub lr: f64,
    /// Warm-up share of all optimiser steps.
    pub warmup: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub patience: usize,
    pub weight_decay: f64,
    pub loss: String,
    pub target_scale: f64,
    pub max_len: usize,
    pub clip: f64,
    pub blocks: usize,
    pub seed: u64,
    pub quiet: bool,
    pub val_apps: Vec<String>,
    /// How many validation applications the seed chooses when `val_apps` names none (each
    /// time the first whose kind stays represented among the training applications). Left out
    /// of the options file at its default, so files written before it read the same.
    #[serde(
        default = "crate::split::default_val_count",
        skip_serializing_if = "crate::split::is_default_val_count"
    )]
    pub val_count: usize,
    /// Sliding-window training: train (and validate) on every `window_s`-second window of each
    /// run, labelled with the mean per-second P over the window where the application reports
    /// one (the run's P otherwise). 0 = whole runs (the paper).
    #[serde(default)]
    pub window_s: usize,
    /// Seconds between window starts (0 = `window_s / 2`).
    #[serde(default)]
    pub window_stride: usize,
    /// How raw windows become the network's input (absent in options written before the
    /// masked encoding, which trained with the plain one).
    #[serde(default = "InputEncoding::plain")]
    pub encoding: InputEncoding,
    /// Pre-LayerNorm encoder blocks (`model::Config::pre_norm`) instead of the paper's post-LN.
    /// Left out of the options file when off, so evaluations written before it still resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pre_norm: bool,
    /// After early stopping chose the epoch count on the validation runs, train a fresh model
    /// on the training and validation runs together for that many epochs (same seed and
    /// schedule) and keep it. Left out of the options file when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refit: bool,
    /// Choose `lr` and `blocks` by inner leave-applications-out on the training and validation
    /// applications, then train on all of them ([`crate::select`]). Left out of the options
    /// file when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<SelectOptions>,
    /// Ratios fed beside the kept features (masked encoding only; `model::derived`), e.g. the
    /// CPU share `cpu.usage_pct / 100 / min(quota, cpuset)`. Left out of the options file when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived: Vec<DerivedKind>,
}

/// The network's input encoding (see `model::masked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InputEncoding {
    /// Kept features, log1p by unit, robust scaling, missing flags (normaliser encoding 2).
    #[default]
    Masked,
    /// Every feature z-scored, log1p on counters, nulls as the training mean, no flags
    /// (normaliser encoding 1: the models before 2026-12-05; kept for comparisons).
    Plain,
}

impl InputEncoding {
    fn plain() -> Self {
        InputEncoding::Plain
    }
}

impl std::fmt::Display for InputEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputEncoding::Masked => "masked",
            InputEncoding::Plain => "plain",
        })
    }
}

impl std::str::FromStr for InputEncoding {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "masked" => Ok(InputEncoding::Masked),
            "plain" => Ok(InputEncoding::Plain),
            o => Err(format!("unknown input encoding `{o}` (masked | plain)")),
        }
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            variant: "cf".into(),
            lr: 1e-5,
            warmup: 0.05,
            epochs: 60,
            batch_size: 32,
            patience: 10,
            weight_decay: 0.0,
            loss: "logcosh".into(),
            target_scale: 1.0,
            max_len: 256,
            clip: 1.0,
            blocks: 0,
            seed: 42,
            quiet: true,
            val_apps: Vec::new(),
            val_count: crate::split::DEFAULT_VAL_APPS,
            window_s: 0,
            window_stride: 0,
            encoding: InputEncoding::Masked,
            pre_norm: false,
            refit: false,
            select: None,
            derived: Vec::new(),
        }
    }
}

/// One P̂ of `cloudformer predict`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PredictedRun {
    pub run_id: String,
    pub tenant: String,
    pub app: String,
    pub p: f64,
    pub p_true: f64,
}

/// What `train_model` returns (also written as `train.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub options: TrainOptions,
    pub train_apps: Vec<String>,
    pub val_apps: Vec<String>,
    pub n_train_runs: usize,
    pub n_val_runs: usize,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_val_mae: f64,
    pub n_params: usize,
    pub seconds: f64,
    /// With `refit`: the model written is a fresh one trained on the training and validation
    /// runs together for `best_epoch` epochs; how many runs it saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit_runs: Option<usize>,
    /// With `select`: the inner selection (also `selection.json`); `best_val_mae` is then the
    /// chosen recipe's mean inner validation MAE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

/// The model configuration of a variant name.
/// Adam's moments and step count in `last/`, so that `--resume` continues the same optimiser.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

pub fn variant_config(variant: &str, n_features: usize, opts: &TrainOptions) -> Result<Config> {
    let mut c = Config::with_features(n_features);
    match variant {
        "cf" => {}
        "cf-permetric" => c.metric_embedding = true,
        "cf-temporal" => c.variant = Variant::TemporalOnly,
        "cf-system" => c.variant = Variant::SystemOnly,
        o => {
            return Err(TrainError::Invalid(format!(
                "unknown CloudFormer variant {o:?} (cf | cf-permetric | cf-temporal | cf-system)"
            )))
        }
    }
    c.max_len = opts.max_len;
    c.pre_norm = opts.pre_norm;
    if opts.blocks > 0 {
        c.temporal_blocks = opts.blocks;
        c.system_blocks = opts.blocks;
    }
    c.validate().map_err(merr)?;
    Ok(c)
}

/// log1p flags of the features: bytes, counts and rates by the catalogue's units when the data
/// has the catalogue's width, otherwise none.
pub fn log1p_flags(f: usize) -> Vec<bool> {
    let cat = Catalogue::builtin();
    if cat.n_features() == f {
        (0..f).map(|j| cat.is_log_scaled_feature(j)).collect()
    } else {
        vec![false; f]
    }
}

/// Fits the input encoding `encoding` on every second of `train` (and nothing else): for the
/// masked one ([`model::masked`]) which features the network sees, their transforms and robust
/// scales, and the `derived` inputs' scales.
pub fn fit_normalizer(
    train: &[&Run],
    encoding: InputEncoding,
    derived: &[DerivedKind],
) -> Result<Normalizer> {
    let f = train
        .first()
        .map(|r| r.f)
        .ok_or_else(|| TrainError::EmptyDataset(" (no training runs)".into()))?;
    let rows = train.iter().flat_map(|r| r.x.chunks_exact(r.f));
    if encoding != InputEncoding::Masked && !derived.is_empty() {
        return Err(TrainError::Invalid(format!(
            "derived inputs ({}) need the masked encoding, not {encoding}",
            names(derived)
        )));
    }
    let mut n = match encoding {
        InputEncoding::Masked => {
            Normalizer::fit_masked(log1p_flags(f), rows.clone()).map_err(merr)?
        }
        InputEncoding::Plain => {
            let cat = Catalogue::builtin();
            let counters = (0..f)
                .map(|j| cat.n_features() == f && cat.is_counter_feature(j))
                .collect();
            let mut n = Normalizer::fit(counters, rows.clone()).map_err(merr)?;
            // As the plain encoding always did: all-null columns get the widest range.
            for (lo, hi) in n.min.iter_mut().zip(n.max.iter_mut()) {
                if !lo.is_finite() || !hi.is_finite() {
                    *lo = f32::MIN;
                    *hi = f32::MAX;
                }
            }
            n
        }
    };
    n.fit_derived(derived_sources(derived, f)?, rows.clone())
        .map_err(merr)?;
    if n.n_inputs() == 0 {
        return Err(TrainError::Invalid(
            "every feature is null or constant in the training runs: nothing to learn from".into(),
        ));
    }
    let lowest = train
        .iter()
        .map(|r| n.coverage(&r.x))
        .fold(1.0f32, f32::min);
    n.coverage_floor = 0.5 * lowest;
    Ok(n)
}

fn names(kinds: &[DerivedKind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each derived input with the raw indices of its sources in data `f` features wide (the
/// catalogue's width: other data has no names to find them by).
fn derived_sources(kinds: &[DerivedKind], f: usize) -> Result<Vec<(DerivedKind, Vec<usize>)>> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(k) = kinds
        .iter()
        .enumerate()
        .find_map(|(i, k)| kinds[..i].contains(k).then_some(k))
    {
        return Err(TrainError::Invalid(format!(
            "derived input {k} is given twice"
        )));
    }
    let cat = Catalogue::builtin();
    if cat.n_features() != f {
        return Err(TrainError::Invalid(format!(
            "derived inputs ({}) find their sources by the catalogue's names, but the data has \
             {f} features where the catalogue has {}",
            names(kinds),
            cat.n_features()
        )));
    }
    kinds
        .iter()
        .map(|&k| {
            let idx = k.sources().iter().map(|name| {
                cat.index_of(name).ok_or_else(|| {
                    TrainError::Invalid(format!(
                        "derived input {k} reads {name}, which the catalogue does not have"
                    ))
                })
            });
            Ok((k, idx.collect::<Result<Vec<usize>>>()?))
        })
        .collect()
}

pub(crate) fn feature_names(f: usize) -> Vec<String> {
    let cat = Catalogue::builtin();
    if cat.n_features() == f {
        cat.feature_names()
    } else {
        (0..f).map(|j| format!("f{j}")).collect()
    }
}

/// Predicts P̂ for the first `k` seconds (0 = all) of each run with a loaded model.
pub(crate) fn predict_runs(pred: &mut Predictor, runs: &[&Run], k: usize) -> Result<Vec<f64>> {
    // bucket by length so that padding stays small; keep the output order
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| runs[i].prefix_len(k));
    let mut out = vec![f64::NAN; runs.len()];
    for chunk in order.chunks(32) {
        let windows: Vec<Window<'_>> = chunk
            .iter()
            .map(|&i| Window {
                data: runs[i].prefix(k),
                t: runs[i].prefix_len(k),
            })
            .collect();
        let p = pred.predict(&windows).map_err(merr)?;
        for (&i, q) in chunk.iter().zip(p) {
            out[i] = q.p as f64;
        }
    }
    Ok(out)
}

/// Trains CloudFormer variants for `eval`.
pub struct CfTrainer {
    pub options: TrainOptions,
    /// Keep the per-split checkpoints (otherwise only curve.csv and train.json stay).
    pub keep_checkpoints: bool,
}

impl CfTrainer {
    pub fn new(options: TrainOptions, keep_checkpoints: bool) -> CfTrainer {
        CfTrainer {
            options,
            keep_checkpoints,
        }
    }
}

struct CfPredictor {
    pred: Predictor,
    desc: String,
}

impl SeqPredictor for CfPredictor {
    fn predict(&mut self, runs: &[&Run], k: usize) -> Result<Vec<f64>> {
        predict_runs(&mut self.pred, runs, k)
    }
    fn describe(&self) -> String {
        self.desc.clone()
    }
}

impl SeqTrainer for CfTrainer {
    /// The training options that change results (not `quiet`; variant and seed are per fold).
    fn fingerprint(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.options).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            for k in ["quiet", "variant", "seed"] {
                m.remove(k);
            }
        }
        v
    }

    fn fit(
        &mut self,
        variant: &str,
        train: &[&Run],
        val: &[&Run],
        seed: u64,
        out: &Path,
    ) -> Result<Box<dyn SeqPredictor>> {
        let opts = TrainOptions {
            variant: variant.to_string(),
            seed,
            quiet: true,
            ..self.options.clone()
        };
        let (s, pred) = train_on(train, val, &opts, out, false, serde_json::Value::Null)?;
        if !self.keep_checkpoints {
            for p in [
                out.join(model::WEIGHTS_FILE),
                out.join("last").join(model::WEIGHTS_FILE),
                out.join("last").join(OPTIMIZER_FILE),
            ] {
                let _ = std::fs::remove_file(p);
            }
        }
        let chosen = match &s.selection {
            Some(sel) => format!(
                " selected by {} inner folds: lr={} blocks={} epochs={} inner_val_mae={:.2}",
                sel.groups.len(),
                s.options.lr,
                s.options.blocks,
                sel.epochs,
                s.best_val_mae
            ),
            None => String::new(),
        };
        Ok(Box::new(CfPredictor {
            pred,
            desc: format!(
                "{variant} params={} epochs={} best_epoch={} val_mae={:.2} lr={} loss={} scale={} max_len={}{chosen}",
                s.n_params, s.epochs_run, s.best_epoch, s.best_val_mae, s.options.lr, opts.loss, opts.target_scale, opts.max_len
            ),
        }))
    }
}

/// `cloudformer train`: every application of the dataset trains the model except the
/// validation application(s) (early stopping). `data_dirs`: where the runs came from (recorded).
pub fn train_model(
    runs: &[Run],
    opts: &TrainOptions,
    data_dirs: &[std::path::PathBuf],
    out: &Path,
    resume: bool,
) -> Result<TrainSummary> {
    validate_runs(runs, 1)?;
    let apps = app_infos(runs);
    let split = train_only_split(&apps, &opts.val_apps, opts.val_count, opts.seed)?;
    let idx = train_val_indices(&split, runs)?;
    let tr: Vec<&Run> = idx.train.iter().map(|&i| &runs[i]).collect();
    let va: Vec<&Run> = idx.val.iter().map(|&i| &runs[i]).collect();
    let extra = serde_json::json!({
        "data": data_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        "split": split,
        "apps": apps_of(runs),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    let (summary, _) = train_on(&tr, &va, opts, out, resume, extra)?;
    Ok(summary)
}

/// `cloudformer predict`: P̂ per tenant-run of `runs` with the model in `model_dir` (checked
/// against the built-in catalogue the data was loaded with).
pub fn predict_dir(model_dir: &Path, runs: &[Run], k: usize) -> Result<Vec<PredictedRun>> {
    Checkpoint::read(model_dir)
        .map_err(merr)?
        .check_catalogue(Catalogue::builtin().hash())
        .map_err(merr)?;
    let mut pred = Predictor::load(model_dir).map_err(merr)?;
    pred.set_mc_samples(0);
    if let Some(r) = runs.first() {
        if r.f != pred.n_features() {
            return Err(TrainError::Catalogue(format!(
                "the model expects {} features but the data has {}",
                pred.n_features(),
                r.f
            )));
        }
    }
    let refs: Vec<&Run> = runs.iter().collect();
    let ph = predict_runs(&mut pred, &refs, k)?;
    Ok(runs
        .iter()
        .zip(ph)
        .map(|(r, p)| PredictedRun {
            run_id: r.run_id.clone(),
            tenant: r.tenant.clone(),
            app: r.app.clone(),
            p,
            p_true: r.p as f64,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluations compare their stored plan with the options they are resumed with, so the
    /// options added later must be left out when off and read back as off when absent.
    #[test]
    fn later_options_are_left_out_when_off_and_read_back_when_absent() {
        let opts = TrainOptions::default();
        let json = serde_json::to_value(&opts).unwrap();
        for key in ["pre_norm", "refit", "select", "derived"] {
            assert!(json.get(key).is_none(), "{key} written while off: {json}");
        }
        assert_eq!(serde_json::from_value::<TrainOptions>(json).unwrap(), opts);
        let with = TrainOptions {
            derived: vec![DerivedKind::CpuShare],
            ..opts
        };
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["derived"], serde_json::json!(["cpu-share"]));
        assert_eq!(serde_json::from_value::<TrainOptions>(json).unwrap(), with);
    }
}
