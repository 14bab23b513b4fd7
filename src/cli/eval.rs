//! `cloudformer eval --data DIR [--data DIR …] --protocol paper|loao [--models …] --out DIR`:
//! every model on the same leave-applications-out splits; writes results.json, predictions.csv,
//! summary.md.

use std::path::PathBuf;

use anyhow::Context;

use super::train::CfFlags;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Dataset directory (campaign output: runs.parquet + samples/); repeat to evaluate on
    /// several together (run ids get their directory's name, applications are merged by name).
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// `paper`: 6 seeded random leave-applications-out splits (test = 2 static + 2 dynamic apps);
    /// `loao`: leave-one-application-out.
    #[arg(long, default_value = "paper")]
    pub protocol: String,
    /// Number of random splits for `--protocol paper`.
    #[arg(long, default_value_t = 6)]
    pub splits: usize,
    /// Seed of the splits (published in the results) and of every model.
    #[arg(long, default_value_t = train::cf::TrainOptions::default().seed)]
    pub seed: u64,
    /// Comma-separated models: mean, placement, cpu-share (trivial), lr, glm, dt, rf, rf-rich, gbdt, lstm, cf, cf-permetric,
    /// cf-temporal, cf-system.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mean,placement,cpu-share,lr,glm,dt,rf,rf-rich,gbdt,lstm,cf,cf-permetric,cf-temporal,cf-system"
    )]
    pub models: Vec<String>,
    /// Early prediction: also evaluate on the first k seconds of each run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10,30,60")]
    pub early: Vec<usize>,
    /// Per-window evaluation: every run is cut into non-overlapping W-second windows, labelled
    /// with the mean per-second P over the window (the run's P where the application reports
    /// none); every model trains and is tested on those windows, and early-prediction ks ≥ W
    /// are dropped. 0 = whole tenant-runs.
    #[arg(long, value_name = "W", default_value_t = 0)]
    pub per_window: usize,
    /// With --per-window W: the training and validation applications' windows start every S
    /// seconds (S divides W; below W they overlap, e.g. 10 gives 3× the training windows of
    /// 30), while the test windows stay the non-overlapping ones. 0 = W.
    #[arg(long, value_name = "S", default_value_t = 0, requires = "per_window")]
    pub train_stride: usize,
    /// Validation applications per split, for early stopping and the baselines'
    /// hyper-parameters (one by default). More of them make the epoch early stopping picks
    /// less a matter of one application's noise, at the cost of training applications; add
    /// --refit to train again on training and validation applications together. E.g.
    /// `--protocol loao --val-apps 3 --refit`.
    /// At least 1: refused before any data is read.
    #[arg(long, value_name = "N", default_value_t = train::split::DEFAULT_VAL_APPS,
          value_parser = at_least_one("early stopping needs a validation application"))]
    pub val_apps: usize,
    /// The tabular baselines, too, are fitted again on training and validation applications
    /// together, with the hyper-parameters they chose on validation (λ, tree grid point,
    /// boosting rounds): the counterpart of CloudFormer's --refit, for comparisons where
    /// CloudFormer refits. E.g. `--val-apps 3 --refit --refit-baselines`.
    #[arg(long)]
    pub refit_baselines: bool,
    /// CloudFormer variants train K members per fold (seeds: the split's, then spread from it)
    /// and predict their mean P̂: the seed ensemble a model directory with `members/` serves.
    /// K times the training time; the baselines are not affected. E.g. `--models
    /// cf-temporal,gbdt --members 3`. At least 1.
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = at_least_one("a fold needs one member"))]
    pub members: usize,
    /// LSTM baseline epochs.
    #[arg(long, default_value_t = train::baselines::lstm::LstmParams::default().epochs)]
    pub lstm_epochs: usize,
    /// Keep the per-split CloudFormer weights under OUT/checkpoints (default: only curves).
    #[arg(long)]
    pub keep_checkpoints: bool,
    /// Results directory (e.g. bench/results/paper). Each fold is written to OUT/folds/ when
    /// it finishes; the same command run again takes those and computes only the rest.
    #[arg(long)]
    pub out: PathBuf,
    /// Stop at the first fold boundary after this long since the command started (e.g. 20m,
    /// 1h; at least one fold is computed): the folds done stay in OUT/folds/ and the same
    /// command continues from them. Default: run to the end.
    #[arg(long, value_name = "DURATION", value_parser = super::collect::parse_duration)]
    pub stop_after: Option<std::time::Duration>,
    #[command(flatten)]
    pub cf: CfFlags,
}

pub fn run(args: EvalArgs, ctx: &super::Ctx) -> anyhow::Result<()> {
    let deadline = args.stop_after.map(|d| std::time::Instant::now() + d);
    let protocol: train::split::Protocol = args.protocol.parse()?;
    let models = args
        .models
        .iter()
        .map(|m| train::eval::ModelSpec::parse(m.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = super::load_datasets(&args.data)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let options = train::eval::EvalOptions {
        protocol,
        n_splits: args.splits,
        seed: args.seed,
        models,
        early_ks: args.early.clone(),
        lstm: train::baselines::lstm::LstmParams {
            epochs: args.lstm_epochs,
            ..Default::default()
        },
        window_s: args.per_window,
        train_stride: args.train_stride,
        val_apps: args.val_apps,
        refit_baselines: args.refit_baselines,
        members: args.members,
        command,
    };
    let cf_opts = args.cf.to_options("cf", args.seed, true);
    let mut trainer = train::cf::CfTrainer::new(cf_opts, args.keep_checkpoints);
    let scratch = args.out.join("checkpoints");
    let plan = train::eval::plan(&runs, &options, Some(&trainer));
    let folds = args.out.join("folds");
    let store = train::folds::FoldStore::open(&folds, &plan)?;
    let parts = train::eval::Parts {
        store: &store,
        deadline,
    };
    let outcome = train::eval::evaluate_with_bar(
        &runs,
        &options,
        Some(&mut trainer),
        &scratch,
        &parts,
        ctx.quiet,
    )?;
    let res = match outcome {
        train::eval::Outcome::Complete(res) => res,
        train::eval::Outcome::Stopped { done, total } => {
            eprintln!(
                "stopped after --stop-after: {done} of {total} folds are in {}; run the same \
                 command again to continue",
                folds.display()
            );
            return Ok(());
        }
    };
    res.write(&args.out)
        .with_context(|| format!("writing results into {}", args.out.display()))?;
    if !ctx.quiet {
        println!("{}", res.markdown());
        println!("results: {}", args.out.display());
    }
    Ok(())
}

/// A parser for a whole number of at least 1 (`--val-apps`, `--members`), checked while the
/// arguments are parsed; `why` ends the message for 0.
fn at_least_one(why: &'static str) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s: &str| match s.parse::<usize>() {
        Ok(0) => Err(format!("must be at least 1: {why}")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a whole number: {e}")),
    }
}
