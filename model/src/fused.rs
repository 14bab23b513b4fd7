//! Fused CPU kernels with analytic backward passes, for the three places where candle's
//! composed ops cost most (see `README.md`, "Where the time goes"):
//!
//! - [`bias_add`]: `x + b` over the last dim. The composed `broadcast_add` backward reduces over
//!   the *leading* dims, which candle 0.11 does with a per-element div/mod loop.
//! - [`softmax`]: `softmax(scale·s + key_bias)` over the last dim, in one pass, with its
//!   backward `scale·y·(g − Σ g·y)` in one pass. (candle's own `softmax_last_dim` has no
//!   backward at all: it silently drops the gradient.)
//! - [`layer_norm`]: LayerNorm over the last dim with gradients for x, γ and β. (candle's fused
//!   `LayerNorm` also silently drops gradients.)
//! - [`attention`]: `(softmax(scale·q·kᵀ + key_bias) ⊙ dropout) · v` per batch and head as one
//!   op, whose backward builds no [B, H, N, N] gradient tensors (`fused/attention.rs`).
//! - [`mask_mul`]: `x ⊙ mask` for dropout, with the gradient of x only. candle's `mul` backward
//!   also computes the gradient of the constant mask — a zero tensor, a multiply and an add the
//!   size of the attention probabilities, thrown away.
//!
//! Each op checks its device and dtype: anything but a contiguous f32 CPU tensor goes to the
//! composed (differentiable) version, e.g. on CUDA. Tests compare values and gradients of both.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};

mod attention;

type CResult<T> = candle_core::Result<T>;

fn f32s<'a>(s: &'a CpuStorage, l: &Layout) -> CResult<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(candle_core::Error::Msg(
            "fused op: input must be contiguous".into(),
        )),
    }
}

