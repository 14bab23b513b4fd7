//! perf-event counters per tenant cgroup, in cgroup mode on every online CPU. Software events
//! are always attempted, as one group per CPU read with a single `read` (PERF_FORMAT_GROUP);
//! hardware events only when the start-up probe found a PMU, one counter per (event, CPU), since
//! more of them than the PMU has registers would never be scheduled as one group. Kernel events
//! are included: with perf's usual `exclude_kernel=1` context-switches and cpu-migrations would
//! read 0.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::Path;

use perf_event::events::{Cache, CacheOp, CacheResult, Event, Hardware, Software, WhichCache};
use perf_event::{Builder, Counter};

use crate::specs::raw::*;
use crate::topdown::{self, Derive, TopDownEvents};

/// Software events (their `config` under PERF_TYPE_SOFTWARE) and the raw slot each feeds; the
/// first leads the group.
const SOFTWARE: [(u32, usize); 5] = {
    use perf_event_open_sys::bindings as sys;
    [
        (sys::PERF_COUNT_SW_TASK_CLOCK, PERF_TASK_CLOCK),
        (sys::PERF_COUNT_SW_CONTEXT_SWITCHES, PERF_CS),
        (sys::PERF_COUNT_SW_CPU_MIGRATIONS, PERF_MIGRATIONS),
        (sys::PERF_COUNT_SW_PAGE_FAULTS, PERF_PAGE_FAULTS),
        (sys::PERF_COUNT_SW_PAGE_FAULTS_MAJ, PERF_MAJOR_FAULTS),
    ]
};

/// What a software counter watches: a cgroup on one CPU, or one thread on every CPU.
#[derive(Clone, Copy)]
enum Target<'a> {
    Cgroup(&'a File, usize),
    Thread(u32),
}

/// Opens one software counter on `target`, in the group led by `leader` (or as a leader,
/// reading its whole group at once).
fn open_software(config: u32, target: Target, leader: Option<&File>) -> io::Result<File> {
    use perf_event_open_sys::bindings as sys;
    open_counter(sys::PERF_TYPE_SOFTWARE, u64::from(config), target, leader)
}

/// Opens one counter of PMU `type_` and `config` on `target`, in the group led by `leader` (or
/// as a leader, reading its whole group at once), kernel included.
fn open_counter(
    type_: u32,
    config: u64,
    target: Target,
    leader: Option<&File>,
) -> io::Result<File> {
    use perf_event_open_sys::bindings as sys;
    let mut attr = sys::perf_event_attr {
        type_,
        size: std::mem::size_of::<sys::perf_event_attr>() as u32,
        config,
        read_format: u64::from(sys::PERF_FORMAT_GROUP),
        ..Default::default()
    };
    attr.set_exclude_hv(1);
    let (pid, cpu, flags) = match target {
        Target::Cgroup(cg, cpu) => (
            cg.as_raw_fd(),
            i32::try_from(cpu).map_err(|_| io::Error::other("CPU number out of range"))?,
            sys::PERF_FLAG_PID_CGROUP | sys::PERF_FLAG_FD_CLOEXEC,
        ),
        Target::Thread(tid) => (
            i32::try_from(tid).map_err(|_| io::Error::other("thread id out of range"))?,
            -1,
            sys::PERF_FLAG_FD_CLOEXEC,
        ),
    };
    let group = leader.map_or(-1, |l| l.as_raw_fd());
    // SAFETY: `attr` is a valid, fully initialised perf_event_attr whose `size` is its own size;
    // the cgroup and group descriptors are open for the duration of the call.
    let fd =
        unsafe { perf_event_open_sys::perf_event_open(&mut attr, pid, cpu, group, flags as _) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as RawFd) })
}

/// Counters read as one perf group (one `read` for all): a tenant's software events on one
/// CPU, a thread's software events, or a tenant's Top-Down events on one CPU.
struct CounterGroup {
    /// The leader first; every member stays open as long as the group is read.
    fds: Vec<File>,
    buf: Vec<u8>,
}

impl CounterGroup {
    /// Reads the group: the count of each member in opening order.
    fn read(&mut self) -> io::Result<impl Iterator<Item = u64> + '_> {
        let n = self.buf.len();
        // perf descriptors are not seekable: read(2), not pread(2).
        if (&self.fds[0]).read(&mut self.buf)? != n {
            return Err(io::Error::other("short perf group read"));
        }
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        if word(&self.buf[..8]) != self.fds.len() as u64 {
            return Err(io::Error::other("perf group changed size"));
        }
        Ok(self.buf[8..].chunks_exact(8).map(word))
    }
}

