//! Per-thread software counters for tenants without a perf_event cgroup.

use std::collections::HashMap;

use super::group::CounterGroup;
use super::SOFTWARE;

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
pub(super) struct PerThread {
    threads: HashMap<u32, Tracked>,
    retired: [u64; SOFTWARE.len()],
    tick: u64,
    /// Whether running out of descriptors was reported.
    warned: bool,
}

impl PerThread {
    /// Follows no thread yet.
    pub(super) fn new() -> Self {
        PerThread {
            threads: HashMap::new(),
            retired: [0; SOFTWARE.len()],
            tick: 0,
            warned: false,
        }
    }

    /// Threads followed now.
    pub(super) fn n_threads(&self) -> usize {
        self.threads.len()
    }

    /// Follows the tenant's threads `tids` (opening the new ones, retiring the gone) and
    /// returns the tenant's cumulative count of each software event.
    pub(super) fn update(&mut self, tids: &[u32]) -> [u64; SOFTWARE.len()] {
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
