//! The paper's LSTM baseline (Rusty-style), small, in candle: every run is resampled to `steps`
//! time steps (mean over equal segments), features are signed-log1p then z-scored with the
//! training runs' statistics (NaN → 0), LSTM(F → hidden) → last hidden state → Linear → sigmoid,
//! Adam on MSE, early stopping on the validation runs.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Module, Optimizer, VarBuilder, VarMap, RNN};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Run;
use crate::error::Result;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct LstmParams {
    pub steps: usize,
    pub hidden: usize,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub patience: usize,
}

impl Default for LstmParams {
    fn default() -> Self {
        LstmParams {
            steps: 32,
            hidden: 32,
            epochs: 40,
            batch: 32,
            lr: 3e-3,
            patience: 8,
        }
    }
}

fn slog(v: f32) -> f32 {
    v.signum() * v.abs().ln_1p()
}

/// Resamples the first `k` seconds (0 = all) of a run to `steps` rows (segment means, NaN-aware;
/// runs shorter than `steps` repeat their rows).
pub fn resample(r: &Run, k: usize, steps: usize) -> Vec<f32> {
    let t = r.prefix_len(k);
    let f = r.f;
    let mut out = vec![f32::NAN; steps * f];
    for s in 0..steps {
        let a = s * t / steps;
        let b = ((s + 1) * t / steps).max(a + 1).min(t);
        for j in 0..f {
            let (mut sum, mut n) = (0.0f32, 0);
            for i in a..b {
                let v = r.x[i * f + j];
                if v.is_finite() {
                    sum += slog(v);
                    n += 1;
                }
            }
            if n > 0 {
                out[s * f + j] = sum / n as f32;
            }
        }
    }
    out
}

pub struct Lstm {
    pub params: LstmParams,
    mean: Vec<f32>,
    std: Vec<f32>,
    f: usize,
    lstm: candle_nn::LSTM,
    head: candle_nn::Linear,
    _varmap: VarMap,
    pub epochs_run: usize,
    pub best_val_mae: f64,
}

impl Lstm {
    fn normalise(&self, seqs: &[Vec<f32>]) -> Vec<f32> {
        let mut out = Vec::with_capacity(seqs.len() * self.params.steps * self.f);
        for s in seqs {
            for (i, v) in s.iter().enumerate() {
                let j = i % self.f;
                out.push(if v.is_finite() && self.std[j] > 1e-8 {
                    ((v - self.mean[j]) / self.std[j]).clamp(-10.0, 10.0)
                } else {
                    0.0
                });
            }
        }
        out
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let states = self.lstm.seq(x)?;
        let last = &states.last().expect("steps >= 1").h;
        candle_nn::ops::sigmoid(&self.head.forward(last)?)?.squeeze(D::Minus1)
    }

    /// P̂ for the first `k` seconds (0 = all) of each run.
    pub fn predict(&self, runs: &[&Run], k: usize) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(runs.len());
        for chunk in runs.chunks(256) {
            let seqs: Vec<Vec<f32>> = chunk
                .iter()
                .map(|r| resample(r, k, self.params.steps))
                .collect();
            let x = Tensor::from_vec(
                self.normalise(&seqs),
                (chunk.len(), self.params.steps, self.f),
                &Device::Cpu,
            )?;
            out.extend(
                self.forward(&x)?
                    .to_vec1::<f32>()?
                    .into_iter()
                    .map(|v| v as f64),
            );
        }
        Ok(out)
    }

    pub fn describe(&self) -> String {
        format!(
            "lstm steps={} hidden={} lr={} epochs_run={} best_val_mae={:.4}",
            self.params.steps,
            self.params.hidden,
            self.params.lr,
            self.epochs_run,
            self.best_val_mae
        )
    }
}

/// Fits on `train`, early-stopping on `val` (when non-empty; otherwise runs all epochs).
pub fn fit(train: &[&Run], val: &[&Run], params: LstmParams, seed: u64) -> Result<Lstm> {
    let f = train.first().map(|r| r.f).unwrap_or(0);
    let steps = params.steps.max(1);
    let seqs: Vec<Vec<f32>> = train.iter().map(|r| resample(r, 0, steps)).collect();
    // per-feature mean/std over all training steps
    let mut mean = vec![0f32; f];
    let mut std = vec![0f32; f];
    let mut cnt = vec![0usize; f];
    for s in &seqs {
        for (i, v) in s.iter().enumerate() {
            if v.is_finite() {
                mean[i % f] += v;
                cnt[i % f] += 1;
            }
        }
    }
    for j in 0..f {
        mean[j] /= cnt[j].max(1) as f32;
    }
    for s in &seqs {
        for (i, v) in s.iter().enumerate() {
            if v.is_finite() {
                std[i % f] += (v - mean[i % f]).powi(2);
            }
        }
    }
    for j in 0..f {
        std[j] = (std[j] / cnt[j].max(1) as f32).sqrt();
    }
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let lstm = candle_nn::lstm(
        f,
        params.hidden,
        candle_nn::LSTMConfig::default(),
        vb.pp("lstm"),
    )?;
    let head = candle_nn::linear(params.hidden, 1, vb.pp("head"))?;
    // candle's CPU RNG cannot be seeded: overwrite every parameter from our own seeded RNG.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| crate::TrainError::Numeric("varmap lock".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let bound = 1.0 / (params.hidden as f32).sqrt();
            let n = var.elem_count();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            var.set(&Tensor::from_vec(v, var.shape(), &dev)?)?;
        }
    }
    let mut model = Lstm {
        params: LstmParams { steps, ..params },
        mean,
        std,
        f,
        lstm,
        head,
        _varmap: varmap.clone(),
        epochs_run: 0,
        best_val_mae: f64::NAN,
    };
    let xs = model.normalise(&seqs);
    let ys: Vec<f32> = train.iter().map(|r| r.p).collect();
    let yv: Vec<f64> = val.iter().map(|r| r.p as f64).collect();
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW {
            lr: params.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut best: Option<(f64, Vec<(String, Tensor)>)> = None;
    let mut since = 0;
    let row = steps * f;
    for epoch in 0..params.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(params.batch.max(1)) {
            let mut bx = Vec::with_capacity(chunk.len() * row);
            let mut by = Vec::with_capacity(chunk.len());
            for &i in chunk {
                bx.extend_from_slice(&xs[i * row..(i + 1) * row]);
                by.push(ys[i]);
            }
            let x = Tensor::from_vec(bx, (chunk.len(), steps, f), &dev)?;
            let y = Tensor::from_vec(by, chunk.len(), &dev)?;
            let loss = (model.forward(&x)? - y)?.sqr()?.mean_all()?;
            opt.backward_step(&loss)?;
        }
        model.epochs_run = epoch + 1;
        if val.is_empty() {
            continue;
        }
        let pv = model.predict(val, 0)?;
        let m = super::mae(&pv, &yv);
        if best.as_ref().is_none_or(|(b, _)| m < *b) {
            let snap = varmap
                .data()
                .lock()
                .map_err(|_| crate::TrainError::Numeric("varmap lock".into()))?
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
                .collect::<candle_core::Result<Vec<_>>>()?;
            best = Some((m, snap));
            since = 0;
        } else {
            since += 1;
            if since >= params.patience {
                break;
            }
        }
    }
    if let Some((m, snap)) = best {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| crate::TrainError::Numeric("varmap lock".into()))?;
        for (k, t) in snap {
            if let Some(v) = data.get(&k) {
                v.set(&t)?;
            }
        }
        model.best_val_mae = m;
    }
    Ok(model)
}
