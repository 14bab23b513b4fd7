//! Error metrics in percentage points of P×100 (the paper's units), error bands, per-application
//! MAE, summaries over splits, and the label-noise floor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Upper edges (in points) of the paper's error bands: <5, <10, <15, <20, <25, then >25.
pub const BAND_EDGES: [f64; 5] = [5.0, 10.0, 15.0, 20.0, 25.0];
pub const BAND_LABELS: [&str; 6] = ["<5", "5-10", "10-15", "15-20", "20-25", ">25"];

/// One prediction: the true P and the predicted P̂ (both in (0, 1]) with its application.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pred {
    pub key: String,
    pub app: String,
    pub p: f64,
    pub p_hat: f64,
    pub label_noise: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct AppMetrics {
    pub n: usize,
    pub mae: f64,
    pub mse: f64,
}

/// Metrics of one set of predictions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Metrics {
    pub n: usize,
    /// Mean |P̂ − P| × 100.
    pub mae: f64,
    /// Mean ((P̂ − P) × 100)².
    pub mse: f64,
    /// Share of predictions whose error falls in each band of [`BAND_LABELS`] (sums to 1).
    pub bands: [f64; 6],
    /// Share of predictions with error < 5, < 10, < 15, < 20, < 25 points.
    pub cumulative: [f64; 5],
    pub per_app: BTreeMap<String, AppMetrics>,
    /// Mean label noise of these runs, in points (NaN when unknown).
    pub noise_floor: f64,
}

/// Computes [`Metrics`]. Empty input gives n = 0 and NaN errors.
pub fn compute(preds: &[Pred]) -> Metrics {
    let n = preds.len();
    let mut m = Metrics {
        n,
        mae: f64::NAN,
        mse: f64::NAN,
        noise_floor: f64::NAN,
        ..Default::default()
    };
    if n == 0 {
        return m;
    }
    let mut abs_sum = 0.0;
    let mut sq_sum = 0.0;
    let mut counts = [0usize; 6];
    let mut apps: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    for p in preds {
        let e = (p.p_hat - p.p) * 100.0;
        let a = e.abs();
        abs_sum += a;
        sq_sum += e * e;
        let band = BAND_EDGES.iter().position(|&edge| a < edge).unwrap_or(5);
        counts[band] += 1;
        let s = apps.entry(p.app.clone()).or_insert((0, 0.0, 0.0));
        s.0 += 1;
        s.1 += a;
        s.2 += e * e;
    }
    m.mae = abs_sum / n as f64;
    m.mse = sq_sum / n as f64;
    let mut acc = 0.0;
    for (i, c) in counts.iter().enumerate() {
        m.bands[i] = *c as f64 / n as f64;
        if i < 5 {
            acc += m.bands[i];
            m.cumulative[i] = acc;
        }
    }
    m.per_app = apps
        .into_iter()
        .map(|(k, (c, a, s))| {
            (
                k,
                AppMetrics {
                    n: c,
                    mae: a / c as f64,
                    mse: s / c as f64,
                },
            )
        })
        .collect();
    m.noise_floor = noise_floor(preds);
    m
}

/// The label-noise floor in points: the mean of the runs' `label_noise` × 100 (the spread of the
/// isolated repeats of their baselines, as the campaign measured it), over runs where it is known.
pub fn noise_floor(preds: &[Pred]) -> f64 {
    let known: Vec<f64> = preds
        .iter()
        .map(|p| p.label_noise)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .collect();
    if known.is_empty() {
        f64::NAN
    } else {
        known.iter().sum::<f64>() / known.len() as f64 * 100.0
    }
}

/// Mean and (population, ddof = 0, like numpy's default) standard deviation, ignoring NaN.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// A model's metrics summarised over splits: mean ± std of the per-split MAE and MSE.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Summary {
    pub n_splits: usize,
    /// NaN (JSON `null`) when no split had a run to measure (e.g. no isolated test run).
    #[serde(deserialize_with = "null_as_nan")]
    pub mae_mean: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mae_std: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mse_mean: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub mse_std: f64,
    /// Mean over splits of the band shares.
    pub bands: [f64; 6],
    #[serde(deserialize_with = "null_as_nan")]
    pub noise_floor: f64,
    /// Per-application MAE, averaged over the splits where the app was tested.
    pub per_app_mae: BTreeMap<String, f64>,
}

