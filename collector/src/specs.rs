//! How each catalogue metric is computed from raw per-tick readings.
//!
//! Raw readings are cumulative counters or gauges, `NaN` when unavailable. A feature is a gauge
//! (the current value), a rate (Δ/Δt), or a ratio of two deltas. A decreasing counter, a missing
//! previous reading or a missing current reading gives null (`NaN`).

use dataset::catalogue::Catalogue;

/// Raw per-tenant quantities (indices into a `[f64; N_RAW]`). CPU times are in ns.
pub mod raw {
    macro_rules! ids {
        ($($name:ident),* $(,)?) => {
            ids!(@go 0usize; $($name),*);
        };
        (@go $n:expr; $head:ident $(, $tail:ident)*) => {
            pub const $head: usize = $n;
            ids!(@go $n + 1usize; $($tail),*);
        };
        (@go $n:expr;) => { pub const N_RAW: usize = $n; };
    }
    ids!(
        CPU_USAGE_NS,
        CPU_USER_NS,
        CPU_SYSTEM_NS,
        CPU_NR_PERIODS,
        CPU_NR_THROTTLED,
        CPU_THROTTLED_NS,
        CPU_PSI_SOME_US,
        CPU_PSI_FULL_US,
        CPU_PSI_SOME_AVG10,
        CPUSET_CPUS,
        CPU_QUOTA_CPUS,
        MEM_CURRENT,
        MEM_ANON,
        MEM_FILE,
        MEM_KSTACK,
        MEM_SLAB,
        MEM_SOCK,
        MEM_SHMEM,
        MEM_MAPPED,
        MEM_DIRTY,
        MEM_WRITEBACK,
        MEM_THP,
        MEM_ACTIVE_ANON,
        MEM_INACTIVE_ANON,
        MEM_ACTIVE_FILE,
        MEM_INACTIVE_FILE,
        MEM_UNEVICTABLE,
        MEM_SWAP,
        MEM_LIMIT,
        MEM_PGFAULT,
        MEM_PGMAJFAULT,
        MEM_PGPGIN,
        MEM_PGPGOUT,
        MEM_WS_REFAULT,
        MEM_WS_ACTIVATE,
        MEM_WS_RESTORE,
        MEM_WS_NODERECLAIM,
        MEM_PGSCAN,
        MEM_PGSTEAL,
        MEM_PGREFILL,
        MEM_PGACTIVATE,
        MEM_PGDEACTIVATE,
        MEM_EV_HIGH,
        MEM_EV_MAX,
        MEM_EV_OOM_KILL,
        MEM_PSI_SOME_US,
        MEM_PSI_FULL_US,
        IO_RBYTES,
        IO_WBYTES,
        IO_RIOS,
        IO_WIOS,
        IO_DBYTES,
        IO_PSI_SOME_US,
        IO_PSI_FULL_US,
        PIDS_CURRENT,
        PIDS_THREADS,
        P_COUNT,
        P_THREADS,
        P_RUNNING,
        P_BLOCKED,
        P_UTIME,
        P_STIME,
        P_MINFLT,
        P_MAJFLT,
        P_BLKIO,
        P_RSS,
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
        PERF_TASK_CLOCK,
        PERF_CS,
        PERF_MIGRATIONS,
        PERF_PAGE_FAULTS,
        PERF_MAJOR_FAULTS,
        PERF_CYCLES,
        PERF_INSTRUCTIONS,
        PERF_REF_CYCLES,
        PERF_BRANCHES,
        PERF_BRANCH_MISSES,
        PERF_CACHE_REFS,
        PERF_CACHE_MISSES,
        PERF_LLC_LOADS,
        PERF_LLC_LOAD_MISSES,
        PERF_L1D_LOAD_MISSES,
        PERF_DTLB_LOAD_MISSES,
        PERF_STALLED_FE,
        PERF_STALLED_BE,
        TD_SLOTS,
        TD_RETIRING,
        TD_BAD_SPEC,
        TD_FE_BOUND,
        TD_BE_BOUND,
        NET_RX_BYTES,
        NET_TX_BYTES,
        NET_RX_PACKETS,
        NET_TX_PACKETS,
        NET_RX_DROP,
        NET_TX_DROP,
    );
}