fn fusable(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

// ---------------------------------------------------------------- attention

/// `(softmax(scale·q·kᵀ + key_bias) ⊙ mask) · v` for q, k, v of shape [B, H, N, dh];
/// `key_bias`: optional [B, N] (added to every query's score of that key); `mask`: optional
/// dropout mask of B·H·N·N values (0 or 1/keep), row-major [B, H, N, N].
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    key_bias: Option<&Tensor>,
    mask: Option<Vec<f32>>,
) -> CResult<Tensor> {
    if fusable(&[q, k, v]) && key_bias.is_none_or(|b| fusable(&[b])) {
        let bias = match key_bias {
            Some(b) => Some(b.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let op = attention::Attention {
            scale: scale as f32,
            bias,
            mask: mask.map(std::sync::Arc::new),
            probs: std::sync::Mutex::new(Vec::new()),
        };
        q.contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
    } else {
        attention_composed(q, k, v, scale, key_bias, mask)
    }
}

/// The same as [`attention`] from candle's differentiable primitives.
pub fn attention_composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    key_bias: Option<&Tensor>,
    mask: Option<Vec<f32>>,
) -> CResult<Tensor> {
    let scores = q.matmul(&k.t()?)?;
    let p = softmax_composed(&scores, scale, key_bias)?;
    let p = match mask {
        Some(m) => (&p * Tensor::from_vec(m, p.shape(), p.device())?)?,
        None => p,
    };
    p.matmul(v)
}

// ---------------------------------------------------------------- dropout mask

/// `x ⊙ mask` (mask: the same number of elements, row-major); backward `g ⊙ mask`.
#[derive(Clone)]
struct MaskMul {
    mask: std::sync::Arc<Vec<f32>>,
}

impl CustomOp1 for MaskMul {
    fn name(&self) -> &'static str {
        "cf-mask-mul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        if x.len() != self.mask.len() {
            return Err(candle_core::Error::Msg(format!(
                "mask multiply: {} values against a mask of {}",
                x.len(),
                self.mask.len()
            )));
        }
        let out: Vec<f32> = x.iter().zip(self.mask.iter()).map(|(a, m)| a * m).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

/// `x ⊙ mask` with the gradient flowing to `x` only (the mask is a constant: dropout).
/// `mask` holds `x.elem_count()` values in `x`'s row-major order.
pub fn mask_mul(x: &Tensor, mask: Vec<f32>) -> CResult<Tensor> {
    if fusable(&[x]) {
        x.contiguous()?.apply_op1(MaskMul {
            mask: std::sync::Arc::new(mask),
        })
    } else {
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

// ---------------------------------------------------------------- bias add

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "cf-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s1, l1)?;
        let b = f32s(s2, l2)?;
        let n = last_dim(l1);
        if b.len() != n {
            return Err(candle_core::Error::Msg(format!(
                "bias_add: bias of {} for a last dim of {n}",
                b.len()
            )));
        }
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(n) {
            out.extend(row.iter().zip(b).map(|(a, c)| a + c));
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gb = g.apply_op1_no_bwd(&ColSum)?;
        Ok((Some(g), Some(gb)))
    }
}

/// Sum over every dim but the last: [.., n] → [n].
struct ColSum;

impl CustomOp1 for ColSum {
    fn name(&self) -> &'static str {
        "cf-col-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let n = last_dim(l);
        let mut out = vec![0f32; n];
        for row in x.chunks_exact(n) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// `x + b` with `b` broadcast over every leading dim of `x`.
pub fn bias_add(x: &Tensor, b: &Tensor) -> CResult<Tensor> {
    if fusable(&[x, b]) && b.rank() == 1 {
        x.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd)
    } else {
        x.broadcast_add(b)
    }
}

// ---------------------------------------------------------------- softmax

/// softmax(scale·s + bias) over the last dim; `bias` (optional) is [B, M] for scores
/// [B, H, N, M] (a per-key additive bias, e.g. −1e9 for padded keys).
#[derive(Clone, Copy)]
struct Softmax {
    scale: f32,
}

fn softmax_rows(s: &[f32], m: usize, scale: f32, bias: Option<(&[f32], usize)>) -> Vec<f32> {
    let mut out = vec![0f32; s.len()];
    for (r, (src, dst)) in s.chunks_exact(m).zip(out.chunks_exact_mut(m)).enumerate() {
        match bias {
            Some((b, rows_per_bias)) => {
                let brow = &b[(r / rows_per_bias) * m..(r / rows_per_bias + 1) * m];
                for ((d, v), c) in dst.iter_mut().zip(src).zip(brow) {
                    *d = v * scale + c;
                }
            }
            None => {
                for (d, v) in dst.iter_mut().zip(src) {
                    *d = v * scale;
                }
            }
        }
    }
    crate::kernels::softmax_rows_inplace(&mut out, m, 1.0);
    out
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "cf-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let out = softmax_rows(x, last_dim(l), self.scale, None);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _s: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(
            res.apply_op2_no_bwd(&g, &SoftmaxBwd { scale: self.scale })?,
        ))
    }
}

struct MaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "cf-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s1, l1)?;
        let b = f32s(s2, l2)?;
        let m = last_dim(l1);
        let dims = l1.dims();
        let batches = dims.first().copied().unwrap_or(1).max(1);
        if b.len() != batches * m {
            return Err(candle_core::Error::Msg(format!(
                "masked softmax: bias of {} values for scores {:?}",
                b.len(),
                dims
            )));
        }
        let rows_per_bias = x.len() / m / batches;
        let out = softmax_rows(x, m, self.scale, Some((b, rows_per_bias)));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _s: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let gs = res.apply_op2_no_bwd(&g, &SoftmaxBwd { scale: self.scale })?;
        Ok((Some(gs), None))
    }
}

