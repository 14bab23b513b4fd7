//! The masked input encoding (normaliser encoding 2): what the network sees of a raw window.
//!
//! - Only the features that varied in the training data are fed (`keep`); features null or
//!   constant in every training row are dropped and listed in `config.json` by their flags.
//! - Each kept feature goes through its transform (signed log1p for bytes, counts and rates, as
//!   the catalogue's unit says), then robust scaling fitted on the training applications
//!   (median, and the interquartile range / 1.349 — the standard deviation where the IQR is 0),
//!   clamped to ±[`MASKED_CLAMP`].
//! - Each kept feature also gets a **missing flag per second** (1 = null). A null value is
//!   filled with the mean of the window's observed seconds of that feature, so the time mean
//!   the system branch takes is the mean over observed seconds only; a feature null for the
//!   whole window reads as the training median (0) with its flag set throughout.
//!
//! - Optional **derived inputs** ([`crate::derived`]: ratios such as CPU use over the CPUs the
//!   tenant may use) follow the kept features, computed per second from the raw row, each with
//!   its own robust scale and flag.
//!
//! Row layout, per second: the K kept values, the D derived values, then their K + D flags
//! (2·(K + D) network inputs).

use crate::derived::{DerivedInput, DerivedKind};
use crate::{ModelError, Normalizer};

/// Scaled values are clamped to ±`MASKED_CLAMP`.
pub const MASKED_CLAMP: f32 = 5.0;

/// Normaliser encoding: z-scores of every feature, null as 0 (checkpoints before 2026-12-05).
pub const ENCODING_PLAIN: u32 = 1;
/// Normaliser encoding: this module's.
pub const ENCODING_MASKED: u32 = 2;

fn signed_log1p(v: f32) -> f32 {
    v.signum() * v.abs().ln_1p()
}

/// Median and robust scale of sorted values (non-empty).
pub(crate) fn robust(sorted: &[f32]) -> (f32, f32) {
    let q = |p: f64| {
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[i]
    };
    let median = q(0.5);
    let iqr_scale = (q(0.75) - q(0.25)) / 1.349;
    let tiny = 1e-6 * (1.0 + median.abs());
    if iqr_scale > tiny {
        return (median, iqr_scale);
    }
    let n = sorted.len() as f64;
    let mean = sorted.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = sorted
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (median, var.sqrt() as f32)
}

impl Normalizer {
    /// Fits encoding 2 on row-major rows of `log1p.len()` raw features each (NaN = null).
    pub fn fit_masked<'a>(
        log1p: Vec<bool>,
        rows: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Self, ModelError> {
        let n = log1p.len();
        let mut values: Vec<Vec<f32>> = vec![Vec::new(); n];
        for (r, row) in rows.into_iter().enumerate() {
            if row.len() != n {
                return Err(ModelError::Shape(format!(
                    "row {r} has {} features, expected {n}",
                    row.len()
                )));
            }
            for (j, &v) in row.iter().enumerate() {
                if v.is_finite() {
                    values[j].push(if log1p[j] { signed_log1p(v) } else { v });
                }
            }
        }
        let mut out = Normalizer::identity(n);
        out.encoding = ENCODING_MASKED;
        out.log1p = log1p;
        out.keep = vec![false; n];
        for (j, v) in values.iter_mut().enumerate() {
            if v.is_empty() {
                continue;
            }
            v.sort_unstable_by(f32::total_cmp);
            let (lo, hi) = (v[0], v[v.len() - 1]);
            out.min[j] = lo;
            out.max[j] = hi;
            let (center, scale) = robust(v);
            if hi > lo && scale > 0.0 && scale.is_finite() {
                out.keep[j] = true;
                out.mean[j] = center;
                out.std[j] = scale;
            }
        }
        Ok(out)
    }

