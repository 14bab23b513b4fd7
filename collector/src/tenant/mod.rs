//! The per-tenant reader: cgroup files, the tenant's processes in /proc, its network namespace,
//! its perf counters. Finding the tenants is `discover`'s job.
//!
//! One file per kernel interface: [`cpu`] (cpu.stat, cpuacct, PSI), [`memory`] (memory.* of
//! either hierarchy), [`io`] (io.stat, blkio), [`procs`] (the processes in /proc or taskstats),
//! [`net`] (the tenant's network namespace). Each adds an `impl TenantReader` block with the
//! reader of its interface; the files stay open in [`TenantReader`] between ticks.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::parse::{self, PreadFile};
use crate::perf::TenantPerf;
use crate::taskstats::TaskCounters;

mod cpu;
mod io;
mod memory;
mod net;
mod procs;

use procs::{PidFiles, N_PCOUNTERS};

/// Nanoseconds per clock tick.
fn tick_ns() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1e9 / if hz > 0 { hz as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: as above.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as f64
    } else {
        4096.0
    }
}

/// Everything read for one tenant at one tick.
pub struct TenantReader {
    pub name: String,
    dirs: BTreeMap<String, PathBuf>,
    v2_cpu_stat: Option<PreadFile>,
    v2_cpu_pressure: Option<PreadFile>,
    v2_cpu_max: Option<PreadFile>,
    v2_cpuset: Option<PreadFile>,
    v1_cfs_quota: Option<PreadFile>,
    v1_cfs_period: Option<PreadFile>,
    v1_cpuset: Option<PreadFile>,
    /// The CPUs the tenant may run on at the last read (its cpuset, else the online CPUs).
    pub cpus: Vec<usize>,
    /// The host's online CPUs (read once).
    online: Vec<usize>,
    v2_mem_pressure: Option<PreadFile>,
    v2_io_pressure: Option<PreadFile>,
    v2_mem_current: Option<PreadFile>,
    v2_mem_stat: Option<PreadFile>,
    v2_mem_events: Option<PreadFile>,
    v2_mem_swap: Option<PreadFile>,
    v2_mem_max: Option<PreadFile>,
    v2_io_stat: Option<PreadFile>,
    v2_pids: Option<PreadFile>,
    v1_cpu_stat: Option<PreadFile>,
    v1_cpuacct_usage: Option<PreadFile>,
    v1_cpuacct_stat: Option<PreadFile>,
    v1_mem_usage: Option<PreadFile>,
    v1_mem_stat: Option<PreadFile>,
    v1_mem_limit: Option<PreadFile>,
    v1_mem_failcnt: Option<PreadFile>,
    v1_mem_oom: Option<PreadFile>,
    v1_blkio_bytes: Option<PreadFile>,
    v1_blkio_ios: Option<PreadFile>,
    v1_pids: Option<PreadFile>,
    procs: Option<PreadFile>,
    threads: Option<PreadFile>,
    pids: HashMap<u32, PidFiles>,
    pid_buf: Vec<u32>,
    /// The tenant's threads at this tick, listed only for per-thread perf counters.
    tid_buf: Vec<u32>,
    /// `pid_buf` was filled by `list_pids` for the coming `read`.
    listed: bool,
    pacc: [u64; N_PCOUNTERS],
    net: Option<(u32, Option<PreadFile>)>,
    host_netns: Option<PathBuf>,
    pub perf: Option<TenantPerf>,
    tick_ns: f64,
    page: f64,
    /// Whether the tenant's cgroup.procs was readable at the last tick.
    pub alive: bool,
}

fn open_in(dirs: &BTreeMap<String, PathBuf>, kind: &str, file: &str) -> Option<PreadFile> {
    dirs.get(kind)
        .and_then(|d| PreadFile::open_opt(&d.join(file)))
}

fn read_into(f: &mut Option<PreadFile>) -> Option<&[u8]> {
    match f {
        Some(f) => f.read().ok(),
        None => None,
    }
}

fn set(raw: &mut [f64], i: usize, v: Option<u64>) {
    if let Some(v) = v {
        raw[i] = v as f64;
    }
}

/// Sets each slot of `table` from its key in the keyed file `b` (one pass over the file).
fn set_keyed<const N: usize>(raw: &mut [f64], b: &[u8], table: &[(usize, &str); N]) {
    let vals = parse::keyed_many(b, &table.map(|(_, k)| k));
    for ((slot, _), v) in table.iter().zip(vals) {
        set(raw, *slot, v);
    }
}

