//! Run matrices: campaign output → training input.
//!
//! [`load_run_matrices`] reads a campaign directory (`DIR/runs.parquet` + `DIR/samples/…`) and
//! returns one [`RunMatrix`] per labelled tenant-run: the tenant's per-second feature rows
//! (T × F, row-major, in `Catalogue::feature_names()` order, null → NaN) with its label. Sample
//! files written before the placement columns get them derived from the runs table
//! ([`crate::placement`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::catalogue::{Catalogue, PLACEMENT_FAMILY};
use crate::placement::{self, PlacementColumns, TenantSetup};
use crate::runs::{self, Placement, RunKind, RunRecord, RunsError, Scenario};
use crate::samples::SamplesError;

/// Footer key holding the catalogue hash of a sample file.
pub const CATALOGUE_HASH_KEY: &str = crate::samples::META_CATALOGUE_HASH;

/// One labelled tenant-run.
#[derive(Debug, Clone)]
pub struct RunMatrix {
    pub run_id: String,
    pub tenant: String,
    pub app: String,
    /// The trace the tenant's load followed.
    pub scenario: Scenario,
    /// Seconds (rows).
    pub t: usize,
    /// Features (columns).
    pub f: usize,
    /// T × F row-major, NaN = null.
    pub x: Vec<f32>,
    /// Label P in (0, 1].
    pub p: f32,
    pub p_per_second: Option<Vec<f32>>,
    /// Spread (coefficient of variation) of the isolated repeats of this (app, level, trace).
    pub label_noise: f32,
    pub kind: RunKind,
    pub level: String,
    pub trace: String,
    pub placement: Placement,
    /// `app@level` of each neighbour.
    pub neighbours: Vec<String>,
    /// Tenants in the run (1 for a baseline).
    pub n_tenants: u32,
    /// The tenant's cpuset as a cpu list (empty = unpinned).
    pub cpuset: String,
    /// The tenant's CPU quota in vCPUs (0 = none).
    pub cpu_limit: f64,
    /// `ts_ns` of each row.
    pub ts_ns: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error(transparent)]
    Runs(#[from] RunsError),
    #[error("sample file {path}: catalogue hash {found:?} differs from {expected:?} ({why})")]
    CatalogueMismatch {
        path: PathBuf,
        found: String,
        expected: String,
        why: String,
    },
    #[error("sample file {path}: {why}")]
    BadSampleFile { path: PathBuf, why: String },
    #[error("run {run_id} tenant {tenant}: {why}")]
    BadRun {
        run_id: String,
        tenant: String,
        why: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Which tenant-runs to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Also load isolated baselines (labelled against the mean of their own repeats, P ≈ 1).
    pub include_baselines: bool,
    /// Read the per-process columns of sliced loads as null (see [`crate::sliced`]).
    pub blank_sliced_process: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            include_baselines: true,
            blank_sliced_process: true,
        }
    }
}

/// Loads every labelled (status `ok`, finite P) tenant-run of the campaign directory `dir`.
pub fn load_run_matrices(dir: &Path) -> Result<Vec<RunMatrix>, MatrixError> {
    load_run_matrices_with(dir, &LoadOptions::default())
}

/// [`load_run_matrices`] with options.
pub fn load_run_matrices_with(
    dir: &Path,
    opts: &LoadOptions,
) -> Result<Vec<RunMatrix>, MatrixError> {
    let records = runs::read_runs(&runs::runs_path(dir))?;
    let cat = Catalogue::builtin();
    let setups = placement_setups(&records);
    let sliced = if opts.blank_sliced_process {
        crate::sliced::sliced_apps(dir)?
    } else {
        Default::default()
    };
    let process_cols = crate::sliced::process_features(cat);
    let mut cache: std::collections::HashMap<String, Vec<SampleFile>> = Default::default();
    let mut out = Vec::new();
    for r in records.iter() {
        if !r.is_ok() || !r.p.is_finite() {
            continue;
        }
        if !opts.include_baselines && r.kind == RunKind::Baseline {
            continue;
        }
        if !cache.contains_key(&r.samples_dir) {
            let mut files = read_sample_dir(&dir.join(&r.samples_dir), cat)?;
            if let (Some(c), Some(s)) = (PlacementColumns::of(cat), setups.get(&r.samples_dir)) {
                for sf in files.iter_mut().filter(|sf| sf.derive_placement) {
                    let f = cat.n_features();
                    placement::derive_for_old_rows(&mut sf.x, f, &sf.tenants, &sf.ts, s, &c);
                }
            }
            cache.insert(r.samples_dir.clone(), files);
        }
        let files = &cache[&r.samples_dir];
        let mut m = matrix_for(r, files, cat)?;
        crate::sliced::blank_sliced_process_columns(&mut m, &sliced, &process_cols);
        out.push(m);
    }
    Ok(out)
}

/// What the runs table says of each tenant's placement, per sample directory (one run).
fn placement_setups(records: &[RunRecord]) -> HashMap<String, BTreeMap<String, TenantSetup>> {
    let mut out: HashMap<String, BTreeMap<String, TenantSetup>> = HashMap::new();
    for r in records {
        let setup = TenantSetup {
            cpus: crate::cpulist::parse_cpulist(&r.cpuset).ok(),
            quota_cpus: (r.cpu_limit.is_finite() && r.cpu_limit > 0.0)
                .then_some(r.cpu_limit as f32),
        };
        out.entry(r.samples_dir.clone())
            .or_default()
            .insert(r.tenant.clone(), setup);
    }
    out
}