    /// The raw feature indices fed to the network, in input order (no allocation: the encoder
    /// runs per served window).
    pub fn kept(&self) -> impl Iterator<Item = usize> + '_ {
        self.keep
            .iter()
            .enumerate()
            .filter(|(_, &k)| k)
            .map(|(j, _)| j)
    }

    /// The scaled value of raw feature `j` (finite `v`).
    #[inline]
    fn masked_value(&self, j: usize, v: f32) -> f32 {
        let u = if self.log1p[j] { signed_log1p(v) } else { v };
        ((u - self.mean[j]) / self.std[j]).clamp(-MASKED_CLAMP, MASKED_CLAMP)
    }

    /// Adds derived inputs, each fitted on the same training rows as the kept features (see
    /// [`crate::derived`]); `specs` pairs each kind with the raw indices of its sources.
    pub fn fit_derived<'a>(
        &mut self,
        specs: Vec<(DerivedKind, Vec<usize>)>,
        rows: impl IntoIterator<Item = &'a [f32]> + Clone,
    ) -> Result<(), ModelError> {
        if self.encoding != ENCODING_MASKED && !specs.is_empty() {
            return Err(ModelError::Config(
                "derived inputs need the masked encoding".into(),
            ));
        }
        for (kind, sources) in specs {
            let d = DerivedInput::fit(kind, sources, self.n_features(), rows.clone())?;
            self.derived.push(d);
        }
        Ok(())
    }

    /// Encodes raw row-major T×F `src` into `dst` as T × 2(K + D) (see the module doc).
    pub(crate) fn apply_masked(&self, src: &[f32], dst: &mut Vec<f32>) {
        let n = self.n_features().max(1);
        let t = src.len() / n;
        let k = self.n_inputs() / 2;
        let w = 2 * k;
        dst.clear();
        dst.resize(t * w, 0.0);
        let mut c = 0;
        for j in self.kept() {
            let scaled = |s: usize| {
                let v = src[s * n + j];
                if v.is_finite() {
                    self.masked_value(j, v)
                } else {
                    f32::NAN
                }
            };
            fill_column(dst, t, w, k, c, scaled);
            c += 1;
        }
        for d in &self.derived {
            fill_column(dst, t, w, k, c, |s| d.scaled(&src[s * n..(s + 1) * n]));
            c += 1;
        }
    }

    /// Share of the kept features' values of a raw window that were observed (1 for encoding 1
    /// or when no feature is kept).
    pub fn coverage(&self, src: &[f32]) -> f32 {
        if self.encoding != ENCODING_MASKED {
            return 1.0;
        }
        coverage_of(src, &self.keep)
    }

    /// What a server needs to refuse thin windows: the features this normaliser feeds and the
    /// coverage floor (no features and floor 0 for encoding 1, which never refuses).
    pub fn coverage_rule(&self) -> CoverageRule {
        if self.encoding != ENCODING_MASKED {
            return CoverageRule::default();
        }
        CoverageRule {
            used: self.keep.clone(),
            floor: self.coverage_floor,
        }
    }
}

/// Writes network input column `c` of a T × `w` window from `scaled` (NaN = null): the value,
/// or the mean of the window's observed seconds with flag column `k + c` set to 1.
fn fill_column(
    dst: &mut [f32],
    t: usize,
    w: usize,
    k: usize,
    c: usize,
    scaled: impl Fn(usize) -> f32,
) {
    let (mut sum, mut seen) = (0f32, 0usize);
    for s in 0..t {
        let z = scaled(s);
        if z.is_finite() {
            dst[s * w + c] = z;
            sum += z;
            seen += 1;
        } else {
            dst[s * w + k + c] = 1.0;
        }
    }
    if seen < t && seen > 0 {
        let fill = sum / seen as f32;
        for s in 0..t {
            if dst[s * w + k + c] == 1.0 {
                dst[s * w + c] = fill;
            }
        }
    }
}

/// Share of the (used feature, second) cells of a raw row-major window (`used.len()` columns)
/// that hold a finite value; 1 when no feature is used or the window is empty.
pub fn coverage_of(src: &[f32], used: &[bool]) -> f32 {
    let n = used.len().max(1);
    let k = used.iter().filter(|&&u| u).count();
    let t = src.len() / n;
    if k == 0 || t == 0 {
        return 1.0;
    }
    let seen: usize = src
        .chunks_exact(n)
        .map(|row| {
            row.iter()
                .zip(used)
                .filter(|(v, &u)| u && v.is_finite())
                .count()
        })
        .sum();
    seen as f32 / (t * k) as f32
}

