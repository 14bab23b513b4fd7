//! Derived inputs of the masked encoding: ratios of raw features that the network, which embeds
//! each second's inputs linearly, cannot form itself, computed per second before scaling.
//!
//! - `cpu-share`: the tenant's CPU use over the CPUs it may use,
//!   `cpu.usage_pct / 100 / min(placement.cpu_quota_cpus, placement.cpuset_cpus)` (either bound
//!   alone where the other is null). About 1 when the tenant uses all it may — throttled by its
//!   own quota or saturating its CPUs — and the CPU-share rule's P̂ when it is CPU-bound.
//! - `cpu-demand`: the demand on the tenant's CPUs over their number,
//!   `(cpu.usage_pct + placement.contending_cpu_pct) / 100 / placement.cpuset_cpus`. Above 1
//!   the CPUs are oversubscribed.
//!
//! A derived value is null (and flagged) where a source it needs is null. Each derived input is
//! robust-scaled like a kept raw feature (median, IQR / 1.349, clamped to ±`MASKED_CLAMP`), with
//! no log transform; its scale is fitted on the training rows only.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// CPUs a tenant may use: the smaller of its CPU quota and its cpuset size, either alone where
/// the other is unknown; `None` when it has neither. The one definition of capacity (the
/// CPU-share rule's and the `cpu-share` input's).
pub fn cpu_capacity(quota: Option<f32>, cpuset: Option<f32>) -> Option<f32> {
    match (quota, cpuset) {
        (Some(q), Some(c)) => Some(q.min(c)),
        (q, c) => q.or(c),
    }
}

/// Which ratio a derived input computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DerivedKind {
    CpuShare,
    CpuDemand,
}

impl DerivedKind {
    pub const ALL: [DerivedKind; 2] = [DerivedKind::CpuShare, DerivedKind::CpuDemand];

    pub fn name(self) -> &'static str {
        match self {
            DerivedKind::CpuShare => "cpu-share",
            DerivedKind::CpuDemand => "cpu-demand",
        }
    }

    /// The catalogue features it reads, in the order of [`DerivedInput::sources`].
    pub fn sources(self) -> &'static [&'static str] {
        match self {
            DerivedKind::CpuShare => &[
                "cpu.usage_pct",
                "placement.cpuset_cpus",
                "placement.cpu_quota_cpus",
            ],
            DerivedKind::CpuDemand => &[
                "cpu.usage_pct",
                "placement.contending_cpu_pct",
                "placement.cpuset_cpus",
            ],
        }
    }

    /// The ratio of one raw second `row` (NaN where a needed source is null), `src` being the
    /// raw indices of [`Self::sources`].
    #[inline]
    pub fn value(self, row: &[f32], src: &[usize]) -> f32 {
        let positive = |v: f32| (v.is_finite() && v > 0.0).then_some(v);
        match self {
            DerivedKind::CpuShare => {
                match cpu_capacity(positive(row[src[2]]), positive(row[src[1]])) {
                    Some(capacity) => row[src[0]] / 100.0 / capacity,
                    None => f32::NAN,
                }
            }
            DerivedKind::CpuDemand => match positive(row[src[2]]) {
                Some(c) => (row[src[0]] + row[src[1]]) / 100.0 / c,
                None => f32::NAN,
            },
        }
    }
}

impl std::fmt::Display for DerivedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DerivedKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DerivedKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown derived input `{s}` (cpu-share | cpu-demand)"))
    }
}

/// One derived input of a fitted normaliser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedInput {
    pub kind: DerivedKind,
    /// Raw feature indices of `kind.sources()`.
    pub sources: Vec<usize>,
    /// Robust centre and scale fitted on the training rows.
    pub center: f32,
    pub scale: f32,
}

