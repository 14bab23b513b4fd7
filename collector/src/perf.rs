//! perf-event counters per tenant cgroup: one counter per (event, online CPU) in cgroup mode.
//! Software events are always attempted; hardware events only when the start-up probe found a
//! PMU. Kernel events are included (`include_kernel()`): with the crate's default
//! `exclude_kernel=1` context-switches and cpu-migrations would read 0.

use std::fs::File;
use std::path::Path;

use perf_event::events::{Cache, CacheOp, CacheResult, Event, Hardware, Software, WhichCache};
use perf_event::{Builder, Counter};

use crate::specs::raw::*;

/// Software events and the raw slot each feeds.
fn software() -> Vec<(Event, usize)> {
    vec![
        (Software::TASK_CLOCK.into(), PERF_TASK_CLOCK),
        (Software::CONTEXT_SWITCHES.into(), PERF_CS),
        (Software::CPU_MIGRATIONS.into(), PERF_MIGRATIONS),
        (Software::PAGE_FAULTS.into(), PERF_PAGE_FAULTS),
        (Software::PAGE_FAULTS_MAJ.into(), PERF_MAJOR_FAULTS),
    ]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfProbe {
    /// A software counter on this process could be opened.
    pub software: bool,
    /// A hardware cycles counter could be opened (false without a PMU: ENOENT).
    pub hardware: bool,
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
    PerfProbe {
        software: try_open(Software::TASK_CLOCK.into()),
        hardware: try_open(Hardware::CPU_CYCLES.into()),
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

/// A tenant's counters: for each event, one counter per CPU (summed on read).
pub struct TenantPerf {
    events: Vec<(usize, Vec<Counter>)>,
}

impl TenantPerf {
    /// Opens counters on the cgroup directory `dir` (a perf_event cgroup: on hybrid hosts the
    /// v2 directory). Events that fail to open are left out (their columns stay null).
    pub fn open(dir: &Path, probe: PerfProbe, cpus: &[usize]) -> Option<TenantPerf> {
        if !probe.software && !probe.hardware {
            return None;
        }
        let cg = File::open(dir).ok()?;
        let mut list = Vec::new();
        if probe.software {
            list.extend(software());
        }
        if probe.hardware {
            list.extend(hardware());
        }
        let mut events = Vec::new();
        for (ev, slot) in list {
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
                events.push((slot, counters));
            }
        }
        (!events.is_empty()).then_some(TenantPerf { events })
    }

    /// Number of events opened.
    pub fn n_events(&self) -> usize {
        self.events.len()
    }

    /// Writes the cumulative count of each opened event into `raw`.
    pub fn read(&mut self, raw: &mut [f64]) {
        for (slot, counters) in &mut self.events {
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
    }
}
