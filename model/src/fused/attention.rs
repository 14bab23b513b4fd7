//! Multi-head attention as one op with its own backward, for training on the CPU:
//! `out = (softmax(scale·q·kᵀ + key_bias) ⊙ dropout_mask) · v` for every batch and head.
//!
//! As separate candle ops, every [B, H, N, N] tensor of attention (scores, probabilities,
//! dropped probabilities) gets its gradient built in candle's backward as a fresh zero tensor
//! plus an add, and the constant dropout mask gets a gradient too — all thrown away. Here the
//! backward goes straight from d(out) to dq, dk and dv with one N × N scratch per head:
//!
//! - dP̃ = d(out)·vᵀ, dv = P̃ᵀ·d(out) with P̃ = P ⊙ mask;
//! - dP = dP̃ ⊙ mask; dS = scale · P ⊙ (dP − Σ_row dP ⊙ P);
//! - dq = dS·k, dk = dSᵀ·q.
//!
//! The forward keeps P (before dropout) for the backward, as candle keeps its own tensors.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::{f32s, CResult};
use crate::kernels::{self, Mat};

pub(super) struct Attention {
    pub scale: f32,
    /// [B, N] additive bias per key (0 real, very negative for padding).
    pub bias: Option<Vec<f32>>,
    /// [B, H, N, N] dropout mask (0 or 1/keep).
    pub mask: Option<Arc<Vec<f32>>>,
    /// P of the forward pass, [B, H, N, N].
    pub probs: Mutex<Vec<f32>>,
}

fn err(msg: String) -> candle_core::Error {
    candle_core::Error::Msg(format!("fused attention: {msg}"))
}

