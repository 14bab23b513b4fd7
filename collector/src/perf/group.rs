//! perf groups: counters opened together and read with one `read`, and the event lists.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use perf_event::events::{Cache, CacheOp, CacheResult, Event, Hardware, WhichCache};

use super::{open_software, Target, SOFTWARE};
use crate::specs::raw::*;
use crate::topdown::TopDownEvents;

/// Opens one counter of PMU `type_` and `config` on `target`, in the group led by `leader` (or
/// as a leader, reading its whole group at once), kernel included.
pub(super) fn open_counter(
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
pub(super) struct CounterGroup {
    /// The leader first; every member stays open as long as the group is read.
    fds: Vec<File>,
    buf: Vec<u8>,
}

impl CounterGroup {
    /// Reads the group: the count of each member in opening order.
    pub(super) fn read(&mut self) -> io::Result<impl Iterator<Item = u64> + '_> {
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
    pub(super) fn open(
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
    pub(super) fn open_thread(tid: u32) -> io::Result<CounterGroup> {
        use perf_event_open_sys::bindings as sys;
        let configs = SOFTWARE.iter().map(|&(config, _)| u64::from(config));
        CounterGroup::open(sys::PERF_TYPE_SOFTWARE, configs, Target::Thread(tid))
    }

    /// The five Top-Down events of `ev` on `target`, as one group.
    pub(super) fn open_topdown(ev: &TopDownEvents, target: Target) -> io::Result<CounterGroup> {
        CounterGroup::open(ev.pmu_type, ev.configs.into_iter(), target)
    }
}

/// Adds each group's counts into `sums` (in member order); false, with `sums` partial, when a
/// group could not be read.
pub(super) fn sum_groups(groups: &mut [CounterGroup], sums: &mut [u64]) -> bool {
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

/// Opens the software group of the cgroup `cg` on each CPU. A member event that cannot be
/// opened on every CPU is left out on all of them (its column stays null); `None` when even the
/// leader cannot be opened everywhere.
pub(super) fn open_software_groups(
    cg: &File,
    cpus: &[usize],
) -> Option<(Vec<CounterGroup>, Vec<usize>)> {
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
pub(super) fn hardware() -> Vec<(Event, usize)> {
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
