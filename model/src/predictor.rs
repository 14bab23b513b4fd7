//! The inference API shared by `cloudformer predict` and the server: raw windows in (NaN =
//! null), P̂ with an uncertainty and an out-of-distribution flag out.

use std::path::Path;

use crate::{
    batch_tensors, default_device, Checkpoint, CloudFormer, CoverageRule, FastBranches, ModelError,
    RawRanges, Tensor,
};

/// One raw (un-normalised) window: row-major T×F, NaN for null values.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub data: &'a [f32],
    pub t: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// P̂ ∈ (0, 1): 1 = no degradation.
    pub p: f32,
    /// Standard deviation of P̂ over Monte-Carlo dropout passes of the head (0 when disabled).
    pub std: f32,
    /// Share of the features the model uses that the window observed (1 for a checkpoint of
    /// the plain encoding).
    pub coverage: f32,
    /// The window is unlike the training data: see [`out_of_distribution`].
    pub out_of_distribution: bool,
}

/// The out-of-distribution rule: a window is flagged when its coverage is below the model's
/// `coverage_floor` (half the lowest coverage of any training run; 0 for checkpoints without
/// one), or when more than `OOD_FRACTION` (5 %) of its observed values lie outside the
/// training range widened by a quarter on each side.
pub fn out_of_distribution(coverage: f32, coverage_floor: f32, out_of_range_fraction: f32) -> bool {
    coverage < coverage_floor || out_of_range_fraction > OOD_FRACTION
}

/// Windows per forward pass of the candle graph (its padded batch tensors grow with the batch);
/// larger requests are split. The slice path runs any number of windows at once.
const CHUNK: usize = 64;
/// Share of out-of-range values above which a window is flagged out of distribution.
const OOD_FRACTION: f32 = 0.05;
/// Dropout seed for the uncertainty passes: the same input always gets the same answer.
const MC_SEED: u64 = 0x5eed_cafe;

pub struct Predictor {
    ckpt: Checkpoint,
    model: CloudFormer,
    mc_samples: usize,
    norm_buf: Vec<Vec<f32>>,
    /// The inference-only branches on plain slices (CPU); `None` runs the candle graph.
    fast: Option<FastBranches>,
    feat_buf: Vec<f32>,
    /// The training ranges in raw units, for the out-of-distribution flag.
    ranges: RawRanges,
}

impl Predictor {
    /// Loads a checkpoint directory (see [`Checkpoint`]).
    pub fn load(dir: &Path) -> Result<Predictor, ModelError> {
        let (ckpt, model) = Checkpoint::load(dir, &default_device())?;
        Ok(Predictor::from_parts(ckpt, model))
    }

    /// Loads a checkpoint and checks that it was trained on the catalogue `data_hash` (an error
    /// naming both hashes otherwise).
    pub fn load_checked(dir: &Path, data_hash: &str) -> Result<Predictor, ModelError> {
        let p = Predictor::load(dir)?;
        p.check_catalogue(data_hash)?;
        Ok(p)
    }

    /// Errors (naming both hashes) unless the data's catalogue is the model's.
    pub fn check_catalogue(&self, data_hash: &str) -> Result<(), ModelError> {
        self.ckpt.check_catalogue(data_hash)
    }

    pub fn model(&self) -> &CloudFormer {
        &self.model
    }