/// d(scores) = scale · y ⊙ (g − Σ_row g ⊙ y).
struct SoftmaxBwd {
    scale: f32,
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "cf-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let y = f32s(s1, l1)?;
        let g = f32s(s2, l2)?;
        let m = last_dim(l1);
        let mut out = vec![0f32; y.len()];
        for ((yr, gr), o) in y
            .chunks_exact(m)
            .zip(g.chunks_exact(m))
            .zip(out.chunks_exact_mut(m))
        {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((o, a), b) in o.iter_mut().zip(yr).zip(gr) {
                *o = self.scale * a * (b - dot);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// softmax(scale·s + bias) over the last dim. `s`: [B, H, N, M]; `bias`: optional [B, M]
/// (broadcast over heads and queries).
pub fn softmax(s: &Tensor, scale: f64, bias: Option<&Tensor>) -> CResult<Tensor> {
    let fuse = fusable(&[s]) && bias.is_none_or(|b| fusable(&[b]));
    if fuse {
        let s = s.contiguous()?;
        let op_scale = scale as f32;
        match bias {
            None => s.apply_op1(Softmax { scale: op_scale }),
            Some(b) => s.apply_op2(&b.contiguous()?, MaskedSoftmax { scale: op_scale }),
        }
    } else {
        softmax_composed(s, scale, bias)
    }
}

/// The same as [`softmax`] from candle's differentiable primitives.
pub fn softmax_composed(s: &Tensor, scale: f64, bias: Option<&Tensor>) -> CResult<Tensor> {
    let mut x = (s * scale)?;
    if let Some(b) = bias {
        let (bb, m) = b.dims2()?;
        x = x.broadcast_add(&b.reshape((bb, 1, 1, m))?)?;
    }
    candle_nn::ops::softmax(&x, D::Minus1)
}

// ---------------------------------------------------------------- layer norm

struct LayerNormOp {
    eps: f32,
}

/// Per row: (mean, 1/std).
impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "cf-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s1, l1)?;
        let g = f32s(s2, l2)?;
        let b = f32s(s3, l3)?;
        let mut out = x.to_vec();
        crate::kernels::layer_norm_rows_inplace(&mut out, g, b, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let x = x.contiguous()?;
        let dx = x.apply_op3_no_bwd(gamma, &g, &LayerNormBwdX { eps: self.eps })?;
        let dp = x.apply_op2_no_bwd(&g, &LayerNormBwdParams { eps: self.eps })?;
        Ok((Some(dx), Some(dp.get(0)?), Some(dp.get(1)?)))
    }
}

/// dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)), ĝ = g ⊙ γ.
struct LayerNormBwdX {
    eps: f32,
}

impl CustomOp3 for LayerNormBwdX {
    fn name(&self) -> &'static str {
        "cf-layer-norm-bwd-x"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s1, l1)?;
        let gamma = f32s(s2, l2)?;
        let g = f32s(s3, l3)?;
        let d = last_dim(l1);
        let n = d as f32;
        let mut out = vec![0f32; x.len()];
        let mut gh = vec![0f32; d];
        for ((row, gr), o) in x
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(out.chunks_exact_mut(d))
        {
            let (mean, rstd) = crate::kernels::ln_stats(row, self.eps);
            let (mut s_g, mut s_gx) = (0f32, 0f32);
            for ((h, gv), (gm, v)) in gh.iter_mut().zip(gr).zip(gamma.iter().zip(row)) {
                *h = gv * gm;
                s_g += *h;
                s_gx += *h * (v - mean) * rstd;
            }
            let (m_g, m_gx) = (s_g / n, s_gx / n);
            for ((o, h), v) in o.iter_mut().zip(&gh).zip(row) {
                *o = rstd * (h - m_g - (v - mean) * rstd * m_gx);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// [2, d]: row 0 = Σ g ⊙ x̂ (dγ), row 1 = Σ g (dβ), over every row.
struct LayerNormBwdParams {
    eps: f32,
}

impl CustomOp2 for LayerNormBwdParams {
    fn name(&self) -> &'static str {
        "cf-layer-norm-bwd-params"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32s(s1, l1)?;
        let g = f32s(s2, l2)?;
        let d = last_dim(l1);
        let mut out = vec![0f32; 2 * d];
        let (dg, db) = out.split_at_mut(d);
        for (row, gr) in x.chunks_exact(d).zip(g.chunks_exact(d)) {
            let (mean, rstd) = crate::kernels::ln_stats(row, self.eps);
            for (((a, c), v), gv) in dg.iter_mut().zip(db.iter_mut()).zip(row).zip(gr) {
                *a += gv * (v - mean) * rstd;
                *c += gv;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((2, d))))
    }
}

/// LayerNorm over the last dim with learnable `gamma`, `beta` ([d] each).
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> CResult<Tensor> {
    if fusable(&[x, gamma, beta]) && gamma.rank() == 1 && beta.rank() == 1 {
        x.contiguous()?.apply_op3(
            &gamma.contiguous()?,
            &beta.contiguous()?,
            LayerNormOp { eps: eps as f32 },
        )
    } else {
        layer_norm_composed(x, gamma, beta, eps)
    }
}

/// The same as [`layer_norm`] from candle's differentiable primitives.
pub fn layer_norm_composed(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> CResult<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(gamma)?.broadcast_add(beta)
}