/// Raw host-wide quantities.
pub mod hraw {
    macro_rules! ids {
        ($($name:ident),* $(,)?) => { ids!(@go 0usize; $($name),*); };
        (@go $n:expr; $head:ident $(, $tail:ident)*) => {
            pub const $head: usize = $n;
            ids!(@go $n + 1usize; $($tail),*);
        };
        (@go $n:expr;) => { pub const N_HRAW: usize = $n; };
    }
    ids!(
        CTXT,
        INTR,
        FORKS,
        PROCS_RUNNING,
        PROCS_BLOCKED,
        PSI_CPU_SOME,
        PSI_CPU_FULL,
        PSI_MEM_SOME,
        PSI_MEM_FULL,
        PSI_IO_SOME,
        PSI_IO_FULL,
        MEM_TOTAL,
        MEM_FREE,
        MEM_AVAILABLE,
        MEM_BUFFERS,
        MEM_CACHED,
        MEM_DIRTY,
        MEM_ANON,
        MEM_SWAP_USED,
        VM_PGFAULT,
        VM_PGMAJFAULT,
        VM_PSWPIN,
        VM_PSWPOUT,
        VM_PGSCAN,
        VM_PGSTEAL,
        VM_OOM_KILL,
        DISK_READS,
        DISK_WRITES,
        DISK_READ_BYTES,
        DISK_WRITE_BYTES,
        DISK_IO_TICKS_MS,
        NET_RX_BYTES,
        NET_TX_BYTES,
        NET_RX_PACKETS,
        NET_TX_PACKETS,
        NET_DROP,
    );
}

/// How one column is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spec {
    /// `scale × raw`.
    Gauge(usize, f64),
    /// `scale × Δraw / Δt`.
    Rate(usize, f64),
    /// `scale × Δa / Δb` (null when Δb = 0).
    Ratio(usize, usize, f64),
    /// Host only: `100 × Δfield / Δtotal` over the aggregate `/proc/stat` cpu line; the index
    /// names a derived mode (see `host::JIFFY_MODES`).
    Jiffies(usize),
    /// Computed by the agent from every tenant's row of the same second
    /// (`dataset::placement::fill_cross_tenant`); null from [`eval`].
    CrossTenant,
}

/// ns → percent of one CPU (per second).
pub const NS_PCT: f64 = 100.0 / 1e9;
/// µs → percent.
pub const US_PCT: f64 = 100.0 / 1e6;
/// ms → percent.
pub const MS_PCT: f64 = 100.0 / 1e3;

