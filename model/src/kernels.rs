//! Plain-slice CPU kernels shared by the training ops (`fused.rs`) and the inference path
//! (`infer.rs`): a vectorised `exp`, a row softmax, a LayerNorm row and a strided matmul on top of
//! the `gemm` crate (the same kernels candle's CPU backend calls).
//!
//! On x86-64 the hot kernels use explicit AVX2 + FMA intrinsics (`mod avx2`), chosen at run time;
//! every kernel also has a portable version (`portable_*`, tested against the same formulas), so
//! the binary runs on any CPU.

/// exp(x) for x below this is 0 in f32 (and the bit trick below would wrap).
const EXP_MIN: f32 = -87.336_54;
const EXP_MAX: f32 = 88.376_26;
/// Cephes' expf polynomial, highest degree first.
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// exp over a slice, in place: Cephes' degree-6 polynomial on x − n·ln2 and 2ⁿ built from the
/// exponent bits. Relative error < 5e-7 for −87 ≤ x ≤ 88 (tested); exactly 0 below −87.34 (so a
/// −1e9 padding bias gives 0, as libm's `expf` does); inputs above 88.37 are clamped there.
#[inline(always)]
fn exp_body(xs: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to the nearest integer and leaves that integer in the low bits.
    const MAGIC: f32 = 12_582_912.0;
    for x in xs.iter_mut() {
        let v = *x;
        let c = v.clamp(EXP_MIN, EXP_MAX);
        let t = c * LOG2E + MAGIC;
        let n = t - MAGIC;
        let r = c - n * LN2_HI - n * LN2_LO;
        let mut p = EXP_POLY[0];
        for k in &EXP_POLY[1..] {
            p = p * r + k;
        }
        let y = p * r * r + r + 1.0;
        // 2ⁿ: the integer n sits in t's mantissa, offset by MAGIC's bits (0x4B40_0000).
        let bits = t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
        let out = y * f32::from_bits(bits);
        *x = if v < EXP_MIN { 0.0 } else { out };
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// exp of every element, in place (vectorised; see [`exp_body`] for the accuracy).
pub fn exp_inplace(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { avx2::exp_slice(xs) };
        return;
    }
    exp_body(xs)
}

/// The portable exp and softmax, whatever the CPU (so tests cover both paths).
#[doc(hidden)]
pub fn portable_exp_inplace(xs: &mut [f32]) {
    exp_body(xs)
}

#[doc(hidden)]
pub fn portable_softmax_rows_inplace(xs: &mut [f32], m: usize, scale: f32) {
    if m > 0 {
        for row in xs.chunks_exact_mut(m) {
            softmax_body(row, scale)
        }
    }
}

/// softmax(scale·x) of one row, in place (portable; vectorised by the compiler where it can).
#[inline(always)]
fn softmax_body(row: &mut [f32], scale: f32) {
    let mut mx = f32::NEG_INFINITY;
    for v in row.iter_mut() {
        *v *= scale;
        mx = mx.max(*v);
    }
    for v in row.iter_mut() {
        *v -= mx;
    }
    exp_body(row);
    let inv = 1.0 / row.iter().sum::<f32>();
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! exp, softmax, LayerNorm and the affine exp sums with explicit AVX2/FMA intrinsics: the
    //! portable loops' reductions (max, sum) do not vectorise, and their exp then runs 4 wide
    //! through memory.
    use std::arch::x86_64::*;

    /// exp of 8 lanes: the same algorithm and constants as `exp_body`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8(x: __m256) -> __m256 {
        let c = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(super::EXP_MIN)),
            _mm256_set1_ps(super::EXP_MAX),
        );
        let magic = _mm256_set1_ps(12_582_912.0);
        let t = _mm256_fmadd_ps(c, _mm256_set1_ps(std::f32::consts::LOG2_E), magic);
        let n = _mm256_sub_ps(t, magic);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), c);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(super::EXP_POLY[0]);
        for k in &super::EXP_POLY[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*k));
        }
        let y = _mm256_add_ps(
            _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
            _mm256_set1_ps(1.0),
        );
        let e = _mm256_slli_epi32(
            _mm256_add_epi32(
                _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B40_0000)),
                _mm256_set1_epi32(127),
            ),
            23,
        );
        let out = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
        let under = _mm256_cmp_ps(x, _mm256_set1_ps(super::EXP_MIN), _CMP_LT_OQ);
        _mm256_andnot_ps(under, out)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hmax(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        _mm_cvtss_f32(m)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Loads up to 8 values, padding with `fill`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_tail(xs: &[f32], fill: f32) -> __m256 {
        let mut buf = [fill; 8];
        buf[..xs.len()].copy_from_slice(xs);
        _mm256_loadu_ps(buf.as_ptr())
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_tail(xs: &mut [f32], v: __m256) {
        let mut buf = [0f32; 8];
        _mm256_storeu_ps(buf.as_mut_ptr(), v);
        let n = xs.len();
        xs.copy_from_slice(&buf[..n]);
    }

    /// exp of a slice, in place.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_slice(xs: &mut [f32]) {
        let n8 = xs.len() - xs.len() % 8;
        let (body, tail) = xs.split_at_mut(n8);
        for c in body.chunks_exact_mut(8) {
            _mm256_storeu_ps(c.as_mut_ptr(), exp8(_mm256_loadu_ps(c.as_ptr())));
        }
        store_tail(tail, exp8(load_tail(tail, 0.0)));
    }

    /// softmax(scale·x) of every row of length `m`, in place.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax_rows(xs: &mut [f32], m: usize, scale: f32) {
        let sc = _mm256_set1_ps(scale);
        for row in xs.chunks_exact_mut(m) {
            let (body, tail) = row.split_at_mut(m - m % 8);
            let mut mx = _mm256_set1_ps(f32::NEG_INFINITY);
            for c in body.chunks_exact_mut(8) {
                let v = _mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), sc);
                _mm256_storeu_ps(c.as_mut_ptr(), v);
                mx = _mm256_max_ps(mx, v);
            }
            let tv = _mm256_mul_ps(load_tail(tail, f32::NEG_INFINITY), sc);
            mx = _mm256_max_ps(mx, tv);
            let mxv = _mm256_set1_ps(hmax(mx));
            let mut sum = _mm256_setzero_ps();
            for c in body.chunks_exact_mut(8) {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), mxv));
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                sum = _mm256_add_ps(sum, e);
            }
            // Padding lanes are −∞ − max → exp 0: they add nothing to the sum.
            let te = exp8(_mm256_sub_ps(tv, mxv));
            sum = _mm256_add_ps(sum, te);
            let inv = _mm256_set1_ps(1.0 / hsum(sum));
            for c in body.chunks_exact_mut(8) {
                _mm256_storeu_ps(
                    c.as_mut_ptr(),
                    _mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), inv),
                );
            }
            store_tail(tail, _mm256_mul_ps(te, inv));
        }
    }

    /// (Σⱼ nⱼ·exp(a·mⱼ + c), Σⱼ nⱼ·exp(a·mⱼ + c)·mⱼ) in one pass, in registers; nⱼ = 1
    /// without `n`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_affine_sums(m: &[f32], n: Option<&[f32]>, a: f32, c: f32) -> (f32, f32) {
        let (av, cv) = (_mm256_set1_ps(a), _mm256_set1_ps(c));
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let n8 = m.len() - m.len() % 8;
        let (body, tail) = m.split_at(n8);
        match n {
            None => {
                for ch in body.chunks_exact(8) {
                    let x = _mm256_loadu_ps(ch.as_ptr());
                    let e = exp8(_mm256_fmadd_ps(av, x, cv));
                    s0 = _mm256_add_ps(s0, e);
                    s1 = _mm256_fmadd_ps(e, x, s1);
                }
            }
            Some(n) => {
                for (ch, nc) in body.chunks_exact(8).zip(n[..n8].chunks_exact(8)) {
                    let x = _mm256_loadu_ps(ch.as_ptr());
                    let e = _mm256_mul_ps(
                        exp8(_mm256_fmadd_ps(av, x, cv)),
                        _mm256_loadu_ps(nc.as_ptr()),
                    );
                    s0 = _mm256_add_ps(s0, e);
                    s1 = _mm256_fmadd_ps(e, x, s1);
                }
            }
        }
        if !tail.is_empty() {
            // Padding lanes: m = 0 and weight 0 → they add nothing.
            let x = load_tail(tail, 0.0);
            let w = match n {
                None => load_tail(&[1.0; 8][..tail.len()], 0.0),
                Some(n) => load_tail(&n[n8..m.len()], 0.0),
            };
            let e = _mm256_mul_ps(exp8(_mm256_fmadd_ps(av, x, cv)), w);
            s0 = _mm256_add_ps(s0, e);
            s1 = _mm256_fmadd_ps(e, x, s1);
        }
        (hsum(s0), hsum(s1))
    }

    /// LayerNorm of every row, in place; the row length (gamma's) is a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn layer_norm_rows(xs: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let d = gamma.len();
        let inv_d = 1.0 / d as f32;
        for row in xs.chunks_exact_mut(d) {
            let p = row.as_mut_ptr();
            let mut s = _mm256_setzero_ps();
            for k in (0..d).step_by(8) {
                s = _mm256_add_ps(s, _mm256_loadu_ps(p.add(k)));
            }
            let mean = _mm256_set1_ps(hsum(s) * inv_d);
            let mut v = _mm256_setzero_ps();
            for k in (0..d).step_by(8) {
                let t = _mm256_sub_ps(_mm256_loadu_ps(p.add(k)), mean);
                v = _mm256_fmadd_ps(t, t, v);
            }
            let rstd = _mm256_set1_ps(1.0 / (hsum(v) * inv_d + eps).sqrt());
            for k in (0..d).step_by(8) {
                let t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p.add(k)), mean), rstd);
                let y = _mm256_fmadd_ps(
                    t,
                    _mm256_loadu_ps(gamma.as_ptr().add(k)),
                    _mm256_loadu_ps(beta.as_ptr().add(k)),
                );
                _mm256_storeu_ps(p.add(k), y);
            }
        }
    }
}