impl CounterGroup {
    /// Opens the events `configs` of PMU `type_` on `target` as one group, the first leading;
    /// fails when any of them cannot be opened (ESRCH once a thread has exited).
    fn open(
        type_: u32,
        configs: impl ExactSizeIterator<Item = u64>,
        target: Target,
    ) -> io::Result<CounterGroup> {
        let mut fds: Vec<File> = Vec::with_capacity(configs.len());
        for config in configs {
            let fd = open_counter(type_, config, target, fds.first())?;
            fds.push(fd);
        }
        Ok(CounterGroup {
            buf: vec![0; 8 * (1 + fds.len())],
            fds,
        })
    }

    /// Every software event on the thread `tid` (all CPUs), as one group.
    fn open_thread(tid: u32) -> io::Result<CounterGroup> {
        use perf_event_open_sys::bindings as sys;
        let configs = SOFTWARE.iter().map(|&(config, _)| u64::from(config));
        CounterGroup::open(sys::PERF_TYPE_SOFTWARE, configs, Target::Thread(tid))
    }

    /// The five Top-Down events of `ev` on `target`, as one group.
    fn open_topdown(ev: &TopDownEvents, target: Target) -> io::Result<CounterGroup> {
        CounterGroup::open(ev.pmu_type, ev.configs.into_iter(), target)
    }
}

