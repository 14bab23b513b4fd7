//! Reading and writing the runs table (`runs.parquet`), atomically.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::{RunRecord, RunsError, UnknownValue, RUNS_FILE};

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
        col!("kind", |r: &RunRecord| r.kind.to_string()),
        col!("scenario", |r: &RunRecord| r.scenario.to_string()),
        col!("level", |r: &RunRecord| r.level.clone()),
        col!("trace", |r: &RunRecord| r.trace.clone()),
        col!("placement", |r: &RunRecord| r.placement.to_string()),
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
        col!("status", |r: &RunRecord| r.status.to_string()),
        col!("error", |r: &RunRecord| r.error.clone()),
        col!("catalogue_hash", |r: &RunRecord| r.catalogue_hash.clone()),
        col!("samples_dir", |r: &RunRecord| r.samples_dir.clone()),
        col!("start_ns", |r: &RunRecord| r.start_ns),
        col!("end_ns", |r: &RunRecord| r.end_ns),
        col!("seed", |r: &RunRecord| r.seed),
        col!("machine", |r: &RunRecord| r.machine.clone()),
        col!("neighbour_schedule", |r: &RunRecord| r
            .neighbour_schedule
            .clone()),
        col!("shape", |r: &RunRecord| r.shape.clone()),
        col!("host", |r: &RunRecord| r.host),
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
    let c = Columns { df, path };
    let mut out = vec![RunRecord::default(); df.height()];
    let rows = &mut out;
    c.strs("run_id", rows, |r, v| r.run_id = v)?;
    c.strs("tenant", rows, |r, v| r.tenant = v)?;
    c.strs("app", rows, |r, v| r.app = v)?;
    c.parsed("kind", rows, |r, v| r.kind = v)?;
    c.parsed("scenario", rows, |r, v| r.scenario = v)?;
    c.strs("level", rows, |r, v| r.level = v)?;
    c.strs("trace", rows, |r, v| r.trace = v)?;
    c.parsed("placement", rows, |r, v| r.placement = v)?;
    c.strs("cpuset", rows, |r, v| r.cpuset = v)?;
    c.f64s("cpu_limit", rows, |r, v| r.cpu_limit = v)?;
    c.f64s("mem_limit_mb", rows, |r, v| r.mem_limit_mb = v)?;
    c.strs("neighbours", rows, |r, v| r.neighbours = v)?;
    c.i64s("n_tenants", rows, |r, v| r.n_tenants = v.max(0) as u32)?;
    c.i64s("repeat", rows, |r, v| r.repeat = v.max(0) as u32)?;
    c.strs("perf_metric", rows, |r, v| r.perf_metric = v)?;
    c.bools("higher_is_better", rows, |r, v| r.higher_is_better = v)?;
    c.f64s("perf_actual", rows, |r, v| r.perf_actual = v)?;
    c.f64s("perf_ideal", rows, |r, v| r.perf_ideal = v)?;
    c.f64s("p", rows, |r, v| r.p = v)?;
    c.f64s("p_raw", rows, |r, v| r.p_raw = v)?;
    c.lists("p_per_second", rows, |r, v| r.p_per_second = v)?;
    c.lists("perf_per_second", rows, |r, v| r.perf_per_second = v)?;
    c.f64s("label_noise", rows, |r, v| r.label_noise = v)?;
    c.f64s("foreign_cpu_pct", rows, |r, v| r.foreign_cpu_pct = v)?;
    c.parsed("status", rows, |r, v| r.status = v)?;
    c.opt_strs("error", rows, |r, v| r.error = v)?;
    c.strs("catalogue_hash", rows, |r, v| r.catalogue_hash = v)?;
    c.strs("samples_dir", rows, |r, v| r.samples_dir = v)?;
    c.i64s("start_ns", rows, |r, v| r.start_ns = v)?;
    c.i64s("end_ns", rows, |r, v| r.end_ns = v)?;
    c.i64s("seed", rows, |r, v| r.seed = v as u64)?;
    // Columns added after dataset v1: absent in older tables.
    if df.column("machine").is_ok() {
        c.strs("machine", rows, |r, v| r.machine = v)?;
    }
    if df.column("neighbour_schedule").is_ok() {
        c.strs("neighbour_schedule", rows, |r, v| r.neighbour_schedule = v)?;
    }
    if df.column("shape").is_ok() {
        c.strs("shape", rows, |r, v| r.shape = v)?;
    }
    if df.column("host").is_ok() {
        c.i64s("host", rows, |r, v| r.host = v.max(0) as u32)?;
    }
    Ok(out)
}

/// Reads the runs table's columns into records, one column at a time; errors name the column
/// (and, for a domain value, the row).
struct Columns<'a> {
    df: &'a DataFrame,
    path: &'a Path,
}