    pub fn from_parts(ckpt: Checkpoint, model: CloudFormer) -> Predictor {
        let fast = match FastBranches::from_model(&model) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("fast inference path unavailable ({e}); using the candle graph");
                None
            }
        };
        let ranges = RawRanges::of(&ckpt.normalizer);
        Predictor {
            ranges,
            ckpt,
            model,
            mc_samples: 16,
            norm_buf: Vec::new(),
            fast,
            feat_buf: Vec::new(),
        }
    }

    /// Runs the branches through the candle graph instead of the plain-slice inference path
    /// (for comparisons; both give the same P̂ to ~1e-6).
    pub fn use_candle_graph(&mut self) {
        self.fast = None;
    }

    pub fn feature_names(&self) -> &[String] {
        &self.ckpt.feature_names
    }

    pub fn catalogue_hash(&self) -> &str {
        &self.ckpt.catalogue_hash
    }

    pub fn model_id(&self) -> &str {
        &self.ckpt.model_id
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.ckpt
    }

    /// Raw features per second of a window (the catalogue's width).
    pub fn n_features(&self) -> usize {
        self.ckpt.feature_names.len()
    }

    /// Share of the features the model uses that a raw window observed (1 for a checkpoint of
    /// the plain encoding, which uses every feature and has no notion of missing).
    pub fn coverage(&self, window: &Window<'_>) -> f32 {
        self.ckpt.normalizer.coverage(window.data)
    }

    /// The features this model reads and its coverage floor (see [`CoverageRule`]).
    pub fn coverage_rule(&self) -> CoverageRule {
        self.ckpt.normalizer.coverage_rule()
    }

    /// Monte-Carlo dropout passes of the head for the uncertainty (0 disables it; default 16).
    pub fn set_mc_samples(&mut self, n: usize) {
        self.mc_samples = n;
    }

    /// Predicts every window. Errors name the offending window.
    pub fn predict(&mut self, windows: &[Window<'_>]) -> Result<Vec<Prediction>, ModelError> {
        let f = self.n_features();
        for (i, w) in windows.iter().enumerate() {
            if w.t == 0 {
                return Err(ModelError::Shape(format!("window {i} is empty (T = 0)")));
            }
            if w.data.len() != w.t * f {
                return Err(ModelError::Shape(format!(
                    "window {i}: {} values, expected T×F = {}×{f}",
                    w.data.len(),
                    w.t
                )));
            }
            if w.data.iter().any(|v| v.is_infinite()) {
                return Err(ModelError::Shape(format!(
                    "window {i} contains an infinite value"
                )));
            }
        }
        if self.fast.is_some() {
            return self.predict_chunk(windows);
        }
        let mut out = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(CHUNK) {
            out.extend(self.predict_chunk(chunk)?);
        }
        Ok(out)
    }

    fn predict_chunk(&mut self, windows: &[Window<'_>]) -> Result<Vec<Prediction>, ModelError> {
        let feats = match &self.fast {
            Some(fast) => {
                let items: Vec<(&[f32], usize)> = windows.iter().map(|w| (w.data, w.t)).collect();
                fast.features(&items, Some(&self.ckpt.normalizer), &mut self.feat_buf)?;
                Tensor::from_slice(
                    &self.feat_buf,
                    (windows.len(), fast.out_dim()),
                    self.model.device(),
                )?
            }
            None => self.candle_features(windows)?,
        };
        self.finish(windows, &feats)
    }

    /// The branches through the candle graph (normalise, pad, forward in eval mode).
    fn candle_features(&mut self, windows: &[Window<'_>]) -> Result<Tensor, ModelError> {
        let f = self.ckpt.config.n_features;
        if self.norm_buf.len() < windows.len() {
            self.norm_buf.resize_with(windows.len(), Vec::new);
        }
        for (w, buf) in windows.iter().zip(self.norm_buf.iter_mut()) {
            self.ckpt.normalizer.apply_into(w.data, buf);
        }
        let items: Vec<(&[f32], usize)> = windows
            .iter()
            .zip(self.norm_buf.iter())
            .map(|(w, b)| (b.as_slice(), w.t))
            .collect();
        let (x, mask) = batch_tensors(&items, f, self.model.device())?;
        self.model.features(&x, &mask, false)
    }

    /// P̂ from the deterministic head; the uncertainty from Monte-Carlo dropout in the head only
    /// (its 0.4 dropout), so it costs almost nothing.
    fn finish(
        &mut self,
        windows: &[Window<'_>],
        feats: &Tensor,
    ) -> Result<Vec<Prediction>, ModelError> {
        let p: Vec<f32> = self.model.head(feats, false)?.to_vec1()?;
        let b = windows.len();
        let std = if self.mc_samples > 0 {
            let k = self.mc_samples;
            // Per window, with the same dropout seed: a window's answer never depends on the
            // other windows of the batch.
            let mut std = Vec::with_capacity(b);
            for i in 0..b {
                let fs = feats.narrow(0, i, 1)?.repeat((k, 1))?;
                self.model.reseed_dropout(MC_SEED);
                let s: Vec<f32> = self.model.head(&fs, true)?.to_vec1()?;
                let m = s.iter().sum::<f32>() / k as f32;
                let var = s.iter().map(|v| (v - m).powi(2)).sum::<f32>() / k as f32;
                std.push(var.sqrt());
            }
            std
        } else {
            vec![0.0; b]
        };
        Ok(windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let coverage = self.ckpt.normalizer.coverage(w.data);
                let outside = self.ranges.out_of_range_fraction(w.data);
                Prediction {
                    p: p[i],
                    std: std[i],
                    coverage,
                    out_of_distribution: out_of_distribution(
                        coverage,
                        self.ckpt.normalizer.coverage_floor,
                        outside,
                    ),
                }
            })
            .collect())
    }
}
