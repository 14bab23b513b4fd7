//! One CloudFormer training run ([`train_on`]), in named steps: check the options, cut sliding
//! windows when asked, fit the input encoding on the training runs, build (or resume) the
//! network and its optimiser, then epochs of length-bucketed batches, each followed by a
//! checkpoint of the latest weights and early stopping on the validation runs.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use dataset::catalogue::Catalogue;
use indicatif::{ProgressBar, ProgressStyle};
use model::{Checkpoint, CloudFormer, Config, Device, Predictor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cf::{
    feature_names, fit_normalizer, merr, predict_runs, variant_config, TrainOptions, TrainSummary,
    OPTIMIZER_FILE,
};
use crate::data::Run;
use crate::error::{io_err, Result, TrainError};
use crate::schedule::{bucket_batches, Loss, WarmupCosine};

/// Where a training stands after each epoch (`last/state.json`, read by `--resume`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    epoch: usize,
    step: usize,
    best_val_mae: f64,
    best_epoch: usize,
    since_best: usize,
}

impl ResumeState {
    fn fresh() -> Self {
        ResumeState {
            epoch: 0,
            step: 0,
            best_val_mae: f64::MAX,
            best_epoch: 0,
            since_best: 0,
        }
    }
}

/// Step 1: the options that no training can run with are refused; the loss is parsed.
fn check_options(opts: &TrainOptions) -> Result<Loss> {
    let loss: Loss = opts.loss.parse().map_err(TrainError::Invalid)?;
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
    Ok(loss)
}

/// Step 2: with `--window-s`, every window of the runs becomes a run of its own (labelled by
/// its per-second P); `None` trains on whole runs.
fn windowed(
    train: &[&Run],
    val: &[&Run],
    opts: &TrainOptions,
) -> Result<Option<(Vec<Run>, Vec<Run>)>> {
    if opts.window_s == 0 {
        return Ok(None);
    }
    let tr = crate::data::sliding_windows(train, opts.window_s, opts.window_stride);
    let va = crate::data::sliding_windows(val, opts.window_s, opts.window_stride);
    if tr.is_empty() {
        let longest = train.iter().map(|r| r.t).max().unwrap_or(0);
        return Err(TrainError::Invalid(format!(
            "--window-s {}: no training run is that long (the longest has {longest} s); \
             choose a window of at most {longest} s",
            opts.window_s
        )));
    }
    tracing::info!(
        windows = tr.len(),
        val_windows = va.len(),
        window_s = opts.window_s,
        "sliding-window training"
    );
    Ok(Some((tr, va)))
}

/// Step 4 with `--resume`: the state, weights and configuration of `last_dir`.
fn resume_from(last_dir: &Path, cfg: &Config, net: &mut CloudFormer) -> Result<ResumeState> {
    let state_path = last_dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| {
        TrainError::Invalid(format!(
            "--resume: no previous training state in {} ({e})",
            last_dir.display()
        ))
    })?;
    let state = serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: state_path.clone(),
        source,
    })?;
    let ck = Checkpoint::read(last_dir).map_err(merr)?;
    if &ck.config != cfg {
        return Err(TrainError::Invalid(format!(
            "--resume: the checkpoint in {} has a different model configuration",
            last_dir.display()
        )));
    }
    net.params_mut()
        .load(&last_dir.join(model::WEIGHTS_FILE))
        .map_err(merr)?;
    Ok(state)
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text).map_err(io_err(path))
}

/// `curve.csv`: appended to when resuming, else started with its header.
fn open_curve(path: &Path, resume: bool) -> Result<File> {
    if resume && path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(path));
    }
    let mut c = File::create(path).map_err(io_err(path))?;
    writeln!(c, "epoch,train_loss,val_mae,lr,seconds").map_err(io_err(path))?;
    Ok(c)
}

fn epoch_bar(opts: &TrainOptions, done: usize) -> ProgressBar {
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
    bar.set_position(done as u64);
    bar
}

