//! Building blocks. Everything is differentiable: LayerNorm, softmax and bias adds go through our
//! own fused ops with analytic backward passes (`fused.rs`) or candle primitives (no candle
//! fused LayerNorm / softmax_last_dim,
//! which silently drop gradients in candle 0.11).

use std::cell::RefCell;

use candle_core::Tensor;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::params::{Init, Params};
use crate::ModelError;

type R<T> = Result<T, ModelError>;

/// y = x Wᵀ + b over the last dimension; any number of leading dimensions.
pub struct Linear {
    w: Tensor,
    b: Tensor,
    out: usize,
}

impl Linear {
    pub fn new(p: &mut Params, name: &str, inp: usize, out: usize) -> R<Self> {
        let w = p.var(
            &format!("{name}.weight"),
            &[out, inp],
            Init::Uniform { fan_in: inp },
        )?;
        let b = p.var(
            &format!("{name}.bias"),
            &[out],
            Init::Uniform { fan_in: inp },
        )?;
        Ok(Linear { w, b, out })
    }

    pub fn forward(&self, x: &Tensor) -> R<Tensor> {
        self.forward_outputs(x, 0, self.out)
    }

    /// Outputs `lo..lo + n` only: `x · W[lo..lo+n]ᵀ + b[lo..lo+n]`. Slicing the (small)
    /// weights instead of the (large) output keeps candle's backward from zero-padding the
    /// output's gradient to full width for every slice.
    pub fn forward_outputs(&self, x: &Tensor, lo: usize, n: usize) -> R<Tensor> {
        let dims = x.dims().to_vec();
        let inp = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / inp.max(1);
        let (w, b) = if lo == 0 && n == self.out {
            (self.w.clone(), self.b.clone())
        } else {
            (self.w.narrow(0, lo, n)?, self.b.narrow(0, lo, n)?)
        };
        let y = x.reshape((rows, inp))?.matmul(&w.t()?)?;
        let y = crate::fused::bias_add(&y, &b)?;
        let mut out_dims = dims;
        if let Some(l) = out_dims.last_mut() {
            *l = n;
        }
        Ok(y.reshape(out_dims)?)
    }
}

/// LayerNorm over the last dimension (fused, with backward; see `fused.rs`).
pub struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
}

impl LayerNorm {
    pub fn new(p: &mut Params, name: &str, dim: usize) -> R<Self> {
        Ok(LayerNorm {
            gamma: p.var(&format!("{name}.weight"), &[dim], Init::Const(1.0))?,
            beta: p.var(&format!("{name}.bias"), &[dim], Init::Const(0.0))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> R<Tensor> {
        Ok(crate::fused::layer_norm(x, &self.gamma, &self.beta, 1e-5)?)
    }
}

/// Inverted dropout with masks drawn from a seeded RNG.
pub struct Dropout {
    pub p: f32,
}

impl Dropout {
    /// A mask of `n` values (0 or 1/keep) from the seeded stream; `None` when p = 0.
    pub fn mask(&self, n: usize, rng: &RefCell<ChaCha8Rng>) -> Option<Vec<f32>> {
        if self.p <= 0.0 {
            return None;
        }
        let keep = 1.0 - self.p;
        let scale = 1.0 / keep;
        // Four 16-bit draws per u64 from the seeded stream (a quarter of the RNG calls).
        let thr = (keep as f64 * 65536.0).round() as u64;
        let mut rng = rng.borrow_mut();
        let mut mask = vec![0f32; n.next_multiple_of(4)];
        for quad in mask.chunks_exact_mut(4) {
            let r = rng.next_u64();
            for (k, m) in quad.iter_mut().enumerate() {
                let v = (r >> (16 * k)) & 0xffff;
                *m = if v < thr { scale } else { 0.0 };
            }
        }
        mask.truncate(n);
        Some(mask)
    }
}

/// Per-forward state: training mode and the dropout RNG.
pub struct Ctx<'a> {
    pub train: bool,
    pub rng: &'a RefCell<ChaCha8Rng>,
}

impl Ctx<'_> {
    /// `d`'s mask for `n` values in training; `None` in eval mode or when p = 0.
    pub fn dropout_mask(&self, d: &Dropout, n: usize) -> Option<Vec<f32>> {
        if self.train {
            d.mask(n, self.rng)
        } else {
            None
        }
    }

    /// Inverted dropout of `x` in training; `x` itself in eval mode.
    pub fn dropout(&self, d: &Dropout, x: &Tensor) -> R<Tensor> {
        match self.dropout_mask(d, x.elem_count()) {
            Some(mask) => Ok(crate::fused::mask_mul(x, mask)?),
            None => Ok(x.clone()),
        }
    }
}

/// Transformer encoder block. Post-LN (Keras time-series example layout, as the paper reads):
/// h = LN(h + Drop(MHA(h))); h = LN(h + Drop(FFN(h))). Pre-LN (`pre_norm`):
/// h = h + Drop(MHA(LN(h))); h = h + Drop(FFN(LN(h))) — the branch then ends with a LayerNorm.
pub struct EncoderBlock {
    qkv: Linear,
    proj: Linear,
    ln1: LayerNorm,
    ff1: Linear,
    ff2: Linear,
    ln2: LayerNorm,
    drop: Dropout,
    heads: usize,
    pre_norm: bool,
}

/// The shape of an [`EncoderBlock`].
#[derive(Debug, Clone, Copy)]
pub struct BlockShape {
    pub d: usize,
    pub heads: usize,
    pub d_ff: usize,
    pub dropout: f32,
    pub pre_norm: bool,
}

impl EncoderBlock {
    pub fn new(p: &mut Params, name: &str, shape: BlockShape) -> R<Self> {
        let BlockShape {
            d,
            heads,
            d_ff,
            dropout,
            pre_norm,
        } = shape;
        Ok(EncoderBlock {
            qkv: Linear::new(p, &format!("{name}.attn.qkv"), d, 3 * d)?,
            proj: Linear::new(p, &format!("{name}.attn.out"), d, d)?,
            ln1: LayerNorm::new(p, &format!("{name}.ln1"), d)?,
            ff1: Linear::new(p, &format!("{name}.ff1"), d, d_ff)?,
            ff2: Linear::new(p, &format!("{name}.ff2"), d_ff, d)?,
            ln2: LayerNorm::new(p, &format!("{name}.ln2"), d)?,
            drop: Dropout { p: dropout },
            heads,
            pre_norm,
        })
    }

