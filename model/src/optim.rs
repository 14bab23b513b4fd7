//! Adam (AdamW with weight decay 0 by default) and gradient clipping. The learning-rate schedule
//! lives in the trainer, which calls [`Adam::set_lr`] every step.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::ModelError;

pub struct Adam {
    inner: AdamW,
    vars: Vec<Var>,
}

impl Adam {
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self, ModelError> {
        let params = ParamsAdamW {
            lr,
            weight_decay,
            ..ParamsAdamW::default()
        };
        Ok(Adam {
            inner: AdamW::new(vars.clone(), params)?,
            vars,
        })
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr);
    }

    pub fn lr(&self) -> f64 {
        self.inner.learning_rate()
    }

    /// Backward of `loss`, optional clipping of the global gradient norm, one update.
    /// Returns the gradient norm before clipping.
    pub fn backward_step(&mut self, loss: &Tensor, clip: Option<f64>) -> Result<f64, ModelError> {
        let mut grads = loss.backward()?;
        let norm = clip_grad_norm(&mut grads, &self.vars, clip)?;
        self.inner.step(&grads)?;
        Ok(norm)
    }
}

/// Global L2 norm of the gradients of `vars`; scales them to `max_norm` when it is exceeded.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[Var],
    max_norm: Option<f64>,
) -> Result<f64, ModelError> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if let Some(max) = max_norm {
        if max > 0.0 && norm > max {
            let scale = max / (norm + 1e-6);
            for v in vars {
                if let Some(g) = grads.get(v.as_tensor()) {
                    let g2 = (g * scale)?;
                    grads.insert(v.as_tensor(), g2);
                }
            }
        }
    }
    Ok(norm)
}
