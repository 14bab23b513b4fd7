use std::path::PathBuf;

/// Everything that can go wrong in the model crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("bad input shape: {0}")]
    Shape(String),
    #[error("non-finite value: {0}")]
    NonFinite(String),
    #[error("bad config: {0}")]
    Config(String),
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    #[error(
        "catalogue mismatch: the model was trained on catalogue {model} but the data uses catalogue {data}"
    )]
    CatalogueMismatch { model: String, data: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
