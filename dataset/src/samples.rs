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
use std::fs::File;
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

/// All column names of a sample file for `cat`, in order.
pub fn column_names(cat: &Catalogue) -> Vec<String> {
    let mut v: Vec<String> = KEY_COLUMNS.iter().map(|s| s.to_string()).collect();
    v.extend(cat.feature_names());
    v.extend(cat.host_column_names());
    v
}

/// The Polars schema of a sample file for `cat`.
pub fn schema(cat: &Catalogue) -> Schema {
    let mut fields = vec![
        Field::new("ts_ns".into(), DataType::Int64),
        Field::new("seq".into(), DataType::UInt32),
        Field::new("tenant".into(), DataType::String),
        Field::new("n_neighbours".into(), DataType::UInt32),
        Field::new("dt_s".into(), DataType::Float32),
        Field::new("gap".into(), DataType::Boolean),
        Field::new("collect_us".into(), DataType::UInt32),
        Field::new("lateness_us".into(), DataType::UInt32),
    ];
    for n in cat
        .feature_names()
        .into_iter()
        .chain(cat.host_column_names())
    {
        fields.push(Field::new(n.into(), DataType::Float32));
    }
    Schema::from_iter(fields)
}

/// `seg-<start_ns>-<pid>.parquet`: the daemon's segment name.
pub fn segment_file_name(start_ns: i64, pid: u32) -> String {
    format!("seg-{start_ns}-{pid}.parquet")
}

/// `root/k1=v1/k2=v2/…`; `/` and `=` in values are replaced by `_`.
pub fn hive_dir(root: &Path, partition: &[(String, String)]) -> PathBuf {
    let mut p = root.to_path_buf();
    for (k, v) in partition {
        let v: String = v
            .chars()
            .map(|c| if c == '/' || c == '=' { '_' } else { c })
            .collect();
        p.push(format!("{k}={v}"));
    }
    p
}

/// Columnar buffer of rows not yet written.
struct Buffer {
    ts: Vec<i64>,
    seq: Vec<u32>,
    tenant: Vec<String>,
    nn: Vec<u32>,
    dt: Vec<f32>,
    gap: Vec<bool>,
    cus: Vec<u32>,
    late: Vec<u32>,
    /// One vector per feature column then per host column, as pushed (NaN/inf: null). Plain
    /// `f32` (4 B a value, not `Option<f32>`'s 8) with room for exactly one row group: the
    /// buffer is the agent's largest allocation that lives all the time (258 columns × 600 rows:
    /// 0.6 MB; as `Option<f32>` grown by doubling it was 2.1 MB).
    vals: Vec<Vec<f32>>,
}

impl Buffer {
    fn new(n_vals: usize, rows: usize) -> Buffer {
        let mut b = Buffer {
            ts: vec![],
            seq: vec![],
            tenant: vec![],
            nn: vec![],
            dt: vec![],
            gap: vec![],
            cus: vec![],
            late: vec![],
            vals: (0..n_vals).map(|_| Vec::new()).collect(),
        };
        b.reserve_rows(rows);
        b
    }

    /// Room for `rows` rows in every column, so that filling a row group never grows one.
    fn reserve_rows(&mut self, rows: usize) {
        let n = self.len();
        let more = rows.saturating_sub(n);
        self.ts.reserve_exact(more);
        self.seq.reserve_exact(more);
        self.tenant.reserve_exact(more);
        self.nn.reserve_exact(more);
        self.dt.reserve_exact(more);
        self.gap.reserve_exact(more);
        self.cus.reserve_exact(more);
        self.late.reserve_exact(more);
        for v in &mut self.vals {
            v.reserve_exact(more);
        }
    }

    fn len(&self) -> usize {
        self.ts.len()
    }

    fn take_frame(&mut self, names: &[String]) -> PolarsResult<DataFrame> {
        let n = self.len();
        let mut cols = Vec::with_capacity(KEY_COLUMNS.len() + self.vals.len());
        cols.push(Column::new("ts_ns".into(), std::mem::take(&mut self.ts)));
        cols.push(Column::new("seq".into(), std::mem::take(&mut self.seq)));
        cols.push(Column::new(
            "tenant".into(),
            std::mem::take(&mut self.tenant),
        ));
        cols.push(Column::new(
            "n_neighbours".into(),
            std::mem::take(&mut self.nn),
        ));
        cols.push(Column::new("dt_s".into(), std::mem::take(&mut self.dt)));
        cols.push(Column::new("gap".into(), std::mem::take(&mut self.gap)));
        cols.push(Column::new(
            "collect_us".into(),
            std::mem::take(&mut self.cus),
        ));
        cols.push(Column::new(
            "lateness_us".into(),
            std::mem::take(&mut self.late),
        ));
        let vnames = &names[KEY_COLUMNS.len()..];
        for (name, v) in vnames.iter().zip(self.vals.iter_mut()) {
            let ca: Float32Chunked =
                Float32Chunked::from_iter_options(name.as_str().into(), v.drain(..).map(opt));
            cols.push(ca.into_column());
        }
        DataFrame::new(n, cols)
    }
}

