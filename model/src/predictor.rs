//! The inference API shared by `cloudformer predict` and the server: raw windows in (NaN =
//! null), P̂ with an uncertainty and an out-of-distribution flag out.

use std::path::Path;

use candle_core::Tensor;

use crate::{batch_tensors, default_device, Checkpoint, CloudFormer, ModelError};

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
    /// Spread of P̂ over Monte-Carlo dropout passes (0 when disabled).
    pub std: f32,
    /// The window lies far outside the training data's feature ranges.
    pub out_of_distribution: bool,
}

/// Windows per forward pass; larger requests are split.
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
}

impl Predictor {
    /// Loads a checkpoint directory (see [`Checkpoint`]).
    pub fn load(dir: &Path) -> Result<Predictor, ModelError> {
        let (ckpt, model) = Checkpoint::load(dir, &default_device())?;
        Ok(Predictor::from_parts(ckpt, model))
    }

    pub fn from_parts(ckpt: Checkpoint, model: CloudFormer) -> Predictor {
        Predictor {
            ckpt,
            model,
            mc_samples: 8,
            norm_buf: Vec::new(),
        }
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

    pub fn n_features(&self) -> usize {
        self.ckpt.config.n_features
    }

    /// Monte-Carlo dropout passes for the uncertainty (0 disables it; default 8).
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
        let mut out = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(CHUNK) {
            out.extend(self.predict_chunk(chunk)?);
        }
        Ok(out)
    }

    fn predict_chunk(&mut self, windows: &[Window<'_>]) -> Result<Vec<Prediction>, ModelError> {
        let f = self.n_features();
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
        let p: Vec<f32> = self.model.forward(&x, &mask, false)?.to_vec1()?;
        let b = windows.len();
        let std = if self.mc_samples > 0 {
            let k = self.mc_samples;
            let xs = Tensor::cat(&vec![&x; k], 0)?;
            let ms = Tensor::cat(&vec![&mask; k], 0)?;
            self.model.reseed_dropout(MC_SEED);
            let s: Vec<f32> = self.model.forward(&xs, &ms, true)?.to_vec1()?;
            (0..b)
                .map(|i| {
                    let vals: Vec<f32> = (0..k).map(|r| s[r * b + i]).collect();
                    let m = vals.iter().sum::<f32>() / k as f32;
                    (vals.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / k as f32).sqrt()
                })
                .collect()
        } else {
            vec![0.0; b]
        };
        Ok(windows
            .iter()
            .enumerate()
            .map(|(i, w)| Prediction {
                p: p[i],
                std: std[i],
                out_of_distribution: self.ckpt.normalizer.out_of_range_fraction(w.data)
                    > OOD_FRACTION,
            })
            .collect())
    }
}
