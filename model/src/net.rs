//! The dual-branch network.

use std::cell::RefCell;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::layers::{sinusoidal, BlockShape, Ctx, Dropout, EncoderBlock, LayerNorm, Linear};
use crate::params::{Init, Params};
use crate::{Config, ModelError};

type R<T> = Result<T, ModelError>;

/// Bias added to attention scores of padded keys: exp(-1e9) is exactly 0 in f32.
const MASKED: f64 = -1e9;

struct Temporal {
    input: Linear,
    cls: Tensor,
    blocks: Vec<EncoderBlock>,
    /// Pre-LN blocks end the branch with a LayerNorm (`temporal.final_ln`).
    final_ln: Option<LayerNorm>,
}

struct System {
    w: Tensor,
    b: Tensor,
    metric_emb: Option<Tensor>,
    cls: Tensor,
    blocks: Vec<EncoderBlock>,
    /// `system.final_ln` with pre-LN blocks.
    final_ln: Option<LayerNorm>,
}

/// The CLS row of a branch's last hidden state, through its final LayerNorm when it has one.
fn branch_output(h: &Tensor, final_ln: Option<&LayerNorm>) -> R<Tensor> {
    let cls = h.narrow(1, 0, 1)?.squeeze(1)?;
    match final_ln {
        Some(ln) => ln.forward(&cls),
        None => Ok(cls),
    }
}

/// What each branch sees and produces, for tests and diagnostics.
pub struct BranchInputs {
    /// The temporal branch's CLS output [B, d], if the variant has that branch.
    pub temporal: Option<Tensor>,
    /// The mask-aware mean over time [B, F] that feeds the system branch.
    pub system_mean: Tensor,
    /// The system branch's CLS output [B, d], if the variant has that branch.
    pub system: Option<Tensor>,
}

/// CloudFormer: temporal branch + system branch + head. Parameters live in [`Params`].
pub struct CloudFormer {
    cfg: Config,
    params: Params,
    temporal: Option<Temporal>,
    system: Option<System>,
    head1: Linear,
    head_ln: LayerNorm,
    head_drop: Dropout,
    head2: Linear,
    rng: RefCell<ChaCha8Rng>,
    pe: RefCell<Option<Tensor>>,
}