fn opt(x: f32) -> Option<f32> {
    if x.is_finite() {
        Some(x)
    } else {
        None
    }
}

/// Write buffer of a segment file. A row group of 8 tenants (600 rows) compresses to ~150 KB,
/// so the buffer is written about once a row group in large `write`s; the earlier 1 MiB held
/// several row groups for minutes and was ~0.9 MB more of the agent's resident memory.
const WRITE_BUFFER_BYTES: usize = 128 << 10;

/// The segment file, written through a [`WRITE_BUFFER_BYTES`] buffer: the Parquet writer emits page headers and
/// the footer's Thrift fields a few bytes per `write`, which unbuffered cost one system call each
/// (at every row group, most of the writer thread's CPU). Shared so that `close` can flush it
/// and see the error after the writer has written the footer.
#[derive(Clone)]
struct SharedFile(std::sync::Arc<std::sync::Mutex<std::io::BufWriter<File>>>);

impl SharedFile {
    fn new(f: File) -> SharedFile {
        let w = std::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, f);
        SharedFile(std::sync::Arc::new(std::sync::Mutex::new(w)))
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, std::io::BufWriter<File>>> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("segment writer panicked mid-write"))
    }

    fn flush_and_sync(&self) -> std::io::Result<()> {
        let mut w = self.lock()?;
        std::io::Write::flush(&mut *w)?;
        w.get_ref().sync_all()
    }
}

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.lock()?.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lock()?.flush()
    }
}

/// Writes one segment: rows are buffered and flushed as row groups of at least `row_group_rows`
/// (and, given a span, covering at least that much time).
///
/// The Parquet writer keeps every written row group's column and page metadata until the footer
/// (~3 KB per column and row group: 0.8 MB per row group of the 266 columns), so the number of
/// row groups in a segment, not only the row buffer, sets the writer's memory. A span makes it
/// independent of the number of tenants.
pub struct SegmentWriter {
    final_path: PathBuf,
    partial_path: PathBuf,
    writer: Option<polars::io::parquet::write::BatchedWriter<SharedFile>>,
    /// The segment file behind the Parquet writer, to flush and sync on close.
    file: SharedFile,
    names: Vec<String>,
    n_features: usize,
    n_host: usize,
    buf: Buffer,
    row_group_rows: usize,
    /// Row groups cover at least this many nanoseconds of `ts_ns` (None: rows only).
    span_ns: Option<i64>,
    rows: usize,
}