/// The feature rows of one sample file, by tenant.
struct SampleFile {
    path: PathBuf,
    hash: String,
    /// Written before the placement columns: they are derived from the runs table.
    derive_placement: bool,
    tenants: Vec<String>,
    ts: Vec<i64>,
    /// Row-major n × F.
    x: Vec<f32>,
}

fn list_parquet(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), MatrixError> {
    let rd = std::fs::read_dir(dir).map_err(|source| MatrixError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in rd {
        let e = e.map_err(|source| MatrixError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = e.path();
        if p.is_dir() {
            list_parquet(&p, out)?;
        } else if p.extension().and_then(|s| s.to_str()) == Some("parquet") {
            out.push(p);
        }
    }
    Ok(())
}

fn read_sample_dir(dir: &Path, cat: &Catalogue) -> Result<Vec<SampleFile>, MatrixError> {
    let mut paths = Vec::new();
    if dir.is_dir() {
        list_parquet(dir, &mut paths)?;
    }
    paths.sort();
    let names = cat.feature_names();
    let mut out = Vec::new();
    for path in paths {
        let bad = |why: String| MatrixError::BadSampleFile {
            path: path.clone(),
            why,
        };
        let (meta, df) = match crate::samples::read_segment(&path) {
            Ok(r) => r,
            Err(SamplesError::Io { path, source }) => return Err(MatrixError::Io { path, source }),
            Err(e) => return Err(bad(format!("unreadable: {e}"))),
        };
        let hash = meta.catalogue_hash;
        // Written under an earlier catalogue: readable when it lacks only metrics whose source
        // its footer records as absent (read as null).
        let fill = cat
            .columns_to_fill(&hash, &meta.availability)
            .map_err(|why| MatrixError::CatalogueMismatch {
                path: path.clone(),
                found: hash.clone(),
                expected: cat.hash().to_string(),
                why,
            })?;
        let tenants: Vec<String> = df
            .column("tenant")
            .and_then(|c| c.str().cloned())
            .map_err(|e| bad(format!("no string column `tenant` ({e})")))?
            .iter()
            .map(|o| o.unwrap_or_default().to_string())
            .collect();
        let ts: Vec<i64> = df
            .column("ts_ns")
            .and_then(|c| c.cast(&DataType::Int64))
            .and_then(|c| c.i64().cloned())
            .map_err(|e| bad(format!("no integer column `ts_ns` ({e})")))?
            .iter()
            .map(|o| o.unwrap_or(0))
            .collect();
        let n = df.height();
        let fcount = names.len();
        let mut x = vec![f32::NAN; n * fcount];
        for (j, name) in names.iter().enumerate() {
            if fill.contains(name) {
                continue;
            }
            let c = df
                .column(name)
                .map_err(|_| bad(format!("feature column `{name}` is missing")))?;
            let c = c
                .cast(&DataType::Float32)
                .map_err(|e| bad(format!("feature column `{name}` is not numeric ({e})")))?;
            let ca = c
                .f32()
                .map_err(|e| bad(format!("feature column `{name}` is not numeric ({e})")))?;
            for (i, v) in ca.iter().enumerate() {
                x[i * fcount + j] = v.unwrap_or(f32::NAN);
            }
        }
        let derive_placement = fill.iter().any(|n| {
            cat.index_of(n)
                .and_then(|i| cat.metrics().get(i))
                .is_some_and(|m| m.family == PLACEMENT_FAMILY)
        });
        out.push(SampleFile {
            path,
            hash,
            derive_placement,
            tenants,
            ts,
            x,
        });
    }
    Ok(out)
}

fn matrix_for(
    r: &RunRecord,
    files: &[SampleFile],
    cat: &Catalogue,
) -> Result<RunMatrix, MatrixError> {
    let f = cat.n_features();
    let mut rows: Vec<(i64, &[f32])> = Vec::new();
    for sf in files {
        if !r.catalogue_hash.is_empty() && sf.hash != r.catalogue_hash {
            return Err(MatrixError::CatalogueMismatch {
                path: sf.path.clone(),
                found: sf.hash.clone(),
                expected: r.catalogue_hash.clone(),
                why: "the runs table".into(),
            });
        }
        for (i, t) in sf.tenants.iter().enumerate() {
            if *t == r.tenant {
                rows.push((sf.ts[i], &sf.x[i * f..(i + 1) * f]));
            }
        }
    }
    if rows.is_empty() {
        return Err(MatrixError::BadRun {
            run_id: r.run_id.clone(),
            tenant: r.tenant.clone(),
            why: format!("no sample rows for this tenant under {}", r.samples_dir),
        });
    }
    rows.sort_by_key(|(ts, _)| *ts);
    rows.dedup_by_key(|(ts, _)| *ts);
    let t = rows.len();
    let mut x = Vec::with_capacity(t * f);
    let mut ts_ns = Vec::with_capacity(t);
    for (ts, row) in rows {
        ts_ns.push(ts);
        x.extend_from_slice(row);
    }
    Ok(RunMatrix {
        run_id: r.run_id.clone(),
        tenant: r.tenant.clone(),
        app: r.app.clone(),
        scenario: r.scenario,
        t,
        f,
        x,
        p: r.p as f32,
        p_per_second: r.p_per_second.clone(),
        label_noise: if r.label_noise.is_finite() {
            r.label_noise as f32
        } else {
            f32::NAN
        },
        kind: r.kind,
        level: r.level.clone(),
        trace: r.trace.clone(),
        placement: r.placement.clone(),
        neighbours: r
            .neighbours
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        n_tenants: r.n_tenants,
        cpuset: r.cpuset.clone(),
        cpu_limit: r.cpu_limit,
        ts_ns,
    })
}

#[cfg(test)]
mod tests;