/// The spec for a per-tenant catalogue metric, by name.
pub fn tenant_spec(name: &str) -> Option<Spec> {
    use raw::*;
    use Spec::*;
    let s = match name {
        "cpu.usage_pct" => Rate(CPU_USAGE_NS, NS_PCT),
        "placement.cpuset_cpus" => Gauge(CPUSET_CPUS, 1.0),
        "placement.cpu_quota_cpus" => Gauge(CPU_QUOTA_CPUS, 1.0),
        "placement.neighbours" | "placement.contending_cpu_pct" => CrossTenant,
        "cpu.user_pct" => Rate(CPU_USER_NS, NS_PCT),
        "cpu.system_pct" => Rate(CPU_SYSTEM_NS, NS_PCT),
        "cpu.nr_periods_per_s" => Rate(CPU_NR_PERIODS, 1.0),
        "cpu.nr_throttled_per_s" => Rate(CPU_NR_THROTTLED, 1.0),
        "cpu.throttled_pct" => Rate(CPU_THROTTLED_NS, NS_PCT),
        "cpu.throttled_ratio" => Ratio(CPU_NR_THROTTLED, CPU_NR_PERIODS, 1.0),
        "cpu.psi_some_pct" => Rate(CPU_PSI_SOME_US, US_PCT),
        "cpu.psi_full_pct" => Rate(CPU_PSI_FULL_US, US_PCT),
        "cpu.psi_some_avg10" => Gauge(CPU_PSI_SOME_AVG10, 1.0),
        "mem.current_bytes" => Gauge(MEM_CURRENT, 1.0),
        "mem.anon_bytes" => Gauge(MEM_ANON, 1.0),
        "mem.file_bytes" => Gauge(MEM_FILE, 1.0),
        "mem.kernel_stack_bytes" => Gauge(MEM_KSTACK, 1.0),
        "mem.slab_bytes" => Gauge(MEM_SLAB, 1.0),
        "mem.sock_bytes" => Gauge(MEM_SOCK, 1.0),
        "mem.shmem_bytes" => Gauge(MEM_SHMEM, 1.0),
        "mem.file_mapped_bytes" => Gauge(MEM_MAPPED, 1.0),
        "mem.file_dirty_bytes" => Gauge(MEM_DIRTY, 1.0),
        "mem.file_writeback_bytes" => Gauge(MEM_WRITEBACK, 1.0),
        "mem.anon_thp_bytes" => Gauge(MEM_THP, 1.0),
        "mem.active_anon_bytes" => Gauge(MEM_ACTIVE_ANON, 1.0),
        "mem.inactive_anon_bytes" => Gauge(MEM_INACTIVE_ANON, 1.0),
        "mem.active_file_bytes" => Gauge(MEM_ACTIVE_FILE, 1.0),
        "mem.inactive_file_bytes" => Gauge(MEM_INACTIVE_FILE, 1.0),
        "mem.unevictable_bytes" => Gauge(MEM_UNEVICTABLE, 1.0),
        "mem.swap_bytes" => Gauge(MEM_SWAP, 1.0),
        "mem.limit_bytes" => Gauge(MEM_LIMIT, 1.0),
        "mem.pgfault_per_s" => Rate(MEM_PGFAULT, 1.0),
        "mem.pgmajfault_per_s" => Rate(MEM_PGMAJFAULT, 1.0),
        "mem.pgpgin_per_s" => Rate(MEM_PGPGIN, 1.0),
        "mem.pgpgout_per_s" => Rate(MEM_PGPGOUT, 1.0),
        "mem.workingset_refault_per_s" => Rate(MEM_WS_REFAULT, 1.0),
        "mem.workingset_activate_per_s" => Rate(MEM_WS_ACTIVATE, 1.0),
        "mem.workingset_restore_per_s" => Rate(MEM_WS_RESTORE, 1.0),
        "mem.workingset_nodereclaim_per_s" => Rate(MEM_WS_NODERECLAIM, 1.0),
        "mem.pgscan_per_s" => Rate(MEM_PGSCAN, 1.0),
        "mem.pgsteal_per_s" => Rate(MEM_PGSTEAL, 1.0),
        "mem.pgrefill_per_s" => Rate(MEM_PGREFILL, 1.0),
        "mem.pgactivate_per_s" => Rate(MEM_PGACTIVATE, 1.0),
        "mem.pgdeactivate_per_s" => Rate(MEM_PGDEACTIVATE, 1.0),
        "mem.events_high_per_s" => Rate(MEM_EV_HIGH, 1.0),
        "mem.events_max_per_s" => Rate(MEM_EV_MAX, 1.0),
        "mem.events_oom_kill_per_s" => Rate(MEM_EV_OOM_KILL, 1.0),
        "mem.psi_some_pct" => Rate(MEM_PSI_SOME_US, US_PCT),
        "mem.psi_full_pct" => Rate(MEM_PSI_FULL_US, US_PCT),
        "io.read_bytes_per_s" => Rate(IO_RBYTES, 1.0),
        "io.write_bytes_per_s" => Rate(IO_WBYTES, 1.0),
        "io.read_ops_per_s" => Rate(IO_RIOS, 1.0),
        "io.write_ops_per_s" => Rate(IO_WIOS, 1.0),
        "io.discard_bytes_per_s" => Rate(IO_DBYTES, 1.0),
        "io.psi_some_pct" => Rate(IO_PSI_SOME_US, US_PCT),
        "io.psi_full_pct" => Rate(IO_PSI_FULL_US, US_PCT),
        "pids.current" => Gauge(PIDS_CURRENT, 1.0),
        "pids.threads" => Gauge(PIDS_THREADS, 1.0),
        "proc.count" => Gauge(P_COUNT, 1.0),
        "proc.threads" => Gauge(P_THREADS, 1.0),
        "proc.running" => Gauge(P_RUNNING, 1.0),
        "proc.blocked" => Gauge(P_BLOCKED, 1.0),
        "proc.utime_pct" => Rate(P_UTIME, NS_PCT),
        "proc.stime_pct" => Rate(P_STIME, NS_PCT),
        "proc.minflt_per_s" => Rate(P_MINFLT, 1.0),
        "proc.majflt_per_s" => Rate(P_MAJFLT, 1.0),
        "proc.blkio_delay_pct" => Rate(P_BLKIO, NS_PCT),
        "proc.rss_bytes" => Gauge(P_RSS, 1.0),
        "proc.voluntary_ctxsw_per_s" => Rate(P_VCSW, 1.0),
        "proc.nonvoluntary_ctxsw_per_s" => Rate(P_NVCSW, 1.0),
        "proc.rchar_per_s" => Rate(P_RCHAR, 1.0),
        "proc.wchar_per_s" => Rate(P_WCHAR, 1.0),
        "proc.syscr_per_s" => Rate(P_SYSCR, 1.0),
        "proc.syscw_per_s" => Rate(P_SYSCW, 1.0),
        "proc.read_bytes_per_s" => Rate(P_READ_BYTES, 1.0),
        "proc.write_bytes_per_s" => Rate(P_WRITE_BYTES, 1.0),
        "proc.cancelled_write_bytes_per_s" => Rate(P_CANCELLED_WB, 1.0),
        "proc.sched_run_pct" => Rate(P_RUN_NS, NS_PCT),
        "proc.sched_wait_pct" => Rate(P_WAIT_NS, NS_PCT),
        "proc.sched_timeslices_per_s" => Rate(P_SLICES, 1.0),
        "proc.sched_wait_per_slice_us" => Ratio(P_WAIT_NS, P_SLICES, 1e-3),
        "perf.task_clock_pct" => Rate(PERF_TASK_CLOCK, NS_PCT),
        "perf.context_switches_per_s" => Rate(PERF_CS, 1.0),
        "perf.cpu_migrations_per_s" => Rate(PERF_MIGRATIONS, 1.0),
        "perf.page_faults_per_s" => Rate(PERF_PAGE_FAULTS, 1.0),
        "perf.major_faults_per_s" => Rate(PERF_MAJOR_FAULTS, 1.0),
        "perf.cycles_per_s" => Rate(PERF_CYCLES, 1.0),
        "perf.instructions_per_s" => Rate(PERF_INSTRUCTIONS, 1.0),
        "perf.ipc" => Ratio(PERF_INSTRUCTIONS, PERF_CYCLES, 1.0),
        "perf.ref_cycles_per_s" => Rate(PERF_REF_CYCLES, 1.0),
        "perf.branches_per_s" => Rate(PERF_BRANCHES, 1.0),
        "perf.branch_misses_per_s" => Rate(PERF_BRANCH_MISSES, 1.0),
        "perf.cache_references_per_s" => Rate(PERF_CACHE_REFS, 1.0),
        "perf.cache_misses_per_s" => Rate(PERF_CACHE_MISSES, 1.0),
        "perf.llc_loads_per_s" => Rate(PERF_LLC_LOADS, 1.0),
        "perf.llc_load_misses_per_s" => Rate(PERF_LLC_LOAD_MISSES, 1.0),
        "perf.l1d_load_misses_per_s" => Rate(PERF_L1D_LOAD_MISSES, 1.0),
        "perf.dtlb_load_misses_per_s" => Rate(PERF_DTLB_LOAD_MISSES, 1.0),
        "perf.stalled_cycles_frontend_per_s" => Rate(PERF_STALLED_FE, 1.0),
        "perf.stalled_cycles_backend_per_s" => Rate(PERF_STALLED_BE, 1.0),
        "perf.topdown_retiring" => Ratio(TD_RETIRING, TD_SLOTS, 1.0),
        "perf.topdown_bad_speculation" => Ratio(TD_BAD_SPEC, TD_SLOTS, 1.0),
        "perf.topdown_frontend_bound" => Ratio(TD_FE_BOUND, TD_SLOTS, 1.0),
        "perf.topdown_backend_bound" => Ratio(TD_BE_BOUND, TD_SLOTS, 1.0),
        "net.rx_bytes_per_s" => Rate(NET_RX_BYTES, 1.0),
        "net.tx_bytes_per_s" => Rate(NET_TX_BYTES, 1.0),
        "net.rx_packets_per_s" => Rate(NET_RX_PACKETS, 1.0),
        "net.tx_packets_per_s" => Rate(NET_TX_PACKETS, 1.0),
        "net.rx_drop_per_s" => Rate(NET_RX_DROP, 1.0),
        "net.tx_drop_per_s" => Rate(NET_TX_DROP, 1.0),
        _ => return None,
    };
    Some(s)
}

