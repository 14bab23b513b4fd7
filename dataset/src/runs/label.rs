//! Labels: P of one measurement against its isolated baseline, and the baseline of a key (the
//! mean of its isolated repeats). [`RunRecord::label`] is the one place a row is labelled, for
//! baselines and co-located rows alike.

use std::fmt;

use super::{RunKind, RunRecord, Scenario};

/// Label P of the paper: ideal / actual (lower is better, e.g. latency), actual / ideal (higher
/// is better, e.g. throughput). Returns `(p clipped into [1e-3, 1], p_raw)`; NaN when either
/// value is not a positive finite number.
pub fn label_p(perf_actual: f64, perf_ideal: f64, higher_is_better: bool) -> (f64, f64) {
    if !(perf_actual.is_finite() && perf_ideal.is_finite() && perf_actual > 0.0 && perf_ideal > 0.0)
    {
        return (f64::NAN, f64::NAN);
    }
    let raw = if higher_is_better {
        perf_actual / perf_ideal
    } else {
        perf_ideal / perf_actual
    };
    (raw.clamp(1e-3, 1.0), raw)
}

/// Coefficient of variation (sample std / mean) of repeated measurements; 0 for one value,
/// NaN for none.
pub fn spread(values: &[f64]) -> f64 {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    if v.len() == 1 {
        return 0.0;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if mean.abs() < f64::MIN_POSITIVE {
        return f64::NAN;
    }
    var.sqrt() / mean.abs()
}

/// What a baseline is cached under: (application, level, trace, cpuset, shape, host). Co-located
/// tenants are labelled against the baseline of the same key; its text form
/// (`app|level|trace|cpuset[|shape][|hostN]`, `any` when unpinned) names the baseline's run ids,
/// so it must never change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BaselineKey {
    pub app: String,
    pub level: String,
    pub trace: String,
    /// `None` when unpinned.
    pub cpuset: Option<String>,
    /// The tenant's VM shape (quota, memory, weight), when the plan has shapes.
    pub shape: Option<String>,
    /// Which of the campaign directory's hosts measured it ([`RunRecord::host`]): 0 for the
    /// first, whose keys keep the text they had before hosts were counted.
    pub host: u32,
}

impl BaselineKey {
    /// An empty cpuset is the same as none.
    pub fn new(app: &str, level: &str, trace: &str, cpuset: Option<&str>) -> BaselineKey {
        BaselineKey {
            app: app.to_string(),
            level: level.to_string(),
            trace: trace.to_string(),
            cpuset: cpuset.filter(|c| !c.is_empty()).map(str::to_string),
            shape: None,
            host: 0,
        }
    }

    /// The key of the same load in VM shape `shape` (none or empty: no shape).
    pub fn with_shape(mut self, shape: Option<&str>) -> BaselineKey {
        self.shape = shape.filter(|s| !s.is_empty()).map(str::to_string);
        self
    }

    /// The key of the same load measured on the campaign directory's host `host`.
    pub fn on_host(mut self, host: u32) -> BaselineKey {
        self.host = host;
        self
    }
}

impl fmt::Display for BaselineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpuset = self.cpuset.as_deref().unwrap_or("any");
        write!(f, "{}|{}|{}|{cpuset}", self.app, self.level, self.trace)?;
        // Keys without a shape keep the text of dataset v1 (its baseline run ids).
        if let Some(s) = &self.shape {
            write!(f, "|{s}")?;
        }
        // Keys of the first host keep the text they had before hosts were counted.
        match self.host {
            0 => Ok(()),
            h => write!(f, "|host{h}"),
        }
    }
}

/// The isolated baseline of one key, from its repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// Mean performance of the repeats that ran.
    pub perf_ideal: f64,
    /// Label noise: coefficient of variation of those repeats.
    pub noise: f64,
    /// Per-second mean of their series, when every such repeat reported one (cut to the
    /// shortest).
    pub per_second: Option<Vec<f32>>,
}