/// Adds each group's counts into `sums` (in member order); false, with `sums` partial, when a
/// group could not be read.
fn sum_groups(groups: &mut [CounterGroup], sums: &mut [u64]) -> bool {
    for g in groups {
        match g.read() {
            Ok(counts) => {
                for (s, c) in sums.iter_mut().zip(counts) {
                    *s += c;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// One thread's counters and their last successful read.
struct Tracked {
    group: CounterGroup,
    last: [u64; SOFTWARE.len()],
    /// The tick at which the thread was last listed in the tenant.
    seen: u64,
}

/// The software counters of a tenant that has no perf_event cgroup: a tenant that exists only in
/// cgroup v1 hierarchies on a host whose perf_event controller is bound to v2 (or not mounted),
/// such as a container made by a cgroupfs-driver runtime on a hybrid host. One group per thread
/// (pid = tid, every CPU), opened when the thread is first listed in the tenant's `tasks`; a
/// thread that leaves (exits or moves out) adds its last counts to `retired`, so the tenant's
/// sums never decrease. What runs before a thread is first listed (under a second) and threads
/// that live less than a tick are not counted.
struct PerThread {
    threads: HashMap<u32, Tracked>,
    retired: [u64; SOFTWARE.len()],
    tick: u64,
    /// Whether running out of descriptors was reported.
    warned: bool,
}

impl PerThread {
    /// Follows the tenant's threads `tids` (opening the new ones, retiring the gone) and
    /// returns the tenant's cumulative count of each software event.
    fn update(&mut self, tids: &[u32]) -> [u64; SOFTWARE.len()] {
        self.tick += 1;
        let tick = self.tick;
        let mut out_of_fds = false;
        for &tid in tids {
            if let Some(t) = self.threads.get_mut(&tid) {
                t.seen = tick;
                continue;
            }
            if out_of_fds {
                continue;
            }
            match CounterGroup::open_thread(tid) {
                Ok(group) => {
                    let t = Tracked {
                        group,
                        last: [0; SOFTWARE.len()],
                        seen: tick,
                    };
                    self.threads.insert(tid, t);
                }
                // Out of descriptors: the counts are short from here on; say so once and stop
                // opening for this tick (the threads already followed stay followed).
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if !self.warned {
                        self.warned = true;
                        tracing::warn!(
                            "perf per-thread counters: {e} at {} threads; the tenant's perf \
                             counts miss the threads beyond (raise the open-file limit)",
                            self.threads.len()
                        );
                    }
                    out_of_fds = true;
                }
                // Most often the thread exited between the listing and now.
                Err(e) => tracing::debug!("perf software events on thread {tid}: {e}"),
            }
        }
        let mut sums = self.retired;
        let retired = &mut self.retired;
        self.threads.retain(|_, t| {
            if let Ok(counts) = t.group.read() {
                for (l, c) in t.last.iter_mut().zip(counts) {
                    // An exited thread reads its final counts; never step backwards.
                    *l = (*l).max(c);
                }
            }
            for (s, l) in sums.iter_mut().zip(t.last) {
                *s += l;
            }
            let listed = t.seen == tick;
            if !listed {
                for (r, l) in retired.iter_mut().zip(t.last) {
                    *r += l;
                }
            }
            listed
        });
        sums
    }
}

/// Opens the software group of the cgroup `cg` on each CPU. A member event that cannot be
/// opened on every CPU is left out on all of them (its column stays null); `None` when even the
/// leader cannot be opened everywhere.
fn open_software_groups(cg: &File, cpus: &[usize]) -> Option<(Vec<CounterGroup>, Vec<usize>)> {
    let (leader_config, leader_slot) = SOFTWARE[0];
    let mut groups = Vec::with_capacity(cpus.len());
    for &cpu in cpus {
        match open_software(leader_config, Target::Cgroup(cg, cpu), None) {
            Ok(fd) => groups.push(CounterGroup {
                fds: vec![fd],
                buf: Vec::new(),
            }),
            Err(e) => {
                tracing::debug!("perf software group leader on cpu {cpu}: {e}");
                return None;
            }
        }
    }
    let mut slots = vec![leader_slot];
    for &(config, slot) in &SOFTWARE[1..] {
        let opened: io::Result<Vec<File>> = groups
            .iter()
            .zip(cpus)
            .map(|(g, &cpu)| open_software(config, Target::Cgroup(cg, cpu), Some(&g.fds[0])))
            .collect();
        match opened {
            Ok(fds) => {
                for (g, fd) in groups.iter_mut().zip(fds) {
                    g.fds.push(fd);
                }
                slots.push(slot);
            }
            // The members opened on other CPUs were closed (and so left their groups) when
            // the partial result was dropped.
            Err(e) => tracing::debug!("perf software event {config}: {e}"),
        }
    }
    for g in &mut groups {
        g.buf = vec![0; 8 * (1 + g.fds.len())];
    }
    Some((groups, slots))
}

fn cache(which: WhichCache, result: CacheResult) -> Event {
    Cache {
        which,
        operation: CacheOp::READ,
        result,
    }
    .into()
}

/// Hardware events and the raw slot each feeds.
fn hardware() -> Vec<(Event, usize)> {
    vec![
        (Hardware::CPU_CYCLES.into(), PERF_CYCLES),
        (Hardware::INSTRUCTIONS.into(), PERF_INSTRUCTIONS),
        (Hardware::REF_CPU_CYCLES.into(), PERF_REF_CYCLES),
        (Hardware::BRANCH_INSTRUCTIONS.into(), PERF_BRANCHES),
        (Hardware::BRANCH_MISSES.into(), PERF_BRANCH_MISSES),
        (Hardware::CACHE_REFERENCES.into(), PERF_CACHE_REFS),
        (Hardware::CACHE_MISSES.into(), PERF_CACHE_MISSES),
        (cache(WhichCache::LL, CacheResult::ACCESS), PERF_LLC_LOADS),
        (
            cache(WhichCache::LL, CacheResult::MISS),
            PERF_LLC_LOAD_MISSES,
        ),
        (
            cache(WhichCache::L1D, CacheResult::MISS),
            PERF_L1D_LOAD_MISSES,
        ),
        (
            cache(WhichCache::DTLB, CacheResult::MISS),
            PERF_DTLB_LOAD_MISSES,
        ),
        (Hardware::STALLED_CYCLES_FRONTEND.into(), PERF_STALLED_FE),
        (Hardware::STALLED_CYCLES_BACKEND.into(), PERF_STALLED_BE),
    ]
}

/// Result of the start-up probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfProbe {
    /// A software counter on this process could be opened.
    pub software: bool,
    /// A hardware cycles counter could be opened (false without a PMU: ENOENT).
    pub hardware: bool,
    /// Top-Down events the core PMU announces, and which opened as a group on this process.
    pub topdown: Option<TopDownEvents>,
}

impl PerfProbe {
    /// No perf counters at all (`--no-perf`).
    pub fn none() -> PerfProbe {
        PerfProbe {
            software: false,
            hardware: false,
            topdown: None,
        }
    }
}

/// The Top-Down events announced under `pmus` (see [`topdown::find`]) that open as a group on
/// this thread; `None` (logged) otherwise.
pub fn probe_topdown(pmus: &Path) -> Option<TopDownEvents> {
    let ev = match topdown::find(pmus) {
        Ok(Some(ev)) => ev,
        Ok(None) => {
            tracing::debug!(
                "perf probe: no Top-Down events announced under {}",
                pmus.display()
            );
            return None;
        }
        Err(e) => {
            tracing::warn!("perf probe: Top-Down events not usable: {e}");
            return None;
        }
    };
    match CounterGroup::open_topdown(&ev, Target::Thread(0)) {
        Ok(_) => Some(ev),
        Err(e) => {
            tracing::info!(
                "perf probe: Top-Down events ({:?}) do not open: {e}",
                ev.flavour
            );
            None
        }
    }
}

/// Probes perf support by opening counters on this process.
pub fn probe() -> PerfProbe {
    let try_open = |ev: Event| -> bool {
        let label = format!("{ev:?}");
        let mut b = Builder::new().kind(ev);
        b.include_kernel();
        match b.build() {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!("perf probe {label}: {e}");
                false
            }
        }
    };
    let hardware = try_open(Hardware::CPU_CYCLES.into());
    PerfProbe {
        software: try_open(Software::TASK_CLOCK.into()),
        hardware,
        // Top-Down events are core PMU events: none without one.
        topdown: if hardware {
            probe_topdown(Path::new(topdown::SYSFS_PMUS))
        } else {
            None
        },
    }
}

/// Online CPUs (`/sys/devices/system/cpu/online`, e.g. `0-3,6`).
pub fn online_cpus() -> Vec<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let mut it = part.split('-');
        let a = it.next().and_then(|x| x.parse::<usize>().ok());
        let b = it.next().and_then(|x| x.parse::<usize>().ok());
        match (a, b) {
            (Some(a), Some(b)) if b >= a => v.extend(a..=b),
            (Some(a), None) => v.push(a),
            _ => {}
        }
    }
    if v.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        v.extend(0..n);
    }
    v
}

