//! Per-feature normalisation fitted on training data, in one of two encodings:
//! - 1 (plain, checkpoints before 2026-12-05): counters go through a signed log1p, then every
//!   feature is z-scored; nulls (NaN) become 0 (the training mean) after scaling, with no flag.
//!   Constant columns get std 1; all-null columns mean 0, std 1.
//! - 2 (masked, [`crate::masked`]): only features that varied in training, robust-scaled, each
//!   with a missing flag per second.
//!
//! The network never sees NaN. A checkpoint of an encoding this build does not know is refused.

use serde::{Deserialize, Serialize};

use crate::derived::DerivedInput;
use crate::masked::{ENCODING_MASKED, ENCODING_PLAIN};
use crate::ModelError;

fn plain() -> u32 {
    ENCODING_PLAIN
}

/// z-scores are clamped to ±`Z_CLAMP` so a wild value cannot dominate a forward pass.
const Z_CLAMP: f32 = 20.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// [`ENCODING_PLAIN`] or [`ENCODING_MASKED`]; absent in checkpoints written before the
    /// masked encoding (read as plain).
    #[serde(default = "plain")]
    pub encoding: u32,
    /// Encoding 2: the raw features fed to the network (null or constant in every training row:
    /// dropped). Empty for encoding 1.
    #[serde(default)]
    pub keep: Vec<bool>,
    /// Coverage below which a window is out of distribution: half the lowest coverage of any
    /// training run (set by the trainer; 0 = no floor, as in checkpoints without one).
    #[serde(default)]
    pub coverage_floor: f32,
    /// Encoding 2: ratios computed from the raw features and fed after the kept ones
    /// ([`crate::derived`]). Left out of checkpoints without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived: Vec<DerivedInput>,
    pub log1p: Vec<bool>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Range of the transformed (pre-z) training values; NaN where the column was all null.
    #[serde(with = "nan_as_null")]
    pub min: Vec<f32>,
    #[serde(with = "nan_as_null")]
    pub max: Vec<f32>,
}

fn signed_log1p(v: f32) -> f32 {
    v.signum() * v.abs().ln_1p()
}

impl Normalizer {
    /// Identity scaling for `n` features (nulls still become 0).
    pub fn identity(n: usize) -> Self {
        Normalizer {
            encoding: ENCODING_PLAIN,
            keep: Vec::new(),
            coverage_floor: 0.0,
            derived: Vec::new(),
            log1p: vec![false; n],
            mean: vec![0.0; n],
            std: vec![1.0; n],
            min: vec![f32::NAN; n],
            max: vec![f32::NAN; n],
        }
    }

    /// Fits on row-major rows of `log1p.len()` features each (NaN = null, skipped).
    pub fn fit<'a>(
        log1p: Vec<bool>,
        rows: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Self, ModelError> {
        let n = log1p.len();
        let mut cnt = vec![0u64; n];
        let mut mean = vec![0f64; n];
        let mut m2 = vec![0f64; n];
        let mut min = vec![f32::INFINITY; n];
        let mut max = vec![f32::NEG_INFINITY; n];
        for (r, row) in rows.into_iter().enumerate() {
            if row.len() != n {
                return Err(ModelError::Shape(format!(
                    "row {r} has {} features, expected {n}",
                    row.len()
                )));
            }
            for j in 0..n {
                let v = row[j];
                if !v.is_finite() {
                    continue;
                }
                let u = if log1p[j] { signed_log1p(v) } else { v };
                cnt[j] += 1;
                let d = u as f64 - mean[j];
                mean[j] += d / cnt[j] as f64;
                m2[j] += d * (u as f64 - mean[j]);
                min[j] = min[j].min(u);
                max[j] = max[j].max(u);
            }
        }
        let mut out = Normalizer::identity(n);
        out.log1p = log1p;
        for j in 0..n {
            if cnt[j] == 0 {
                continue;
            }
            out.mean[j] = mean[j] as f32;
            let sd = (m2[j] / cnt[j] as f64).sqrt() as f32;
            out.std[j] = if sd > 1e-8 { sd } else { 1.0 };
            out.min[j] = min[j];
            out.max[j] = max[j];
        }
        Ok(out)
    }

    /// Raw features (the catalogue's width).
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// Network inputs per second: the raw width (encoding 1), or 2 × (the kept features + the
    /// derived inputs).
    pub fn n_inputs(&self) -> usize {
        match self.encoding {
            ENCODING_MASKED => 2 * (self.keep.iter().filter(|&&k| k).count() + self.derived.len()),
            _ => self.n_features(),
        }
    }