/// Jiffy modes derived from the `/proc/stat` cpu line (user and nice have guest subtracted).
pub const JIFFY_MODES: usize = 9;

/// The spec for a host context column, by name.
pub fn host_spec(name: &str) -> Option<Spec> {
    use hraw::*;
    use Spec::*;
    let s = match name {
        "host.cpu.user_pct" => Jiffies(0),
        "host.cpu.nice_pct" => Jiffies(1),
        "host.cpu.system_pct" => Jiffies(2),
        "host.cpu.idle_pct" => Jiffies(3),
        "host.cpu.iowait_pct" => Jiffies(4),
        "host.cpu.irq_pct" => Jiffies(5),
        "host.cpu.softirq_pct" => Jiffies(6),
        "host.cpu.steal_pct" => Jiffies(7),
        "host.cpu.guest_pct" => Jiffies(8),
        "host.cpu.ctxt_per_s" => Rate(CTXT, 1.0),
        "host.cpu.intr_per_s" => Rate(INTR, 1.0),
        "host.cpu.forks_per_s" => Rate(FORKS, 1.0),
        "host.cpu.procs_running" => Gauge(PROCS_RUNNING, 1.0),
        "host.cpu.procs_blocked" => Gauge(PROCS_BLOCKED, 1.0),
        "host.psi.cpu_some_pct" => Rate(PSI_CPU_SOME, US_PCT),
        "host.psi.cpu_full_pct" => Rate(PSI_CPU_FULL, US_PCT),
        "host.psi.memory_some_pct" => Rate(PSI_MEM_SOME, US_PCT),
        "host.psi.memory_full_pct" => Rate(PSI_MEM_FULL, US_PCT),
        "host.psi.io_some_pct" => Rate(PSI_IO_SOME, US_PCT),
        "host.psi.io_full_pct" => Rate(PSI_IO_FULL, US_PCT),
        "host.mem.total_bytes" => Gauge(MEM_TOTAL, 1024.0),
        "host.mem.free_bytes" => Gauge(MEM_FREE, 1024.0),
        "host.mem.available_bytes" => Gauge(MEM_AVAILABLE, 1024.0),
        "host.mem.buffers_bytes" => Gauge(MEM_BUFFERS, 1024.0),
        "host.mem.cached_bytes" => Gauge(MEM_CACHED, 1024.0),
        "host.mem.dirty_bytes" => Gauge(MEM_DIRTY, 1024.0),
        "host.mem.anon_bytes" => Gauge(MEM_ANON, 1024.0),
        "host.mem.swap_used_bytes" => Gauge(MEM_SWAP_USED, 1024.0),
        "host.vm.pgfault_per_s" => Rate(VM_PGFAULT, 1.0),
        "host.vm.pgmajfault_per_s" => Rate(VM_PGMAJFAULT, 1.0),
        "host.vm.pswpin_per_s" => Rate(VM_PSWPIN, 1.0),
        "host.vm.pswpout_per_s" => Rate(VM_PSWPOUT, 1.0),
        "host.vm.pgscan_per_s" => Rate(VM_PGSCAN, 1.0),
        "host.vm.pgsteal_per_s" => Rate(VM_PGSTEAL, 1.0),
        "host.vm.oom_kill_per_s" => Rate(VM_OOM_KILL, 1.0),
        "host.disk.reads_per_s" => Rate(DISK_READS, 1.0),
        "host.disk.writes_per_s" => Rate(DISK_WRITES, 1.0),
        "host.disk.read_bytes_per_s" => Rate(DISK_READ_BYTES, 1.0),
        "host.disk.write_bytes_per_s" => Rate(DISK_WRITE_BYTES, 1.0),
        "host.disk.io_ticks_pct" => Rate(DISK_IO_TICKS_MS, MS_PCT),
        "host.net.rx_bytes_per_s" => Rate(NET_RX_BYTES, 1.0),
        "host.net.tx_bytes_per_s" => Rate(NET_TX_BYTES, 1.0),
        "host.net.rx_packets_per_s" => Rate(NET_RX_PACKETS, 1.0),
        "host.net.tx_packets_per_s" => Rate(NET_TX_PACKETS, 1.0),
        "host.net.drop_per_s" => Rate(NET_DROP, 1.0),
        _ => return None,
    };
    Some(s)
}