/// The training runs, encoded once: network inputs, lengths and labels.
struct Encoded {
    xs: Vec<Vec<f32>>,
    lens: Vec<usize>,
    ys: Vec<f32>,
}

impl Encoded {
    fn of(runs: &[&Run], norm: &model::Normalizer) -> Encoded {
        let xs = runs
            .iter()
            .map(|r| {
                let mut v = Vec::new();
                norm.apply_into(&r.x, &mut v);
                v
            })
            .collect();
        Encoded {
            xs,
            lens: runs.iter().map(|r| r.t).collect(),
            ys: runs.iter().map(|r| r.p).collect(),
        }
    }
}

/// The network, its optimiser and what it is being trained with.
struct Learner<'a> {
    net: CloudFormer,
    opt: model::Adam,
    sched: WarmupCosine,
    cfg: &'a Config,
    opts: &'a TrainOptions,
    loss: Loss,
    device: Device,
}

impl Learner<'_> {
    /// Step 5: one epoch over `batches`; the mean training loss per run.
    fn epoch(
        &mut self,
        data: &Encoded,
        batches: &[Vec<usize>],
        state: &mut ResumeState,
    ) -> Result<f64> {
        let clip = (self.opts.clip > 0.0).then_some(self.opts.clip);
        let scale = self.opts.target_scale;
        let mut loss_sum = 0.0;
        for b in batches {
            let items: Vec<(&[f32], usize)> = b
                .iter()
                .map(|&i| (data.xs[i].as_slice(), data.lens[i]))
                .collect();
            let (x, mask) =
                model::batch_tensors(&items, self.cfg.n_features, &self.device).map_err(merr)?;
            let y = model::Tensor::from_vec(
                b.iter().map(|&i| data.ys[i]).collect::<Vec<_>>(),
                b.len(),
                &self.device,
            )?;
            let p = self.net.forward(&x, &mask, true).map_err(merr)?;
            let (p, y) = if scale != 1.0 {
                (p.affine(scale, 0.0)?, y.affine(scale, 0.0)?)
            } else {
                (p, y)
            };
            let loss = match self.loss {
                Loss::Logcosh => model::log_cosh(&p, &y).map_err(merr)?,
                Loss::Mse => model::mse(&p, &y).map_err(merr)?,
                Loss::Mae => (p - y)?.abs()?.mean_all()?,
            };
            let l = loss.to_scalar::<f32>()? as f64;
            if !l.is_finite() {
                return Err(TrainError::Numeric(format!(
                    "loss is {l} at epoch {}",
                    state.epoch
                )));
            }
            loss_sum += l * b.len() as f64;
            self.opt.set_lr(self.sched.lr(state.step));
            self.opt.backward_step(&loss, clip).map_err(merr)?;
            state.step += 1;
        }
        Ok(loss_sum / data.ys.len().max(1) as f64)
    }
}

/// Step 6: the validation MAE (points of P×100) of the checkpoint in `dir`, with its predictor.
fn validate(dir: &Path, val: &[&Run]) -> Result<(f64, Predictor)> {
    let mut pr = Predictor::load(dir).map_err(merr)?;
    pr.set_mc_samples(0);
    let ph = predict_runs(&mut pr, val, 0)?;
    let mae = ph
        .iter()
        .zip(val)
        .map(|(a, r)| (a - r.p as f64).abs())
        .sum::<f64>()
        / val.len() as f64
        * 100.0;
    Ok((mae, pr))
}

/// The median length of `runs` in seconds (0 for none).
fn median_len(runs: &[&Run]) -> usize {
    let mut t: Vec<usize> = runs.iter().map(|r| r.t).collect();
    t.sort_unstable();
    t.get(t.len() / 2).copied().unwrap_or(0)
}

/// The applications of `runs`, sorted, once each.
pub(crate) fn app_names(runs: &[&Run]) -> Vec<String> {
    let mut v: Vec<String> = runs.iter().map(|r| r.app.clone()).collect();
    v.sort();
    v.dedup();
    v
}