/// (Σⱼ nⱼ·exp(a·mⱼ + c), Σⱼ nⱼ·exp(a·mⱼ + c)·mⱼ): the softmax mass and first moment of scores
/// that are affine in mⱼ, each key counted nⱼ times (the closed-form attention of
/// `infer/rank1.rs` over distinct metric means). The caller keeps a·mⱼ + c ≤ 0 for every j
/// (subtracts the maximum) so nothing overflows. `n`, when given, has a count for every value
/// (every count is 1 without it).
pub fn exp_affine_sums(m: &[f32], n: Option<&[f32]>, a: f32, c: f32) -> (f32, f32) {
    assert!(
        n.is_none_or(|n| n.len() >= m.len()),
        "a count for every value"
    );
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::exp_affine_sums(m, n, a, c) };
    }
    portable_exp_affine_sums(m, n, a, c)
}

#[doc(hidden)]
pub fn portable_exp_affine_sums(m: &[f32], n: Option<&[f32]>, a: f32, c: f32) -> (f32, f32) {
    let mut e: Vec<f32> = m.iter().map(|x| a * x + c).collect();
    exp_body(&mut e);
    if let Some(n) = n {
        for (p, k) in e.iter_mut().zip(n) {
            *p *= k;
        }
    }
    (e.iter().sum(), e.iter().zip(m).map(|(p, x)| p * x).sum())
}