    /// Multi-head self-attention over `x` ([B, N, d]), projected.
    fn attend(&self, x: &Tensor, key_bias: Option<&Tensor>, ctx: &Ctx) -> R<Tensor> {
        let (b, n, d) = x.dims3()?;
        let dh = d / self.heads;
        // Queries, keys and values from the rows of one [3d, d] projection, each [B, H, N, dh].
        let part = |i: usize| -> R<Tensor> {
            Ok(self
                .qkv
                .forward_outputs(x, i * d, d)?
                .reshape((b, n, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let mask = ctx.dropout_mask(&self.drop, b * self.heads * n * n);
        let scale = 1.0 / (dh as f64).sqrt();
        let a = crate::fused::attention(&q, &k, &v, scale, key_bias, mask)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, n, d))?;
        self.proj.forward(&a)
    }

    fn feed_forward(&self, x: &Tensor) -> R<Tensor> {
        self.ff2.forward(&self.ff1.forward(x)?.relu()?)
    }

    /// `h`: [B, N, d]. `key_bias`: optional [B, N] additive bias (0 for real keys, a large
    /// negative number for padded keys).
    pub fn forward(&self, h: &Tensor, key_bias: Option<&Tensor>, ctx: &Ctx) -> R<Tensor> {
        if self.pre_norm {
            let a = self.attend(&self.ln1.forward(h)?, key_bias, ctx)?;
            let h = (h + ctx.dropout(&self.drop, &a)?)?;
            let f = self.feed_forward(&self.ln2.forward(&h)?)?;
            return Ok((&h + ctx.dropout(&self.drop, &f)?)?);
        }
        let a = self.attend(h, key_bias, ctx)?;
        let h = self.ln1.forward(&(h + ctx.dropout(&self.drop, &a)?)?)?;
        let f = self.feed_forward(&h)?;
        self.ln2.forward(&(&h + ctx.dropout(&self.drop, &f)?)?)
    }
}

/// Sinusoidal positional encoding, [n, d], row-major.
pub fn sinusoidal_vec(n: usize, d: usize) -> Vec<f32> {
    let mut pe = vec![0f32; n * d];
    for pos in 0..n {
        for i in 0..d / 2 {
            let angle = pos as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
            pe[pos * d + 2 * i] = angle.sin() as f32;
            pe[pos * d + 2 * i + 1] = angle.cos() as f32;
        }
    }
    pe
}

/// Sinusoidal positional encoding, [n, d].
pub fn sinusoidal(n: usize, d: usize, device: &candle_core::Device) -> R<Tensor> {
    Ok(Tensor::from_vec(sinusoidal_vec(n, d), (n, d), device)?)
}
