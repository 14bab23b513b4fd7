//! The per-tenant reader: cgroup files, the tenant's processes in /proc, its network namespace,
//! its perf counters. Finding the tenants is `discover`'s job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::parse::{self, PreadFile};
use crate::perf::TenantPerf;
use crate::specs::raw::*;
use crate::taskstats::TaskCounters;

/// Per-process files, kept open while the process lives.
struct PidFiles {
    dir: PathBuf,
    stat: Option<PreadFile>,
    io: Option<PreadFile>,
    /// status and schedstat: opened only when taskstats is not used.
    sched_files: Option<(Option<PreadFile>, Option<PreadFile>)>,
    /// Last cumulative values: utime, stime, minflt, majflt, blkio, vcsw, nvcsw, rchar, wchar,
    /// syscr, syscw, read_bytes, write_bytes, cancelled, run, wait, slices.
    last: Option<[u64; N_PCOUNTERS]>,
    seen: bool,
}

const N_PCOUNTERS: usize = 17;
const PCOUNTER_RAW: [usize; N_PCOUNTERS] = [
    P_UTIME,
    P_STIME,
    P_MINFLT,
    P_MAJFLT,
    P_BLKIO,
    P_VCSW,
    P_NVCSW,
    P_RCHAR,
    P_WCHAR,
    P_SYSCR,
    P_SYSCW,
    P_READ_BYTES,
    P_WRITE_BYTES,
    P_CANCELLED_WB,
    P_RUN_NS,
    P_WAIT_NS,
    P_SLICES,
];

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

/// cgroup v2 `memory.stat` keys and the raw slot each feeds.
const V2_MEM_STAT: [(usize, &str); 23] = [
    (MEM_ANON, "anon"),
    (MEM_FILE, "file"),
    (MEM_KSTACK, "kernel_stack"),
    (MEM_SLAB, "slab"),
    (MEM_SOCK, "sock"),
    (MEM_SHMEM, "shmem"),
    (MEM_MAPPED, "file_mapped"),
    (MEM_DIRTY, "file_dirty"),
    (MEM_WRITEBACK, "file_writeback"),
    (MEM_THP, "anon_thp"),
    (MEM_ACTIVE_ANON, "active_anon"),
    (MEM_INACTIVE_ANON, "inactive_anon"),
    (MEM_ACTIVE_FILE, "active_file"),
    (MEM_INACTIVE_FILE, "inactive_file"),
    (MEM_UNEVICTABLE, "unevictable"),
    (MEM_PGFAULT, "pgfault"),
    (MEM_PGMAJFAULT, "pgmajfault"),
    (MEM_WS_NODERECLAIM, "workingset_nodereclaim"),
    (MEM_PGSCAN, "pgscan"),
    (MEM_PGSTEAL, "pgsteal"),
    (MEM_PGREFILL, "pgrefill"),
    (MEM_PGACTIVATE, "pgactivate"),
    (MEM_PGDEACTIVATE, "pgdeactivate"),
];

