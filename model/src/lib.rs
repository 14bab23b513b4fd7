//! The CloudFormer network (arXiv 2509.03394 §V) in candle: a temporal branch over seconds with
//! key-padding masks, a system branch over metric tokens, and a sigmoid head; plus the
//! normaliser, safetensors checkpoints and the `Predictor` shared by the CLI and the server.
//!
//! candle traps handled here (see `../shared/reference/ml-notes.md` §1.2–1.3): LayerNorm and
//! softmax are composed from differentiable primitives (the fused ops drop gradients), and every
//! random number (initial weights, dropout masks) comes from our own seeded ChaCha RNG because
//! candle's CPU RNG cannot be seeded.

mod checkpoint;
mod config;
pub mod derived;
mod error;
pub mod fused;
mod infer;
pub mod kernels;
mod layers;
mod loss;
pub mod masked;
mod net;
mod normalizer;
mod optim;
mod params;
mod predictor;

pub use candle_core::{DType, Device, Tensor, Var, D};
pub use checkpoint::{Checkpoint, CONFIG_FILE, WEIGHTS_FILE};
pub use config::{Config, Variant};
pub use derived::{DerivedInput, DerivedKind};
pub use error::ModelError;
pub use infer::FastBranches;
pub use loss::{log_cosh, mse};
pub use masked::CoverageRule;
pub use net::{masked_mean, pool_time, BranchInputs, CloudFormer};
pub use normalizer::{Normalizer, RawRanges};
pub use optim::{clip_grad_norm, Adam, LrSchedule};
pub use params::Params;
pub use predictor::{combine, out_of_distribution, Prediction, Predictor, Window, MEMBERS_DIR};

/// The device models run on: CPU, or the first CUDA device with the `cuda` feature.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = Device::new_cuda(0) {
            return d;
        }
    }
    Device::Cpu
}

/// Builds a batch from row-major windows: `x` [B, T, F] zero-padded to the longest window and
/// `mask` [B, T] (1 = real second, 0 = padding). Windows must already be normalised (no NaN).
pub fn batch_tensors(
    windows: &[(&[f32], usize)],
    n_features: usize,
    device: &Device,
) -> Result<(Tensor, Tensor), ModelError> {
    let b = windows.len();
    let t_max = windows.iter().map(|w| w.1).max().unwrap_or(0).max(1);
    let mut x = vec![0f32; b * t_max * n_features];
    let mut m = vec![0f32; b * t_max];
    for (i, (data, t)) in windows.iter().enumerate() {
        if data.len() != t * n_features {
            return Err(ModelError::Shape(format!(
                "window {i}: {} values, expected T×F = {t}×{n_features}",
                data.len()
            )));
        }
        let off = i * t_max * n_features;
        x[off..off + data.len()].copy_from_slice(data);
        for s in 0..*t {
            m[i * t_max + s] = 1.0;
        }
    }
    Ok((
        Tensor::from_vec(x, (b, t_max, n_features), device)?,
        Tensor::from_vec(m, (b, t_max), device)?,
    ))
}