impl Columns<'_> {
    fn schema_err(&self, column: &str, why: String) -> RunsError {
        RunsError::Schema {
            path: self.path.to_path_buf(),
            column: column.to_string(),
            why,
        }
    }

    fn get(&self, name: &str) -> Result<&Column, RunsError> {
        self.df
            .column(name)
            .map_err(|_| self.schema_err(name, "is missing".into()))
    }

    fn opt_strs<F>(&self, name: &str, rows: &mut [RunRecord], set: F) -> Result<(), RunsError>
    where
        F: Fn(&mut RunRecord, Option<String>),
    {
        let ca = self
            .get(name)?
            .str()
            .map_err(|e| self.schema_err(name, format!("is not a string column ({e})")))?;
        for (r, v) in rows.iter_mut().zip(ca.iter()) {
            set(r, v.map(str::to_string));
        }
        Ok(())
    }

    /// A string column; null reads as empty.
    fn strs<F>(&self, name: &str, rows: &mut [RunRecord], set: F) -> Result<(), RunsError>
    where
        F: Fn(&mut RunRecord, String),
    {
        self.opt_strs(name, rows, |r, v| set(r, v.unwrap_or_default()))
    }

    /// A string column of domain values (an enum), each checked.
    fn parsed<T, F>(&self, name: &str, rows: &mut [RunRecord], set: F) -> Result<(), RunsError>
    where
        T: std::str::FromStr<Err = UnknownValue>,
        F: Fn(&mut RunRecord, T),
    {
        let ca = self
            .get(name)?
            .str()
            .map_err(|e| self.schema_err(name, format!("is not a string column ({e})")))?;
        for (row, (r, v)) in rows.iter_mut().zip(ca.iter()).enumerate() {
            let v = v
                .unwrap_or_default()
                .parse()
                .map_err(|source| RunsError::Value {
                    path: self.path.to_path_buf(),
                    row,
                    source,
                })?;
            set(r, v);
        }
        Ok(())
    }

    /// A numeric column as f64; null reads as NaN.
    fn f64s<F>(&self, name: &str, rows: &mut [RunRecord], set: F) -> Result<(), RunsError>
    where
        F: Fn(&mut RunRecord, f64),
    {
        let bad = |e: PolarsError| self.schema_err(name, format!("is not numeric ({e})"));
        let c = self.get(name)?.cast(&DataType::Float64).map_err(bad)?;
        for (r, v) in rows.iter_mut().zip(c.f64().map_err(bad)?.iter()) {
            set(r, v.unwrap_or(f64::NAN));
        }
        Ok(())
    }

    /// An integer column; null reads as 0.
    fn i64s<F>(&self, name: &str, rows: &mut [RunRecord], set: F) -> Result<(), RunsError>
    where
        F: Fn(&mut RunRecord, i64),
    {
        let bad = |e: PolarsError| self.schema_err(name, format!("is not an integer ({e})"));
        let c = self.get(name)?.cast(&DataType::Int64).map_err(bad)?;
        for (r, v) in rows.iter_mut().zip(c.i64().map_err(bad)?.iter()) {
            set(r, v.unwrap_or(0));
        }
        Ok(())
    }

    fn bools<F>(&self, name: &str, rows: &mut [RunRecord], set: F) -> Result<(), RunsError>
    where
        F: Fn(&mut RunRecord, bool),
    {
        let ca = self
            .get(name)?
            .bool()
            .map_err(|e| self.schema_err(name, format!("is not boolean ({e})")))?;
        for (r, v) in rows.iter_mut().zip(ca.iter()) {
            set(r, v.unwrap_or(false));
        }
        Ok(())
    }

    /// A list-of-numbers column as f32 (null items read as NaN, a null list as `None`).
    fn lists<F>(&self, name: &str, rows: &mut [RunRecord], set: F) -> Result<(), RunsError>
    where
        F: Fn(&mut RunRecord, Option<Vec<f32>>),
    {
        let ca = self
            .get(name)?
            .list()
            .map_err(|e| self.schema_err(name, format!("is not a list column ({e})")))?;
        let bad = |e: PolarsError| self.schema_err(name, format!("has non-numeric items ({e})"));
        for (i, r) in rows.iter_mut().enumerate() {
            let v = match ca.get_as_series(i) {
                None => None,
                Some(s) => {
                    let s = s.cast(&DataType::Float32).map_err(bad)?;
                    let v = s.f32().map_err(bad)?.iter();
                    Some(v.map(|o| o.unwrap_or(f32::NAN)).collect())
                }
            };
            set(r, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{Placement, RunKind, RunStatus, Scenario};

    fn rec(run: &str, tenant: &str, p: f64) -> RunRecord {
        RunRecord {
            run_id: run.into(),
            tenant: tenant.into(),
            app: "redis".into(),
            kind: RunKind::Colocated,
            scenario: Scenario::Static,
            level: "high".into(),
            trace: "static".into(),
            placement: Placement::SameCore,
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
            status: RunStatus::Ok,
            error: None,
            catalogue_hash: "abc".into(),
            samples_dir: format!("samples/app=redis/run={run}"),
            start_ns: 1,
            end_ns: 2,
            seed: 7,
            machine: "Test CPU; 6.1.0".into(),
            neighbour_schedule: "[]".into(),
            shape: "small".into(),
            host: 1,
        }
    }

    #[test]
    fn tables_written_before_the_machine_column_read_with_it_empty() {
        let df = to_frame(&[rec("r1", "t0", 0.5)]).unwrap();
        let old = df.drop("machine").unwrap();
        let old = old.drop("neighbour_schedule").unwrap();
        let old = old.drop("shape").unwrap();
        let old = old.drop("host").unwrap();
        let back = from_frame(&old, Path::new("old.parquet")).unwrap();
        assert_eq!(
            back[0].host, 0,
            "older tables are of the directory's first host"
        );
        assert_eq!(back[0].machine, "");
        assert_eq!(back[0].neighbour_schedule, "");
        assert_eq!(back[0].shape, "");
        assert_eq!(back[0].seed, 7);
    }

    #[test]
    fn round_trip_and_append_replaces_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = runs_path(dir.path());
        let mut a = rec("r1", "t0", 0.5);
        a.error = Some("boom".into());
        a.status = RunStatus::Failed;
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
        assert_eq!(back[1].machine, "Test CPU; 6.1.0");
        assert_eq!(back[1].neighbour_schedule, "[]");
        assert_eq!(back[1].baseline_key().shape.as_deref(), Some("small"));
        assert_eq!(back[1].host, 1);
        assert_eq!(back[1].baseline_key().host, 1);
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
