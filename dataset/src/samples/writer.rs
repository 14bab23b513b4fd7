//! [`SegmentWriter`]: buffered rows written as Parquet row groups into one segment file.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::schema::{column_names, schema};
use super::{
    io, pq, RowRef, SampleRow, SamplesError, SegmentMeta, GROW_ROWS, KEY_COLUMNS,
    MAX_ROW_GROUP_ROWS, MIN_ROW_GROUP_ROWS, PARTIAL_SUFFIX,
};
use crate::catalogue::Catalogue;

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