impl CloudFormer {
    /// Builds the network with weights drawn from `seed` (same seed → same weights).
    pub fn new(cfg: &Config, seed: u64, device: &Device) -> R<Self> {
        cfg.validate()?;
        let d = cfg.d_model;
        let mut p = Params::new(seed, device);
        let shape = BlockShape {
            d,
            heads: cfg.n_heads,
            d_ff: cfg.d_ff,
            dropout: cfg.dropout,
            pre_norm: cfg.pre_norm,
        };
        let blocks = |p: &mut Params, prefix: &str, n: usize| -> R<Vec<EncoderBlock>> {
            (0..n)
                .map(|i| EncoderBlock::new(p, &format!("{prefix}.block{i}"), shape))
                .collect()
        };
        let final_ln = |p: &mut Params, prefix: &str| -> R<Option<LayerNorm>> {
            cfg.pre_norm
                .then(|| LayerNorm::new(p, &format!("{prefix}.final_ln"), d))
                .transpose()
        };
        let temporal = if cfg.uses_temporal() {
            Some(Temporal {
                input: Linear::new(&mut p, "temporal.input", cfg.n_features, d)?,
                cls: p.var("temporal.cls", &[1, 1, d], Init::Normal { std: 0.02 })?,
                blocks: blocks(&mut p, "temporal", cfg.temporal_blocks)?,
                final_ln: final_ln(&mut p, "temporal")?,
            })
        } else {
            None
        };
        let system = if cfg.uses_system() {
            Some(System {
                // The paper's shared 1×1 convolution over one-channel metric tokens: w·mean + b.
                w: p.var("system.conv.weight", &[d], Init::Uniform { fan_in: 1 })?,
                b: p.var("system.conv.bias", &[d], Init::Uniform { fan_in: 1 })?,
                metric_emb: if cfg.metric_embedding {
                    Some(p.var(
                        "system.metric_emb",
                        &[cfg.n_features, d],
                        Init::Normal { std: 0.02 },
                    )?)
                } else {
                    None
                },
                cls: p.var("system.cls", &[1, 1, d], Init::Normal { std: 0.02 })?,
                blocks: blocks(&mut p, "system", cfg.system_blocks)?,
                final_ln: final_ln(&mut p, "system")?,
            })
        } else {
            None
        };
        let head_in = d * (usize::from(temporal.is_some()) + usize::from(system.is_some()));
        let head1 = Linear::new(&mut p, "head.dense", head_in, cfg.head_hidden)?;
        let head_ln = LayerNorm::new(&mut p, "head.ln", cfg.head_hidden)?;
        let head2 = Linear::new(&mut p, "head.out", cfg.head_hidden, 1)?;
        Ok(CloudFormer {
            cfg: cfg.clone(),
            params: p,
            temporal,
            system,
            head1,
            head_ln,
            head_drop: Dropout {
                p: cfg.head_dropout,
            },
            head2,
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15)),
            pe: RefCell::new(None),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// Trainable variables, for an optimiser.
    pub fn vars(&self) -> Vec<candle_core::Var> {
        self.params.vars()
    }

    pub fn n_params(&self) -> usize {
        self.params.count()
    }

    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// Reseeds the dropout RNG (e.g. per epoch, for reproducible training).
    pub fn reseed_dropout(&self, seed: u64) {
        *self.rng.borrow_mut() = ChaCha8Rng::seed_from_u64(seed);
    }

    /// `x` [B, T, F] normalised (no NaN), `mask` [B, T] (1 real, 0 padding) → P̂ [B] in (0, 1).
    pub fn forward(&self, x: &Tensor, mask: &Tensor, train: bool) -> R<Tensor> {
        let h = self.features(x, mask, train)?;
        self.head(&h, train)
    }

    /// The concatenated branch outputs [B, 64·branches] that feed the head.
    pub fn features(&self, x: &Tensor, mask: &Tensor, train: bool) -> R<Tensor> {
        let parts = self.branches(x, mask, train)?;
        let feats: Vec<Tensor> = [parts.temporal, parts.system]
            .into_iter()
            .flatten()
            .collect();
        Ok(Tensor::cat(&feats, 1)?)
    }

    /// The head: Dense → Swish → LayerNorm → Dropout → Dense(1) → sigmoid, [B, n] → [B].
    /// With `train` the head's dropout is active (used for Monte-Carlo dropout at inference).
    pub fn head(&self, h: &Tensor, train: bool) -> R<Tensor> {
        let ctx = Ctx {
            train,
            rng: &self.rng,
        };
        let h = candle_nn::ops::silu(&self.head1.forward(h)?)?;
        let h = self.head_ln.forward(&h)?;
        let h = ctx.dropout(&self.head_drop, &h)?;
        let y = self.head2.forward(&h)?.squeeze(1)?;
        Ok(candle_nn::ops::sigmoid(&y)?)
    }

    /// Runs both branches and returns their outputs and the system branch's input.
    pub fn branches(&self, x: &Tensor, mask: &Tensor, train: bool) -> R<BranchInputs> {
        let (b, t, f) = x.dims3()?;
        if f != self.cfg.n_features {
            return Err(ModelError::Shape(format!(
                "input has {f} features, the model expects {}",
                self.cfg.n_features
            )));
        }
        if mask.dims() != [b, t] {
            return Err(ModelError::Shape(format!(
                "mask shape {:?} does not match input [{b}, {t}]",
                mask.dims()
            )));
        }
        // Trailing seconds that are padding in every window carry nothing: drop them, so the
        // pooling stride (with max_len) depends on the real lengths only.
        let t_real = mask.sum(1)?.max(0)?.to_scalar::<f32>()?.round() as usize;
        let (x, mask) = if t_real > 0 && t_real < t {
            (x.narrow(1, 0, t_real)?, mask.narrow(1, 0, t_real)?)
        } else {
            (x.clone(), mask.clone())
        };
        let (x, mask) = (&x, &mask);
        let ctx = Ctx {
            train,
            rng: &self.rng,
        };
        let system_mean = masked_mean(x, mask)?;
        let temporal = match &self.temporal {
            Some(tb) => Some(self.temporal_branch(tb, x, mask, &ctx)?),
            None => None,
        };
        let system = match &self.system {
            Some(sb) => Some(self.system_branch(sb, &system_mean, &ctx)?),
            None => None,
        };
        Ok(BranchInputs {
            temporal,
            system_mean,
            system,
        })
    }

    fn temporal_branch(&self, tb: &Temporal, x: &Tensor, mask: &Tensor, ctx: &Ctx) -> R<Tensor> {
        let (x, mask) = if self.cfg.max_len > 0 && x.dim(1)? > self.cfg.max_len {
            pool_time(x, mask, self.cfg.max_len)?
        } else {
            (x.clone(), mask.clone())
        };
        let (b, t, _) = x.dims3()?;
        let d = self.cfg.d_model;
        let h = tb.input.forward(&x)?.relu()?;
        let cls = tb.cls.broadcast_as((b, 1, d))?;
        let h = Tensor::cat(&[&cls, &h], 1)?;
        let h = h.broadcast_add(&self.positional(t + 1)?)?;
        let ones = Tensor::ones((b, 1), DType::F32, x.device())?;
        let keys = Tensor::cat(&[&ones, &mask], 1)?;
        // 0 for real keys, MASKED (-1e9) for padded ones.
        let bias = ((keys - 1.0)? * (-MASKED))?;
        let mut h = h;
        for blk in &tb.blocks {
            h = blk.forward(&h, Some(&bias), ctx)?;
        }
        branch_output(&h, tb.final_ln.as_ref())
    }

    fn system_branch(&self, sb: &System, mean: &Tensor, ctx: &Ctx) -> R<Tensor> {
        let (b, f) = mean.dims2()?;
        let d = self.cfg.d_model;
        // w·mean + b per metric, as a rank-1 matmul (its backward is a gemm, not a slow
        // leading-dim reduction) and a fused bias add.
        let tok = mean.reshape((b * f, 1))?.matmul(&sb.w.reshape((1, d))?)?;
        let mut tok = crate::fused::bias_add(&tok, &sb.b)?.reshape((b, f, d))?;
        if let Some(e) = &sb.metric_emb {
            tok = tok.broadcast_add(e)?;
        }
        let cls = sb.cls.broadcast_as((b, 1, d))?;
        let mut h = Tensor::cat(&[&cls, &tok], 1)?;
        for blk in &sb.blocks {
            h = blk.forward(&h, None, ctx)?;
        }
        branch_output(&h, sb.final_ln.as_ref())
    }

    fn positional(&self, n: usize) -> R<Tensor> {
        let mut cache = self.pe.borrow_mut();
        let have = cache.as_ref().map(|p| p.dim(0)).transpose()?.unwrap_or(0);
        if have < n {
            *cache = Some(sinusoidal(
                n.max(128).max(have * 2),
                self.cfg.d_model,
                self.device(),
            )?);
        }
        let pe = cache
            .as_ref()
            .ok_or_else(|| ModelError::Shape("positional cache".into()))?;
        Ok(pe.narrow(0, 0, n)?)
    }
}

/// Mean over time of the real (unmasked) seconds: [B, T, F] × [B, T] → [B, F].
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> R<Tensor> {
    // [B, 1, T] × [B, T, F]: a batched matmul instead of a mid-axis reduction (slow in candle).
    let (b, t, f) = x.dims3()?;
    let sum = mask
        .reshape((b, 1, t))?
        .matmul(&x.contiguous()?)?
        .reshape((b, f))?;
    let cnt = mask.sum_keepdim(1)?.clamp(1f32, f32::MAX)?;
    Ok(sum.broadcast_div(&cnt)?)
}

/// Mask-aware mean-pooling of the time axis with stride `ceil(T / max_len)`, so that the
/// temporal branch attends over at most `max_len` steps: [B, T, F] → [B, ≤max_len, F].
pub fn pool_time(x: &Tensor, mask: &Tensor, max_len: usize) -> R<(Tensor, Tensor)> {
    let (b, t, f) = x.dims3()?;
    let s = t.div_ceil(max_len);
    let tp = t.div_ceil(s);
    let pad = tp * s - t;
    let (x, mask) = if pad > 0 {
        (
            Tensor::cat(
                &[x, &Tensor::zeros((b, pad, f), DType::F32, x.device())?],
                1,
            )?,
            Tensor::cat(
                &[mask, &Tensor::zeros((b, pad), DType::F32, x.device())?],
                1,
            )?,
        )
    } else {
        (x.clone(), mask.clone())
    };
    let m = mask.reshape((b, tp, s))?;
    let sum = m
        .reshape((b * tp, 1, s))?
        .matmul(&x.contiguous()?.reshape((b * tp, s, f))?)?
        .reshape((b, tp, f))?;
    let cnt = m.sum(2)?;
    let pooled = sum.broadcast_div(&cnt.clamp(1f32, f32::MAX)?.unsqueeze(2)?)?;
    Ok((pooled, cnt.clamp(0f32, 1f32)?))
}