/// Specs for every metric of `cat`, in order; the error names the first unmapped metric.
pub fn tenant_specs(cat: &Catalogue) -> Result<Vec<Spec>, String> {
    cat.metrics()
        .iter()
        .map(|m| tenant_spec(&m.name).ok_or_else(|| m.name.clone()))
        .collect()
}

/// Specs for every host column of `cat`, in order.
pub fn host_specs(cat: &Catalogue) -> Result<Vec<Spec>, String> {
    cat.host_metrics()
        .iter()
        .map(|m| host_spec(&m.name).ok_or_else(|| m.name.clone()))
        .collect()
}

/// Δ of a counter; `None` when either side is missing or the counter went backwards.
#[inline]
pub fn delta(prev: f64, cur: f64) -> Option<f64> {
    if prev.is_nan() || cur.is_nan() || cur < prev {
        None
    } else {
        Some(cur - prev)
    }
}

/// Evaluates a non-jiffies spec. `prev` is `None` on a tenant's first reading.
pub fn eval(spec: Spec, prev: Option<&[f64]>, cur: &[f64], dt_s: f64) -> f32 {
    let v = match spec {
        Spec::Gauge(i, s) => {
            let x = cur[i];
            if x.is_nan() {
                None
            } else {
                Some(x * s)
            }
        }
        Spec::Rate(i, s) => prev
            .and_then(|p| delta(p[i], cur[i]))
            .filter(|_| dt_s > 0.0)
            .map(|d| d / dt_s * s),
        Spec::Ratio(a, b, s) => prev.and_then(|p| {
            let da = delta(p[a], cur[a])?;
            let db = delta(p[b], cur[b])?;
            (db > 0.0).then(|| da / db * s)
        }),
        Spec::Jiffies(_) | Spec::CrossTenant => None,
    };
    match v {
        Some(x) if x.is_finite() => x as f32,
        _ => f32::NAN,
    }
}

#[cfg(test)]
mod tests;
