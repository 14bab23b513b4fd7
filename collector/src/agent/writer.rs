//! The segment writer: one thread for the agent's life, behind a bounded queue, writing every
//! tick's rows into Parquet segments (a new one every `segment`, or when the partition's date
//! changes) and closing the open one when the queue closes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use dataset::catalogue::Catalogue;
use dataset::samples::{self, RowRef, SamplesError, SegmentMeta, SegmentWriter};

use super::{hostname, utc_date, AgentConfig, CollectError};
use crate::tick::Tick;

/// Row groups a full segment is written as (each at least `row_group_rows` rows): the Parquet
/// writer holds every row group's metadata until the segment closes, so a fixed count bounds
/// it whatever the number of tenants (with 600-row groups, 24 tenants made 24 a segment).
const ROW_GROUPS_PER_SEGMENT: i64 = 4;

/// Ticks the queue holds; when it is full the sampler drops the tick (and counts it) rather
/// than wait.
const QUEUE_TICKS: usize = 32;

/// The writer thread and the sending end of its queue.
pub(super) struct Writer {
    pub(super) tx: mpsc::SyncSender<Arc<Tick>>,
    handle: JoinHandle<Result<Vec<PathBuf>, SamplesError>>,
}

/// Starts the writer when the agent writes files (`cfg.out_dir`); `None` otherwise.
pub(super) fn start(
    cfg: &AgentConfig,
    cat: &'static Catalogue,
    availability: &BTreeMap<String, bool>,
) -> Result<Option<Writer>, CollectError> {
    let Some(out) = &cfg.out_dir else {
        return Ok(None);
    };
    let (tx, rx) = mpsc::sync_channel::<Arc<Tick>>(QUEUE_TICKS);
    let ctx = WriterCtx {
        out: out.clone(),
        partition: cfg.partition.clone(),
        segment_ns: cfg.segment.as_nanos() as i64,
        row_group_rows: cfg.row_group_rows,
        meta: SegmentMeta::new(cat, availability.clone()),
        host: hostname(),
    };
    let handle = std::thread::Builder::new()
        .name("cf-writer".into())
        .spawn(move || writer_loop(rx, ctx))
        .map_err(|source| CollectError::Io {
            path: out.clone(),
            source,
        })?;
    Ok(Some(Writer { tx, handle }))
}

impl Writer {
    /// Closes the queue and waits for the thread to close the open segment; returns every
    /// segment it closed.
    pub(super) async fn finish(self) -> Result<Vec<PathBuf>, CollectError> {
        let Writer { tx, handle } = self;
        drop(tx);
        let closed = tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|_| CollectError::WriterPanic)?
            .map_err(|_| CollectError::WriterPanic)?;
        Ok(closed?)
    }
}

struct WriterCtx {
    out: PathBuf,
    partition: Vec<(String, String)>,
    segment_ns: i64,
    row_group_rows: usize,
    meta: SegmentMeta,
    host: String,
}

fn writer_loop(
    rx: mpsc::Receiver<Arc<Tick>>,
    ctx: WriterCtx,
) -> Result<Vec<PathBuf>, SamplesError> {
    let cat = Catalogue::builtin();
    let mut cur: Option<(SegmentWriter, i64, PathBuf)> = None;
    let mut closed = Vec::new();
    let pid = std::process::id();
    while let Ok(tick) = rx.recv() {
        let dir = if ctx.partition.is_empty() {
            samples::hive_dir(
                &ctx.out,
                &[
                    ("host".to_string(), ctx.host.clone()),
                    ("date".to_string(), utc_date(tick.ts_ns)),
                ],
            )
        } else {
            samples::hive_dir(&ctx.out, &ctx.partition)
        };
        let rotate = match &cur {
            None => true,
            Some((_, start, d)) => tick.ts_ns - start >= ctx.segment_ns || *d != dir,
        };
        if rotate {
            if let Some((w, _, _)) = cur.take() {
                closed.push(w.close()?);
            }
            let path = dir.join(samples::segment_file_name(tick.ts_ns, pid));
            let w = SegmentWriter::create(&path, cat, &ctx.meta)?
                .with_row_group_rows(ctx.row_group_rows)
                .with_row_group_span(Duration::from_nanos(
                    (ctx.segment_ns / ROW_GROUPS_PER_SEGMENT).max(0) as u64,
                ));
            cur = Some((w, tick.ts_ns, dir));
        }
        if let Some((w, _, _)) = cur.as_mut() {
            for r in &tick.rows {
                w.push_ref(RowRef {
                    ts_ns: tick.ts_ns,
                    seq: tick.seq,
                    tenant: &r.tenant,
                    n_neighbours: r.n_neighbours,
                    dt_s: r.dt_s,
                    gap: r.gap,
                    collect_us: tick.collect_us,
                    lateness_us: tick.lateness_us,
                    features: &r.features,
                    host: &tick.host,
                })?;
            }
        }
    }
    if let Some((w, _, _)) = cur.take() {
        closed.push(w.close()?);
    }
    Ok(closed)
}