impl Attention {
    /// (B, H, N, dh) of q, checked against k and v.
    fn dims(&self, l1: &Layout, l2: &Layout, l3: &Layout) -> CResult<(usize, usize, usize, usize)> {
        let d = l1.dims();
        if d.len() != 4 || l2.dims() != d || l3.dims() != d {
            return Err(err(format!(
                "q, k, v must share one [B, H, N, dh] shape, got {:?}, {:?}, {:?}",
                d,
                l2.dims(),
                l3.dims()
            )));
        }
        let (b, h, n) = (d[0], d[1], d[2]);
        if self.bias.as_ref().is_some_and(|x| x.len() != b * n) {
            return Err(err(format!("key bias is not [B, N] = [{b}, {n}]")));
        }
        if self.mask.as_ref().is_some_and(|m| m.len() != b * h * n * n) {
            return Err(err(format!(
                "dropout mask is not [B, H, N, N] = [{b}, {h}, {n}, {n}]"
            )));
        }
        Ok((b, h, n, d[3]))
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "cf-attention"
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
        let (q, k, v) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let (_, h, n, dh) = self.dims(l1, l2, l3)?;
        let (nn, nd) = (n * n, n * dh);
        let mut probs = vec![0f32; q.len() / dh * n];
        let mut out = vec![0f32; q.len()];
        probs
            .par_chunks_mut(nn.max(1))
            .zip(out.par_chunks_mut(nd.max(1)))
            .enumerate()
            .for_each(|(bh, (p, o))| {
                let (qb, kb, vb) = (
                    &q[bh * nd..(bh + 1) * nd],
                    &k[bh * nd..(bh + 1) * nd],
                    &v[bh * nd..(bh + 1) * nd],
                );
                kernels::matmul(p, n, Mat::rows(qb, n, dh), Mat::rows(kb, n, dh).t(), false);
                match &self.bias {
                    Some(bias) => {
                        let brow = &bias[(bh / h) * n..(bh / h + 1) * n];
                        for row in p.chunks_exact_mut(n) {
                            for (x, c) in row.iter_mut().zip(brow) {
                                *x = *x * self.scale + c;
                            }
                        }
                        kernels::softmax_rows_inplace(p, n, 1.0);
                    }
                    None => kernels::softmax_rows_inplace(p, n, self.scale),
                }
                match &self.mask {
                    Some(m) => {
                        let pd: Vec<f32> = p
                            .iter()
                            .zip(&m[bh * nn..(bh + 1) * nn])
                            .map(|(a, b)| a * b)
                            .collect();
                        kernels::matmul(o, dh, Mat::rows(&pd, n, n), Mat::rows(vb, n, dh), false);
                    }
                    None => kernels::matmul(o, dh, Mat::rows(p, n, n), Mat::rows(vb, n, dh), false),
                }
            });
        *self.probs.lock().map_err(|_| err("poisoned lock".into()))? = probs;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let probs = self.probs.lock().map_err(|_| err("poisoned lock".into()))?;
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        fn cpu<'a>(s: &'a Storage, l: &Layout) -> CResult<&'a [f32]> {
            match s {
                Storage::Cpu(c) => f32s(c, l),
                _ => Err(err("backward needs CPU tensors".into())),
            }
        }
        // Read locks, held while the gradients are computed (nothing writes these tensors
        // during backward).
        let (qd, kd, vd, gd) = (cpu(&qs, ql)?, cpu(&ks, kl)?, cpu(&vs, vl)?, cpu(&gs, gl)?);
        let (_, _, n, dh) = self.dims(ql, kl, vl)?;
        if gd.len() != qd.len() || probs.len() != qd.len() / dh * n {
            return Err(err("backward without a matching forward".into()));
        }
        let (nn, nd) = (n * n, n * dh);
        let mut dq = vec![0f32; qd.len()];
        let mut dk = vec![0f32; qd.len()];
        let mut dv = vec![0f32; qd.len()];
        dq.par_chunks_mut(nd.max(1))
            .zip(dk.par_chunks_mut(nd.max(1)))
            .zip(dv.par_chunks_mut(nd.max(1)))
            .enumerate()
            .for_each(|(bh, ((dqb, dkb), dvb))| {
                let r = bh * nd..(bh + 1) * nd;
                let (qb, kb, vb, go) = (&qd[r.clone()], &kd[r.clone()], &vd[r.clone()], &gd[r]);
                let p = &probs[bh * nn..(bh + 1) * nn];
                let m = self.mask.as_ref().map(|m| &m[bh * nn..(bh + 1) * nn]);
                // dP̃ = d(out)·vᵀ.
                let mut ds = vec![0f32; nn];
                kernels::matmul(
                    &mut ds,
                    n,
                    Mat::rows(go, n, dh),
                    Mat::rows(vb, n, dh).t(),
                    false,
                );
                // dv = P̃ᵀ·d(out).
                match m {
                    Some(m) => {
                        let pd: Vec<f32> = p.iter().zip(m).map(|(a, b)| a * b).collect();
                        kernels::matmul(
                            dvb,
                            dh,
                            Mat::rows(&pd, n, n).t(),
                            Mat::rows(go, n, dh),
                            false,
                        );
                        for (x, b) in ds.iter_mut().zip(m) {
                            *x *= b;
                        }
                    }
                    None => kernels::matmul(
                        dvb,
                        dh,
                        Mat::rows(p, n, n).t(),
                        Mat::rows(go, n, dh),
                        false,
                    ),
                }
                // dS = scale · P ⊙ (dP − Σ_row dP ⊙ P).
                for (dr, pr) in ds.chunks_exact_mut(n).zip(p.chunks_exact(n)) {
                    let dot: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (x, pv) in dr.iter_mut().zip(pr) {
                        *x = self.scale * pv * (*x - dot);
                    }
                }
                kernels::matmul(dqb, dh, Mat::rows(&ds, n, n), Mat::rows(kb, n, dh), false);
                kernels::matmul(
                    dkb,
                    dh,
                    Mat::rows(&ds, n, n).t(),
                    Mat::rows(qb, n, dh),
                    false,
                );
            });
        let make = |d: Vec<f32>| Tensor::from_vec(d, q.shape(), q.device());
        Ok((Some(make(dq)?), Some(make(dk)?), Some(make(dv)?)))
    }
}
