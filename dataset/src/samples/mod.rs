//! Sample files: one row per (tenant, second), written by the collector, read by everyone.
//!
//! Layout (see `docs/architecture.md`): Parquet, zstd, row groups of at least
//! [`MIN_ROW_GROUP_ROWS`] rows (except the last of a segment), Hive-partitioned directories.
//! Columns: `ts_ns` (i64), `seq` (u32), `tenant` (str), `n_neighbours` (u32), `dt_s` (f32),
//! `gap` (bool), `collect_us` (u32), `lateness_us` (u32), the catalogue's feature columns (f32,
//! nullable, never NaN) in `feature_names()` order, then the host context columns `host.*`.
//! Footer key/value metadata: [`META_CATALOGUE_HASH`], [`META_AVAILABILITY`], [`META_VERSION`].
//!
//! A segment is written to `<name>.parquet.partial` and renamed to `<name>.parquet` by
//! [`SegmentWriter::close`]; readers ignore `*.partial`, so a crash loses only the open segment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::catalogue::Catalogue;

/// Footer key: the catalogue hash the feature columns follow.
pub const META_CATALOGUE_HASH: &str = "cloudformer.catalogue_hash";
/// Footer key: JSON object source → bool (was the source readable on this host).
pub const META_AVAILABILITY: &str = "cloudformer.availability";
/// Footer key: the writer's version.
pub const META_VERSION: &str = "cloudformer.version";
/// Smallest row group written (except the final one of a segment): small groups bloat files.
pub const MIN_ROW_GROUP_ROWS: usize = 600;
/// Largest row group a [`SegmentWriter`] with a time span ([`SegmentWriter::with_row_group_span`])
/// buffers before writing it anyway: its row buffer is ~1 KB a row (4.2 MB at this size).
pub const MAX_ROW_GROUP_ROWS: usize = 4096;
/// Rows a full row buffer grows by (in every column, exactly: no doubling).
const GROW_ROWS: usize = 150;
/// Suffix of open segments.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// The fixed leading columns, in order.
pub const KEY_COLUMNS: &[&str] = &[
    "ts_ns",
    "seq",
    "tenant",
    "n_neighbours",
    "dt_s",
    "gap",
    "collect_us",
    "lateness_us",
];

#[derive(Debug, thiserror::Error)]
pub enum SamplesError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Parquet error on {path}: {source}")]
    Parquet { path: PathBuf, source: PolarsError },
    #[error("sample row for tenant `{tenant}` has {got} {what} values, expected {expected}")]
    RowWidth {
        tenant: String,
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("sample file {path}: {why}")]
    BadFile { path: PathBuf, why: String },
    #[error("sample frame: {0}")]
    Frame(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SamplesError + '_ {
    move |source| SamplesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pq(path: &Path) -> impl FnOnce(PolarsError) -> SamplesError + '_ {
    move |source| SamplesError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

/// One row: a tenant at one tick. `features` and `host` use NaN for null.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    pub ts_ns: i64,
    pub seq: u32,
    pub tenant: String,
    pub n_neighbours: u32,
    pub dt_s: f32,
    pub gap: bool,
    pub collect_us: u32,
    pub lateness_us: u32,
    /// `Catalogue::feature_names()` order, NaN = null.
    pub features: Vec<f32>,
    /// `Catalogue::host_column_names()` order, NaN = null.
    pub host: Vec<f32>,
}

impl SampleRow {
    /// The row as borrowed slices, for [`SegmentWriter::push_ref`].
    pub fn view(&self) -> RowRef<'_> {
        RowRef {
            ts_ns: self.ts_ns,
            seq: self.seq,
            tenant: &self.tenant,
            n_neighbours: self.n_neighbours,
            dt_s: self.dt_s,
            gap: self.gap,
            collect_us: self.collect_us,
            lateness_us: self.lateness_us,
            features: &self.features,
            host: &self.host,
        }
    }
}

/// A [`SampleRow`] whose tenant, features and host block are borrowed: the agent writes every
/// tenant's row of a tick from the tick itself, without copying its 214 features and the host
/// block shared by all its rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowRef<'a> {
    pub ts_ns: i64,
    pub seq: u32,
    pub tenant: &'a str,
    pub n_neighbours: u32,
    pub dt_s: f32,
    pub gap: bool,
    pub collect_us: u32,
    pub lateness_us: u32,
    pub features: &'a [f32],
    pub host: &'a [f32],
}

/// Footer metadata of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentMeta {
    pub catalogue_hash: String,
    /// Source name → whether it was available.
    pub availability: BTreeMap<String, bool>,
    pub version: String,
    /// Any other `key → value` pairs (read back as they were written).
    pub extra: BTreeMap<String, String>,
}

impl SegmentMeta {
    /// Metadata for `cat` with the given availability map and this crate's version.
    pub fn new(cat: &Catalogue, availability: BTreeMap<String, bool>) -> SegmentMeta {
        SegmentMeta {
            catalogue_hash: cat.hash().to_string(),
            availability,
            version: env!("CARGO_PKG_VERSION").to_string(),
            extra: BTreeMap::new(),
        }
    }

    fn to_kv(&self) -> Vec<(String, String)> {
        let mut kv = vec![
            (META_CATALOGUE_HASH.to_string(), self.catalogue_hash.clone()),
            (
                META_AVAILABILITY.to_string(),
                serde_json::to_string(&self.availability).unwrap_or_else(|_| "{}".into()),
            ),
            (META_VERSION.to_string(), self.version.clone()),
        ];
        kv.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        kv
    }
}

mod reader;
mod schema;
mod writer;

pub use reader::{
    list_segments, read_meta, read_samples, read_segment, row_group_sizes, tenant_matrix, Filter,
    Matrix,
};
pub use schema::{column_names, hive_dir, schema, segment_file_name};
pub use writer::SegmentWriter;

#[cfg(test)]
mod tests;
