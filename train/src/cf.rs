//! CloudFormer training through the `model` crate: normaliser fitted on the training
//! applications only, log-cosh (default) on P, Adam with linear warm-up + cosine decay, length-
//! bucketed batches with padding masks, early stopping on the validation applications,
//! checkpoints every epoch and `--resume`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::Run;
use crate::error::{Result, TrainError};
use crate::eval::{SeqPredictor, SeqTrainer};

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
    pub window: usize,
    pub blocks: usize,
    pub seed: u64,
    pub quiet: bool,
    pub val_apps: Vec<String>,
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
            window: 0,
            blocks: 0,
            seed: 42,
            quiet: true,
            val_apps: Vec::new(),
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

/// Trains CloudFormer variants for `eval`.
pub struct CfTrainer {
    pub options: TrainOptions,
    pub data_dir: std::path::PathBuf,
}

impl CfTrainer {
    pub fn new(options: TrainOptions, data_dir: &Path) -> Result<CfTrainer> {
        Ok(CfTrainer { options, data_dir: data_dir.to_path_buf() })
    }
}

impl SeqTrainer for CfTrainer {
    fn fit(&mut self, variant: &str, train: &[&Run], val: &[&Run], seed: u64, out: &Path) -> Result<Box<dyn SeqPredictor>> {
        let _ = (variant, train, val, seed, out);
        Err(TrainError::Model("CloudFormer training is not wired yet".into()))
    }
}

/// `cloudformer train`.
pub fn train_model(runs: &[Run], opts: &TrainOptions, data_dir: &Path, out: &Path, resume: bool) -> Result<TrainSummary> {
    let _ = (runs, opts, data_dir, out, resume);
    Err(TrainError::Model("CloudFormer training is not wired yet".into()))
}

/// `cloudformer predict`.
pub fn predict_dir(model_dir: &Path, data_dir: &Path, runs: &[Run], k: usize) -> Result<Vec<PredictedRun>> {
    let _ = (model_dir, data_dir, runs, k);
    Err(TrainError::Model("CloudFormer prediction is not wired yet".into()))
}
