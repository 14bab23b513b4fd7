//! CloudFormer training through the `model` crate: normaliser fitted on the training
//! applications only, log-cosh (default) on P, Adam with linear warm-up + cosine decay, length-
//! bucketed batches with padding masks, early stopping on the validation applications,
//! checkpoints every epoch and `--resume`.

use std::io::Write;
use std::path::Path;

use dataset::catalogue::Catalogue;
use indicatif::{ProgressBar, ProgressStyle};
use model::{Checkpoint, CloudFormer, Config, Normalizer, Predictor, Variant, Window};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{apps_of, validate_runs, Run};
use crate::error::{io_err, Result, TrainError};
use crate::eval::{SeqPredictor, SeqTrainer};
use crate::schedule::{bucket_batches, Loss, WarmupCosine};
use crate::split::{app_infos, train_only_split, train_val_indices};

fn merr(e: model::ModelError) -> TrainError {
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
            window_s: 0,
            window_stride: 0,
            encoding: InputEncoding::Masked,
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
/// scales.
pub fn fit_normalizer(train: &[&Run], encoding: InputEncoding) -> Result<Normalizer> {
    let f = train
        .first()
        .map(|r| r.f)
        .ok_or_else(|| TrainError::EmptyDataset(" (no training runs)".into()))?;
    let rows = train.iter().flat_map(|r| r.x.chunks_exact(r.f));
    let mut n = match encoding {
        InputEncoding::Masked => Normalizer::fit_masked(log1p_flags(f), rows).map_err(merr)?,
        InputEncoding::Plain => {
            let cat = Catalogue::builtin();
            let counters = (0..f)
                .map(|j| cat.n_features() == f && cat.is_counter_feature(j))
                .collect();
            let mut n = Normalizer::fit(counters, rows).map_err(merr)?;
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

fn feature_names(f: usize) -> Vec<String> {
    let cat = Catalogue::builtin();
    if cat.n_features() == f {
        cat.feature_names()
    } else {
        (0..f).map(|j| format!("f{j}")).collect()
    }
}

/// Predicts P̂ for the first `k` seconds (0 = all) of each run with a loaded model.
fn predict_runs(pred: &mut Predictor, runs: &[&Run], k: usize) -> Result<Vec<f64>> {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    epoch: usize,
    step: usize,
    best_val_mae: f64,
    best_epoch: usize,
    since_best: usize,
}

/// Trains one model on `train`, early-stopping on `val`. Writes into `out`: the best checkpoint
/// (`config.json` + `model.safetensors`, the training options in its `training` field),
/// `last/` (the latest epoch, for `resume`), `curve.csv` and `train.json`.
pub fn train_on(
    train: &[&Run],
    val: &[&Run],
    opts: &TrainOptions,
    out: &Path,
    resume: bool,
    extra: serde_json::Value,
) -> Result<(TrainSummary, Predictor)> {
    let t0 = std::time::Instant::now();
    let f = train
        .first()
        .map(|r| r.f)
        .ok_or_else(|| TrainError::EmptyDataset(" (no training runs)".into()))?;
    let loss_kind: Loss = opts.loss.parse().map_err(TrainError::Invalid)?;
    if opts.batch_size == 0 || opts.epochs == 0 {
        return Err(TrainError::Invalid(
            "--batch-size and --epochs must be at least 1".into(),
        ));
    }
    let lr_ok = opts.lr.is_finite() && opts.lr > 0.0;
    if !lr_ok || !(0.0..1.0).contains(&opts.warmup) {
        return Err(TrainError::Invalid(format!(
            "bad --lr {} or --warmup {}",
            opts.lr, opts.warmup
        )));
    }
    // Sliding windows on per-second labels, when asked for.
    let (tr_w, va_w);
    let (train, val): (Vec<&Run>, Vec<&Run>) = if opts.window_s > 0 {
        tr_w = crate::data::sliding_windows(train, opts.window_s, opts.window_stride);
        va_w = crate::data::sliding_windows(val, opts.window_s, opts.window_stride);
        if tr_w.is_empty() {
            let longest = train.iter().map(|r| r.t).max().unwrap_or(0);
            return Err(TrainError::Invalid(format!(
                "--window-s {}: no training run is that long (the longest has {longest} s); \
                 choose a window of at most {longest} s",
                opts.window_s
            )));
        }
        tracing::info!(
            windows = tr_w.len(),
            val_windows = va_w.len(),
            window_s = opts.window_s,
            "sliding-window training"
        );
        (tr_w.iter().collect(), va_w.iter().collect())
    } else {
        (train.to_vec(), val.to_vec())
    };
    let (train, val) = (&train[..], &val[..]);
    let norm = fit_normalizer(train, opts.encoding)?;
    let cfg = variant_config(&opts.variant, norm.n_inputs(), opts)?;
    let device = model::default_device();
    let mut net = CloudFormer::new(&cfg, opts.seed, &device).map_err(merr)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let last_dir = out.join("last");
    let state_path = last_dir.join("state.json");
    let mut state = ResumeState {
        epoch: 0,
        step: 0,
        best_val_mae: f64::MAX,
        best_epoch: 0,
        since_best: 0,
    };
    if resume {
        let text = std::fs::read_to_string(&state_path).map_err(|e| {
            TrainError::Invalid(format!(
                "--resume: no previous training state in {} ({e})",
                last_dir.display()
            ))
        })?;
        state = serde_json::from_str(&text).map_err(|source| TrainError::Json {
            path: state_path.clone(),
            source,
        })?;
        let ck = Checkpoint::read(&last_dir).map_err(merr)?;
        if ck.config != cfg {
            return Err(TrainError::Invalid(format!(
                "--resume: the checkpoint in {} has a different model configuration",
                last_dir.display()
            )));
        }
        net.params_mut()
            .load(&last_dir.join(model::WEIGHTS_FILE))
            .map_err(merr)?;
    }
    // normalise every run once
    let prep = |runs: &[&Run]| -> Vec<Vec<f32>> {
        runs.iter()
            .map(|r| {
                let mut v = Vec::new();
                norm.apply_into(&r.x, &mut v);
                v
            })
            .collect()
    };
    let xs = prep(train);
    let lens: Vec<usize> = train.iter().map(|r| r.t).collect();
    let ys: Vec<f32> = train.iter().map(|r| r.p).collect();
    let n_batches = train.len().div_ceil(opts.batch_size);
    let total = opts.epochs * n_batches;
    let sched = WarmupCosine {
        peak: opts.lr,
        warmup: (opts.warmup * total as f64).round() as usize,
        total,
        floor: 0.01,
    };
    let mut opt = model::Adam::new(net.vars(), opts.lr, opts.weight_decay).map_err(merr)?;
    let opt_path = last_dir.join(OPTIMIZER_FILE);
    if resume {
        if opt_path.exists() {
            opt.load_state(&opt_path).map_err(merr)?;
        } else {
            tracing::warn!(
                path = %opt_path.display(),
                "--resume: no optimiser state (older run); Adam's moments restart at zero"
            );
        }
    }
    let clip = if opts.clip > 0.0 {
        Some(opts.clip)
    } else {
        None
    };
    let scale = opts.target_scale;
    let training_meta = serde_json::json!({ "options": opts, "extra": extra });
    let mut ck = Checkpoint::new(
        cfg.clone(),
        norm.clone(),
        Catalogue::builtin().hash(),
        feature_names(f),
    );
    ck.seed = opts.seed;
    ck.training = training_meta.clone();
    let curve_path = out.join("curve.csv");
    let mut curve = if resume && curve_path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&curve_path)
            .map_err(io_err(&curve_path))?
    } else {
        let mut c = std::fs::File::create(&curve_path).map_err(io_err(&curve_path))?;
        writeln!(c, "epoch,train_loss,val_mae,lr,seconds").map_err(io_err(&curve_path))?;
        c
    };
    let bar = if opts.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(opts.epochs as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} epoch {pos}/{len} [{bar:25}] {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(opts.variant.clone());
    bar.set_position(state.epoch as u64);
    let mut best_pred: Option<Predictor> = None;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xc0ffee);
    // advance the shuffling RNG past the finished epochs so a resumed run sees the same batches
    for _ in 0..state.epoch {
        let _ = bucket_batches(&lens, opts.batch_size, &mut rng);
    }
    let has_val = !val.is_empty();
    let mut epoch = state.epoch;
    while epoch < opts.epochs && (state.since_best < opts.patience || !has_val) {
        let te = std::time::Instant::now();
        net.reseed_dropout(opts.seed.wrapping_add(epoch as u64 * 7_919));
        let batches = bucket_batches(&lens, opts.batch_size, &mut rng);
        let mut loss_sum = 0.0;
        for b in &batches {
            let items: Vec<(&[f32], usize)> =
                b.iter().map(|&i| (xs[i].as_slice(), lens[i])).collect();
            let (x, mask) = model::batch_tensors(&items, cfg.n_features, &device).map_err(merr)?;
            let y = model::Tensor::from_vec(
                b.iter().map(|&i| ys[i]).collect::<Vec<_>>(),
                b.len(),
                &device,
            )?;
            let p = net.forward(&x, &mask, true).map_err(merr)?;
            let (p, y) = if scale != 1.0 {
                (p.affine(scale, 0.0)?, y.affine(scale, 0.0)?)
            } else {
                (p, y)
            };
            let loss = match loss_kind {
                Loss::Logcosh => model::log_cosh(&p, &y).map_err(merr)?,
                Loss::Mse => model::mse(&p, &y).map_err(merr)?,
                Loss::Mae => (p - y)?.abs()?.mean_all()?,
            };
            let l = loss.to_scalar::<f32>()? as f64;
            if !l.is_finite() {
                return Err(TrainError::Numeric(format!("loss is {l} at epoch {epoch}")));
            }
            loss_sum += l * b.len() as f64;
            opt.set_lr(sched.lr(state.step));
            opt.backward_step(&loss, clip).map_err(merr)?;
            state.step += 1;
        }
        let train_loss = loss_sum / train.len() as f64;
        epoch += 1;
        state.epoch = epoch;
        // validation MAE (points), eval mode
        ck.save(&last_dir, &net).map_err(merr)?;
        opt.save_state(&opt_path).map_err(merr)?;
        let val_mae = if has_val {
            let mut pr = Predictor::load(&last_dir).map_err(merr)?;
            pr.set_mc_samples(0);
            let ph = predict_runs(&mut pr, val, 0)?;
            let m = ph
                .iter()
                .zip(val)
                .map(|(a, r)| (a - r.p as f64).abs())
                .sum::<f64>()
                / val.len() as f64
                * 100.0;
            if m < state.best_val_mae {
                state.best_val_mae = m;
                state.best_epoch = epoch;
                state.since_best = 0;
                ck.training = serde_json::json!({ "options": opts, "extra": extra, "best_epoch": epoch, "val_mae": m });
                ck.save(out, &net).map_err(merr)?;
                ck.training = training_meta.clone();
                best_pred = Some(pr);
            } else {
                state.since_best += 1;
            }
            m
        } else {
            state.best_epoch = epoch;
            ck.save(out, &net).map_err(merr)?;
            f64::NAN
        };
        writeln!(
            curve,
            "{epoch},{train_loss:.6},{val_mae:.4},{:.3e},{:.1}",
            sched.lr(state.step),
            te.elapsed().as_secs_f64()
        )
        .map_err(io_err(&curve_path))?;
        let sp = &state_path;
        std::fs::write(
            sp,
            serde_json::to_string(&state).map_err(|source| TrainError::Json {
                path: sp.clone(),
                source,
            })?,
        )
        .map_err(io_err(sp))?;
        bar.set_position(epoch as u64);
        bar.set_message(format!(
            "loss {train_loss:.5} val MAE {val_mae:.2} (best {:.2} @ {})",
            state.best_val_mae, state.best_epoch
        ));
        tracing::debug!(epoch, train_loss, val_mae, "epoch done");
    }
    bar.finish_and_clear();
    let mut pred = match best_pred {
        Some(p) => p,
        None => Predictor::load(out).map_err(merr)?,
    };
    pred.set_mc_samples(0);
    let names = |rs: &[&Run]| -> Vec<String> {
        let mut v: Vec<String> = rs.iter().map(|r| r.app.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let summary = TrainSummary {
        options: opts.clone(),
        train_apps: names(train),
        val_apps: names(val),
        n_train_runs: train.len(),
        n_val_runs: val.len(),
        epochs_run: state.epoch,
        best_epoch: state.best_epoch,
        best_val_mae: if state.best_val_mae < f64::MAX {
            state.best_val_mae
        } else {
            f64::NAN
        },
        n_params: net.n_params(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    let p = out.join("train.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&summary).map_err(|source| TrainError::Json {
            path: p.clone(),
            source,
        })?,
    )
    .map_err(io_err(&p))?;
    Ok((summary, pred))
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
        Ok(Box::new(CfPredictor {
            pred,
            desc: format!(
                "{variant} params={} epochs={} best_epoch={} val_mae={:.2} lr={} loss={} scale={} max_len={}",
                s.n_params, s.epochs_run, s.best_epoch, s.best_val_mae, opts.lr, opts.loss, opts.target_scale, opts.max_len
            ),
        }))
    }
}

/// `cloudformer train`: every application of the dataset trains the model except the
/// validation application(s) (early stopping).
pub fn train_model(
    runs: &[Run],
    opts: &TrainOptions,
    data_dir: &Path,
    out: &Path,
    resume: bool,
) -> Result<TrainSummary> {
    validate_runs(runs, 1)?;
    let apps = app_infos(runs);
    let split = train_only_split(&apps, &opts.val_apps, opts.seed)?;
    let idx = train_val_indices(&split, runs)?;
    let tr: Vec<&Run> = idx.train.iter().map(|&i| &runs[i]).collect();
    let va: Vec<&Run> = idx.val.iter().map(|&i| &runs[i]).collect();
    let extra = serde_json::json!({
        "data": data_dir.display().to_string(),
        "split": split,
        "apps": apps_of(runs),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    let (summary, _) = train_on(&tr, &va, opts, out, resume, extra)?;
    Ok(summary)
}

/// `cloudformer predict`: P̂ per tenant-run of `runs` with the model in `model_dir` (checked
/// against the built-in catalogue the data was loaded with).
pub fn predict_dir(
    model_dir: &Path,
    data_dir: &Path,
    runs: &[Run],
    k: usize,
) -> Result<Vec<PredictedRun>> {
    let _ = data_dir;
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