/// Row-wise softmax(scale·x) over rows of length `m`, in place (add any bias first).
pub fn softmax_rows_inplace(xs: &mut [f32], m: usize, scale: f32) {
    if m == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { avx2::softmax_rows(xs, m, scale) };
        return;
    }
    portable_softmax_rows_inplace(xs, m, scale)
}

/// Sum of a slice with eight independent lanes.
#[inline(always)]
fn sum8(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += *v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Mean and 1/σ of a row (biased variance, as LayerNorm uses).
pub fn ln_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len().max(1) as f32;
    let mean = sum8(row) / n;
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            let d = *v - mean;
            *l += d * d;
        }
    }
    let var = (lanes.iter().sum::<f32>()
        + chunks
            .remainder()
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f32>())
        / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm of every row of length `gamma.len()`, in place.
pub fn layer_norm_rows_inplace(xs: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = gamma.len();
    assert_eq!(beta.len(), d, "layer norm: gamma and beta differ in length");
    #[cfg(target_arch = "x86_64")]
    if d > 0 && d.is_multiple_of(8) && has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above); rows are d long and
        // gamma/beta hold d values (asserted).
        unsafe { avx2::layer_norm_rows(xs, gamma, beta, eps) };
        return;
    }
    portable_layer_norm_rows_inplace(xs, gamma, beta, eps)
}

#[doc(hidden)]
pub fn portable_layer_norm_rows_inplace(xs: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = gamma.len();
    for row in xs.chunks_exact_mut(d) {
        let (mean, rstd) = ln_stats(row, eps);
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * rstd * g + b;
        }
    }
}

/// A strided matrix view: element (i, j) is at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn covers(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[i·dst_rs + j] (+)= Σₖ a(i, k)·b(k, j)` on one thread; with `accumulate` the product is
/// added to what `dst` holds. Panics if a view does not fit its slice (a programming error, never
/// input-dependent: shapes are checked before this is reached).
pub fn matmul(dst: &mut [f32], dst_rs: usize, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: inner dimensions differ");
    assert!(a.covers() && b.covers(), "matmul: a view exceeds its slice");
    assert!(
        m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len(),
        "matmul: the destination is too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every index the kernel touches lies inside the slices (checked above); dst does
    // not alias a or b (it is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