/// serde_json writes a non-finite f64 as `null`; read it back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

pub fn summarise(per_split: &[Metrics]) -> Summary {
    let (mae_mean, mae_std) = mean_std(&per_split.iter().map(|m| m.mae).collect::<Vec<_>>());
    let (mse_mean, mse_std) = mean_std(&per_split.iter().map(|m| m.mse).collect::<Vec<_>>());
    let (noise, _) = mean_std(&per_split.iter().map(|m| m.noise_floor).collect::<Vec<_>>());
    let mut bands = [0.0; 6];
    let k = per_split.iter().filter(|m| m.n > 0).count().max(1) as f64;
    for m in per_split.iter().filter(|m| m.n > 0) {
        for (b, v) in bands.iter_mut().zip(m.bands) {
            *b += v / k;
        }
    }
    let mut apps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for m in per_split {
        for (a, am) in &m.per_app {
            apps.entry(a.clone()).or_default().push(am.mae);
        }
    }
    Summary {
        n_splits: per_split.len(),
        mae_mean,
        mae_std,
        mse_mean,
        mse_std,
        bands,
        noise_floor: noise,
        per_app_mae: apps.into_iter().map(|(a, v)| (a, mean_std(&v).0)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_of_nothing_round_trips_through_json() {
        let empty = summarise(&[compute(&[])]);
        assert!(empty.mae_mean.is_nan());
        let json = serde_json::to_string(&empty).unwrap();
        assert!(json.contains("\"mae_mean\":null"), "{json}");
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert!(back.mae_mean.is_nan() && back.noise_floor.is_nan());
    }

    fn pr(app: &str, p: f64, p_hat: f64, noise: f64) -> Pred {
        Pred {
            key: String::new(),
            app: app.into(),
            p,
            p_hat,
            label_noise: noise,
        }
    }

    #[test]
    fn hand_computed_example() {
        // errors in points: 2, -6, 12, 30  → |e| = 2, 6, 12, 30
        let preds = vec![
            pr("a", 0.50, 0.52, 0.01),
            pr("a", 0.80, 0.74, 0.03),
            pr("b", 0.40, 0.52, f64::NAN),
            pr("b", 0.90, 0.60, 0.02),
        ];
        let m = compute(&preds);
        assert_eq!(m.n, 4);
        assert!((m.mae - 12.5).abs() < 1e-9, "{}", m.mae); // (2+6+12+30)/4
        assert!((m.mse - 271.0).abs() < 1e-6, "{}", m.mse); // (4+36+144+900)/4
        assert_eq!(m.bands, [0.25, 0.25, 0.25, 0.0, 0.0, 0.25]);
        assert_eq!(m.cumulative, [0.25, 0.5, 0.75, 0.75, 0.75]);
        assert!((m.per_app["a"].mae - 4.0).abs() < 1e-9);
        assert!((m.per_app["b"].mae - 21.0).abs() < 1e-9);
        assert!((m.per_app["b"].mse - 522.0).abs() < 1e-6);
        assert!((m.noise_floor - 2.0).abs() < 1e-9); // mean(1, 3, 2) points
    }

    #[test]
    fn summary_mean_std() {
        let a = compute(&[pr("a", 0.5, 0.6, 0.0)]); // mae 10
        let b = compute(&[pr("b", 0.5, 0.7, 0.0)]); // mae 20
        let s = summarise(&[a, b]);
        assert!((s.mae_mean - 15.0).abs() < 1e-9);
        assert!((s.mae_std - 5.0).abs() < 1e-9);
        assert!((s.mse_mean - 250.0).abs() < 1e-6);
        assert_eq!(s.per_app_mae.len(), 2);
    }
}
