//! `cloudformer`: one binary for the host agent, campaigns, datasets, training, evaluation and
//! the prediction server. Each subcommand lives in `src/cli/<name>.rs` and calls into its crate.

use clap::{Parser, Subcommand};

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod alloc;

#[derive(Parser)]
#[command(name = "cloudformer", version, about, propagate_version = true)]
struct Cli {
    /// Only warnings and errors; no progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// More logging (repeat for more).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host agent in the foreground: sample every tenant each second into Parquet.
    #[command(
        after_help = "Example:\n  cloudformer collect --out /var/lib/cloudformer --tenants 'machine.slice/machine-qemu*.scope' --duration 10m"
    )]
    Collect(cli::collect::CollectArgs),
    /// Run or inspect labelled-data campaigns (real applications as tenants).
    #[command(
        subcommand,
        after_help = "Example:\n  cloudformer campaign run --plan campaigns/default.toml --out /tmp/campaign"
    )]
    Campaign(cli::campaign::CampaignCmd),
    /// Inspect datasets.
    #[command(
        subcommand,
        after_help = "Example:\n  cloudformer dataset summary dataset/data"
    )]
    Dataset(cli::dataset::DatasetCmd),
    /// Train a CloudFormer model (or a baseline) on a dataset.
    #[command(
        after_help = "Example:\n  cloudformer train --data dataset/data --out models/mine\n  \
                      cloudformer train --data dataset/data --data dataset/idle --out models/mine"
    )]
    Train(cli::train::TrainArgs),
    /// Evaluate models and baselines with the leave-applications-out protocols.
    #[command(
        after_help = "Example:\n  cloudformer eval --data dataset/data --protocol loao --out bench/results/loao --stop-after 30m\n  (run the same command again to continue from the folds in bench/results/loao/folds)\n  cloudformer eval --data dataset/data --protocol loao --per-window 30 --train-stride 10 --early 10 --out bench/results/loao-w30\n  (per-window P: every model is tested on the runs' non-overlapping 30-s windows and trains on 30-s windows every 10 s)\n  cloudformer eval --data dataset/idle --data dataset/unpinned --protocol loao --models mean,rf,cf --out bench/results/loao-intel\n  (several directories evaluated together: run ids get their directory's name)"
    )]
    Eval(cli::eval::EvalArgs),
    /// Write plots and an HTML/Markdown summary of evaluation results.
    #[command(
        after_help = "Example:\n  cloudformer report --results bench/results/loao --out bench/results/loao/report"
    )]
    Report(cli::report::ReportArgs),
    /// Predict P for windows in a dataset with a checkpoint (the CLI twin of POST /v1/predict).
    #[command(
        after_help = "Example:\n  cloudformer predict --model models/default --data dataset/data --json"
    )]
    Predict(cli::predict::PredictArgs),
    /// Serve predictions over HTTP (posted windows, or live from the in-process agent).
    #[command(
        after_help = "Example:\n  cloudformer serve --model models/default --listen 127.0.0.1:8787\n  curl -s http://127.0.0.1:8787/v1/predict -H 'Content-Type: application/json' -d @window.json"
    )]
    Serve(cli::serve::ServeArgs),
    /// The main job: agent on this host's tenants + server with the bundled default model.
    #[command(
        after_help = "Example:\n  cloudformer up    # then: curl -s http://127.0.0.1:8787/v1/tenants"
    )]
    Up(cli::up::UpArgs),
    /// Check the placement what-if on recorded runs: P̂ from isolated baselines alone vs. the label.
    #[command(
        after_help = "Example:\n  cloudformer whatif --model models/default --data dataset/data --out bench/results/whatif.md"
    )]
    Whatif(cli::whatif::WhatIfArgs),
}

/// Fixes the compute thread count in `RAYON_NUM_THREADS` when the user has not: candle 0.11
/// otherwise works out its default on every matmul by parsing /proc/cpuinfo (an open, a read
/// and the kernel's text formatting each time — 7 % of the server's CPU under load). The value
/// is rayon's own default (the CPUs this process may use). Runs before any thread starts.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

fn main() -> std::process::ExitCode {
    pin_thread_count();
    let cli = Cli::parse();
    cli::init_tracing(cli.quiet, cli.verbose);
    let ctx = cli::Ctx { quiet: cli.quiet };
    let result = match cli.command {
        Command::Collect(a) => cli::collect::run(a, &ctx),
        Command::Campaign(c) => cli::campaign::run(c, &ctx),
        Command::Dataset(c) => cli::dataset::run(c, &ctx),
        Command::Train(a) => cli::train::run(a, &ctx),
        Command::Eval(a) => cli::eval::run(a, &ctx),
        Command::Report(a) => cli::report::run(a, &ctx),
        Command::Predict(a) => cli::predict::run(a, &ctx),
        Command::Serve(a) => cli::serve::run(a, &ctx),
        Command::Up(a) => cli::up::run(a, &ctx),
        Command::Whatif(a) => cli::whatif::run(a, &ctx),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
