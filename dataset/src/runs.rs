//! The runs table: one row per labelled **tenant-run** of a campaign (`DIR/runs.parquet`).
//!
//! A campaign run puts N tenants on the machine at once; every tenant gets its own row, with its
//! application's measured performance (`perf_actual`), the same application's performance when
//! it replays the same load alone (`perf_ideal`, the mean of ≥ 3 isolated repeats), and the
//! label P = ideal / actual (actual / ideal when higher is better) of the paper (§1, §3), clipped
//! into (0, 1] (`p_raw` keeps the unclipped ratio). Isolated baselines are rows too
//! (`kind = "baseline"`), labelled against the mean of their own repeats.
//!
//! Writing is append-safe: [`append_runs`] reads the table, adds the new rows (replacing rows
//! with the same `(run_id, tenant)`), writes a temporary file and renames it over the table, so a
//! crash leaves either the old or the new table, never a torn one.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

/// File name of the runs table inside a campaign directory.
pub const RUNS_FILE: &str = "runs.parquet";

/// Sub-directory of a campaign directory holding the Hive-partitioned sample files.
pub const SAMPLES_DIR: &str = "samples";

/// Status of a tenant-run.
pub const STATUS_OK: &str = "ok";
/// A tenant-run whose application crashed or whose output could not be parsed.
pub const STATUS_FAILED: &str = "failed";

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("cannot read runs table {path}: {source}")]
    Read { path: PathBuf, source: PolarsError },
    #[error("cannot write runs table {path}: {source}")]
    Write { path: PathBuf, source: PolarsError },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("runs table {path}: column `{column}` {why}")]
    Schema {
        path: PathBuf,
        column: String,
        why: String,
    },
    #[error("cannot build the runs table: {0}")]
    Build(PolarsError),
}

/// One row of the runs table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunRecord {
    /// Unique id of the campaign run (all tenants of one co-located run share it).
    pub run_id: String,
    /// Tenant name exactly as it appears in the sample files' `tenant` column.
    pub tenant: String,
    /// Application name (from the plan).
    pub app: String,
    /// `baseline` (the tenant alone) or `colocated`.
    pub kind: String,
    /// Trace kind: `static`, `increasing`, `decreasing`, `periodic` or `random`.
    pub scenario: String,
    /// Load level name (from the plan).
    pub level: String,
    /// Trace id (scenario plus its parameters, e.g. `periodic-p20`), the baseline cache key part.
    pub trace: String,
    /// Placement: `same-core`, `cross-core`, `unpinned`, or `cpuset:<list>`.
    pub placement: String,
    /// The tenant's cpuset (empty when unpinned).
    pub cpuset: String,
    /// CPU limit of the tenant, in vCPUs (0 = none).
    pub cpu_limit: f64,
    /// Memory limit of the tenant, MiB (0 = none).
    pub mem_limit_mb: f64,
    /// Neighbours, `app@level` of each other tenant, comma-separated (empty for baselines).
    pub neighbours: String,
    /// Number of tenants in the run (1 for baselines).
    pub n_tenants: u32,
    /// Repeat index (baselines: 0..repeats).
    pub repeat: u32,
    /// Name of the performance metric (from the plan, e.g. `requests_per_s`).
    pub perf_metric: String,
    pub higher_is_better: bool,
    /// The application's own reported performance over the run (NaN when failed).
    pub perf_actual: f64,
    /// The mean of the isolated baselines of (app, level, trace) (NaN when unknown).
    pub perf_ideal: f64,
    /// Label P in (0, 1] (NaN when failed).
    pub p: f64,
    /// The unclipped ratio.
    pub p_raw: f64,
    /// Per-second P where the application reports progress every second.
    pub p_per_second: Option<Vec<f32>>,
    /// The application's own per-second performance values.
    pub perf_per_second: Option<Vec<f32>>,
    /// Label noise: coefficient of variation (std / mean) of the isolated repeats.
    pub label_noise: f64,
    /// Mean CPU used outside the campaign's tenants during the run, in % of the machine.
    pub foreign_cpu_pct: f64,
    /// `ok` or `failed`.
    pub status: String,
    /// For failed runs: why, with the stderr tail.
    pub error: Option<String>,
    /// Catalogue hash of the sample files of the run.
    pub catalogue_hash: String,
    /// Sample directory of the run, relative to the campaign directory.
    pub samples_dir: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Plan seed.
    pub seed: u64,
}

impl RunRecord {
    /// Key unique per row.
    pub fn key(&self) -> (String, String) {
        (self.run_id.clone(), self.tenant.clone())
    }
}

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

