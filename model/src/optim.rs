//! Adam (AdamW with weight decay 0 by default), the paper's learning-rate schedule (linear
//! warm-up then cosine decay) and gradient clipping by global norm.
//!
//! The update is candle-nn's `AdamW` step, written out here so that its moments can be saved
//! and restored: a resumed training continues with the same first and second moments and step
//! count instead of restarting them at zero (which would jolt the weights on the first steps).

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::ModelError;

/// Adam hyper-parameters (PyTorch / candle defaults).
#[derive(Debug, Clone, Copy)]
struct AdamParams {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

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
    params: AdamParams,
    vars: Vec<Var>,
    /// First and second moments, one pair per var.
    m: Vec<Var>,
    v: Vec<Var>,
    schedule: Option<LrSchedule>,
    step: usize,
}

impl Adam {
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self, ModelError> {
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        let zeros = |v: &Var| Var::zeros(v.shape(), v.dtype(), v.device());
        let m = vars.iter().map(zeros).collect::<Result<Vec<_>, _>>()?;
        let v = vars.iter().map(zeros).collect::<Result<Vec<_>, _>>()?;
        Ok(Adam {
            params: AdamParams {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay,
            },
            vars,
            m,
            v,
            schedule: None,
            step: 0,
        })
    }

    /// The device of the parameters (CPU when there are none).
    fn device(&self) -> candle_core::Device {
        self.vars
            .first()
            .map(|v| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu)
    }

    /// Saves the moments and the step count (safetensors: `m.<i>`, `v.<i>`, `step`).
    pub fn save_state(&self, path: &Path) -> Result<(), ModelError> {
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            map.insert(format!("m.{i}"), m.as_tensor().clone());
            map.insert(format!("v.{i}"), v.as_tensor().clone());
        }
        let dev = self.device();
        map.insert("step".into(), Tensor::new(&[self.step as f64], &dev)?);
        let tmp = path.with_extension("partial");
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Restores what [`Adam::save_state`] wrote, for the same vars in the same order; a file of
    /// another model (count or shapes differ) is an error naming the first mismatch.
    pub fn load_state(&mut self, path: &Path) -> Result<(), ModelError> {
        let bad = |msg: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let dev = self.device();
        let map = candle_core::safetensors::load(path, &dev)
            .map_err(|e| bad(format!("cannot read the optimiser state: {e}")))?;
        let n = map.keys().filter(|k| k.starts_with("m.")).count();
        if n != self.vars.len() {
            return Err(bad(format!(
                "optimiser state has {n} parameter tensors, the model {}",
                self.vars.len()
            )));
        }
        for (i, var) in self.vars.iter().enumerate() {
            for (name, slot) in [("m", &self.m[i]), ("v", &self.v[i])] {
                let t = map
                    .get(&format!("{name}.{i}"))
                    .ok_or_else(|| bad(format!("optimiser state lacks {name}.{i}")))?;
                if t.dims() != var.dims() {
                    return Err(bad(format!(
                        "{name}.{i} has shape {:?}, the parameter {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                slot.set(&t.to_dtype(var.dtype())?)?;
            }
        }
        let step = map
            .get("step")
            .ok_or_else(|| bad("optimiser state lacks its step count".into()))?
            .to_vec1::<f64>()?;
        self.step = step.first().copied().unwrap_or(0.0).max(0.0) as usize;
        Ok(())
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
        self.params.lr = lr;
    }

    pub fn lr(&self) -> f64 {
        self.params.lr
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
        self.step += 1;
        self.update(grads)?;
        Ok(norm)
    }

    /// One AdamW step (candle-nn's formula) at step count `self.step` (1-based).
    fn update(&self, grads: &GradStore) -> Result<(), ModelError> {
        let AdamParams {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let scale_m = 1.0 / (1.0 - beta1.powi(self.step as i32));
        let scale_v = 1.0 / (1.0 - beta2.powi(self.step as i32));
        for ((theta, m), v) in self.vars.iter().zip(&self.m).zip(&self.v) {
            let Some(g) = grads.get(theta.as_tensor()) else {
                continue;
            };
            let next_m = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let decayed = (theta.as_tensor() * (1.0 - lr * weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let next_theta = (decayed - (adjusted * lr)?)?;
            m.set(&next_m)?;
            v.set(&next_v)?;
            theta.set(&next_theta)?;
        }
        Ok(())
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