/// cgroup v1 `memory.stat` keys and the raw slot each feeds.
const V1_MEM_STAT: [(usize, &str); 17] = [
    (MEM_ANON, "rss"),
    (MEM_FILE, "cache"),
    (MEM_SHMEM, "shmem"),
    (MEM_MAPPED, "mapped_file"),
    (MEM_DIRTY, "dirty"),
    (MEM_WRITEBACK, "writeback"),
    (MEM_THP, "rss_huge"),
    (MEM_ACTIVE_ANON, "active_anon"),
    (MEM_INACTIVE_ANON, "inactive_anon"),
    (MEM_ACTIVE_FILE, "active_file"),
    (MEM_INACTIVE_FILE, "inactive_file"),
    (MEM_UNEVICTABLE, "unevictable"),
    (MEM_SWAP, "swap"),
    (MEM_PGFAULT, "pgfault"),
    (MEM_PGMAJFAULT, "pgmajfault"),
    (MEM_PGPGIN, "pgpgin"),
    (MEM_PGPGOUT, "pgpgout"),
];

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

    fn read_cpu(&mut self, raw: &mut [f64]) {
        if let Some(b) = read_into(&mut self.v2_cpu_stat) {
            let [usage, user, system, periods, throttled, throttled_us] = parse::keyed_many(
                b,
                &[
                    "usage_usec",
                    "user_usec",
                    "system_usec",
                    "nr_periods",
                    "nr_throttled",
                    "throttled_usec",
                ],
            );
            let ns = |v: Option<u64>| v.map(|v| v * 1000);
            set(raw, CPU_USAGE_NS, ns(usage));
            set(raw, CPU_USER_NS, ns(user));
            set(raw, CPU_SYSTEM_NS, ns(system));
            set(raw, CPU_NR_PERIODS, periods);
            set(raw, CPU_NR_THROTTLED, throttled);
            set(raw, CPU_THROTTLED_NS, ns(throttled_us));
        }
        // v1 where v2 has no cpu controller (hybrid hosts): v1 values win for what they cover.
        if let Some(b) = read_into(&mut self.v1_cpuacct_usage) {
            set(raw, CPU_USAGE_NS, parse::parse_u64(b));
        }
        let tick = self.tick_ns;
        if let Some(b) = read_into(&mut self.v1_cpuacct_stat) {
            let [user, system] = parse::keyed_many(b, &["user", "system"]);
            if let Some(v) = user {
                raw[CPU_USER_NS] = v as f64 * tick;
            }
            if let Some(v) = system {
                raw[CPU_SYSTEM_NS] = v as f64 * tick;
            }
        }
        if let Some(b) = read_into(&mut self.v1_cpu_stat) {
            let [periods, throttled, throttled_ns] =
                parse::keyed_many(b, &["nr_periods", "nr_throttled", "throttled_time"]);
            set(raw, CPU_NR_PERIODS, periods);
            set(raw, CPU_NR_THROTTLED, throttled);
            set(raw, CPU_THROTTLED_NS, throttled_ns);
        }
        if let Some(b) = read_into(&mut self.v2_cpu_pressure) {
            let p = parse::parse_pressure(b);
            set(raw, CPU_PSI_SOME_US, p.some_total);
            set(raw, CPU_PSI_FULL_US, p.full_total);
            if let Some(a) = p.some_avg10 {
                raw[CPU_PSI_SOME_AVG10] = a;
            }
        }
    }

    fn read_mem(&mut self, raw: &mut [f64]) {
        if let Some(b) = read_into(&mut self.v2_mem_current) {
            set(raw, MEM_CURRENT, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v2_mem_stat) {
            set_keyed(raw, b, &V2_MEM_STAT);
            // Kernels ≥ 5.9 split the workingset counters into anon and file.
            let ws = parse::keyed_many(
                b,
                &[
                    "workingset_refault",
                    "workingset_refault_anon",
                    "workingset_refault_file",
                    "workingset_activate",
                    "workingset_activate_anon",
                    "workingset_activate_file",
                    "workingset_restore",
                    "workingset_restore_anon",
                    "workingset_restore_file",
                ],
            );
            for (i, slot) in [MEM_WS_REFAULT, MEM_WS_ACTIVATE, MEM_WS_RESTORE]
                .into_iter()
                .enumerate()
            {
                set(
                    raw,
                    slot,
                    ws[3 * i].or_else(|| parse::sum_some(ws[3 * i + 1], ws[3 * i + 2])),
                );
            }
        }
        if let Some(b) = read_into(&mut self.v2_mem_events) {
            set_keyed(
                raw,
                b,
                &[
                    (MEM_EV_HIGH, "high"),
                    (MEM_EV_MAX, "max"),
                    (MEM_EV_OOM_KILL, "oom_kill"),
                ],
            );
        }
        if let Some(b) = read_into(&mut self.v2_mem_swap) {
            set(raw, MEM_SWAP, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v2_mem_max) {
            set(raw, MEM_LIMIT, parse::parse_u64(b)); // "max" → None
        }
        if let Some(b) = read_into(&mut self.v2_mem_pressure) {
            let p = parse::parse_pressure(b);
            set(raw, MEM_PSI_SOME_US, p.some_total);
            set(raw, MEM_PSI_FULL_US, p.full_total);
        }
        // cgroup v1 memory controller.
        if let Some(b) = read_into(&mut self.v1_mem_usage) {
            set(raw, MEM_CURRENT, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v1_mem_stat) {
            set_keyed(raw, b, &V1_MEM_STAT);
            let [anon, file, all] = parse::keyed_many(
                b,
                &[
                    "workingset_refault_anon",
                    "workingset_refault_file",
                    "workingset_refault",
                ],
            );
            set(raw, MEM_WS_REFAULT, parse::sum_some(anon, file).or(all));
        }
        if let Some(b) = read_into(&mut self.v1_mem_limit) {
            // "Unlimited" is PAGE_COUNTER_MAX rounded to pages: treat ≥ 2^62 as no limit.
            set(
                raw,
                MEM_LIMIT,
                parse::parse_u64(b).filter(|&v| v < (1u64 << 62)),
            );
        }
        if let Some(b) = read_into(&mut self.v1_mem_failcnt) {
            set(raw, MEM_EV_MAX, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v1_mem_oom) {
            set(raw, MEM_EV_OOM_KILL, parse::keyed(b, "oom_kill"));
        }
    }

    fn read_io(&mut self, raw: &mut [f64]) {
        if let Some(b) = read_into(&mut self.v2_io_stat) {
            let t = parse::parse_io_stat(b);
            set(raw, IO_RBYTES, t.rbytes);
            set(raw, IO_WBYTES, t.wbytes);
            set(raw, IO_RIOS, t.rios);
            set(raw, IO_WIOS, t.wios);
            set(raw, IO_DBYTES, t.dbytes);
        }
        if let Some(b) = read_into(&mut self.v1_blkio_bytes) {
            let (r, w, d) = parse::parse_blkio_v1(b);
            set(raw, IO_RBYTES, r);
            set(raw, IO_WBYTES, w);
            set(raw, IO_DBYTES, d);
        }
        if let Some(b) = read_into(&mut self.v1_blkio_ios) {
            let (r, w, _) = parse::parse_blkio_v1(b);
            set(raw, IO_RIOS, r);
            set(raw, IO_WIOS, w);
        }
        if let Some(b) = read_into(&mut self.v2_io_pressure) {
            let p = parse::parse_pressure(b);
            set(raw, IO_PSI_SOME_US, p.some_total);
            set(raw, IO_PSI_FULL_US, p.full_total);
        }
        if let Some(b) = read_into(&mut self.v2_pids) {
            set(raw, PIDS_CURRENT, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v1_pids) {
            set(raw, PIDS_CURRENT, parse::parse_u64(b));
        }
        self.tid_buf.clear();
        if let Some(b) = read_into(&mut self.threads) {
            raw[PIDS_THREADS] = parse::count_lines(b) as f64;
            if self.perf.as_ref().is_some_and(TenantPerf::is_per_thread) {
                parse::parse_pids(b, &mut self.tid_buf);
            }
        }
    }

    fn read_procs(&mut self, raw: &mut [f64], tasks: Option<&HashMap<u32, TaskCounters>>) {
        if !self.alive {
            return;
        }
        if raw[PIDS_CURRENT].is_nan() {
            raw[PIDS_CURRENT] = self.pid_buf.len() as f64;
        }
        for f in self.pids.values_mut() {
            f.seen = false;
        }
        let (mut threads, mut running, mut blocked, mut rss, mut count) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut any_sched = false;
        let tick = self.tick_ns;
        for &pid in &self.pid_buf {
            let pf = self.pids.entry(pid).or_insert_with(|| {
                let dir = PathBuf::from(format!("/proc/{pid}"));
                PidFiles {
                    stat: PreadFile::open_opt(&dir.join("stat")),
                    io: PreadFile::open_opt(&dir.join("io")),
                    dir,
                    sched_files: None,
                    last: None,
                    seen: false,
                }
            });
            pf.seen = true;
            let Some(st) = read_into(&mut pf.stat).and_then(parse::parse_pid_stat) else {
                continue;
            };
            count += 1;
            threads += st.num_threads;
            rss += st.rss;
            match st.state {
                b'R' => running += 1,
                b'D' => blocked += 1,
                _ => {}
            }
            let mut cur = [0u64; N_PCOUNTERS];
            cur[0] = (st.utime as f64 * tick) as u64;
            cur[1] = (st.stime as f64 * tick) as u64;
            cur[2] = st.minflt;
            cur[3] = st.majflt;
            cur[4] = (st.blkio_ticks as f64 * tick) as u64;
            any_sched |= task_counters(tasks, pid, pf, &mut cur);
            if let Some(b) = read_into(&mut pf.io) {
                let v = parse::keyed_many(
                    b,
                    &[
                        "rchar",
                        "wchar",
                        "syscr",
                        "syscw",
                        "read_bytes",
                        "write_bytes",
                        "cancelled_write_bytes",
                    ],
                );
                for (c, v) in cur[7..14].iter_mut().zip(v) {
                    *c = v.unwrap_or(0);
                }
            }
            // Sum of per-process deltas over processes seen at both ticks; a process whose
            // counters went backwards (PID reuse) restarts its baseline.
            if let Some(last) = pf.last {
                if cur.iter().zip(last.iter()).all(|(c, l)| c >= l) {
                    for ((a, c), l) in self.pacc.iter_mut().zip(cur.iter()).zip(last.iter()) {
                        *a += c - l;
                    }
                }
            }
            pf.last = Some(cur);
        }
        self.pids.retain(|_, f| f.seen);
        raw[P_COUNT] = count as f64;
        raw[P_THREADS] = threads as f64;
        raw[P_RUNNING] = running as f64;
        raw[P_BLOCKED] = blocked as f64;
        raw[P_RSS] = rss as f64 * self.page;
        for (j, &r) in PCOUNTER_RAW.iter().enumerate() {
            raw[r] = self.pacc[j] as f64;
        }
        if !any_sched {
            for r in [P_RUN_NS, P_WAIT_NS, P_SLICES] {
                raw[r] = f64::NAN;
            }
        }
        self.read_net(raw);
    }

    /// The tenant's network: `/proc/PID/net/dev` of one of its processes, only when that process
    /// lives in a network namespace other than ours.
    fn read_net(&mut self, raw: &mut [f64]) {
        let first = self.pid_buf.first().copied();
        let Some(pid) = first else {
            self.net = None;
            return;
        };
        let stale = !matches!(&self.net, Some((p, _)) if self.pid_buf.contains(p));
        if stale {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            let own = ns.is_some() && ns != self.host_netns;
            let f = if own {
                PreadFile::open_opt(Path::new(&format!("/proc/{pid}/net/dev")))
            } else {
                None
            };
            self.net = Some((pid, f));
        }
        if let Some((_, f)) = self.net.as_mut() {
            if let Some(b) = read_into(f) {
                let t = parse::parse_net_dev(b);
                raw[NET_RX_BYTES] = t.rx_bytes as f64;
                raw[NET_TX_BYTES] = t.tx_bytes as f64;
                raw[NET_RX_PACKETS] = t.rx_packets as f64;
                raw[NET_TX_PACKETS] = t.tx_packets as f64;
                raw[NET_RX_DROP] = t.rx_drop as f64;
                raw[NET_TX_DROP] = t.tx_drop as f64;
            }
        }
    }
}

/// Puts process `pid`'s context switches (`cur[5..7]`) and schedstat (`cur[14..17]`) into
/// `cur`: from the taskstats `tasks` when given (a PID missing from them has exited), else from
/// its status and schedstat files. Whether schedstat values were found.
fn task_counters(
    tasks: Option<&HashMap<u32, TaskCounters>>,
    pid: u32,
    pf: &mut PidFiles,
    cur: &mut [u64; N_PCOUNTERS],
) -> bool {
    if let Some(t) = tasks {
        let Some(c) = t.get(&pid) else {
            return false;
        };
        cur[5..7].copy_from_slice(&[c.nvcsw, c.nivcsw]);
        cur[14..17].copy_from_slice(&[c.run_ns, c.wait_ns, c.slices]);
        return true;
    }
    let dir = &pf.dir;
    let (status, schedstat) = pf.sched_files.get_or_insert_with(|| {
        (
            PreadFile::open_opt(&dir.join("status")),
            PreadFile::open_opt(&dir.join("schedstat")),
        )
    });
    if let Some(b) = read_into(status) {
        let v = parse::keyed_many(
            b,
            &["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"],
        );
        for (c, v) in cur[5..7].iter_mut().zip(v) {
            *c = v.unwrap_or(0);
        }
    }
    let Some((run, wait, slices)) = read_into(schedstat).and_then(parse::parse_schedstat) else {
        return false;
    };
    cur[14..17].copy_from_slice(&[run, wait, slices]);
    true
}

/// Which cgroup sources exist for any tenant (for the availability map).
pub fn source_kinds(tenants: &BTreeMap<String, BTreeMap<String, PathBuf>>) -> BTreeSet<String> {
    tenants.values().flat_map(|m| m.keys().cloned()).collect()
}
