//! The train crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the dataset is empty: no labelled tenant-runs found{0}")]
    EmptyDataset(String),
    #[error("the dataset has only {n} application(s) ({apps}); leave-applications-out evaluation and validation need at least 2")]
    TooFewApps { n: usize, apps: String },
    #[error("bad run {run_id}: {why}")]
    BadRun { run_id: String, why: String },
    #[error(
        "runs disagree on the number of features: {first_id} has {first} but {run_id} has {f}"
    )]
    FeatureMismatch {
        first_id: String,
        first: usize,
        run_id: String,
        f: usize,
    },
    #[error("catalogue mismatch: {0}")]
    Catalogue(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("numerical failure in {0}")]
    Numeric(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("json {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("dataset: {0}")]
    Dataset(String),
    #[error("model: {0}")]
    Model(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("gbdt (forust): {0}")]
    Gbdt(String),
    #[error("plot: {0}")]
    Plot(String),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
