//! Reading segments back: listing, footers, filters, upgrades from earlier catalogues, matrices.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::schema::{column_names, schema};
use super::{
    io, pq, SamplesError, SegmentMeta, META_AVAILABILITY, META_CATALOGUE_HASH, META_VERSION,
};
use crate::catalogue::Catalogue;

/// Which rows to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// `ts_ns >= from_ns`.
    pub from_ns: Option<i64>,
    /// `ts_ns < to_ns`.
    pub to_ns: Option<i64>,
}

/// Every closed segment (`*.parquet`, not `*.partial`) under `dir`, recursively, sorted.
pub fn list_segments(dir: &Path) -> Result<Vec<PathBuf>, SamplesError> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> Result<(), SamplesError> {
        for e in std::fs::read_dir(d).map_err(io(d))? {
            let p = e.map_err(io(d))?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().and_then(|s| s.to_str()) == Some("parquet") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Reads a segment's footer metadata.
pub fn read_meta(path: &Path) -> Result<SegmentMeta, SamplesError> {
    let f = File::open(path).map_err(io(path))?;
    meta_of(&mut ParquetReader::new(f), path)
}

/// A segment's footer metadata and its rows, through one reader (the footer is read once).
pub fn read_segment(path: &Path) -> Result<(SegmentMeta, DataFrame), SamplesError> {
    let f = File::open(path).map_err(io(path))?;
    let mut rd = ParquetReader::new(f);
    let meta = meta_of(&mut rd, path)?;
    let df = rd.finish().map_err(pq(path))?;
    Ok((meta, df))
}

/// The footer metadata of the segment `path` open in `rd`.
fn meta_of(rd: &mut ParquetReader<File>, path: &Path) -> Result<SegmentMeta, SamplesError> {
    let md = rd.get_metadata().map_err(pq(path))?;
    let mut meta = SegmentMeta::default();
    for kv in md.key_value_metadata().iter().flatten() {
        let v = kv.value.clone().unwrap_or_default();
        match kv.key.as_str() {
            META_CATALOGUE_HASH => meta.catalogue_hash = v,
            META_VERSION => meta.version = v,
            META_AVAILABILITY => {
                meta.availability = serde_json::from_str(&v).map_err(|e| SamplesError::BadFile {
                    path: path.to_path_buf(),
                    why: format!("footer {META_AVAILABILITY} is not a JSON map: {e}"),
                })?
            }
            k => {
                meta.extra.insert(k.to_string(), v);
            }
        }
    }
    Ok(meta)
}

/// Row-group sizes of a segment (for checks and tests).
pub fn row_group_sizes(path: &Path) -> Result<Vec<usize>, SamplesError> {
    let f = File::open(path).map_err(io(path))?;
    let mut rd = ParquetReader::new(f);
    let md = rd.get_metadata().map_err(pq(path))?;
    Ok(md.row_groups.iter().map(|rg| rg.num_rows()).collect())
}

fn filter_frame(df: DataFrame, filter: &Filter, path: &Path) -> Result<DataFrame, SamplesError> {
    let bad = |why: String| SamplesError::BadFile {
        path: path.to_path_buf(),
        why,
    };
    let mut mask = BooleanChunked::full("m".into(), true, df.height());
    if let Some(t) = &filter.tenant {
        let c = df
            .column("tenant")
            .and_then(|c| c.str().cloned())
            .map_err(|e| bad(format!("no string column `tenant` ({e})")))?;
        mask = &mask & &c.equal(t.as_str());
    }
    if filter.from_ns.is_some() || filter.to_ns.is_some() {
        let ts = df
            .column("ts_ns")
            .and_then(|c| c.i64().cloned())
            .map_err(|e| bad(format!("no i64 column `ts_ns` ({e})")))?;
        if let Some(f) = filter.from_ns {
            mask = &mask & &ts.gt_eq(f);
        }
        if let Some(t) = filter.to_ns {
            mask = &mask & &ts.lt(t);
        }
    }
    df.filter(&mask).map_err(pq(path))
}

/// A frame read from a segment written under an earlier catalogue, in this build's columns:
/// the metrics added since (whose source its footer records as absent) as null columns, in
/// catalogue order. Frames of this build's catalogue pass unchanged.
fn upgrade_frame(
    df: DataFrame,
    cat: &Catalogue,
    meta: &SegmentMeta,
    path: &Path,
) -> Result<DataFrame, SamplesError> {
    if meta.catalogue_hash.is_empty() || meta.catalogue_hash == cat.hash() {
        return Ok(df);
    }
    let fill = cat
        .columns_to_fill(&meta.catalogue_hash, &meta.availability)
        .map_err(|why| SamplesError::BadFile {
            path: path.to_path_buf(),
            why,
        })?;
    let mut df = df;
    for name in &fill {
        let c = Series::full_null(name.as_str().into(), df.height(), &DataType::Float32);
        df.with_column(Column::from(c)).map_err(pq(path))?;
    }
    df.select(column_names(cat)).map_err(pq(path))
}

/// Loads the rows matching `filter` from every closed segment under `dir` (Hive-partitioned or
/// flat), sorted by (`ts_ns`, `tenant`). Files whose columns differ from the first file's are an
/// error naming the file. An empty directory gives an empty frame with this build's schema.
pub fn read_samples(dir: &Path, filter: &Filter) -> Result<DataFrame, SamplesError> {
    if !dir.is_dir() {
        return Err(SamplesError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let mut out: Option<DataFrame> = None;
    let cat = Catalogue::builtin();
    for path in list_segments(dir)? {
        let (meta, df) = read_segment(&path)?;
        let df = filter_frame(df, filter, &path)?;
        let df = upgrade_frame(df, cat, &meta, &path)?;
        match out.as_mut() {
            None => out = Some(df),
            Some(acc) => {
                if acc.get_column_names() != df.get_column_names() {
                    return Err(SamplesError::BadFile {
                        path,
                        why: "its columns differ from the other segments' (another catalogue?)"
                            .into(),
                    });
                }
                acc.vstack_mut_owned(df).map_err(pq(&path))?;
            }
        }
    }
    let df = match out {
        Some(df) => df,
        None => return Ok(DataFrame::empty_with_schema(&schema(Catalogue::builtin()))),
    };
    df.sort(["ts_ns", "tenant"], SortMultipleOptions::default())
        .map_err(pq(dir))
}

/// One tenant's rows as a T × F matrix (row-major, `feature_names()` order, null → NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub t: usize,
    pub f: usize,
    pub data: Vec<f32>,
    pub ts_ns: Vec<i64>,
}

impl Matrix {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.f..(i + 1) * self.f]
    }
}

/// Extracts `tenant`'s rows of `df` (as returned by [`read_samples`]), in `ts_ns` order, with the
/// feature columns of `cat`. A missing feature column is an error naming it.
pub fn tenant_matrix(
    df: &DataFrame,
    tenant: &str,
    cat: &Catalogue,
) -> Result<Matrix, SamplesError> {
    let frame_err = |why: String| SamplesError::Frame(why);
    let tenants = df
        .column("tenant")
        .and_then(|c| c.str().cloned())
        .map_err(|e| frame_err(format!("no string column `tenant` ({e})")))?;
    let df = df
        .filter(&tenants.equal(tenant))
        .and_then(|d| d.sort(["ts_ns"], SortMultipleOptions::default()))
        .map_err(|e| frame_err(e.to_string()))?;
    let t = df.height();
    let ts_ns: Vec<i64> = df
        .column("ts_ns")
        .and_then(|c| c.i64().cloned())
        .map_err(|e| frame_err(format!("no i64 column `ts_ns` ({e})")))?
        .iter()
        .map(|x| x.unwrap_or(0))
        .collect();
    let names = cat.feature_names();
    let f = names.len();
    let mut data = vec![f32::NAN; t * f];
    for (j, name) in names.iter().enumerate() {
        let c = df
            .column(name)
            .map_err(|_| frame_err(format!("feature column `{name}` is missing")))?;
        let c = c
            .cast(&DataType::Float32)
            .map_err(|e| frame_err(format!("feature column `{name}`: {e}")))?;
        let ca = c
            .f32()
            .map_err(|e| frame_err(format!("feature column `{name}`: {e}")))?;
        for (i, v) in ca.iter().enumerate() {
            if let Some(v) = v {
                data[i * f + j] = v;
            }
        }
    }
    Ok(Matrix { t, f, data, ts_ns })
}
