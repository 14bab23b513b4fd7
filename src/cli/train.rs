//! `cloudformer train --data DIR --out MODEL_DIR [...]`: trains one CloudFormer on a dataset
//! (validation applications held out for early stopping) and writes a checkpoint that
//! `predict`, `eval` and `serve` load.

use std::path::PathBuf;

use anyhow::Context;

/// The library's training defaults: the one source of every flag's default below.
fn defaults() -> train::cf::TrainOptions {
    train::cf::TrainOptions::default()
}

/// CloudFormer training flags, shared by `train` and `eval` (the paper's recipe by default).
#[derive(clap::Args, Clone, Debug)]
pub struct CfFlags {
    /// Peak learning rate (Adam; the paper's 1e-5).
    #[arg(long, default_value_t = defaults().lr)]
    pub lr: f64,
    /// Linear warm-up, as a share of all optimiser steps, before cosine decay.
    #[arg(long, default_value_t = defaults().warmup)]
    pub warmup: f64,
    /// Maximum epochs.
    #[arg(long, default_value_t = defaults().epochs)]
    pub epochs: usize,
    /// Runs per batch (batches are bucketed by length).
    #[arg(long, default_value_t = defaults().batch_size)]
    pub batch_size: usize,
    /// Early stopping: epochs without a better validation MAE.
    #[arg(long, default_value_t = defaults().patience)]
    pub patience: usize,
    /// Decoupled weight decay (0 = plain Adam, as in the paper).
    #[arg(long, default_value_t = defaults().weight_decay)]
    pub weight_decay: f64,
    /// Loss: logcosh (paper) | mse | mae.
    #[arg(long, default_value_t = defaults().loss)]
    pub loss: String,
    /// Multiply P and P̂ by this before the loss (100 makes log-cosh robust, not just MSE/2).
    #[arg(long, default_value_t = defaults().target_scale)]
    pub target_scale: f64,
    /// Cap on the time axis seen by the temporal branch (longer runs are pooled; 0 = no cap).
    #[arg(long, default_value_t = defaults().max_len)]
    pub max_len: usize,
    /// Clip the global gradient norm (0 = off).
    #[arg(long, default_value_t = defaults().clip)]
    pub clip: f64,
    /// Override the model's encoder blocks per branch (0 = the model's default, the paper's 4).
    #[arg(long, default_value_t = defaults().blocks)]
    pub blocks: usize,
    /// Sliding-window training: learn from every W-second window of each run, labelled with the
    /// mean per-second P over the window (run P where the application reports none); 0 = whole runs.
    #[arg(long, default_value_t = defaults().window_s, value_name = "W")]
    pub window_s: usize,
    /// Seconds between sliding-window starts (0 = W / 2).
    #[arg(long, default_value_t = defaults().window_stride)]
    pub window_stride: usize,
    /// The network's input: masked (kept features, log1p by unit, robust scaling, a missing
    /// flag per feature and second) | plain (the models before 2026-12-05: every feature
    /// z-scored, nulls as the training mean; for comparisons).
    #[arg(long, default_value_t = defaults().encoding)]
    pub encoding: train::cf::InputEncoding,
    /// Ratios fed to the network beside the kept features (masked encoding; comma-separated):
    /// cpu-share (cpu.usage_pct / 100 / min(CPU quota, cpuset size): about 1 when the tenant
    /// uses all the CPU it may) | cpu-demand ((own + contending CPU use) / 100 / cpuset size).
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    pub derived: Vec<model::DerivedKind>,
    /// Pre-LayerNorm encoder blocks (h + MHA(LN(h)), h + FFN(LN(h)), a final LayerNorm per
    /// branch) instead of the paper's post-LN ones.
    #[arg(long, default_value_t = defaults().pre_norm)]
    pub pre_norm: bool,
    /// After early stopping chose the epoch count on the validation application, train a fresh
    /// model on the training and validation applications together for that many epochs and
    /// keep it (the checkpoint's train.json records `refit_runs`).
    #[arg(long, default_value_t = defaults().refit)]
    pub refit: bool,
    /// Choose the learning rate and the encoder blocks on the training applications only: they
    /// are dealt into K groups, every candidate (--select-lr × --select-blocks) trains K times
    /// with one group held out for early stopping, the best mean validation MAE wins, and it
    /// trains on every training application for its median best epoch (selection.json records
    /// all scores). Costs candidates × K + 1 trainings.
    #[arg(long, value_name = "K", conflicts_with = "refit")]
    pub inner_folds: Option<usize>,
    /// Learning rates tried by --inner-folds (comma-separated; default: --lr).
    #[arg(long, value_delimiter = ',', requires = "inner_folds")]
    pub select_lr: Vec<f64>,
    /// Encoder blocks per branch tried by --inner-folds (comma-separated; default: --blocks).
    #[arg(long, value_delimiter = ',', requires = "inner_folds")]
    pub select_blocks: Vec<usize>,
}