/// Trains one model on `train`, early-stopping on `val`. Writes into `out`: the best checkpoint
/// (`config.json` + `model.safetensors`, the training options in its `training` field),
/// `last/` (the latest epoch, for `resume`), `curve.csv` and `train.json`. With `opts.refit`
/// (and validation runs), step 7: a fresh model trained on `train` and `val` together for the
/// chosen number of epochs (in `out/refit/`) replaces the checkpoint in `out`. With
/// `opts.select`, the recipe is chosen by inner leave-applications-out on `train` and `val`
/// together instead ([`crate::select`]).
pub fn train_on(
    train: &[&Run],
    val: &[&Run],
    opts: &TrainOptions,
    out: &Path,
    resume: bool,
    extra: serde_json::Value,
) -> Result<(TrainSummary, Predictor)> {
    if let Some(sel) = &opts.select {
        if resume {
            return Err(TrainError::Invalid(
                "--resume cannot continue an inner selection (--inner-folds); start it again"
                    .into(),
            ));
        }
        return crate::select::select_and_train(train, val, opts, sel, out, extra);
    }
    let (mut summary, pred) = train_once(train, val, opts, out, resume, extra.clone(), None)?;
    if !opts.refit || val.is_empty() || summary.best_epoch == 0 {
        return Ok((summary, pred));
    }
    let all: Vec<&Run> = train.iter().chain(val).copied().collect();
    let dir = out.join("refit");
    let stop = Some(summary.best_epoch);
    let (_, pred) = train_once(&all, &[], opts, &dir, false, extra, stop)?;
    for file in [model::CONFIG_FILE, model::WEIGHTS_FILE] {
        let (from, to) = (dir.join(file), out.join(file));
        std::fs::copy(&from, &to).map_err(io_err(&to))?;
    }
    summary.refit_runs = Some(all.len());
    write_json(&out.join("train.json"), &summary)?;
    tracing::info!(
        epochs = summary.best_epoch,
        runs = all.len(),
        "refit on the training and validation runs"
    );
    Ok((summary, pred))
}

