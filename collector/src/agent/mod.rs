//! The host agent: aligned 1 s ticks, per-tenant feature rows (2 × the catalogue's metrics),
//! host context, Parquet segments, a broadcast of every tick for live consumers, and an optional
//! Prometheus `/metrics` endpoint.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dataset::catalogue::Catalogue;
use dataset::samples::{self, RowRef, SamplesError, SegmentMeta, SegmentWriter};
use tokio::sync::broadcast;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::discover::{self, Discovery};
use crate::host::{self, HostRaw, HostReader};
use crate::neighbours::OwnRow;
use crate::perf::{self, PerfProbe, TenantPerf};
use crate::settings;
use crate::specs::{self, raw::N_RAW, Spec};
use crate::taskstats::Taskstats;
use crate::tenant::TenantReader;
use crate::tick::Tick;
use dataset::placement::PlacementColumns;

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where cgroup hierarchies are mounted (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// Tenant globs, relative to each hierarchy (e.g. `machine.slice/machine-qemu*.scope`).
    pub tenant_globs: Vec<String>,
    /// Where segments go; `None`: no files (live consumers only).
    pub out_dir: Option<PathBuf>,
    /// Hive partition under `out_dir`; empty: `host=<hostname>/date=<YYYY-MM-DD>` (the daemon's).
    pub partition: Vec<(String, String)>,
    /// Segment length (a new file every `segment`).
    pub segment: Duration,
    /// Stop after this long (`None`: until `shutdown`).
    pub duration: Option<Duration>,
    /// Serve Prometheus text at `http://<listen>/metrics`.
    pub listen: Option<SocketAddr>,
    /// Allow `listen` on a non-loopback address (the endpoint has no authentication).
    pub insecure_listen: bool,
    /// `/proc` (for the host context).
    pub proc_root: PathBuf,
    /// Rows per Parquet row group (≥ 600 in production; tests may lower it).
    pub row_group_rows: usize,
    /// Open perf counters per tenant.
    pub perf: bool,
    /// Nice value of the thread that samples, which also asks for a short time slice (see
    /// [`crate::priority`]); `None` leaves both. Applied only on a current-thread runtime
    /// (`collect`, campaigns, the live agent's own thread), where that thread runs nothing but
    /// the agent; the writer thread keeps the process's values.
    pub sampler_nice: Option<i32>,
}

