//! Per-run aggregate features for the tabular baselines (NaN-aware): for every per-second
//! feature, `mean, std, min, max, p10, p50, p90, slope, last−first` over the run (or its first k
//! seconds). A feature that is null all run long gives NaN in every statistic.

use dataset::runs::Placement;

use crate::data::Run;

/// The statistics computed per feature, in column order.
pub const STATS: [&str; 9] = [
    "mean", "std", "min", "max", "p10", "p50", "p90", "slope", "delta",
];

/// Which aggregates to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FeatureSet {
    /// The time-mean of each feature (the paper's feature-domain baselines; F columns).
    Mean,
    /// All of [`STATS`] (9·F columns).
    Rich,
    /// No metrics, only what the campaign knows of the placement: [`CONTEXT_COLUMNS`].
    Context,
    /// The CPU-share rule's inputs: [`CPU_SHARE_COLUMNS`].
    CpuShare,
}

/// Columns of [`FeatureSet::Context`]: tenants in the run, the placement's code
/// ([`placement_code`]), the CPU quota in vCPUs (0 = none).
pub const CONTEXT_COLUMNS: [&str; 3] = ["n_tenants", "placement", "cpu_quota"];
/// Columns of [`FeatureSet::CpuShare`]: the tenant's own mean CPU usage (% of one CPU, over
/// observed seconds) and the CPUs it may use (quota, else cpuset size; NaN when neither).
pub const CPU_SHARE_COLUMNS: [&str; 2] = ["cpu.usage_pct.mean", "cpu_capacity"];
/// The catalogue metric the CPU-share rule reads.
pub const CPU_USAGE_METRIC: &str = "cpu.usage_pct";

/// A number per placement for the trees (alone 0, same-core 1, cross-core 2, unpinned 3, an
/// explicit cpuset 4).
pub fn placement_code(p: &Placement) -> f64 {
    match p {
        Placement::Alone => 0.0,
        Placement::SameCore => 1.0,
        Placement::CrossCore => 2.0,
        Placement::Unpinned => 3.0,
        Placement::Cpuset(_) => 4.0,
    }
}

/// A dense row-major table of f64 (NaN = missing).
#[derive(Debug, Clone)]
pub struct Table {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Table {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Table {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Table {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }
    /// Column-major copy (what forust-ml wants).
    pub fn column_major(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.data.len()];
        for r in 0..self.rows {
            for c in 0..self.cols {
                out[c * self.rows + r] = self.data[r * self.cols + c];
            }
        }
        out
    }
}

/// Column names for a feature set, given the per-second feature names.
pub fn column_names(set: FeatureSet, feature_names: &[String]) -> Vec<String> {
    match set {
        FeatureSet::Mean => feature_names.iter().map(|n| format!("{n}.mean")).collect(),
        FeatureSet::Rich => feature_names
            .iter()
            .flat_map(|n| STATS.iter().map(move |s| format!("{n}.{s}")))
            .collect(),
        FeatureSet::Context => CONTEXT_COLUMNS.iter().map(|c| c.to_string()).collect(),
        FeatureSet::CpuShare => CPU_SHARE_COLUMNS.iter().map(|c| c.to_string()).collect(),
    }
}

/// Aggregates of one (T × F) row-major matrix.
pub fn aggregate(x: &[f32], t: usize, f: usize, set: FeatureSet, out: &mut Vec<f64>) {
    let mut col: Vec<(f64, f64)> = Vec::with_capacity(t);
    let mut vals: Vec<f64> = Vec::with_capacity(t);
    for j in 0..f {
        col.clear();
        for i in 0..t {
            let v = x[i * f + j];
            if v.is_finite() {
                col.push((i as f64, v as f64));
            }
        }
        let n = col.len();
        if n == 0 {
            let k = if set == FeatureSet::Mean {
                1
            } else {
                STATS.len()
            };
            out.extend(std::iter::repeat_n(f64::NAN, k));
            continue;
        }
        let mean = col.iter().map(|c| c.1).sum::<f64>() / n as f64;
        if set == FeatureSet::Mean {
            out.push(mean);
            continue;
        }
        let var = col.iter().map(|c| (c.1 - mean).powi(2)).sum::<f64>() / n as f64;
        vals.clear();
        vals.extend(col.iter().map(|c| c.1));
        vals.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| -> f64 {
            // linear interpolation between order statistics (numpy's default)
            let pos = p * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            vals[lo] + (vals[hi] - vals[lo]) * (pos - lo as f64)
        };
        let slope = if n >= 2 {
            let mt = col.iter().map(|c| c.0).sum::<f64>() / n as f64;
            let sxx = col.iter().map(|c| (c.0 - mt).powi(2)).sum::<f64>();
            let sxy = col.iter().map(|c| (c.0 - mt) * (c.1 - mean)).sum::<f64>();
            if sxx > 0.0 {
                sxy / sxx
            } else {
                0.0
            }
        } else {
            0.0
        };
        out.extend_from_slice(&[
            mean,
            var.sqrt(),
            vals[0],
            vals[n - 1],
            q(0.1),
            q(0.5),
            q(0.9),
            slope,
            col[n - 1].1 - col[0].1,
        ]);
    }
}

/// The feature table of `runs`, each truncated to its first `k` seconds (`k = 0`: whole run).
pub fn table(runs: &[Run], set: FeatureSet, k: usize) -> Table {
    let f = runs.first().map(|r| r.f).unwrap_or(0);
    let cols = match set {
        FeatureSet::Mean => f,
        FeatureSet::Rich => f * STATS.len(),
        FeatureSet::Context => CONTEXT_COLUMNS.len(),
        FeatureSet::CpuShare => CPU_SHARE_COLUMNS.len(),
    };
    let usage = dataset::catalogue::Catalogue::builtin().index_of(CPU_USAGE_METRIC);
    let mut data = Vec::with_capacity(runs.len() * cols);
    for r in runs {
        let t = r.prefix_len(k);
        let c = &r.context;
        match set {
            FeatureSet::Mean | FeatureSet::Rich => aggregate(r.prefix(k), t, r.f, set, &mut data),
            FeatureSet::Context => data.extend_from_slice(&[
                c.n_tenants as f64,
                placement_code(&c.placement),
                c.cpu_quota.unwrap_or(0.0) as f64,
            ]),
            FeatureSet::CpuShare => {
                let observed = usage
                    .filter(|&j| j < r.f)
                    .map(|j| r.prefix(k).chunks_exact(r.f).map(move |row| row[j]))
                    .into_iter()
                    .flatten()
                    .filter(|v| v.is_finite());
                let (sum, n) = observed.fold((0f64, 0usize), |(s, n), v| (s + v as f64, n + 1));
                let mean = if n == 0 { f64::NAN } else { sum / n as f64 };
                let capacity = c.cpu_capacity().map_or(f64::NAN, |v| v as f64);
                data.extend_from_slice(&[mean, capacity]);
            }
        }
    }
    Table {
        rows: runs.len(),
        cols,
        data,
    }
}

/// Per-column standardisation fitted on training rows: NaN → 0 (the training mean) after
/// scaling; constant or all-NaN columns become 0.
#[derive(Debug, Clone)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardizer {
    pub fn fit(t: &Table) -> Standardizer {
        let mut mean = vec![0.0; t.cols];
        let mut std = vec![0.0; t.cols];
        for c in 0..t.cols {
            let (mut s, mut n) = (0.0, 0usize);
            for r in 0..t.rows {
                let v = t.data[r * t.cols + c];
                if v.is_finite() {
                    s += v;
                    n += 1;
                }
            }
            if n == 0 {
                continue;
            }
            let m = s / n as f64;
            let mut ss = 0.0;
            for r in 0..t.rows {
                let v = t.data[r * t.cols + c];
                if v.is_finite() {
                    ss += (v - m).powi(2);
                }
            }
            mean[c] = m;
            std[c] = (ss / n as f64).sqrt();
        }
        Standardizer { mean, std }
    }

