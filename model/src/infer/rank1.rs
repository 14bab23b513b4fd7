//! The first system block's attention in closed form.
//!
//! In the faithful system branch every metric token is `w·mⱼ + b` (a shared 1×1 convolution of
//! the metric's mean mⱼ): the tokens span a line, and so do their queries, keys and values. For
//! one head, with `qkv(w·m + b) = m·u + c`:
//!
//! - the score of query i against metric key j is `αᵢ·mⱼ + γᵢ` (αᵢ, γᵢ affine in mᵢ), and
//!   against the CLS key a scalar eᵢ;
//! - the attention output is `aᵢ·V_cls + bᵢ·u_v + cᵢ·c_v`, three scalars per row and head:
//!   aᵢ = p(CLS), bᵢ = Σⱼ pᵢⱼ·mⱼ, cᵢ = 1 − aᵢ;
//! - so the output projection is three precomputed d-vectors per head.
//!
//! That replaces the block's QKV projection, both attention matmuls and the output projection
//! (about half of a system block's arithmetic) with F exponentials per row and head. The result
//! equals the matmul form up to float rounding (tested against the candle graph). It does not
//! apply with per-metric embeddings (the tokens then leave the line).

use super::Lin;
use crate::kernels;

/// Everything about the first block that does not depend on the window.
pub(super) struct Rank1 {
    heads: usize,
    d: usize,
    /// Per head: A = u_q·u_k, B = c_q·u_k, C = u_q·c_k, D = c_q·c_k, E = u_q·k_cls, G = c_q·k_cls.
    coef: Vec<[f32; 6]>,
    /// Per head, the CLS query's α, γ and e.
    cls_row: Vec<[f32; 3]>,
    /// Per head, the output projection of V_cls, u_v and c_v: [heads, d] each.
    p_cls: Vec<f32>,
    p_u: Vec<f32>,
    p_c: Vec<f32>,
    /// The projection's bias.
    bias: Vec<f32>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `W·x (+ bias)` for a [out, in] row-major W.
fn apply(l: &Lin, x: &[f32], with_bias: bool) -> Vec<f32> {
    (0..l.out)
        .map(|r| dot(&l.w[r * l.inp..(r + 1) * l.inp], x) + if with_bias { l.b[r] } else { 0.0 })
        .collect()
}

impl Rank1 {
    /// `w`, `b`: the token projection; `cls`: the CLS token; `qkv`, `proj`: the first block's
    /// attention projections.
    pub(super) fn new(
        w: &[f32],
        b: &[f32],
        cls: &[f32],
        qkv: &Lin,
        proj: &Lin,
        heads: usize,
    ) -> Self {
        let d = w.len();
        let dh = d / heads;
        let u = apply(qkv, w, false);
        let c = apply(qkv, b, true);
        let z = apply(qkv, cls, true);
        let part = |v: &[f32], which: usize, h: usize| -> Vec<f32> {
            v[which * d + h * dh..which * d + (h + 1) * dh].to_vec()
        };
        let (mut coef, mut cls_row) = (Vec::new(), Vec::new());
        let (mut p_cls, mut p_u, mut p_c) = (Vec::new(), Vec::new(), Vec::new());
        for h in 0..heads {
            let (uq, uk, uv) = (part(&u, 0, h), part(&u, 1, h), part(&u, 2, h));
            let (cq, ck, cv) = (part(&c, 0, h), part(&c, 1, h), part(&c, 2, h));
            let (zq, zk, zv) = (part(&z, 0, h), part(&z, 1, h), part(&z, 2, h));
            coef.push([
                dot(&uq, &uk),
                dot(&cq, &uk),
                dot(&uq, &ck),
                dot(&cq, &ck),
                dot(&uq, &zk),
                dot(&cq, &zk),
            ]);
            cls_row.push([dot(&zq, &uk), dot(&zq, &ck), dot(&zq, &zk)]);
            // Column block h of the projection times a head-sized vector.
            let project = |x: &[f32], out: &mut Vec<f32>| {
                for k in 0..d {
                    let row = &proj.w[k * d + h * dh..k * d + (h + 1) * dh];
                    out.push(dot(row, x));
                }
            };
            project(&zv, &mut p_cls);
            project(&uv, &mut p_u);
            project(&cv, &mut p_c);
        }
        Rank1 {
            heads,
            d,
            coef,
            cls_row,
            p_cls,
            p_u,
            p_c,
            bias: proj.b.clone(),
        }
    }

    /// The attention sub-layer's output (after the projection, before the residual) of rows
    /// `0..nq` (row 0 = CLS, row i = metric i − 1) into `out` ([nq, d]); `m` are the metric
    /// means, each standing for `count[j]` metrics with that same mean (1 without `count`).
    pub(super) fn attention(
        &self,
        m: &[f32],
        count: Option<&[f32]>,
        nq: usize,
        scale: f32,
        out: &mut Vec<f32>,
    ) {
        let d = self.d;
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for v in m {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
        out.clear();
        for i in 0..nq {
            let base = out.len();
            out.extend_from_slice(&self.bias);
            for h in 0..self.heads {
                let [al, ga, e] = if i == 0 {
                    self.cls_row[h]
                } else {
                    let [a, b, c, dd, e, g] = self.coef[h];
                    let mi = m[i - 1];
                    [mi * a + b, mi * c + dd, mi * e + g]
                };
                let (al, ga, e) = (al * scale, ga * scale, e * scale);
                // Largest score: the CLS key or the metric key at an end of the range.
                let top = ga + if al >= 0.0 { al * hi } else { al * lo };
                let mx = if m.is_empty() { e } else { e.max(top) };
                let (z_metrics, s1) = kernels::exp_affine_sums(m, count, al, ga - mx);
                let e_cls = (e - mx).exp();
                let inv = 1.0 / (z_metrics + e_cls);
                let (a, b, c) = (e_cls * inv, s1 * inv, z_metrics * inv);
                let row = &mut out[base..base + d];
                let (pc, pu, pv) = (
                    &self.p_cls[h * d..(h + 1) * d],
                    &self.p_u[h * d..(h + 1) * d],
                    &self.p_c[h * d..(h + 1) * d],
                );
                for k in 0..d {
                    row[k] += a * pc[k] + b * pu[k] + c * pv[k];
                }
            }
        }
    }
}