impl Baseline {
    /// The baseline of `repeats` (the rows of one key; failed ones are ignored), or `None`
    /// when none of them ran.
    pub fn from_repeats<'a>(repeats: impl IntoIterator<Item = &'a RunRecord>) -> Option<Baseline> {
        let ok: Vec<&RunRecord> = repeats
            .into_iter()
            .filter(|r| r.is_ok() && r.perf_actual.is_finite())
            .collect();
        if ok.is_empty() {
            return None;
        }
        let v: Vec<f64> = ok.iter().map(|r| r.perf_actual).collect();
        let series: Vec<&Vec<f32>> = ok
            .iter()
            .filter_map(|r| r.perf_per_second.as_ref())
            .collect();
        let per_second = (series.len() == ok.len()).then(|| {
            let n = series.iter().map(|s| s.len()).min().unwrap_or(0);
            (0..n)
                .map(|i| series.iter().map(|s| s[i]).sum::<f32>() / series.len() as f32)
                .collect()
        });
        Some(Baseline {
            perf_ideal: v.iter().sum::<f64>() / v.len() as f64,
            noise: spread(&v),
            per_second,
        })
    }

    /// The baseline of `key` among `rows` (its baseline rows).
    pub fn of_key(rows: &[RunRecord], key: &BaselineKey) -> Option<Baseline> {
        Baseline::from_repeats(
            rows.iter()
                .filter(|r| r.kind == RunKind::Baseline && r.baseline_key() == *key),
        )
    }
}

/// Per-second P of `actual` against `ideal` (cut to the shorter), `None` when either is empty.
pub fn per_second_p(actual: &[f32], ideal: &[f32], higher_is_better: bool) -> Option<Vec<f32>> {
    let n = actual.len().min(ideal.len());
    (n > 0).then(|| {
        (0..n)
            .map(|i| label_p(actual[i] as f64, ideal[i] as f64, higher_is_better).0 as f32)
            .collect()
    })
}

impl RunRecord {
    /// Labels this row against its baseline: the ideal performance and label noise always, and
    /// for a row that ran, P (clipped and raw) and per-second P where both sides have a series.
    pub fn label(&mut self, b: &Baseline) {
        self.perf_ideal = b.perf_ideal;
        self.label_noise = b.noise;
        if !self.is_ok() {
            return;
        }
        (self.p, self.p_raw) = label_p(self.perf_actual, b.perf_ideal, self.higher_is_better);
        if let (Some(a), Some(i)) = (&self.perf_per_second, &b.per_second) {
            let ideal = if self.scenario == Scenario::Static {
                steady_extended(i, a.len())
            } else {
                i.clone()
            };
            self.p_per_second = per_second_p(a, &ideal, self.higher_is_better);
        }
    }
}