/// One training run; `stop_at` ends it after that many epochs (the schedule still spans
/// `opts.epochs`).
pub(crate) fn train_once(
    train: &[&Run],
    val: &[&Run],
    opts: &TrainOptions,
    out: &Path,
    resume: bool,
    extra: serde_json::Value,
    stop_at: Option<usize>,
) -> Result<(TrainSummary, Predictor)> {
    let t0 = std::time::Instant::now();
    let f = train
        .first()
        .map(|r| r.f)
        .ok_or_else(|| TrainError::EmptyDataset(" (no training runs)".into()))?;
    let loss = check_options(opts)?;
    let windows = windowed(train, val, opts)?;
    let (train, val): (Vec<&Run>, Vec<&Run>) = match &windows {
        Some((tr, va)) => (tr.iter().collect(), va.iter().collect()),
        None => (train.to_vec(), val.to_vec()),
    };
    let (train, val) = (&train[..], &val[..]);
    // Step 3: the input encoding, from the training runs only.
    let norm = fit_normalizer(train, opts.encoding, &opts.derived)?;
    let cfg = variant_config(&opts.variant, norm.n_inputs(), opts)?;
    // Step 4: the network and optimiser, fresh or resumed.
    let device = model::default_device();
    let mut net = CloudFormer::new(&cfg, opts.seed, &device).map_err(merr)?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let last_dir = out.join("last");
    let (state_path, opt_path): (PathBuf, PathBuf) =
        (last_dir.join("state.json"), last_dir.join(OPTIMIZER_FILE));
    let mut state = if resume {
        resume_from(&last_dir, &cfg, &mut net)?
    } else {
        ResumeState::fresh()
    };
    let data = Encoded::of(train, &norm);
    let total = opts.epochs * train.len().div_ceil(opts.batch_size);
    let mut opt = model::Adam::new(net.vars(), opts.lr, opts.weight_decay).map_err(merr)?;
    if resume && opt_path.exists() {
        opt.load_state(&opt_path).map_err(merr)?;
    } else if resume {
        tracing::warn!(
            path = %opt_path.display(),
            "--resume: no optimiser state (older run); Adam's moments restart at zero"
        );
    }
    let mut learner = Learner {
        net,
        opt,
        sched: WarmupCosine {
            peak: opts.lr,
            warmup: (opts.warmup * total as f64).round() as usize,
            total,
            floor: 0.01,
        },
        cfg: &cfg,
        opts,
        loss,
        device,
    };
    // What one input of the model spans: the median length of its training runs (or windows).
    // Live mode keeps that many seconds per tenant unless told otherwise.
    let input_len_s = median_len(train);
    let training_meta =
        serde_json::json!({ "options": opts, "extra": extra, "input_len_s": input_len_s });
    let mut ck = Checkpoint::new(
        cfg.clone(),
        norm,
        Catalogue::builtin().hash(),
        feature_names(f),
    );
    ck.seed = opts.seed;
    ck.training = training_meta.clone();
    let curve_path = out.join("curve.csv");
    let mut curve = open_curve(&curve_path, resume)?;
    let bar = epoch_bar(opts, state.epoch);
    let mut best_pred: Option<Predictor> = None;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xc0ffee);
    // Advance the shuffling RNG past the finished epochs so a resumed run sees the same batches.
    for _ in 0..state.epoch {
        let _ = bucket_batches(&data.lens, opts.batch_size, &mut rng);
    }
    let has_val = !val.is_empty();
    let last_epoch = stop_at.unwrap_or(opts.epochs).min(opts.epochs);
    while state.epoch < last_epoch && (state.since_best < opts.patience || !has_val) {
        let te = std::time::Instant::now();
        learner
            .net
            .reseed_dropout(opts.seed.wrapping_add(state.epoch as u64 * 7_919));
        let batches = bucket_batches(&data.lens, opts.batch_size, &mut rng);
        let train_loss = learner.epoch(&data, &batches, &mut state)?;
        state.epoch += 1;
        let epoch = state.epoch;
        ck.save(&last_dir, &learner.net).map_err(merr)?;
        learner.opt.save_state(&opt_path).map_err(merr)?;
        // Step 6: early stopping on the validation runs (eval mode); the best epoch is `out`.
        let val_mae = if has_val {
            let (m, pr) = validate(&last_dir, val)?;
            if m < state.best_val_mae {
                (state.best_val_mae, state.best_epoch, state.since_best) = (m, epoch, 0);
                ck.training = serde_json::json!({ "options": opts, "extra": extra, "best_epoch": epoch, "val_mae": m, "input_len_s": input_len_s });
                ck.save(out, &learner.net).map_err(merr)?;
                ck.training = training_meta.clone();
                best_pred = Some(pr);
            } else {
                state.since_best += 1;
            }
            m
        } else {
            state.best_epoch = epoch;
            ck.save(out, &learner.net).map_err(merr)?;
            f64::NAN
        };
        let lr = learner.sched.lr(state.step);
        let secs = te.elapsed().as_secs_f64();
        writeln!(
            curve,
            "{epoch},{train_loss:.6},{val_mae:.4},{lr:.3e},{secs:.1}"
        )
        .map_err(io_err(&curve_path))?;
        write_json(&state_path, &state)?;
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
    let summary = TrainSummary {
        options: opts.clone(),
        train_apps: app_names(train),
        val_apps: app_names(val),
        n_train_runs: train.len(),
        n_val_runs: val.len(),
        epochs_run: state.epoch,
        best_epoch: state.best_epoch,
        best_val_mae: if state.best_val_mae < f64::MAX {
            state.best_val_mae
        } else {
            f64::NAN
        },
        n_params: learner.net.n_params(),
        seconds: t0.elapsed().as_secs_f64(),
        refit_runs: None,
        selection: None,
    };
    write_json(&out.join("train.json"), &summary)?;
    Ok((summary, pred))
}
