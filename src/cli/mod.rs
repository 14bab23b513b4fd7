//! Subcommand glue: argument structs and the calls into the workspace crates.
//! Errors become `anyhow` here, at the binary edge.

pub mod campaign;
pub mod collect;
pub mod dataset;
pub mod eval;
pub mod predict;
pub mod report;
pub mod serve;
pub mod train;
pub mod up;
pub mod whatif;

/// What every subcommand may need from the global flags.
pub struct Ctx {
    pub quiet: bool,
}

/// The runs of one or more dataset directories (`--data`, repeatable), with the directories
/// named in the error.
pub fn load_datasets(dirs: &[std::path::PathBuf]) -> anyhow::Result<Vec<::train::data::Run>> {
    use anyhow::Context;
    ::train::data::load_many(dirs).with_context(|| {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("loading the dataset {}", names.join(" + "))
    })
}

pub fn init_tracing(quiet: bool, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter =
        EnvFilter::try_from_env("CLOUDFORMER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