impl DerivedInput {
    /// Fits `kind` on row-major rows of `n` raw features each; errors when the ratio is null in
    /// every row or does not vary (it would feed the network nothing).
    pub fn fit<'a>(
        kind: DerivedKind,
        sources: Vec<usize>,
        n: usize,
        rows: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Self, ModelError> {
        let mut input = DerivedInput {
            kind,
            sources,
            center: 0.0,
            scale: 1.0,
        };
        input.check(n)?;
        let mut values: Vec<f32> = rows
            .into_iter()
            .map(|row| kind.value(row, &input.sources))
            .filter(|v| v.is_finite())
            .collect();
        values.sort_unstable_by(f32::total_cmp);
        let varies = values.first() < values.last();
        let (center, scale) = if varies {
            crate::masked::robust(&values)
        } else {
            (0.0, 0.0)
        };
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(ModelError::Config(format!(
                "derived input {kind} is null or constant in every training row ({} of its \
                 values observed): its sources {:?} are missing from the data",
                values.len(),
                kind.sources()
            )));
        }
        (input.center, input.scale) = (center, scale);
        Ok(input)
    }

    /// Checks the source count and indices against a raw width of `n`.
    pub fn check(&self, n: usize) -> Result<(), ModelError> {
        let want = self.kind.sources().len();
        if self.sources.len() != want || self.sources.iter().any(|&j| j >= n) {
            return Err(ModelError::Config(format!(
                "derived input {} needs {want} source features below {n}, has {:?}",
                self.kind, self.sources
            )));
        }
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            return Err(ModelError::Config(format!(
                "derived input {} has a non-positive scale",
                self.kind
            )));
        }
        Ok(())
    }

    /// The scaled value of one raw second (NaN = null).
    #[inline]
    pub(crate) fn scaled(&self, row: &[f32]) -> f32 {
        let v = self.kind.value(row, &self.sources);
        if v.is_finite() {
            ((v - self.center) / self.scale)
                .clamp(-crate::masked::MASKED_CLAMP, crate::masked::MASKED_CLAMP)
        } else {
            f32::NAN
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_divides_by_the_smaller_bound_and_needs_one() {
        let s = [0, 1, 2];
        let k = DerivedKind::CpuShare;
        // 50 % of one CPU under a 0.5-CPU quota on 2 CPUs: all it may use.
        assert_eq!(k.value(&[50.0, 2.0, 0.5], &s), 1.0);
        // no quota: the cpuset bounds it.
        assert_eq!(k.value(&[50.0, 2.0, f32::NAN], &s), 0.25);
        assert_eq!(k.value(&[50.0, f32::NAN, 0.25], &s), 2.0);
        assert!(k.value(&[50.0, f32::NAN, f32::NAN], &s).is_nan());
        assert!(k.value(&[f32::NAN, 1.0, 1.0], &s).is_nan());
    }

    #[test]
    fn cpu_demand_adds_the_contending_use() {
        let k = DerivedKind::CpuDemand;
        assert_eq!(k.value(&[100.0, 100.0, 1.0], &[0, 1, 2]), 2.0);
        assert!(k.value(&[100.0, f32::NAN, 1.0], &[0, 1, 2]).is_nan());
        assert!(k.value(&[100.0, 0.0, 0.0], &[0, 1, 2]).is_nan());
    }

    #[test]
    fn names_parse_back_and_unknown_ones_are_refused() {
        for k in DerivedKind::ALL {
            assert_eq!(k.name().parse::<DerivedKind>(), Ok(k));
        }
        let e = "cpu".parse::<DerivedKind>().unwrap_err();
        assert!(e.contains("cpu-share"), "{e}");
    }

    #[test]
    fn fitting_refuses_a_ratio_with_no_spread_and_scales_one_that_varies() {
        let rows = [[50.0f32, 1.0, f32::NAN], [50.0, 1.0, f32::NAN]];
        let e = DerivedInput::fit(
            DerivedKind::CpuShare,
            vec![0, 1, 2],
            3,
            rows.iter().map(|r| &r[..]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cpu-share") && e.contains("constant"), "{e}");
        let rows: Vec<[f32; 3]> = (0..=100).map(|u| [u as f32, 1.0, f32::NAN]).collect();
        let d = DerivedInput::fit(
            DerivedKind::CpuShare,
            vec![0, 1, 2],
            3,
            rows.iter().map(|r| &r[..]),
        )
        .unwrap();
        assert!((d.center - 0.5).abs() < 1e-6, "{d:?}");
        assert!((d.scale - 0.5 / 1.349).abs() < 1e-3, "{d:?}");
        assert_eq!(d.scaled(&[50.0, 1.0, f32::NAN]), 0.0);
        assert!(d.scaled(&[f32::NAN, 1.0, 1.0]).is_nan());
        let e = DerivedInput::fit(
            DerivedKind::CpuShare,
            vec![0, 5],
            3,
            rows.iter().map(|r| &r[..]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs 3 source features"), "{e}");
    }
}