/// A tenant's counters: the software group on each CPU, and for each hardware event one counter
/// per CPU (summed on read).
pub struct TenantPerf {
    software: Vec<CounterGroup>,
    /// The raw slot of each software group member, in group order.
    software_slots: Vec<usize>,
    hardware: Vec<(usize, Vec<Counter>)>,
    sums: Vec<u64>,
    /// Set for a tenant without a perf_event cgroup: software events per thread.
    per_thread: Option<PerThread>,
    /// The Top-Down group on each CPU, its events and the state that derives the categories.
    topdown: Option<(TopDownEvents, Vec<CounterGroup>, Derive)>,
}

impl TenantPerf {
    /// Opens counters on the cgroup directory `dir` (a perf_event cgroup: on hybrid hosts the
    /// v2 directory). Events that fail to open are left out (their columns stay null).
    pub fn open(dir: &Path, probe: PerfProbe, cpus: &[usize]) -> Option<TenantPerf> {
        if !probe.software && !probe.hardware {
            return None;
        }
        let cg = File::open(dir).ok()?;
        let (software, software_slots) = if probe.software {
            open_software_groups(&cg, cpus).unwrap_or_default()
        } else {
            Default::default()
        };
        let hardware_events = if probe.hardware {
            hardware()
        } else {
            Vec::new()
        };
        let mut hardware = Vec::new();
        for (ev, slot) in hardware_events {
            let mut counters = Vec::with_capacity(cpus.len());
            for &cpu in cpus {
                let mut b = Builder::new()
                    .kind(ev.clone())
                    .observe_cgroup(&cg)
                    .one_cpu(cpu);
                b.include_kernel();
                match b.build().and_then(|mut c| c.enable().map(|_| c)) {
                    Ok(c) => counters.push(c),
                    Err(e) => {
                        tracing::debug!("perf {ev:?} on {} cpu {cpu}: {e}", dir.display());
                        counters.clear();
                        break;
                    }
                }
            }
            if !counters.is_empty() {
                hardware.push((slot, counters));
            }
        }
        let topdown = probe.topdown.and_then(|ev| {
            let groups: io::Result<Vec<CounterGroup>> = cpus
                .iter()
                .map(|&cpu| CounterGroup::open_topdown(&ev, Target::Cgroup(&cg, cpu)))
                .collect();
            groups
                .map_err(|e| tracing::debug!("perf Top-Down on {}: {e}", dir.display()))
                .ok()
                .map(|g| (ev, g, Derive::default()))
        });
        let sums = vec![0; software_slots.len()];
        (!software_slots.is_empty() || !hardware.is_empty() || topdown.is_some()).then_some(
            TenantPerf {
                software,
                software_slots,
                hardware,
                sums,
                per_thread: None,
                topdown,
            },
        )
    }

    /// Software counters for a tenant that has no perf_event cgroup, counted per thread (see
    /// [`PerThread`]); `None` when the probe found no software events. Hardware events are not
    /// opened this way (one counter per thread and event would not fit the PMU's registers).
    pub fn per_thread(probe: PerfProbe) -> Option<TenantPerf> {
        probe.software.then(|| TenantPerf {
            software: Vec::new(),
            software_slots: SOFTWARE.iter().map(|&(_, slot)| slot).collect(),
            hardware: Vec::new(),
            sums: Vec::new(),
            per_thread: Some(PerThread {
                threads: HashMap::new(),
                retired: [0; SOFTWARE.len()],
                tick: 0,
                warned: false,
            }),
            topdown: None,
        })
    }

