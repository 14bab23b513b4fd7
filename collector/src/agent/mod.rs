//! The host agent: aligned 1 s ticks, per-tenant feature rows (2 × the catalogue's metrics),
//! host context, Parquet segments, a broadcast of every tick for live consumers, and an optional
//! Prometheus `/metrics` endpoint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataset::catalogue::Catalogue;
use dataset::placement::PlacementColumns;
use dataset::samples::{self, SamplesError};
use tokio::sync::broadcast;

use crate::discover::{self, Discovery};
use crate::host::HostReader;
use crate::perf::{self, PerfProbe};
use crate::settings;
use crate::specs::{self, Spec};
use crate::taskstats::Taskstats;
use crate::tick::Tick;

mod tick_loop;
mod writer;

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