/// The features a model reads and the coverage below which its answer is a guess: what a server
/// checks before it answers (see `docs/api.md`, "Coverage").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoverageRule {
    /// Per raw feature: read by the network. Empty = the model has no notion of missing.
    pub used: Vec<bool>,
    /// Windows with coverage below this are thin (0 = never).
    pub floor: f32,
}

impl CoverageRule {
    /// The window's coverage (see [`coverage_of`]).
    pub fn coverage(&self, src: &[f32]) -> f32 {
        if self.used.is_empty() {
            return 1.0;
        }
        coverage_of(src, &self.used)
    }

    /// True when the window's coverage is below the floor.
    pub fn is_thin(&self, src: &[f32]) -> bool {
        self.coverage(src) < self.floor
    }

    /// Raw indices of the used features with no value in any second of the window.
    pub fn unobserved(&self, src: &[f32]) -> Vec<usize> {
        let n = self.used.len().max(1);
        self.used
            .iter()
            .enumerate()
            .filter(|&(j, &u)| u && !src.chunks_exact(n).any(|row| row[j].is_finite()))
            .map(|(j, _)| j)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three features: 0 varies (log1p), 1 constant, 2 null throughout; 4 training rows.
    fn fitted() -> Normalizer {
        let rows: Vec<Vec<f32>> = vec![
            vec![0.0, 7.0, f32::NAN],
            vec![10.0, 7.0, f32::NAN],
            vec![100.0, 7.0, f32::NAN],
            vec![1000.0, 7.0, f32::NAN],
        ];
        Normalizer::fit_masked(vec![true, false, false], rows.iter().map(|r| r.as_slice())).unwrap()
    }

    #[test]
    fn constant_and_null_features_are_dropped() {
        let nz = fitted();
        assert_eq!(nz.encoding, ENCODING_MASKED);
        assert_eq!(nz.keep, [true, false, false]);
        assert_eq!(nz.n_inputs(), 2);
        // log1p then median / robust scale: values 0, ln 11, ln 101, ln 1001; median (index
        // round(1.5) = 2) is ln 101.
        assert!((nz.mean[0] - 101f32.ln()).abs() < 1e-5, "{}", nz.mean[0]);
    }

    #[test]
    fn nulls_are_flagged_and_filled_with_the_observed_mean() {
        let nz = fitted();
        // 4 seconds of feature 0: observed at s = 0 and 2 only.
        let src = [
            10.0,
            7.0,
            f32::NAN, //
            f32::NAN,
            7.0,
            f32::NAN, //
            1000.0,
            7.0,
            f32::NAN, //
            f32::NAN,
            f32::NAN,
            f32::NAN,
        ];
        let mut dst = Vec::new();
        nz.apply_masked(&src, &mut dst);
        assert_eq!(dst.len(), 4 * 2);
        let z = |v: f32| ((v.ln_1p() - nz.mean[0]) / nz.std[0]).clamp(-5.0, 5.0);
        let fill = (z(10.0) + z(1000.0)) / 2.0;
        let values: Vec<f32> = dst.chunks(2).map(|r| r[0]).collect();
        let flags: Vec<f32> = dst.chunks(2).map(|r| r[1]).collect();
        assert_eq!(flags, [0.0, 1.0, 0.0, 1.0]);
        assert!((values[0] - z(10.0)).abs() < 1e-6);
        assert!((values[1] - fill).abs() < 1e-6 && (values[3] - fill).abs() < 1e-6);
        // The time mean of the value channel is the mean over observed seconds.
        let mean: f32 = values.iter().sum::<f32>() / 4.0;
        assert!((mean - fill).abs() < 1e-6);
        assert!((nz.coverage(&src) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn a_feature_never_observed_reads_as_the_median_and_is_flagged_throughout() {
        let nz = fitted();
        let src = [f32::NAN, 1.0, 2.0, f32::NAN, 1.0, 2.0];
        let mut dst = Vec::new();
        nz.apply_masked(&src, &mut dst);
        assert_eq!(dst, [0.0, 1.0, 0.0, 1.0]);
        assert_eq!(nz.coverage(&src), 0.0);
    }

    #[test]
    fn extreme_values_are_clamped() {
        let nz = fitted();
        let mut dst = Vec::new();
        nz.apply_masked(&[1e30, 0.0, 0.0], &mut dst);
        assert_eq!(dst, [MASKED_CLAMP, 0.0]);
        nz.apply_masked(&[-1e30, 0.0, 0.0], &mut dst);
        assert_eq!(dst, [-MASKED_CLAMP, 0.0]);
    }

    #[test]
    fn the_coverage_rule_counts_used_cells_and_names_features_never_seen() {
        let nz = fitted();
        let rule = nz.coverage_rule();
        assert_eq!(rule.used, vec![true, false, false]);
        // Feature 0 observed in one of two seconds; features 1 and 2 are not used.
        let half = [1.0, f32::NAN, f32::NAN, f32::NAN, 1.0, 1.0];
        assert!((rule.coverage(&half) - 0.5).abs() < 1e-6);
        assert!(rule.unobserved(&half).is_empty());
        let none = [f32::NAN, 1.0, 1.0, f32::NAN, 1.0, 1.0];
        assert_eq!(rule.coverage(&none), 0.0);
        assert_eq!(rule.unobserved(&none), vec![0]);
        let floor = CoverageRule {
            floor: 0.6,
            ..rule.clone()
        };
        assert!(floor.is_thin(&half) && !floor.is_thin(&[1.0, 0.0, 0.0]));
        // A plain-encoding normaliser has no rule: never thin, coverage 1.
        let plain = Normalizer::identity(3).coverage_rule();
        assert!(!plain.is_thin(&none) && plain.coverage(&none) == 1.0);
    }

    #[test]
    fn derived_inputs_follow_the_kept_features_with_their_own_flags() {
        // usage varies, the cpuset is constant (dropped), the quota null (dropped): the share
        // usage / 100 / cpuset is fed all the same.
        let rows: Vec<[f32; 3]> = (0..=100).map(|u| [u as f32, 2.0, f32::NAN]).collect();
        let rows = rows.iter().map(|r| &r[..]);
        let mut nz = Normalizer::fit_masked(vec![false; 3], rows.clone()).unwrap();
        assert_eq!(nz.n_inputs(), 2);
        nz.fit_derived(vec![(DerivedKind::CpuShare, vec![0, 1, 2])], rows)
            .unwrap();
        assert_eq!(nz.n_inputs(), 4);
        nz.validate().unwrap();
        let mut dst = Vec::new();
        nz.apply_masked(&[100.0, 2.0, f32::NAN, f32::NAN, 2.0, f32::NAN], &mut dst);
        let (zu, zd) = (
            nz.masked_value(0, 100.0),
            nz.derived[0].scaled(&[100.0, 2.0, f32::NAN]),
        );
        assert!(zd > 0.0, "a share of 0.5 is above the median 0.25: {zd}");
        assert_eq!(dst, [zu, zd, 0.0, 0.0, zu, zd, 1.0, 1.0]);
        // Written and read back with the checkpoint's normaliser.
        let back: Normalizer = serde_json::from_str(&serde_json::to_string(&nz).unwrap()).unwrap();
        assert_eq!((back.n_inputs(), &back.derived), (4, &nz.derived));
        // The plain encoding has no derived inputs.
        let mut plain = Normalizer::identity(3);
        let e = plain.fit_derived(
            vec![(DerivedKind::CpuShare, vec![0, 1, 2])],
            std::iter::empty(),
        );
        assert!(e.unwrap_err().to_string().contains("masked encoding"));
        plain.derived = nz.derived.clone();
        assert!(plain.validate().is_err());
    }
}