    /// Standardised copy, clamped to ±10 so that unseen extremes cannot explode a linear model.
    pub fn apply(&self, t: &Table) -> Table {
        let mut data = t.data.clone();
        for r in 0..t.rows {
            for c in 0..t.cols {
                let v = &mut data[r * t.cols + c];
                let s = self.std[c];
                *v = if v.is_finite() && s > 1e-12 {
                    ((*v - self.mean[c]) / s).clamp(-10.0, 10.0)
                } else {
                    0.0
                };
            }
        }
        Table {
            rows: t.rows,
            cols: t.cols,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_by_hand() {
        // T = 5, F = 2; feature 0 = 1,2,3,4,NaN ; feature 1 all NaN
        let nan = f32::NAN;
        let x = [1.0, nan, 2.0, nan, 3.0, nan, 4.0, nan, nan, nan];
        let mut out = Vec::new();
        aggregate(&x, 5, 2, FeatureSet::Rich, &mut out);
        assert_eq!(out.len(), 18);
        assert_eq!(out[0], 2.5); // mean
        assert!((out[1] - 1.25f64.sqrt()).abs() < 1e-12); // std
        assert_eq!(out[2], 1.0);
        assert_eq!(out[3], 4.0);
        assert!((out[4] - 1.3).abs() < 1e-12); // p10
        assert!((out[5] - 2.5).abs() < 1e-12); // p50
        assert!((out[6] - 3.7).abs() < 1e-12); // p90
        assert!((out[7] - 1.0).abs() < 1e-12); // slope per second
        assert_eq!(out[8], 3.0); // last - first
        assert!(out[9..].iter().all(|v| v.is_nan()));
        let mut m = Vec::new();
        aggregate(&x, 5, 2, FeatureSet::Mean, &mut m);
        assert_eq!(m[0], 2.5);
        assert!(m[1].is_nan());
    }

    #[test]
    fn standardizer_handles_constant_and_nan() {
        let t = Table {
            rows: 3,
            cols: 2,
            data: vec![1.0, 5.0, 2.0, 5.0, f64::NAN, 5.0],
        };
        let s = Standardizer::fit(&t);
        let z = s.apply(&t);
        assert_eq!(z.data[1], 0.0);
        assert_eq!(z.data[4], 0.0);
        assert!((z.data[0] + 1.0).abs() < 1e-12 && (z.data[2] - 1.0).abs() < 1e-12);
    }
}
