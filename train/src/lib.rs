//! Training, leave-applications-out evaluation, baselines, reports and plots for CloudFormer.
//!
//! * [`split`]: the paper's protocol (seeded random leave-applications-out splits, test = 2
//!   static-only + 2 dynamic applications when available) and leave-one-application-out.
//! * [`metrics`]: MAE / MSE in points of P×100, error bands, per-application MAE, label-noise floor.
//! * [`features`]: per-run aggregate statistics (NaN-aware) for the tabular baselines.
//! * [`baselines`]: predict-the-mean, ridge, Gamma GLM, decision tree, random forest, GBDT
//!   (`forust-ml`), LSTM (candle).
//! * [`eval`]: runs every model on the same splits and writes the comparison; [`folds`]: its
//!   per-fold results on disk, so a long evaluation runs in parts; [`results`]: its files
//!   (`summary.md`, `results.json`, `predictions.csv`).
//! * [`report`]: plots (plotters) and a Markdown/HTML summary.
//! * [`select`]: the training recipe (learning rate, encoder blocks, epochs) chosen by inner
//!   leave-applications-out on the training applications only.

pub mod baselines;
pub mod cf;
pub mod data;
pub mod error;
pub mod eval;
pub mod features;
mod fit;
pub mod folds;
pub mod linalg;
pub mod metrics;
pub mod report;
pub mod results;
pub mod schedule;
pub mod select;
pub mod split;

pub use data::Run;
pub use error::TrainError;
