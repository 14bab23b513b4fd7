//! An inference-only forward pass of the two branches on plain slices (CPU): the same
//! arithmetic as the candle graph in eval mode, without its per-op allocations and without the
//! padding of a batch.
//!
//! What makes it faster than the candle graph (see `model/README.md`, "Speed"):
//! - each window runs at its own length (no padded seconds to compute and mask), windows of a
//!   batch in parallel (rayon), one thread per window;
//! - scratch buffers live per thread and are reused: no page faults from fresh large outputs;
//! - exp, softmax and LayerNorm are the vectorised kernels of `kernels.rs`;
//! - the first system block's attention is computed in closed form (`infer/rank1.rs`);
//! - the system blocks run over the window's distinct metric means, each weighted by its count
//!   (equal means give equal tokens; see `system_branch`);
//! - the last block of each branch only computes what its CLS output needs: keys and values of
//!   every token, but the query, attention, projection and feed-forward of the CLS row alone.
//!
//! One difference from the batched candle graph: with `max_len`, the pooling stride comes from
//! the window's own length (the candle graph uses the longest window of the batch), so a
//! window's answer never depends on the other windows it was batched with.

mod rank1;
mod weights;

use weights::{Block, Lin, SystemW, TemporalW};

use std::cell::RefCell;

use candle_core::Device;
use rayon::prelude::*;

use crate::kernels::{self, Mat};
use crate::layers::sinusoidal_vec;
use crate::{CloudFormer, Config, ModelError, Normalizer};

type R<T> = Result<T, ModelError>;

/// Per-thread working memory, grown on demand and reused.
#[derive(Default)]
struct Scratch {
    norm: Vec<f32>,
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    scores: Vec<f32>,
    att: Vec<f32>,
    tmp: Vec<f32>,
    ff: Vec<f32>,
    /// Pre-LN blocks: the normalised copy of `h` the attention or feed-forward reads.
    hn: Vec<f32>,
    /// Distinct metric means (system branch), their counts, and ln(count) per token.
    uniq: Vec<f32>,
    count: Vec<f32>,
    key_bias: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Positions precomputed for the temporal branch; longer windows compute theirs on the fly.
const PE_ROWS: usize = 1024;

/// The branches' weights copied out of a [`CloudFormer`] into plain vectors.
pub struct FastBranches {
    d: usize,
    heads: usize,
    n_features: usize,
    max_len: usize,
    temporal: Option<TemporalW>,
    system: Option<SystemW>,
    pe: Vec<f32>,
}

impl FastBranches {
    /// Copies the weights of `model`. `None` when the model is not on the CPU (the candle graph
    /// then runs instead).
    pub fn from_model(model: &CloudFormer) -> R<Option<FastBranches>> {
        if !matches!(model.device(), Device::Cpu) {
            return Ok(None);
        }
        let cfg: &Config = model.config();
        let (temporal, system) = weights::branches(model)?;
        let pe_rows = if cfg.max_len > 0 {
            cfg.max_len + 1
        } else {
            PE_ROWS
        };
        Ok(Some(FastBranches {
            d: cfg.d_model,
            heads: cfg.n_heads,
            n_features: cfg.n_features,
            max_len: cfg.max_len,
            temporal,
            system,
            pe: sinusoidal_vec(pe_rows, cfg.d_model),
        }))
    }

    /// Width of the concatenated branch outputs (the head's input).
    pub fn out_dim(&self) -> usize {
        self.d * (usize::from(self.temporal.is_some()) + usize::from(self.system.is_some()))
    }

    /// The branch outputs of windows (row-major T×F each, T ≥ 1), written to `out` as
    /// [B, out_dim]. With `normalizer` the windows are raw (NaN = null) and normalised here, per
    /// thread; without, they must already be normalised (no NaN). Windows run in parallel when
    /// there are several.
    pub fn features(
        &self,
        windows: &[(&[f32], usize)],
        normalizer: Option<&Normalizer>,
        out: &mut Vec<f32>,
    ) -> R<()> {
        // Raw windows have the normaliser's width; normalised ones the network's.
        let f = normalizer.map_or(self.n_features, Normalizer::n_features);
        for (i, (data, t)) in windows.iter().enumerate() {
            if *t == 0 || data.len() != t * f {
                return Err(ModelError::Shape(format!(
                    "window {i}: {} values, expected T×F = {t}×{f} with T ≥ 1",
                    data.len()
                )));
            }
        }
        let w = self.out_dim();
        out.clear();
        out.resize(windows.len() * w, 0.0);
        if windows.len() == 1 {
            self.window(windows[0].0, windows[0].1, normalizer, out);
        } else {
            out.par_chunks_mut(w)
                .zip(windows.par_iter())
                .for_each(|(o, (data, t))| self.window(data, *t, normalizer, o));
        }
        Ok(())
    }