fn list_series(name: &str, vals: &[Option<Vec<f32>>]) -> Series {
    let n_values: usize = vals.iter().flatten().map(Vec::len).sum();
    let mut b = ListPrimitiveChunkedBuilder::<Float32Type>::new(
        name.into(),
        vals.len(),
        n_values,
        DataType::Float32,
    );
    for v in vals {
        b.append_opt_slice(v.as_deref());
    }
    b.finish().into_series()
}

/// Builds the runs table as a DataFrame.
pub fn to_frame(records: &[RunRecord]) -> Result<DataFrame, RunsError> {
    macro_rules! col {
        ($name:expr, $f:expr) => {
            Column::new($name.into(), records.iter().map($f).collect::<Vec<_>>())
        };
    }
    let p_ps: Vec<Option<Vec<f32>>> = records.iter().map(|r| r.p_per_second.clone()).collect();
    let perf_ps: Vec<Option<Vec<f32>>> =
        records.iter().map(|r| r.perf_per_second.clone()).collect();
    let cols = vec![
        col!("run_id", |r: &RunRecord| r.run_id.clone()),
        col!("tenant", |r: &RunRecord| r.tenant.clone()),
        col!("app", |r: &RunRecord| r.app.clone()),
        col!("kind", |r: &RunRecord| r.kind.clone()),
        col!("scenario", |r: &RunRecord| r.scenario.clone()),
        col!("level", |r: &RunRecord| r.level.clone()),
        col!("trace", |r: &RunRecord| r.trace.clone()),
        col!("placement", |r: &RunRecord| r.placement.clone()),
        col!("cpuset", |r: &RunRecord| r.cpuset.clone()),
        col!("cpu_limit", |r: &RunRecord| r.cpu_limit),
        col!("mem_limit_mb", |r: &RunRecord| r.mem_limit_mb),
        col!("neighbours", |r: &RunRecord| r.neighbours.clone()),
        col!("n_tenants", |r: &RunRecord| r.n_tenants),
        col!("repeat", |r: &RunRecord| r.repeat),
        col!("perf_metric", |r: &RunRecord| r.perf_metric.clone()),
        col!("higher_is_better", |r: &RunRecord| r.higher_is_better),
        col!("perf_actual", |r: &RunRecord| nan_to_none(r.perf_actual)),
        col!("perf_ideal", |r: &RunRecord| nan_to_none(r.perf_ideal)),
        col!("p", |r: &RunRecord| nan_to_none(r.p)),
        col!("p_raw", |r: &RunRecord| nan_to_none(r.p_raw)),
        list_series("p_per_second", &p_ps).into(),
        list_series("perf_per_second", &perf_ps).into(),
        col!("label_noise", |r: &RunRecord| nan_to_none(r.label_noise)),
        col!("foreign_cpu_pct", |r: &RunRecord| nan_to_none(
            r.foreign_cpu_pct
        )),
        col!("status", |r: &RunRecord| r.status.clone()),
        col!("error", |r: &RunRecord| r.error.clone()),
        col!("catalogue_hash", |r: &RunRecord| r.catalogue_hash.clone()),
        col!("samples_dir", |r: &RunRecord| r.samples_dir.clone()),
        col!("start_ns", |r: &RunRecord| r.start_ns),
        col!("end_ns", |r: &RunRecord| r.end_ns),
        col!("seed", |r: &RunRecord| r.seed),
    ];
    DataFrame::new_infer_height(cols).map_err(RunsError::Build)
}

fn nan_to_none(x: f64) -> Option<f64> {
    if x.is_nan() {
        None
    } else {
        Some(x)
    }
}

/// Path of the runs table in a campaign directory.
pub fn runs_path(dir: &Path) -> PathBuf {
    dir.join(RUNS_FILE)
}