/// A static load's isolated per-second curve carried on to `n` seconds: a plan's baselines may
/// be shorter than its runs (`baseline_seconds`); past their end the ideal is the mean of the
/// curve's second half (its steady state, after any start-up). A curve as long as `n` or longer
/// is returned as it is.
pub fn steady_extended(curve: &[f32], n: usize) -> Vec<f32> {
    let mut v = curve.to_vec();
    if curve.is_empty() || curve.len() >= n {
        return v;
    }
    let tail = &curve[curve.len() / 2..];
    let steady = tail.iter().sum::<f32>() / tail.len() as f32;
    v.resize(n, steady);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::RunStatus;

    #[test]
    fn label_p_follows_the_paper() {
        assert_eq!(label_p(50.0, 100.0, true).0, 0.5);
        assert_eq!(label_p(200.0, 100.0, false).0, 0.5);
        let (p, raw) = label_p(110.0, 100.0, true);
        assert_eq!(p, 1.0);
        assert!((raw - 1.1).abs() < 1e-12);
        assert!(label_p(0.0, 100.0, true).0.is_nan());
        assert!(label_p(f64::NAN, 100.0, false).0.is_nan());
    }

    #[test]
    fn spread_is_cv() {
        assert_eq!(spread(&[5.0]), 0.0);
        assert!(spread(&[]).is_nan());
        let s = spread(&[9.0, 10.0, 11.0]);
        assert!((s - 0.1).abs() < 1e-12, "{s}");
    }

    fn measured(v: f64) -> RunRecord {
        RunRecord {
            kind: RunKind::Baseline,
            app: "a".into(),
            level: "l".into(),
            trace: "static".into(),
            perf_actual: v,
            higher_is_better: true,
            perf_per_second: Some(vec![v as f32, 2.0 * v as f32]),
            ..Default::default()
        }
    }

    #[test]
    fn baseline_is_the_mean_of_the_repeats_that_ran() {
        let mut failed = measured(1000.0);
        failed.status = RunStatus::Failed;
        let base = Baseline::from_repeats([&measured(9.0), &measured(11.0), &failed]).unwrap();
        assert_eq!(base.perf_ideal, 10.0);
        assert_eq!(base.per_second.as_deref(), Some(&[10.0, 20.0][..]));
        assert!(base.noise > 0.1 && base.noise < 0.15);
        assert_eq!(Baseline::from_repeats([&failed]), None);
        // A repeat without a series leaves the baseline without one.
        let mut bare = measured(10.0);
        bare.perf_per_second = None;
        let b = Baseline::from_repeats([&measured(10.0), &bare]).unwrap();
        assert_eq!(b.per_second, None);
    }

    #[test]
    fn each_host_has_its_own_baselines() {
        // The same load measured on the directory's first host and, slower, on its second.
        let mut slow = measured(5.0);
        slow.host = 1;
        let rows = vec![measured(10.0), slow.clone()];
        let first = Baseline::of_key(&rows, &rows[0].baseline_key()).unwrap();
        let second = Baseline::of_key(&rows, &slow.baseline_key()).unwrap();
        assert_eq!((first.perf_ideal, second.perf_ideal), (10.0, 5.0));
        assert_ne!(rows[0].baseline_key(), slow.baseline_key());
        // A run on the second host that matches that host's baseline is not degraded.
        let mut r = slow.clone();
        r.kind = RunKind::Colocated;
        r.label(&second);
        assert_eq!(r.p, 1.0);
    }

    #[test]
    fn a_row_is_labelled_against_its_baseline() {
        assert_eq!(
            per_second_p(&[50.0, 100.0, 120.0], &[100.0, 100.0], true).unwrap(),
            vec![0.5, 1.0]
        );
        let rows = vec![measured(9.0), measured(11.0)];
        let key = rows[0].baseline_key();
        let base = Baseline::of_key(&rows, &key).unwrap();
        let mut r = measured(5.0);
        r.kind = RunKind::Colocated;
        r.label(&base);
        assert_eq!((r.p, r.p_raw, r.perf_ideal), (0.5, 0.5, 10.0));
        assert_eq!(r.p_per_second.as_deref(), Some(&[0.5, 0.5][..]));
        // A static run longer than its baselines: past their end, against their steady state.
        r.perf_per_second = Some(vec![5.0, 10.0, 10.0, 30.0]);
        r.label(&base);
        assert_eq!(r.p_per_second.as_deref(), Some(&[0.5, 0.5, 0.5, 1.0][..]));
        // A trace replays the same steps alone: no extension, cut to the shorter.
        r.scenario = Scenario::Increasing;
        r.label(&base);
        assert_eq!(r.p_per_second.as_deref(), Some(&[0.5, 0.5][..]));
        let mut lat = measured(20.0);
        lat.higher_is_better = false;
        lat.label(&base);
        assert_eq!(lat.p, 0.5);
        let mut failed = measured(5.0);
        failed.status = RunStatus::Failed;
        failed.p = f64::NAN;
        failed.label(&base);
        assert!(failed.p.is_nan() && failed.perf_ideal == 10.0);
        let other = BaselineKey::new("a", "l", "static", Some("0"));
        assert_eq!(Baseline::of_key(&rows, &other), None);
    }

    #[test]
    fn baseline_key_text_is_stable() {
        assert_eq!(
            BaselineKey::new("redis", "high", "random-1", Some("")).to_string(),
            "redis|high|random-1|any"
        );
        assert_eq!(
            BaselineKey::new("redis", "high", "static", Some("0-1")).to_string(),
            "redis|high|static|0-1"
        );
        let shaped = BaselineKey::new("redis", "high", "static", None).with_shape(Some("small"));
        assert_eq!(shaped.to_string(), "redis|high|static|any|small");
        let plain = BaselineKey::new("redis", "high", "static", None).with_shape(Some(""));
        assert_eq!(plain.to_string(), "redis|high|static|any");
        assert_eq!(plain.clone().on_host(0), plain);
        assert_eq!(
            shaped.on_host(2).to_string(),
            "redis|high|static|any|small|host2"
        );
    }
}