/// Default [`AgentConfig::sampler_nice`].
pub const DEFAULT_SAMPLER_NICE: i32 = -5;

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            tenant_globs: vec!["machine.slice/machine-qemu*.scope".into()],
            out_dir: None,
            partition: Vec::new(),
            segment: Duration::from_secs(600),
            duration: None,
            listen: None,
            insecure_listen: false,
            proc_root: PathBuf::from("/proc"),
            row_group_rows: samples::MIN_ROW_GROUP_ROWS,
            perf: true,
            sampler_nice: Some(DEFAULT_SAMPLER_NICE),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("collector configuration: {0}")]
    Config(String),
    #[error("catalogue metric `{0}` has no collector implementation")]
    Unmapped(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Samples(#[from] SamplesError),
    #[error("segment writer thread panicked")]
    WriterPanic,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct AgentSummary {
    pub ticks: u64,
    pub rows: u64,
    /// Ticks skipped because the previous one ran late.
    pub missed_ticks: u64,
    /// Ticks not written because the writer queue was full.
    pub dropped_ticks: u64,
    /// Closed segments.
    pub segments: Vec<PathBuf>,
    pub max_tenants: usize,
    pub collect_us_p50: u32,
    pub collect_us_p99: u32,
    pub lateness_us_p99: u32,
    pub availability: BTreeMap<String, bool>,
    /// The sampling thread's nice value while it ran, when the agent set it.
    pub sampler_nice: Option<i32>,
}

struct TenantState {
    reader: TenantReader,
    cur: Vec<f64>,
    prev: Vec<f64>,
    prev_t: Option<Instant>,
}

/// The agent.
pub struct Agent {
    cfg: AgentConfig,
    cat: &'static Catalogue,
    specs: Vec<Spec>,
    host_specs: Vec<Spec>,
    /// Where the cross-tenant placement columns are (`None` for a catalogue without them).
    placement: Option<PlacementColumns>,
    discovery: Discovery,
    probe: PerfProbe,
    cpus: Vec<usize>,
    host: HostReader,
    /// Per-process context switches and schedstat (`None`: read from the /proc files).
    taskstats: Option<Taskstats>,
    tx: broadcast::Sender<Arc<Tick>>,
    latest: Arc<Mutex<Option<Arc<Tick>>>>,
    availability: BTreeMap<String, bool>,
}

fn now_wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `YYYY-MM-DD` (UTC) of a timestamp.
pub fn utc_date(ts_ns: i64) -> String {
    let days = ts_ns.div_euclid(86_400_000_000_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn p(values: &VecDeque<u32>, q: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    let mut v: Vec<u32> = values.iter().copied().collect();
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

impl Agent {
    pub fn new(cfg: AgentConfig) -> Result<Agent, CollectError> {
        let cat = Catalogue::builtin();
        let specs = specs::tenant_specs(cat).map_err(CollectError::Unmapped)?;
        let host_specs = specs::host_specs(cat).map_err(CollectError::Unmapped)?;
        settings::listen(cfg.listen, cfg.insecure_listen).map_err(CollectError::Config)?;
        if cfg.segment < Duration::from_secs(1) {
            return Err(CollectError::Config(format!(
                "segment length {:?} is shorter than one tick (1 s)",
                cfg.segment
            )));
        }
        if !cfg.cgroup_root.is_dir() {
            return Err(CollectError::Config(format!(
                "cgroup root {} is not a directory",
                cfg.cgroup_root.display()
            )));
        }
        raise_fd_limit();
        let hier = discover::hierarchies(&cfg.cgroup_root);
        if hier.is_empty() {
            return Err(CollectError::Config(format!(
                "no cgroup hierarchy (v2 or v1 cpu/cpuacct/memory/blkio/pids) under {}",
                cfg.cgroup_root.display()
            )));
        }
        let mut cfg = cfg;
        cfg.tenant_globs =
            settings::tenant_globs(&cfg.tenant_globs, &hier).map_err(CollectError::Config)?;
        if discover::discover(&hier, &cfg.tenant_globs).is_empty() {
            tracing::warn!(
                globs = ?cfg.tenant_globs,
                "no cgroup matches the tenant globs yet (tenants that appear later are picked up); {}",
                settings::what_exists(&hier, 12)
            );
        }
        if let Some(out) = &cfg.out_dir {
            std::fs::create_dir_all(out).map_err(|source| CollectError::Io {
                path: out.clone(),
                source,
            })?;
        }
        let probe = if cfg.perf {
            perf::probe()
        } else {
            PerfProbe::none()
        };
        let host = HostReader::open(&cfg.proc_root, Path::new("/sys/block"));
        let mut availability = BTreeMap::new();
        for k in std::iter::once("v2").chain(discover::V1_CONTROLLERS) {
            let name = if k == "v2" {
                "cgroup2".to_string()
            } else {
                format!("cgroup1.{k}")
            };
            availability.insert(name, hier.iter().any(|h| h.kind == k));
        }
        availability.insert("psi".into(), host.has_psi());
        let schedstat = cfg.proc_root.join("self/schedstat").exists();
        availability.insert("proc.schedstat".into(), schedstat);
        // Taskstats gives schedstat's values, so it is only used where schedstat exists.
        let taskstats = if schedstat {
            Taskstats::open()
                .map_err(|e| {
                    tracing::info!("{e}: per-process context switches from /proc/PID/status")
                })
                .ok()
        } else {
            None
        };
        availability.insert("proc.taskstats".into(), taskstats.is_some());
        availability.insert("perf.sw".into(), probe.software);
        availability.insert("perf.hw".into(), probe.hardware);
        availability.insert("perf.topdown".into(), probe.topdown.is_some());
        tracing::info!(?availability, "collector sources");
        let (tx, _) = broadcast::channel(64);
        let discovery = Discovery::new(hier, cfg.tenant_globs.clone());
        Ok(Agent {
            cfg,
            cat,
            specs,
            host_specs,
            placement: PlacementColumns::of(cat),
            discovery,
            probe,
            cpus: perf::online_cpus(),
            host,
            taskstats,
            tx,
            latest: Arc::new(Mutex::new(None)),
            availability,
        })
    }

    /// Every tick, for live consumers (a slow receiver sees `Lagged`, the agent never waits).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Tick>> {
        self.tx.subscribe()
    }

    /// Source → available, as written into every segment's footer.
    pub fn availability(&self) -> &BTreeMap<String, bool> {
        &self.availability
    }

    /// Sets the calling thread's nice value to `cfg.sampler_nice`, and its time slice to
    /// [`crate::priority::SAMPLER_SLICE_NS`], when it runs a current-thread
    /// runtime (on a multi-thread one the agent's task moves between shared workers). `None`
    /// when not set; a refusal (no root or CAP_SYS_NICE) is a warning, not an error.
    fn raise_sampler_priority(&self) -> Option<crate::priority::SchedGuard> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let nice = self.cfg.sampler_nice?;
        if Handle::try_current().map(|h| h.runtime_flavor()).ok()
            != Some(RuntimeFlavor::CurrentThread)
        {
            tracing::debug!("sampling thread priority left as is: not a current-thread runtime");
            return None;
        }
        match crate::priority::SchedGuard::set(nice, crate::priority::SAMPLER_SLICE_NS) {
            Ok(g) => {
                tracing::debug!(
                    "sampling thread at nice {nice} (was {}), slice {} µs",
                    g.before(),
                    crate::priority::SAMPLER_SLICE_NS / 1000
                );
                Some(g)
            }
            Err(e) => {
                tracing::warn!(
                    "sampling thread stays at its nice value: setting {nice} failed ({e}); \
                     raising priority needs root or CAP_SYS_NICE, and without it ticks may wake \
                     late on a busy host (--nice 0 silences this)"
                );
                None
            }
        }
    }

    /// The latest tick (what `/metrics` shows).
    pub fn latest(&self) -> Arc<Mutex<Option<Arc<Tick>>>> {
        self.latest.clone()
    }

    /// Runs until `shutdown` resolves or `duration` has elapsed; closes the open segment.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<AgentSummary, CollectError> {
        if let Some(addr) = self.cfg.listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CollectError::Listen { addr, source })?;
            tokio::spawn(crate::prom::serve(l, self.latest.clone()));
        }
        // Writer thread: one, for the agent's life, behind a bounded queue.
        let writer = match &self.cfg.out_dir {
            Some(out) => {
                let (wtx, wrx) = mpsc::sync_channel::<Arc<Tick>>(32);
                let ctx = WriterCtx {
                    out: out.clone(),
                    partition: self.cfg.partition.clone(),
                    segment_ns: self.cfg.segment.as_nanos() as i64,
                    row_group_rows: self.cfg.row_group_rows,
                    meta: SegmentMeta::new(self.cat, self.availability.clone()),
                    host: hostname(),
                };
                let h = std::thread::Builder::new()
                    .name("cf-writer".into())
                    .spawn(move || writer_loop(wrx, ctx))
                    .map_err(|source| CollectError::Io {
                        path: out.clone(),
                        source,
                    })?;
                Some((wtx, h))
            }
            None => None,
        };

        // After the writer thread exists (it keeps the process's priority): the sampling thread's.
        let nice_guard = self.raise_sampler_priority();

        // Clock anchor: wall₀ + monotonic elapsed gives strictly increasing stamps.
        let mono0 = Instant::now();
        let wall0 = now_wall_ns();
        let to_next = 1_000_000_000 - wall0.rem_euclid(1_000_000_000);
        let start = mono0 + Duration::from_nanos(to_next as u64);
        let mut iv = interval_at(start, Duration::from_secs(1));
        iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let deadline = self.cfg.duration.map(|d| start + d);

        // By name, so rows come out in name order without sorting each tick.
        let mut states: BTreeMap<String, TenantState> = BTreeMap::new();
        let mut all_pids: Vec<u32> = Vec::new();
        let mut task_table = HashMap::new();
        let mut host_prev: Option<(HostRaw, Instant)> = None;
        let mut summary = AgentSummary {
            availability: self.availability.clone(),
            sampler_nice: nice_guard
                .as_ref()
                .and_then(|_| crate::priority::nice_of(0).ok()),
            ..Default::default()
        };
        let mut collect_hist: VecDeque<u32> = VecDeque::new();
        let mut late_hist: VecDeque<u32> = VecDeque::new();
        let mut last_sched: Option<Instant> = None;
        let mut last_t: Option<Instant> = None;
        let mut seq: u32 = 0;
        let nm = self.cat.n_metrics();
        tokio::pin!(shutdown);

        loop {
            let sched = tokio::select! {
                _ = &mut shutdown => break,
                t = iv.tick() => t,
            };
            if deadline.is_some_and(|d| sched >= d) {
                break;
            }
            let t0 = Instant::now();
            let lateness = t0.saturating_duration_since(sched);
            let missed = last_sched.map_or(0, |l| {
                let d = sched.saturating_duration_since(l).as_millis() as u64;
                d.saturating_sub(500) / 1000
            });
            summary.missed_ticks += missed;
            last_sched = Some(sched);
            let tick_dt = last_t.map(|l| t0.saturating_duration_since(l).as_secs_f64());
            last_t = Some(t0);
            let tick_gap = missed > 0 || tick_dt.is_none_or(|d| d > 1.5);

            // Discovery: tenants may appear or vanish at any second (`None`: nothing changed).
            if let Some(found) = self.discovery.poll() {
                states.retain(|name, _| found.contains_key(name));
                for (name, dirs) in found {
                    if states.contains_key(name) {
                        continue;
                    }
                    // Counted on its perf_event cgroup (v2, or a v1 perf_event mount); a
                    // tenant that has none (on hybrid hosts perf_event is usually bound to v2,
                    // and a v1-only tenant is not there) is counted thread by thread.
                    let perf = match dirs.get("v2").or_else(|| dirs.get("perf_event")) {
                        Some(d) => TenantPerf::open(d, self.probe, &self.cpus),
                        None => TenantPerf::per_thread(self.probe),
                    };
                    let perf_mode = match &perf {
                        None => "none",
                        Some(p) if p.is_per_thread() => "per-thread",
                        Some(_) => "cgroup",
                    };
                    tracing::info!(tenant = %name, hierarchies = ?dirs.keys().collect::<Vec<_>>(), perf = perf_mode, "tenant appeared");
                    states.insert(
                        name.clone(),
                        TenantState {
                            reader: TenantReader::open(name, dirs.clone(), perf),
                            cur: vec![f64::NAN; N_RAW],
                            prev: vec![f64::NAN; N_RAW],
                            prev_t: None,
                        },
                    );
                }
            }

            // Read phase: host, then every tenant, back to back. The context switches and
            // schedstat of all tenants' processes are asked of taskstats together first.
            let hraw = self.host.read();
            let tasks = match self.taskstats.as_mut() {
                Some(ts) => {
                    all_pids.clear();
                    for st in states.values_mut() {
                        all_pids.extend_from_slice(st.reader.list_pids());
                    }
                    match ts.query_many(&all_pids, &mut task_table) {
                        Ok(()) => Some(&task_table),
                        Err(e) => {
                            tracing::warn!("{e}: per-process context switches from /proc/PID/status and schedstat from now on");
                            self.taskstats = None;
                            None
                        }
                    }
                }
                None => None,
            };
            let mut own: Vec<OwnRow> = Vec::with_capacity(states.len());
            let mut vanished = Vec::new();
            for (name, st) in states.iter_mut() {
                st.reader.read(&mut st.cur, tasks);
                if !st.reader.alive {
                    vanished.push(name.clone());
                    continue;
                }
                let dt = st
                    .prev_t
                    .map_or(0.0, |p| t0.saturating_duration_since(p).as_secs_f64());
                let prev = st.prev_t.map(|_| st.prev.as_slice());
                let mut f = vec![f32::NAN; 2 * nm];
                for (j, &s) in self.specs.iter().enumerate() {
                    f[j] = specs::eval(s, prev, &st.cur, dt);
                }
                let gap = tick_gap || st.prev_t.is_none() || dt > 1.5;
                own.push(OwnRow {
                    tenant: name.clone(),
                    features: f,
                    gap,
                    dt_s: dt as f32,
                    cpus: st.reader.cpus.clone(),
                });
                std::mem::swap(&mut st.cur, &mut st.prev);
                st.prev_t = Some(t0);
            }
            for v in vanished {
                tracing::info!(tenant = %v, "tenant vanished");
                states.remove(&v);
                // Its directory may still be there (listed again next tick to be sure).
                self.discovery.invalidate();
            }
            let host_dt = host_prev
                .as_ref()
                .map_or(0.0, |(_, t)| t0.saturating_duration_since(*t).as_secs_f64());
            let host_vals = host::host_values(
                &self.host_specs,
                host_prev.as_ref().map(|(h, _)| h),
                &hraw,
                host_dt,
            );
            host_prev = Some((hraw, t0));
            let collect_us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;

            let rows = crate::neighbours::rows_of_second(own, nm, self.placement.as_ref());

            let ts_ns = wall0 + t0.saturating_duration_since(mono0).as_nanos() as i64;
            let lateness_us = lateness.as_micros().min(u32::MAX as u128) as u32;
            if collect_us > 100_000 {
                tracing::warn!(collect_us, "slow collection");
            }
            summary.ticks += 1;
            summary.rows += rows.len() as u64;
            summary.max_tenants = summary.max_tenants.max(rows.len());
            for (h, v) in [
                (&mut collect_hist, collect_us),
                (&mut late_hist, lateness_us),
            ] {
                if h.len() == 3600 {
                    h.pop_front();
                }
                h.push_back(v);
            }
            let tick = Arc::new(Tick {
                ts_ns,
                seq,
                dt_s: tick_dt.unwrap_or(0.0) as f32,
                gap: tick_gap,
                collect_us,
                lateness_us,
                host: host_vals,
                rows,
            });
            seq = seq.wrapping_add(1);
            if let Ok(mut l) = self.latest.lock() {
                *l = Some(tick.clone());
            }
            let _ = self.tx.send(tick.clone());
            if let Some((wtx, _)) = &writer {
                if !tick.rows.is_empty() {
                    match wtx.try_send(tick) {
                        Ok(()) => {}
                        Err(mpsc::TrySendError::Full(_)) => {
                            summary.dropped_ticks += 1;
                            tracing::warn!("segment writer is behind: tick dropped");
                        }
                        Err(mpsc::TrySendError::Disconnected(_)) => {
                            tracing::error!("segment writer stopped");
                            break;
                        }
                    }
                }
            }
        }

        summary.collect_us_p50 = p(&collect_hist, 0.5);
        summary.collect_us_p99 = p(&collect_hist, 0.99);
        summary.lateness_us_p99 = p(&late_hist, 0.99);
        if let Some((wtx, h)) = writer {
            drop(wtx);
            let r = tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|_| CollectError::WriterPanic)?
                .map_err(|_| CollectError::WriterPanic)?;
            summary.segments = r?;
        }
        Ok(summary)
    }
}

/// Row groups a full segment is written as (each at least `row_group_rows` rows): the Parquet
/// writer holds every row group's metadata until the segment closes, so a fixed count bounds
/// it whatever the number of tenants (with 600-row groups, 24 tenants made 24 a segment).
const ROW_GROUPS_PER_SEGMENT: i64 = 4;

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

/// Raises the soft limit on open files to the hard one. The agent keeps every file it reads open
/// (≈ 16 per tenant + 2 per process) and perf descriptors (5 per tenant and CPU, or per thread for
/// tenants counted thread by thread): far more than the usual soft limit of 1024 on a busy host.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit/setrlimit to fill and read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let old = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            tracing::debug!("open-file limit raised from {old} to {}", lim.rlim_max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        // 2026-11-28T09:00:00Z
        assert_eq!(utc_date(1_795_856_400_000_000_000), "2026-11-28");
        assert_eq!(utc_date(951_782_400_000_000_000), "2000-02-29");
    }
}