/// Writes `records` as the whole table at `path` (atomically: temp file + rename).
pub fn write_runs(path: &Path, records: &[RunRecord]) -> Result<(), RunsError> {
    let mut df = to_frame(records)?;
    let tmp = path.with_extension("parquet.tmp");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| RunsError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let f = File::create(&tmp).map_err(|source| RunsError::Io {
        path: tmp.clone(),
        source,
    })?;
    ParquetWriter::new(f)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(&mut df)
        .map_err(|source| RunsError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    // Make the bytes durable before the rename makes them visible.
    if let Ok(f) = File::open(&tmp) {
        let _ = f.sync_all();
    }
    std::fs::rename(&tmp, path).map_err(|source| RunsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Appends `new` to the table at `path` (created if absent); a new row replaces an old one with
/// the same `(run_id, tenant)`. Returns the number of rows in the table afterwards.
pub fn append_runs(path: &Path, new: &[RunRecord]) -> Result<usize, RunsError> {
    let mut all = if path.exists() {
        read_runs(path)?
    } else {
        Vec::new()
    };
    let keys: std::collections::HashSet<(String, String)> = new.iter().map(|r| r.key()).collect();
    all.retain(|r| !keys.contains(&r.key()));
    all.extend_from_slice(new);
    write_runs(path, &all)?;
    Ok(all.len())
}

/// Reads the runs table at `path`.
pub fn read_runs(path: &Path) -> Result<Vec<RunRecord>, RunsError> {
    let f = File::open(path).map_err(|source| RunsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let df = ParquetReader::new(f)
        .finish()
        .map_err(|source| RunsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    from_frame(&df, path)
}

/// Converts a runs DataFrame back into records; `path` is only used in error messages.
pub fn from_frame(df: &DataFrame, path: &Path) -> Result<Vec<RunRecord>, RunsError> {
    let n = df.height();
    let schema_err = |column: &str, why: String| RunsError::Schema {
        path: path.to_path_buf(),
        column: column.to_string(),
        why,
    };
    let get = |name: &str| -> Result<&Column, RunsError> {
        df.column(name)
            .map_err(|_| schema_err(name, "is missing".into()))
    };
    let strs = |name: &str| -> Result<Vec<Option<String>>, RunsError> {
        let c = get(name)?;
        let ca = c
            .str()
            .map_err(|e| schema_err(name, format!("is not a string column ({e})")))?;
        Ok(ca.iter().map(|o| o.map(str::to_string)).collect())
    };
    let f64s = |name: &str| -> Result<Vec<f64>, RunsError> {
        let c = get(name)?
            .cast(&DataType::Float64)
            .map_err(|e| schema_err(name, format!("is not numeric ({e})")))?;
        let ca = c
            .f64()
            .map_err(|e| schema_err(name, format!("is not numeric ({e})")))?;
        Ok(ca.iter().map(|o| o.unwrap_or(f64::NAN)).collect())
    };
    let i64s = |name: &str| -> Result<Vec<i64>, RunsError> {
        let c = get(name)?
            .cast(&DataType::Int64)
            .map_err(|e| schema_err(name, format!("is not an integer ({e})")))?;
        let ca = c
            .i64()
            .map_err(|e| schema_err(name, format!("is not an integer ({e})")))?;
        Ok(ca.iter().map(|o| o.unwrap_or(0)).collect())
    };
    let lists = |name: &str| -> Result<Vec<Option<Vec<f32>>>, RunsError> {
        let c = get(name)?;
        let ca = c
            .list()
            .map_err(|e| schema_err(name, format!("is not a list column ({e})")))?;
        let mut out = Vec::with_capacity(n);
        for i in 0..ca.len() {
            match ca.get_as_series(i) {
                None => out.push(None),
                Some(s) => {
                    let s = s
                        .cast(&DataType::Float32)
                        .map_err(|e| schema_err(name, format!("has non-numeric items ({e})")))?;
                    let v = s
                        .f32()
                        .map_err(|e| schema_err(name, format!("has non-numeric items ({e})")))?
                        .iter()
                        .map(|o| o.unwrap_or(f32::NAN))
                        .collect();
                    out.push(Some(v));
                }
            }
        }
        Ok(out)
    };
    let bools = |name: &str| -> Result<Vec<bool>, RunsError> {
        let c = get(name)?;
        let ca = c
            .bool()
            .map_err(|e| schema_err(name, format!("is not boolean ({e})")))?;
        Ok(ca.iter().map(|o| o.unwrap_or(false)).collect())
    };
    let s = |v: &Option<String>| v.clone().unwrap_or_default();

    let run_id = strs("run_id")?;
    let tenant = strs("tenant")?;
    let app = strs("app")?;
    let kind = strs("kind")?;
    let scenario = strs("scenario")?;
    let level = strs("level")?;
    let trace = strs("trace")?;
    let placement = strs("placement")?;
    let cpuset = strs("cpuset")?;
    let cpu_limit = f64s("cpu_limit")?;
    let mem_limit_mb = f64s("mem_limit_mb")?;
    let neighbours = strs("neighbours")?;
    let n_tenants = i64s("n_tenants")?;
    let repeat = i64s("repeat")?;
    let perf_metric = strs("perf_metric")?;
    let hib = bools("higher_is_better")?;
    let perf_actual = f64s("perf_actual")?;
    let perf_ideal = f64s("perf_ideal")?;
    let p = f64s("p")?;
    let p_raw = f64s("p_raw")?;
    let p_ps = lists("p_per_second")?;
    let perf_ps = lists("perf_per_second")?;
    let label_noise = f64s("label_noise")?;
    let foreign = f64s("foreign_cpu_pct")?;
    let status = strs("status")?;
    let error = strs("error")?;
    let hash = strs("catalogue_hash")?;
    let samples_dir = strs("samples_dir")?;
    let start_ns = i64s("start_ns")?;
    let end_ns = i64s("end_ns")?;
    let seed = i64s("seed")?;

    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(RunRecord {
            run_id: s(&run_id[i]),
            tenant: s(&tenant[i]),
            app: s(&app[i]),
            kind: s(&kind[i]),
            scenario: s(&scenario[i]),
            level: s(&level[i]),
            trace: s(&trace[i]),
            placement: s(&placement[i]),
            cpuset: s(&cpuset[i]),
            cpu_limit: cpu_limit[i],
            mem_limit_mb: mem_limit_mb[i],
            neighbours: s(&neighbours[i]),
            n_tenants: n_tenants[i].max(0) as u32,
            repeat: repeat[i].max(0) as u32,
            perf_metric: s(&perf_metric[i]),
            higher_is_better: hib[i],
            perf_actual: perf_actual[i],
            perf_ideal: perf_ideal[i],
            p: p[i],
            p_raw: p_raw[i],
            p_per_second: p_ps[i].clone(),
            perf_per_second: perf_ps[i].clone(),
            label_noise: label_noise[i],
            foreign_cpu_pct: foreign[i],
            status: s(&status[i]),
            error: error[i].clone(),
            catalogue_hash: s(&hash[i]),
            samples_dir: s(&samples_dir[i]),
            start_ns: start_ns[i],
            end_ns: end_ns[i],
            seed: seed[i] as u64,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(run: &str, tenant: &str, p: f64) -> RunRecord {
        RunRecord {
            run_id: run.into(),
            tenant: tenant.into(),
            app: "redis".into(),
            kind: "colocated".into(),
            scenario: "static".into(),
            level: "high".into(),
            trace: "static".into(),
            placement: "same-core".into(),
            cpuset: "0".into(),
            cpu_limit: 1.0,
            mem_limit_mb: 512.0,
            neighbours: "fio@high".into(),
            n_tenants: 2,
            repeat: 0,
            perf_metric: "requests_per_s".into(),
            higher_is_better: true,
            perf_actual: 50.0,
            perf_ideal: 100.0,
            p,
            p_raw: p,
            p_per_second: Some(vec![0.5, 0.4, f32::NAN]),
            perf_per_second: None,
            label_noise: 0.02,
            foreign_cpu_pct: 1.5,
            status: STATUS_OK.into(),
            error: None,
            catalogue_hash: "abc".into(),
            samples_dir: format!("samples/app=redis/run={run}"),
            start_ns: 1,
            end_ns: 2,
            seed: 7,
        }
    }

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

    #[test]
    fn round_trip_and_append_replaces_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = runs_path(dir.path());
        let mut a = rec("r1", "t0", 0.5);
        a.error = Some("boom".into());
        a.status = STATUS_FAILED.into();
        a.p = f64::NAN;
        let b = rec("r1", "t1", 0.7);
        assert_eq!(append_runs(&path, &[a.clone(), b.clone()]).unwrap(), 2);
        let back = read_runs(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].error.as_deref(), Some("boom"));
        assert!(back[0].p.is_nan());
        assert_eq!(back[1].p, 0.7);
        let ps = back[1].p_per_second.as_ref().unwrap();
        assert_eq!(&ps[..2], &[0.5, 0.4]);
        assert!(ps[2].is_nan());
        assert_eq!(back[1].perf_per_second, None);
        assert_eq!(back[1].seed, 7);
        // Re-appending the same key replaces, a new key appends.
        let b2 = rec("r1", "t1", 0.9);
        let c = rec("r2", "t0", 0.3);
        assert_eq!(append_runs(&path, &[b2, c]).unwrap(), 3);
        let back = read_runs(&path).unwrap();
        let t1: Vec<_> = back
            .iter()
            .filter(|r| r.key() == ("r1".into(), "t1".into()))
            .collect();
        assert_eq!(t1.len(), 1);
        assert_eq!(t1[0].p, 0.9);
        assert!(!path.with_extension("parquet.tmp").exists());
    }

    #[test]
    fn missing_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let mut df = df!("run_id" => ["a"]).unwrap();
        ParquetWriter::new(File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let e = read_runs(&path).unwrap_err().to_string();
        assert!(e.contains("tenant") && e.contains("missing"), "{e}");
    }
}
