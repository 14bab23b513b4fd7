//! A named parameter store with deterministic, seeded initialisation (candle's CPU RNG cannot be
//! seeded, so every initial value is drawn from our own ChaCha stream in creation order).

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ModelError;

/// How a parameter starts.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in), PyTorch's Linear default.
    Uniform {
        fan_in: usize,
    },
    /// N(0, σ²).
    Normal {
        std: f32,
    },
    Const(f32),
}

/// The model's parameters, in creation order.
pub struct Params {
    vars: Vec<(String, Var)>,
    rng: ChaCha8Rng,
    device: Device,
}

impl Params {
    pub fn new(seed: u64, device: &Device) -> Self {
        Params {
            vars: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Creates a parameter. Names must be unique.
    pub fn var(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor, ModelError> {
        if self.vars.iter().any(|(n, _)| n == name) {
            return Err(ModelError::Config(format!("duplicate parameter {name}")));
        }
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match init {
            Init::Uniform { fan_in } => {
                let a = 1.0 / (fan_in.max(1) as f32).sqrt();
                (0..n).map(|_| self.rng.random_range(-a..a)).collect()
            }
            Init::Normal { std } => (0..n)
                .map(|_| {
                    // Box–Muller from two uniforms.
                    let u1: f32 = self.rng.random_range(f32::EPSILON..1.0);
                    let u2: f32 = self.rng.random();
                    std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
                })
                .collect(),
            Init::Const(c) => vec![c; n],
        };
        let t = Tensor::from_vec(data, shape, &self.device)?;
        let v = Var::from_tensor(&t)?;
        let out = v.as_tensor().clone();
        self.vars.push((name.to_string(), v));
        Ok(out)
    }

    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn named(&self) -> &[(String, Var)] {
        &self.vars
    }

    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    pub fn save(&self, path: &std::path::Path) -> Result<(), ModelError> {
        let map: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&map, path).map_err(|e| ModelError::Checkpoint {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }

    /// Loads every parameter from a safetensors file; a missing tensor or a wrong shape is an
    /// error naming it, as is a truncated or corrupt file.
    pub fn load(&mut self, path: &std::path::Path) -> Result<(), ModelError> {
        let err = |msg: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let loaded = candle_core::safetensors::load_buffer(&bytes, &self.device)
            .map_err(|e| err(format!("not a valid safetensors file ({e})")))?;
        for (name, var) in &self.vars {
            let t = loaded
                .get(name)
                .ok_or_else(|| err(format!("tensor {name} is missing")))?;
            if t.dims() != var.dims() {
                return Err(err(format!(
                    "tensor {name} has shape {:?}, the config expects {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        if loaded.len() != self.vars.len() {
            return Err(err(format!(
                "file has {} tensors, the config expects {}",
                loaded.len(),
                self.vars.len()
            )));
        }
        Ok(())
    }
}