    /// Whether the counters follow the tenant's threads, so [`TenantPerf::read`] needs them.
    pub fn is_per_thread(&self) -> bool {
        self.per_thread.is_some()
    }

    /// Threads followed now (0 for cgroup counters).
    pub fn n_threads(&self) -> usize {
        self.per_thread.as_ref().map_or(0, |p| p.threads.len())
    }

    /// Number of events opened.
    pub fn n_events(&self) -> usize {
        let topdown = self
            .topdown
            .as_ref()
            .map_or(0, |(ev, _, _)| ev.configs.len());
        self.software_slots.len() + self.hardware.len() + topdown
    }

    /// Writes the cumulative count of each opened event into `raw` (summed over the CPUs, or
    /// over the threads `tids` for per-thread counters; left as it was where a read failed).
    pub fn read(&mut self, raw: &mut [f64], tids: &[u32]) {
        if let Some(p) = self.per_thread.as_mut() {
            let sums = p.update(tids);
            for (&slot, sum) in self.software_slots.iter().zip(sums) {
                raw[slot] = sum as f64;
            }
            return;
        }
        self.sums.fill(0);
        if !self.software.is_empty() && sum_groups(&mut self.software, &mut self.sums) {
            for (&slot, &sum) in self.software_slots.iter().zip(&self.sums) {
                raw[slot] = sum as f64;
            }
        }
        for (slot, counters) in &mut self.hardware {
            let mut sum = 0u64;
            let mut ok = true;
            for c in counters.iter_mut() {
                match c.read() {
                    Ok(v) => sum += v,
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                raw[*slot] = sum as f64;
            }
        }
        if let Some((ev, groups, derive)) = self.topdown.as_mut() {
            let mut sums = [0u64; 5];
            if sum_groups(groups, &mut sums) {
                let cats = derive.update(ev, sums);
                for (slot, v) in TOPDOWN_SLOTS.into_iter().zip(cats) {
                    raw[slot] = v;
                }
            }
        }
    }
}

/// The raw slots of the Top-Down categories, in [`Derive::update`]'s order.
const TOPDOWN_SLOTS: [usize; 5] = [TD_SLOTS, TD_RETIRING, TD_BAD_SPEC, TD_FE_BOUND, TD_BE_BOUND];

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Per-thread counters (for tenants without a perf_event cgroup): a thread's task-clock is
    /// counted from when it is first listed, and stays in the sums after the thread exits.
    #[test]
    fn per_thread_counters_follow_threads_and_never_decrease() {
        let Some(mut perf) = TenantPerf::per_thread(probe()) else {
            eprintln!("SKIP per_thread_counters: perf software events unavailable here");
            return;
        };
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (end_tx, end_rx) = mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            go_rx.recv().unwrap();
            let t0 = Instant::now();
            let mut x = 0u64;
            while t0.elapsed() < Duration::from_millis(300) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            end_rx.recv().unwrap();
            x
        });
        let tid: u32 = tid_rx.recv().unwrap();
        let mut raw = vec![f64::NAN; N_RAW];
        perf.read(&mut raw, &[tid]);
        assert_eq!(perf.n_threads(), 1, "the listed thread is followed");
        let start = raw[PERF_TASK_CLOCK];
        assert!(start < 50e6, "counted from its opening: {start} ns");
        go_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(450));
        perf.read(&mut raw, &[tid]);
        let busy = raw[PERF_TASK_CLOCK] - start;
        eprintln!("task-clock over the busy 300 ms: {busy} ns");
        assert!(
            (250e6..450e6).contains(&busy),
            "one busy thread for 300 ms: {busy} ns"
        );
        assert!(raw[PERF_CS] >= 1.0, "context switches: {}", raw[PERF_CS]);
        end_tx.send(()).unwrap();
        worker.join().unwrap();
        // The thread is gone: its counts stay (retired), nothing is followed any more.
        let before = raw[PERF_TASK_CLOCK];
        perf.read(&mut raw, &[]);
        assert_eq!(perf.n_threads(), 0);
        assert!(raw[PERF_TASK_CLOCK] >= before, "never decreases");
        let after = raw[PERF_TASK_CLOCK];
        perf.read(&mut raw, &[tid]);
        assert_eq!(raw[PERF_TASK_CLOCK], after, "an exited thread adds nothing");
    }
}