    fn window(&self, x: &[f32], t: usize, normalizer: Option<&Normalizer>, out: &mut [f32]) {
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let mut norm = std::mem::take(&mut s.norm);
            let x = match normalizer {
                Some(nz) => {
                    nz.apply_into(x, &mut norm);
                    &norm[..]
                }
                None => x,
            };
            self.branches(x, t, s, out);
            s.norm = norm;
        })
    }

    fn branches(&self, x: &[f32], t: usize, s: &mut Scratch, out: &mut [f32]) {
        {
            let d = self.d;
            let mut at = 0;
            if let Some(tw) = &self.temporal {
                self.temporal_branch(tw, x, t, s);
                out[..d].copy_from_slice(&s.h[..d]);
                at = d;
            }
            if let Some(sw) = &self.system {
                self.system_branch(sw, x, t, s);
                out[at..at + d].copy_from_slice(&s.h[..d]);
            }
        }
    }

    fn temporal_branch(&self, tw: &TemporalW, x: &[f32], t: usize, s: &mut Scratch) {
        let (d, f) = (self.d, self.n_features);
        // Mean-pool the time axis to at most max_len steps (stride ⌈T / max_len⌉).
        let (xs, tp): (&[f32], usize) = if self.max_len > 0 && t > self.max_len {
            let stride = t.div_ceil(self.max_len);
            let tp = t.div_ceil(stride);
            s.x.clear();
            s.x.resize(tp * f, 0.0);
            for (g, row) in s.x.chunks_exact_mut(f).enumerate() {
                let lo = g * stride;
                let hi = (lo + stride).min(t);
                for src in x[lo * f..hi * f].chunks_exact(f) {
                    for (a, v) in row.iter_mut().zip(src) {
                        *a += v;
                    }
                }
                let inv = 1.0 / (hi - lo) as f32;
                for a in row.iter_mut() {
                    *a *= inv;
                }
            }
            (&s.x, tp)
        } else {
            (x, t)
        };
        // Tokens: CLS, then ReLU(Dense(x)) per second; plus the sinusoidal positions.
        tw.input.forward(xs, tp, &mut s.tmp);
        let n = tp + 1;
        s.h.clear();
        s.h.extend_from_slice(&tw.cls);
        s.h.extend(s.tmp.iter().map(|v| v.max(0.0)));
        if n <= self.pe.len() / d {
            for (v, p) in s.h.iter_mut().zip(&self.pe) {
                *v += p;
            }
        } else {
            let pe = sinusoidal_vec(n, d);
            for (v, p) in s.h.iter_mut().zip(&pe) {
                *v += p;
            }
        }
        self.blocks(&tw.blocks, n, None, s);
        if let Some(ln) = &tw.final_ln {
            ln.apply(&mut s.h[..d]);
        }
    }

    fn system_branch(&self, sw: &SystemW, x: &[f32], t: usize, s: &mut Scratch) {
        let (d, f) = (self.d, self.n_features);
        // Mean over the window's seconds, one token w·mean + b (+ the metric's embedding) each.
        s.x.clear();
        s.x.resize(f, 0.0);
        for row in x[..t * f].chunks_exact(f) {
            for (a, v) in s.x.iter_mut().zip(row) {
                *a += v;
            }
        }
        let inv = 1.0 / t as f32;
        for m in s.x.iter_mut() {
            *m *= inv;
        }
        // Without embeddings a token is a function of its mean alone, and the branch has no
        // positions: metrics with equal means give equal tokens, in every block. Each distinct
        // mean becomes one token that stands for `count` of them — as a key its softmax weight
        // is count·exp(score), i.e. ln(count) added to its score — so the blocks run over the
        // distinct means only (null and constant metrics share a value). Exact up to rounding.
        let dedup = sw.emb.is_none() && distinct(&s.x, &mut s.uniq, &mut s.count);
        let means: &[f32] = if dedup { &s.uniq } else { &s.x };
        s.h.clear();
        s.h.extend_from_slice(&sw.cls);
        for (j, m) in means.iter().enumerate() {
            let m = *m;
            let base = s.h.len();
            s.h.extend(sw.w.iter().zip(&sw.b).map(|(w, b)| m * w + b));
            if let Some(e) = &sw.emb {
                for (v, ev) in s.h[base..].iter_mut().zip(&e[j * d..(j + 1) * d]) {
                    *v += ev;
                }
            }
        }
        let n = means.len() + 1;
        let mut key_bias = std::mem::take(&mut s.key_bias);
        key_bias.clear();
        if dedup {
            key_bias.push(0.0);
            key_bias.extend(s.count.iter().map(|c| c.ln()));
        }
        let kb = dedup.then_some(&key_bias[..]);
        match (&sw.rank1, sw.blocks.first()) {
            (Some(r1), Some(first)) => {
                let nq = if sw.blocks.len() == 1 { 1 } else { n };
                let scale = 1.0 / ((d / self.heads) as f32).sqrt();
                let counts = dedup.then_some(&s.count[..]);
                r1.attention(means, counts, nq, scale, &mut s.tmp);
                self.finish_block(first, nq, s);
                self.blocks(&sw.blocks[1..], n, kb, s);
            }
            _ => self.blocks(&sw.blocks, n, kb, s),
        }
        if let Some(ln) = &sw.final_ln {
            ln.apply(&mut s.h[..d]);
        }
        s.key_bias = key_bias;
    }

    /// Runs the encoder blocks over `s.h` ([n, d]); afterwards `s.h[..d]` is the CLS output.
    /// `key_bias` (length n), when given, is added to every query's score of each key.
    fn blocks(&self, blocks: &[Block], n: usize, key_bias: Option<&[f32]>, s: &mut Scratch) {
        for (i, blk) in blocks.iter().enumerate() {
            let last = i + 1 == blocks.len();
            self.block(blk, n, if last { 1 } else { n }, key_bias, s);
        }
    }

    /// One encoder block over `s.h` ([n, d]); only the first `nq` rows are computed (all n
    /// tokens still serve as keys and values), and `s.h` becomes [nq, d].
    fn block(&self, blk: &Block, n: usize, nq: usize, key_bias: Option<&[f32]>, s: &mut Scratch) {
        let d = self.d;
        let dh = d / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let Scratch {
            h,
            qkv,
            scores,
            att,
            tmp,
            hn,
            ..
        } = s;
        // Pre-LN: attention reads LN(h); the residual below still adds to h itself.
        let src: &[f32] = if blk.pre_norm {
            hn.clear();
            hn.extend_from_slice(&h[..n * d]);
            blk.ln1.apply(hn);
            hn
        } else {
            h
        };
        // Keys and values of every token, queries of the first nq only.
        if nq == n {
            blk.qkv.forward(src, n, qkv);
        } else {
            blk.qkv.forward_rows_cols(src, n, nq, d, qkv);
        }
        att.clear();
        att.resize(nq * d, 0.0);
        scores.clear();
        scores.resize(nq * n, 0.0);
        let w3 = 3 * d;
        for hd in 0..self.heads {
            let q = Mat {
                data: &qkv[hd * dh..],
                rows: nq,
                cols: dh,
                rs: w3,
                cs: 1,
            };
            let kt = Mat {
                data: &qkv[d + hd * dh..],
                rows: dh,
                cols: n,
                rs: 1,
                cs: w3,
            };
            kernels::matmul(scores, n, q, kt, false);
            if let Some(kb) = key_bias {
                // softmax(scale·(s + b/scale)) = softmax(scale·s + b).
                for row in scores.chunks_exact_mut(n) {
                    for (v, b) in row.iter_mut().zip(kb) {
                        *v += b / scale;
                    }
                }
            }
            kernels::softmax_rows_inplace(scores, n, scale);
            let v = Mat {
                data: &qkv[2 * d + hd * dh..],
                rows: n,
                cols: dh,
                rs: w3,
                cs: 1,
            };
            kernels::matmul(&mut att[hd * dh..], d, Mat::rows(scores, nq, n), v, false);
        }
        blk.proj.forward(att, nq, tmp);
        self.finish_block(blk, nq, s);
    }

    /// The rest of a block once `s.tmp` holds its attention output ([nq, d], projected):
    /// post-LN: residual + LayerNorm, feed-forward, residual + LayerNorm; pre-LN: residual,
    /// feed-forward of LN(h), residual. `s.h` becomes [nq, d].
    fn finish_block(&self, blk: &Block, nq: usize, s: &mut Scratch) {
        let d = self.d;
        let Scratch { h, tmp, ff, hn, .. } = s;
        h.truncate(nq * d);
        for (a, b) in h.iter_mut().zip(tmp.iter()) {
            *a += b;
        }
        let ff_in: &[f32] = if blk.pre_norm {
            hn.clear();
            hn.extend_from_slice(h);
            blk.ln2.apply(hn);
            hn
        } else {
            blk.ln1.apply(h);
            h
        };
        blk.ff1.forward(ff_in, nq, ff);
        for v in ff.iter_mut() {
            *v = v.max(0.0);
        }
        blk.ff2.forward(ff, nq, tmp);
        for (a, b) in h.iter_mut().zip(tmp.iter()) {
            *a += b;
        }
        if !blk.pre_norm {
            blk.ln2.apply(h);
        }
    }
}

/// The distinct values of `m` into `uniq` (ascending) and how often each occurs into `count`;
/// false (and both left empty) when every value is distinct.
fn distinct(m: &[f32], uniq: &mut Vec<f32>, count: &mut Vec<f32>) -> bool {
    uniq.clear();
    count.clear();
    uniq.extend_from_slice(m);
    uniq.sort_unstable_by(f32::total_cmp);
    let mut w = 0;
    for r in 0..uniq.len() {
        if w > 0 && uniq[r] == uniq[w - 1] {
            count[w - 1] += 1.0;
        } else {
            uniq[w] = uniq[r];
            count.push(1.0);
            w += 1;
        }
    }
    uniq.truncate(w);
    if w == m.len() {
        uniq.clear();
        count.clear();
        return false;
    }
    true
}