/// The values given, or the single default.
fn or_default<T: Clone>(given: &[T], default: T) -> Vec<T> {
    if given.is_empty() {
        vec![default]
    } else {
        given.to_vec()
    }
}

impl CfFlags {
    pub fn to_options(&self, variant: &str, seed: u64, quiet: bool) -> train::cf::TrainOptions {
        train::cf::TrainOptions {
            variant: variant.to_string(),
            lr: self.lr,
            warmup: self.warmup,
            epochs: self.epochs,
            batch_size: self.batch_size,
            patience: self.patience,
            weight_decay: self.weight_decay,
            loss: self.loss.clone(),
            target_scale: self.target_scale,
            max_len: self.max_len,
            clip: self.clip,
            blocks: self.blocks,
            seed,
            quiet,
            val_apps: Vec::new(),
            val_count: defaults().val_count,
            window_s: self.window_s,
            window_stride: self.window_stride,
            encoding: self.encoding,
            derived: self.derived.clone(),
            pre_norm: self.pre_norm,
            refit: self.refit,
            select: self.inner_folds.map(|folds| train::select::SelectOptions {
                lrs: or_default(&self.select_lr, self.lr),
                blocks: or_default(&self.select_blocks, self.blocks),
                folds,
            }),
        }
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Dataset directory (campaign output: runs.parquet + samples/); repeat to train on several
    /// (e.g. --data dataset/data --data dataset/idle: run ids get their directory's name).
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// NAME=K: every run of the --data directory named NAME (its last path component) counts K
    /// times in training, to weigh a small directory up beside a large one (e.g. --repeat
    /// idle=2). Repeatable; needs two or more --data.
    #[arg(long, value_name = "NAME=K", value_parser = parse_repeat)]
    pub repeat: Vec<(String, usize)>,
    /// Model directory to write (checkpoint, config.json, curve.csv, train.json).
    #[arg(long)]
    pub out: PathBuf,
    /// cf (faithful) | cf-permetric | cf-temporal | cf-system.
    #[arg(long, default_value_t = defaults().variant)]
    pub variant: String,
    /// Validation applications for early stopping, by name (default: --val-count of them chosen
    /// by the seed; with fewer than 3 applications, 15 % of the runs).
    #[arg(long, value_delimiter = ',', conflicts_with = "val_count")]
    pub val_apps: Vec<String>,
    /// How many validation applications the seed chooses, each time the first whose kind stays
    /// represented in training: more of them make the epoch early stopping picks less a matter
    /// of one application's noise; add --refit to train on them too once it is chosen (e.g.
    /// --val-count 3 --refit). At least 1, fewer than the applications.
    #[arg(long, value_name = "N", default_value_t = defaults().val_count)]
    pub val_count: usize,
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Continue from the last epoch checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub cf: CfFlags,
}

pub fn run(args: TrainArgs, ctx: &super::Ctx) -> anyhow::Result<()> {
    let mut runs = super::load_datasets(&args.data)?;
    for (name, times) in &args.repeat {
        let added = train::data::repeat_dir(&mut runs, name, *times)
            .with_context(|| format!("--repeat {name}={times}"))?;
        tracing::info!(dir = %name, times, added, "repeated a dataset directory's runs");
    }
    let mut opts = args.cf.to_options(&args.variant, args.seed, ctx.quiet);
    opts.val_apps = args.val_apps.clone();
    opts.val_count = args.val_count;
    let summary = train::cf::train_model(&runs, &opts, &args.data, &args.out, args.resume)
        .with_context(|| format!("training into {}", args.out.display()))?;
    if !ctx.quiet {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// `NAME=K` of `--repeat`, K ≥ 2.
fn parse_repeat(s: &str) -> Result<(String, usize), String> {
    let (name, k) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: give NAME=K, e.g. idle=2"))?;
    let k: usize = k
        .parse()
        .map_err(|_| format!("{s:?}: K must be a whole number, e.g. {name}=2"))?;
    if name.is_empty() || k < 2 {
        return Err(format!(
            "{s:?}: give a directory name and K of 2 or more, e.g. idle=2"
        ));
    }
    Ok((name.to_string(), k))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        train: super::TrainArgs,
    }

    #[test]
    fn the_cli_defaults_are_the_librarys() {
        let cli = Cli::parse_from(["t", "--data", "d", "--out", "o"]);
        let a = cli.train;
        let opts = a.cf.to_options(&a.variant, a.seed, true);
        assert_eq!(opts, train::cf::TrainOptions::default());
    }

    #[test]
    fn val_count_or_names_not_both() {
        let cli = Cli::parse_from(["t", "--data", "d", "--out", "o", "--val-count", "3"]);
        assert_eq!((cli.train.val_count, cli.train.val_apps.len()), (3, 0));
        let e = Cli::try_parse_from([
            "t",
            "--data",
            "d",
            "--out",
            "o",
            "--val-count",
            "3",
            "--val-apps",
            "nginx",
        ])
        .err()
        .expect("--val-count with --val-apps")
        .to_string();
        assert!(e.contains("--val-count") && e.contains("--val-apps"), "{e}");
    }

    #[test]
    fn repeat_takes_name_equals_k() {
        let cli = Cli::parse_from([
            "t", "--data", "a", "--data", "b", "--out", "o", "--repeat", "b=3",
        ]);
        assert_eq!(cli.train.repeat, vec![("b".to_string(), 3)]);
        for bad in ["b", "b=1", "=2", "b=two"] {
            let e = Cli::try_parse_from(["t", "--data", "d", "--out", "o", "--repeat", bad])
                .err()
                .unwrap_or_else(|| panic!("--repeat {bad} accepted"))
                .to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn inner_selection_flags() {
        let cli = Cli::parse_from([
            "t",
            "--data",
            "d",
            "--out",
            "o",
            "--inner-folds",
            "3",
            "--select-lr",
            "1e-3,3e-4",
            "--lr",
            "5e-4",
            "--blocks",
            "2",
        ]);
        let opts = cli.train.cf.to_options("cf", 42, true);
        let sel = opts.select.expect("--inner-folds turns the selection on");
        assert_eq!(sel.folds, 3);
        assert_eq!(sel.lrs, vec![1e-3, 3e-4]);
        assert_eq!(sel.blocks, vec![2], "--select-blocks defaults to --blocks");
        // A candidate list without --inner-folds would select nothing: refused.
        let e = Cli::try_parse_from(["t", "--data", "d", "--out", "o", "--select-lr", "1e-3"])
            .err()
            .expect("--select-lr without --inner-folds")
            .to_string();
        assert!(e.contains("--inner-folds"), "{e}");
        // The selection refits already.
        assert!(Cli::try_parse_from([
            "t",
            "--data",
            "d",
            "--out",
            "o",
            "--inner-folds",
            "2",
            "--refit"
        ])
        .is_err());
    }
}