impl SegmentWriter {
    /// Opens `<final_path>.partial` (creating parent directories) for the catalogue `cat`.
    pub fn create(
        final_path: &Path,
        cat: &Catalogue,
        meta: &SegmentMeta,
    ) -> Result<SegmentWriter, SamplesError> {
        if let Some(parent) = final_path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut partial = final_path.as_os_str().to_owned();
        partial.push(PARTIAL_SUFFIX);
        let partial_path = PathBuf::from(partial);
        let f = File::create(&partial_path).map_err(io(&partial_path))?;
        let file = SharedFile::new(f);
        // All-null pages (PMU columns without a PMU) would make 8 MiB of zeros resident.
        crate::zero_buffer::release();
        let kv = KeyValueMetadata::from_static(meta.to_kv());
        let writer = ParquetWriter::new(file.clone())
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::default())
            .with_key_value_metadata(Some(kv))
            .set_parallel(false)
            .batched(&schema(cat))
            .map_err(pq(&partial_path))?;
        let n_features = cat.n_features();
        let n_host = cat.host_metrics().len();
        Ok(SegmentWriter {
            final_path: final_path.to_path_buf(),
            partial_path,
            writer: Some(writer),
            file,
            names: column_names(cat),
            n_features,
            n_host,
            buf: Buffer::new(n_features + n_host, MIN_ROW_GROUP_ROWS),
            row_group_rows: MIN_ROW_GROUP_ROWS,
            span_ns: None,
            rows: 0,
        })
    }

    /// Rows per row group (default and minimum sensible value: [`MIN_ROW_GROUP_ROWS`]).
    pub fn with_row_group_rows(mut self, n: usize) -> SegmentWriter {
        self.row_group_rows = n.max(1);
        self.buf.reserve_rows(self.row_group_rows);
        self
    }

    /// Row groups also span at least `span` of sample time: a row group is written at the first
    /// row that is `span` or more after the group's first row (so a second's rows stay in one
    /// group), once it has `row_group_rows` rows — or at [`MAX_ROW_GROUP_ROWS`] rows whatever
    /// the time. The collector gives a quarter of its segment length: four row groups per
    /// segment however many tenants there are.
    pub fn with_row_group_span(mut self, span: std::time::Duration) -> SegmentWriter {
        self.span_ns = Some(i64::try_from(span.as_nanos()).unwrap_or(i64::MAX));
        self
    }

    /// The path the segment will have once closed.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The path being written.
    pub fn partial_path(&self) -> &Path {
        &self.partial_path
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds one row (NaN/inf → null); writes a row group when enough rows are buffered.
    pub fn push(&mut self, row: &SampleRow) -> Result<(), SamplesError> {
        self.push_ref(row.view())
    }

    /// [`SegmentWriter::push`] from borrowed parts.
    pub fn push_ref(&mut self, row: RowRef<'_>) -> Result<(), SamplesError> {
        if row.features.len() != self.n_features {
            return Err(SamplesError::RowWidth {
                tenant: row.tenant.to_string(),
                what: "feature",
                got: row.features.len(),
                expected: self.n_features,
            });
        }
        if row.host.len() != self.n_host {
            return Err(SamplesError::RowWidth {
                tenant: row.tenant.to_string(),
                what: "host",
                got: row.host.len(),
                expected: self.n_host,
            });
        }
        if self.group_is_full(row.ts_ns) {
            self.flush()?;
        }
        if self.buf.len() == self.buf.ts.capacity() {
            self.buf.reserve_rows(self.buf.len() + GROW_ROWS);
        }
        let b = &mut self.buf;
        b.ts.push(row.ts_ns);
        b.seq.push(row.seq);
        b.tenant.push(row.tenant.to_string());
        b.nn.push(row.n_neighbours);
        b.dt.push(row.dt_s);
        b.gap.push(row.gap);
        b.cus.push(row.collect_us);
        b.late.push(row.lateness_us);
        for (col, &x) in b
            .vals
            .iter_mut()
            .zip(row.features.iter().chain(row.host.iter()))
        {
            col.push(x);
        }
        self.rows += 1;
        if self.span_ns.is_none() && self.buf.len() >= self.row_group_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Whether the buffered rows make a row group to write before a row of time `ts_ns`.
    fn group_is_full(&self, ts_ns: i64) -> bool {
        let n = self.buf.len();
        let Some(span) = self.span_ns else {
            return false;
        };
        n >= MAX_ROW_GROUP_ROWS.max(self.row_group_rows)
            || (n >= self.row_group_rows
                && self
                    .buf
                    .ts
                    .first()
                    .is_some_and(|&t0| ts_ns.saturating_sub(t0) >= span))
    }

    fn flush(&mut self) -> Result<(), SamplesError> {
        if self.buf.len() == 0 {
            return Ok(());
        }
        let n = self.buf.len();
        let df = self
            .buf
            .take_frame(&self.names)
            .map_err(pq(&self.partial_path))?;
        // The key columns moved into the frame: room for a row group like this one, now.
        self.buf.reserve_rows(n);
        if let Some(w) = self.writer.as_mut() {
            w.write_batch(&df).map_err(pq(&self.partial_path))?;
        }
        Ok(())
    }

    /// Writes the remaining rows and the footer, fsyncs, and renames to the final name.
    pub fn close(mut self) -> Result<PathBuf, SamplesError> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            w.finish().map_err(pq(&self.partial_path))?;
        }
        // Everything the footer wrote reaches the file (an error here, e.g. a full disk, keeps
        // the segment `.partial`), then the disk.
        self.file.flush_and_sync().map_err(io(&self.partial_path))?;
        std::fs::rename(&self.partial_path, &self.final_path).map_err(io(&self.final_path))?;
        if let Some(dir) = self.final_path.parent().and_then(|d| File::open(d).ok()) {
            let _ = dir.sync_all();
        }
        Ok(self.final_path.clone())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cat: &Catalogue, ts: i64, tenant: &str, base: f32) -> SampleRow {
        let nf = cat.n_features();
        let features = (0..nf)
            .map(|j| {
                if j % 7 == 3 {
                    f32::NAN
                } else {
                    base + j as f32
                }
            })
            .collect();
        let host = (0..cat.host_metrics().len())
            .map(|j| if j == 0 { f32::INFINITY } else { j as f32 })
            .collect();
        SampleRow {
            ts_ns: ts,
            seq: (ts / 1_000_000_000) as u32,
            tenant: tenant.to_string(),
            n_neighbours: 1,
            dt_s: 1.0,
            gap: ts == 0,
            collect_us: 120,
            lateness_us: 40,
            features,
            host,
        }
    }

    fn avail() -> BTreeMap<String, bool> {
        [
            ("perf.hw".to_string(), false),
            ("cgroup.cpu".to_string(), true),
        ]
        .into_iter()
        .collect()
    }

    /// Segments written under the previous catalogue (before Top-Down) read back beside this
    /// build's, with the added columns null — only when their footer says Top-Down was absent.
    #[test]
    fn segments_of_an_earlier_catalogue_read_with_the_added_columns_null() {
        let cat = Catalogue::builtin();
        let old = Catalogue::earlier("7bcd372d41881478").expect("the v1 catalogue is known");
        let dir = tempfile::tempdir().unwrap();
        let write = |c: &Catalogue, name: &str, avail: BTreeMap<String, bool>, t0: i64| {
            let path = dir.path().join(name);
            let mut w = SegmentWriter::create(&path, c, &SegmentMeta::new(c, avail)).unwrap();
            for s in 0..5 {
                w.push(&row(c, (t0 + s) * 1_000_000_000, "a", 1.0)).unwrap();
            }
            w.close().unwrap()
        };
        let mut absent = avail();
        absent.insert("perf.topdown".into(), false);
        write(old, "seg-1-1.parquet", absent.clone(), 0);
        write(cat, "seg-2-1.parquet", absent, 5);
        let df = read_samples(dir.path(), &Filter::default()).unwrap();
        assert_eq!(df.height(), 10);
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, column_names(cat));
        let td = df.column("perf.topdown_retiring").unwrap();
        assert!(td.null_count() >= 5, "the old segment's rows are null");
        let m = tenant_matrix(&df, "a", cat).unwrap();
        let j = cat.index_of("cpu.usage_pct").unwrap();
        let k = old.index_of("cpu.usage_pct").unwrap();
        assert_eq!(
            m.row(0)[j],
            row(old, 0, "a", 1.0).features[k],
            "values keep their names"
        );

        // A footer that does not record Top-Down as absent: refused, naming file and metric.
        let mut present = avail();
        present.insert("perf.topdown".into(), true);
        write(old, "seg-3-1.parquet", present, 10);
        let e = read_samples(dir.path(), &Filter::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("seg-3-1.parquet") && e.contains("perf.topdown_retiring"),
            "{e}"
        );
    }

    #[test]
    fn row_groups_with_a_span_cover_that_time_whole_seconds_and_stop_at_the_cap() {
        let cat = Catalogue::builtin();
        let dir = tempfile::tempdir().unwrap();
        let sec = 1_000_000_000i64;

        // 3 tenants, 100 s, groups of ≥ 10 rows spanning ≥ 20 s: cut at each 20th second.
        let path = dir.path().join(segment_file_name(1, 1));
        let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
            .unwrap()
            .with_row_group_rows(10)
            .with_row_group_span(std::time::Duration::from_secs(20));
        for s in 0..100i64 {
            for t in ["a", "b", "c"] {
                w.push(&row(cat, s * sec, t, s as f32)).unwrap();
            }
        }
        w.close().unwrap();
        assert_eq!(row_group_sizes(&path).unwrap(), vec![60; 5]);
        // Values come back as pushed (NaN and inf as null), in order.
        let (_, df) = read_segment(&path).unwrap();
        assert_eq!(df.height(), 300);
        let f0 = df.column(&cat.feature_names()[0]).unwrap().f32().unwrap();
        assert_eq!(f0.get(299), Some(99.0));
        let f3 = df.column(&cat.feature_names()[3]).unwrap().f32().unwrap();
        assert_eq!(f3.null_count(), 300);

        // The time rule waits for the minimum rows: 1 tenant, ≥ 30 rows.
        let path = dir.path().join(segment_file_name(2, 1));
        let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
            .unwrap()
            .with_row_group_rows(30)
            .with_row_group_span(std::time::Duration::from_secs(5));
        for s in 0..70i64 {
            w.push(&row(cat, s * sec, "a", 0.0)).unwrap();
        }
        w.close().unwrap();
        assert_eq!(row_group_sizes(&path).unwrap(), vec![30, 30, 10]);

        // However long the span, a group is written at MAX_ROW_GROUP_ROWS rows.
        let path = dir.path().join(segment_file_name(3, 1));
        let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
            .unwrap()
            .with_row_group_span(std::time::Duration::from_secs(3600));
        let n = MAX_ROW_GROUP_ROWS + 100;
        for i in 0..n {
            w.push(&row(cat, (i / 8) as i64 * sec, "a", 0.0)).unwrap();
        }
        w.close().unwrap();
        assert_eq!(
            row_group_sizes(&path).unwrap(),
            vec![MAX_ROW_GROUP_ROWS, 100]
        );
    }

    #[test]
    fn round_trip_with_footer_nulls_row_groups_and_filters() {
        let cat = Catalogue::builtin();
        let dir = tempfile::tempdir().unwrap();
        let seg_dir = hive_dir(
            dir.path(),
            &[
                ("host".into(), "h1".into()),
                ("date".into(), "2026-11-28".into()),
            ],
        );
        let path = seg_dir.join(segment_file_name(5, 42));
        let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail())).unwrap();
        assert!(w.partial_path().exists());
        let n_sec = 700i64;
        for s in 0..n_sec {
            for (k, t) in ["a", "b"].iter().enumerate() {
                w.push(&row(cat, s * 1_000_000_000, t, k as f32 * 1000.0))
                    .unwrap();
            }
        }
        // A reader ignores the open segment.
        let before = read_samples(dir.path(), &Filter::default()).unwrap();
        assert_eq!(before.height(), 0);
        let p = w.close().unwrap();
        assert_eq!(p, path);
        assert!(path.exists());
        let mut partial = path.as_os_str().to_owned();
        partial.push(PARTIAL_SUFFIX);
        assert!(!PathBuf::from(partial).exists());

        let meta = read_meta(&path).unwrap();
        assert_eq!(meta.catalogue_hash, cat.hash());
        assert_eq!(meta.availability, avail());
        assert_eq!(meta.version, env!("CARGO_PKG_VERSION"));

        let rgs = row_group_sizes(&path).unwrap();
        assert_eq!(rgs.iter().sum::<usize>(), 1400);
        assert!(
            rgs[..rgs.len() - 1]
                .iter()
                .all(|&n| n >= MIN_ROW_GROUP_ROWS),
            "{rgs:?}"
        );

        let all = read_samples(dir.path(), &Filter::default()).unwrap();
        assert_eq!(all.height(), 1400);
        assert_eq!(
            all.get_column_names()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            column_names(cat)
        );
        // Null, not NaN.
        let c3 = all.column(&cat.feature_names()[3]).unwrap();
        assert_eq!(c3.null_count(), 1400);
        let h0 = all.column(&cat.host_column_names()[0]).unwrap();
        assert_eq!(h0.null_count(), 1400);

        let only_b = read_samples(
            dir.path(),
            &Filter {
                tenant: Some("b".into()),
                from_ns: Some(10_000_000_000),
                to_ns: Some(20_000_000_000),
            },
        )
        .unwrap();
        assert_eq!(only_b.height(), 10);
        let m = tenant_matrix(&only_b, "b", cat).unwrap();
        assert_eq!((m.t, m.f), (10, cat.n_features()));
        assert_eq!(m.ts_ns[0], 10_000_000_000);
        assert_eq!(m.row(0)[0], 1000.0);
        assert_eq!(m.row(0)[5], 1005.0);
        assert!(m.row(0)[3].is_nan());
    }

    #[test]
    fn partial_and_foreign_files_are_ignored_and_width_is_checked() {
        let cat = Catalogue::builtin();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seg-1-1.parquet.partial"), b"garbage").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let path = dir.path().join(segment_file_name(2, 1));
        let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
            .unwrap()
            .with_row_group_rows(2);
        let mut r = row(cat, 0, "a", 0.0);
        r.features.pop();
        let e = w.push(&r).unwrap_err();
        assert!(e.to_string().contains("feature values"), "{e}");
        w.push(&row(cat, 0, "a", 0.0)).unwrap();
        w.close().unwrap();
        let df = read_samples(dir.path(), &Filter::default()).unwrap();
        assert_eq!(df.height(), 1);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![path]);
    }

    #[test]
    fn missing_dir_is_a_clear_error() {
        let e = read_samples(Path::new("/nonexistent/cf"), &Filter::default()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/cf"), "{e}");
    }
}
