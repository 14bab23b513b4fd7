//! Adam (AdamW with weight decay 0 by default), the paper's learning-rate schedule (linear
//! warm-up then cosine decay) and gradient clipping by global norm.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::ModelError;

/// Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine decay to `min_lr` at
/// `total_steps` (and `min_lr` afterwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub min_lr: f64,
}

impl LrSchedule {
    /// The learning rate for optimiser step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if self.warmup_steps > 0 && step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay = self.total_steps.saturating_sub(self.warmup_steps);
        if decay == 0 {
            return self.peak;
        }
        let done = (step - self.warmup_steps.min(step)).min(decay) as f64 / decay as f64;
        self.min_lr + 0.5 * (self.peak - self.min_lr) * (1.0 + (std::f64::consts::PI * done).cos())
    }
}

pub struct Adam {
    inner: AdamW,
    vars: Vec<Var>,
    schedule: Option<LrSchedule>,
    step: usize,
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
            schedule: None,
            step: 0,
        })
    }

    /// Plain Adam (weight decay 0), as in the paper.
    pub fn plain(vars: Vec<Var>, lr: f64) -> Result<Self, ModelError> {
        Adam::new(vars, lr, 0.0)
    }

    /// From now on every [`Adam::backward_step`] first sets the learning rate from `schedule`.
    pub fn with_schedule(mut self, schedule: LrSchedule) -> Self {
        self.schedule = Some(schedule);
        self.set_lr(schedule.lr(self.step));
        self
    }

    /// Optimiser steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
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
        self.apply(&mut grads, clip)
    }

    /// Clipping and one update from already computed gradients (e.g. accumulated ones).
    pub fn apply(&mut self, grads: &mut GradStore, clip: Option<f64>) -> Result<f64, ModelError> {
        if let Some(s) = self.schedule {
            self.set_lr(s.lr(self.step));
        }
        let norm = clip_grad_norm(grads, &self.vars, clip)?;
        if !norm.is_finite() {
            return Err(ModelError::NonFinite(format!(
                "gradient norm is {norm} at step {}",
                self.step
            )));
        }
        self.inner.step(grads)?;
        self.step += 1;
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