impl TenantReader {
    /// Opens the tenant's files in every hierarchy it exists in (`dirs`: kind → directory).
    pub fn open(name: &str, dirs: BTreeMap<String, PathBuf>, perf: Option<TenantPerf>) -> Self {
        let v2 = |f: &str| open_in(&dirs, "v2", f);
        let procs = open_in(&dirs, "v2", "cgroup.procs").or_else(|| {
            ["cpu", "cpuacct", "memory", "pids", "blkio"]
                .iter()
                .find_map(|k| open_in(&dirs, k, "cgroup.procs"))
        });
        let threads = open_in(&dirs, "v2", "cgroup.threads").or_else(|| {
            ["cpu", "cpuacct", "memory", "pids", "blkio"]
                .iter()
                .find_map(|k| open_in(&dirs, k, "tasks"))
        });
        let v1_cpu_stat = open_in(&dirs, "cpu", "cpu.stat");
        let v1_cpuacct_usage = open_in(&dirs, "cpuacct", "cpuacct.usage");
        let v1_cpuacct_stat = open_in(&dirs, "cpuacct", "cpuacct.stat");
        // On hybrid hosts the v1 cpu and cpuacct files give every value of the unified
        // cpu.stat (and win over it), so reading that one too would be wasted work.
        let v1_cpu_complete =
            v1_cpu_stat.is_some() && v1_cpuacct_usage.is_some() && v1_cpuacct_stat.is_some();
        TenantReader {
            name: name.to_string(),
            v2_cpu_stat: if v1_cpu_complete {
                None
            } else {
                v2("cpu.stat")
            },
            v2_cpu_pressure: v2("cpu.pressure"),
            v2_cpu_max: v2("cpu.max"),
            v2_cpuset: v2("cpuset.cpus.effective"),
            v1_cfs_quota: open_in(&dirs, "cpu", "cpu.cfs_quota_us"),
            v1_cfs_period: open_in(&dirs, "cpu", "cpu.cfs_period_us"),
            v1_cpuset: open_in(&dirs, "cpuset", "cpuset.effective_cpus")
                .or_else(|| open_in(&dirs, "cpuset", "cpuset.cpus")),
            cpus: Vec::new(),
            online: crate::perf::online_cpus(),
            v2_mem_pressure: v2("memory.pressure"),
            v2_io_pressure: v2("io.pressure"),
            v2_mem_current: v2("memory.current"),
            v2_mem_stat: v2("memory.stat"),
            v2_mem_events: v2("memory.events"),
            v2_mem_swap: v2("memory.swap.current"),
            v2_mem_max: v2("memory.max"),
            v2_io_stat: v2("io.stat"),
            v2_pids: v2("pids.current"),
            v1_cpu_stat,
            v1_cpuacct_usage,
            v1_cpuacct_stat,
            v1_mem_usage: open_in(&dirs, "memory", "memory.usage_in_bytes"),
            v1_mem_stat: open_in(&dirs, "memory", "memory.stat"),
            v1_mem_limit: open_in(&dirs, "memory", "memory.limit_in_bytes"),
            v1_mem_failcnt: open_in(&dirs, "memory", "memory.failcnt"),
            v1_mem_oom: open_in(&dirs, "memory", "memory.oom_control"),
            v1_blkio_bytes: open_in(&dirs, "blkio", "blkio.throttle.io_service_bytes"),
            v1_blkio_ios: open_in(&dirs, "blkio", "blkio.throttle.io_serviced"),
            v1_pids: open_in(&dirs, "pids", "pids.current"),
            procs,
            threads,
            dirs,
            pids: HashMap::new(),
            pid_buf: Vec::new(),
            tid_buf: Vec::new(),
            listed: false,
            pacc: [0; N_PCOUNTERS],
            net: None,
            host_netns: std::fs::read_link("/proc/self/ns/net").ok(),
            perf,
            tick_ns: tick_ns(),
            page: page_size(),
            alive: true,
        }
    }

    /// The hierarchies this tenant was found in.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.dirs.keys().map(|s| s.as_str())
    }

    /// Reads the tenant's `cgroup.procs`: its processes now, for [`TenantReader::read`] (which
    /// reads it itself when this was not called first). Empty, and `alive` false, when the
    /// cgroup is gone.
    pub fn list_pids(&mut self) -> &[u32] {
        self.pid_buf.clear();
        self.listed = true;
        match read_into(&mut self.procs) {
            Some(b) => {
                parse::parse_pids(b, &mut self.pid_buf);
                self.alive = true;
            }
            None => self.alive = false,
        }
        &self.pid_buf
    }

    /// Reads every source into `raw` (NaN where unavailable). The processes' context switches
    /// and schedstat come from `tasks` when given (taskstats, see [`crate::taskstats`]; a PID
    /// missing from it has exited), else from their status and schedstat files.
    pub fn read(&mut self, raw: &mut [f64], tasks: Option<&HashMap<u32, TaskCounters>>) {
        raw.fill(f64::NAN);
        if !self.listed {
            self.list_pids();
        }
        self.listed = false;
        self.read_cpu(raw);
        self.read_mem(raw);
        self.read_io(raw);
        self.read_procs(raw, tasks);
        if let Some(p) = self.perf.as_mut() {
            p.read(raw, &self.tid_buf);
        }
    }
}
