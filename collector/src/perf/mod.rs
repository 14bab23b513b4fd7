//! perf-event counters per tenant cgroup, in cgroup mode on every online CPU. Software events
//! are always attempted, as one group per CPU read with a single `read` (PERF_FORMAT_GROUP);
//! hardware events only when the start-up probe found a PMU, one counter per (event, CPU), since
//! more of them than the PMU has registers would never be scheduled as one group. Kernel events
//! are included: with perf's usual `exclude_kernel=1` context-switches and cpu-migrations would
//! read 0.

use std::fs::File;
use std::io;
use std::path::Path;

use perf_event::events::{Event, Hardware, Software};
use perf_event::{Builder, Counter};

use crate::specs::raw::*;
use crate::topdown::{self, Derive, TopDownEvents};

mod group;
mod threads;

use group::{hardware, open_counter, open_software_groups, sum_groups, CounterGroup};
use threads::PerThread;

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
    let mut v = Vec::new();
    let read = std::fs::read("/sys/devices/system/cpu/online").unwrap_or_default();
    if !crate::parse::parse_cpu_list(&read, &mut v) {
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
            per_thread: Some(PerThread::new()),
            topdown: None,
        })
    }

    /// Whether the counters follow the tenant's threads, so [`TenantPerf::read`] needs them.
    pub fn is_per_thread(&self) -> bool {
        self.per_thread.is_some()
    }

    /// Threads followed now (0 for cgroup counters).
    pub fn n_threads(&self) -> usize {
        self.per_thread.as_ref().map_or(0, PerThread::n_threads)
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
mod tests;