    /// Checks the encoding and that every vector has the same length.
    pub fn validate(&self) -> Result<(), ModelError> {
        if ![ENCODING_PLAIN, ENCODING_MASKED].contains(&self.encoding) {
            return Err(ModelError::Config(format!(
                "normaliser encoding {} is not known to this build (it reads encodings \
                 {ENCODING_PLAIN} and {ENCODING_MASKED}); use a newer cloudformer or retrain",
                self.encoding
            )));
        }
        let n = self.mean.len();
        if self.encoding == ENCODING_MASKED && self.keep.len() != n {
            return Err(ModelError::Config(format!(
                "normaliser encoding 2 keeps {} flags for {n} features",
                self.keep.len()
            )));
        }
        if self.encoding != ENCODING_MASKED && !self.derived.is_empty() {
            return Err(ModelError::Config(
                "derived inputs need normaliser encoding 2".into(),
            ));
        }
        for d in &self.derived {
            d.check(n)?;
        }
        if [
            self.log1p.len(),
            self.std.len(),
            self.min.len(),
            self.max.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err(ModelError::Config(
                "normaliser vectors have different lengths".into(),
            ));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(ModelError::Config(
                "normaliser has a non-positive std".into(),
            ));
        }
        Ok(())
    }

    /// Normalises one value of feature `j` (encoding 1).
    #[inline]
    pub fn value(&self, j: usize, v: f32) -> f32 {
        if !v.is_finite() {
            return 0.0;
        }
        let u = if self.log1p[j] { signed_log1p(v) } else { v };
        ((u - self.mean[j]) / self.std[j]).clamp(-Z_CLAMP, Z_CLAMP)
    }

    /// Encodes raw row-major T×F `src` into `dst` (resized, reused) as T × [`Self::n_inputs`].
    pub fn apply_into(&self, src: &[f32], dst: &mut Vec<f32>) {
        if self.encoding == ENCODING_MASKED {
            return self.apply_masked(src, dst);
        }
        let n = self.n_features();
        dst.clear();
        dst.extend(src.iter().enumerate().map(|(i, &v)| self.value(i % n, v)));
    }

    /// Normalises row-major T×F data in place (encoding 1 only: encoding 2 changes the width;
    /// use [`Self::apply_into`]).
    pub fn apply(&self, data: &mut [f32]) {
        debug_assert_eq!(self.encoding, ENCODING_PLAIN);
        let n = self.n_features();
        for (i, v) in data.iter_mut().enumerate() {
            *v = self.value(i % n, *v);
        }
    }

    /// Share of the non-null values of a raw T×F window that lie outside the training range
    /// (widened by a quarter of the range on each side). Columns never seen in training are skipped.
    pub fn out_of_range_fraction(&self, src: &[f32]) -> f32 {
        RawRanges::of(self).out_of_range_fraction(src)
    }
}

/// The training range of every feature (widened as [`Normalizer::out_of_range_fraction`]
/// says) mapped back to raw values, so that checking a window costs two comparisons per value
/// (no log1p). Build once per model.
#[derive(Debug, Clone)]
pub struct RawRanges {
    /// (low, high) per feature; NaN for columns never seen in training.
    bounds: Vec<(f32, f32)>,
}

impl RawRanges {
    pub fn of(nz: &Normalizer) -> RawRanges {
        let inv = |u: f32| u.signum() * u.abs().exp_m1();
        let bounds = (0..nz.n_features())
            .map(|j| {
                let (lo, hi) = (nz.min[j], nz.max[j]);
                let dropped = nz.encoding == ENCODING_MASKED && !nz.keep[j];
                if dropped || !lo.is_finite() || !hi.is_finite() {
                    return (f32::NAN, f32::NAN);
                }
                let margin = (0.25 * (hi - lo))
                    .max(1e-3 * (lo.abs() + hi.abs()))
                    .max(1e-6);
                let (a, b) = (lo - margin, hi + margin);
                // signed log1p is increasing: the interval maps to an interval.
                if nz.log1p[j] {
                    (inv(a), inv(b))
                } else {
                    (a, b)
                }
            })
            .collect();
        RawRanges { bounds }
    }

    /// Share of the window's non-null values outside the ranges (0 when none is comparable).
    pub fn out_of_range_fraction(&self, src: &[f32]) -> f32 {
        let (mut seen, mut out) = (0usize, 0usize);
        for row in src.chunks(self.bounds.len().max(1)) {
            for (v, (lo, hi)) in row.iter().zip(&self.bounds) {
                // Null values and columns never seen in training are skipped (an infinite
                // bound is a real one: the range reaches past f32).
                if !v.is_finite() || lo.is_nan() {
                    continue;
                }
                seen += 1;
                out += usize::from(*v < *lo || *v > *hi);
            }
        }
        if seen == 0 {
            0.0
        } else {
            out as f32 / seen as f32
        }
    }
}

/// JSON has no NaN: all-null columns (NaN range) are written as `null` and read back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            v.iter()
                .map(|x| if x.is_finite() { Some(*x) } else { None }),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let v: Vec<Option<f32>> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
    }
}
