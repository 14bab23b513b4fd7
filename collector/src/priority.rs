//! The sampling thread's CPU priority.
//!
//! The agent stamps every row with the second it was due; a tick that wakes late samples every
//! tenant late. On a busy host a woken thread waits behind the task running on its CPU: the
//! kernel's EEVDF scheduler lets the current task run to the end of its time slice ("run to
//! parity") unless the woken task asks for a shorter one, so the wake-up can slip to the next
//! scheduler tick (4 ms at HZ = 250). That was the agent's p99 tick lateness: 5.6 ms with 8
//! light tenants and three other agents waking at the same whole second on 2 CPUs, at nice 0 and
//! at nice -5 alike. So the thread that samples asks for
//! - a short time slice ([`SAMPLER_SLICE_NS`], `sched_setattr`'s `sched_runtime` for a fair
//!   task, kernels ≥ 6.12): a woken task with a shorter slice than the running one preempts it
//!   (the scheduler's PREEMPT_SHORT); older kernels ignore it;
//! - and a higher weight (nice -5 by default): more CPU when it contends, for its ~2 ms a second.
//!
//! The Parquet writer thread keeps the process's own values: encoding a row group is not urgent,
//! and should not take CPU from tenants at a boost. On Linux both belong to a thread: changing
//! them for one thread leaves the others, and threads created afterwards inherit them.

use std::io;

/// The sampling thread's time slice: shorter than the default of fair tasks (0.75 ms × (1 +
/// log2 CPUs), ≥ 1.5 ms on 2 CPUs) so that its wake-up preempts them.
pub const SAMPLER_SLICE_NS: u64 = 500_000;

/// The calling thread's kernel id.
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER0, without utilisation clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

fn get_attr(tid: i32) -> io::Result<SchedAttr> {
    let mut a = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
    // SAFETY: `a` is a writable sched_attr of `size` bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            tid,
            &mut a as *mut SchedAttr,
            size,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(a)
}

fn set_attr(tid: i32, a: &SchedAttr) -> io::Result<()> {
    let mut a = *a;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a valid sched_attr with its size set.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &a as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The nice value of thread `tid` (0: the calling thread).
pub fn nice_of(tid: i32) -> io::Result<i32> {
    Ok(get_attr(tid)?.nice)
}

/// The time slice the scheduler reports for thread `tid` (0: the calling thread), in ns; 0 where
/// the kernel does not report one (before 6.12).
pub fn slice_of(tid: i32) -> io::Result<u64> {
    Ok(get_attr(tid)?.runtime)
}

/// A thread's nice value and slice while a guard lives; the previous nice value and the default
/// slice come back on drop.
pub struct SchedGuard {
    tid: i32,
    before: SchedAttr,
}

impl SchedGuard {
    /// Gives the calling thread nice value `nice` and a time slice of `slice_ns` (0: the
    /// default). Only for a normal (SCHED_OTHER) thread; an error says why it could not.
    /// Raising priority (a lower nice value) needs root or CAP_SYS_NICE.
    pub fn set(nice: i32, slice_ns: u64) -> io::Result<SchedGuard> {
        let tid = thread_id();
        let before = get_attr(tid)?;
        if before.policy != libc::SCHED_OTHER as u32 {
            return Err(io::Error::other(format!(
                "the thread has scheduling policy {} (not SCHED_OTHER): left as it is",
                before.policy
            )));
        }
        let want = SchedAttr {
            nice,
            runtime: slice_ns,
            ..SchedAttr::default()
        };
        set_attr(tid, &want)?;
        Ok(SchedGuard { tid, before })
    }

    /// The nice value before the guard.
    pub fn before(&self) -> i32 {
        self.before.nice
    }
}

impl Drop for SchedGuard {
    fn drop(&mut self) {
        // The earlier nice value (lowering priority is always allowed) and the default slice.
        let restore = SchedAttr {
            nice: self.before.nice,
            ..SchedAttr::default()
        };
        let _ = set_attr(self.tid, &restore);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn nice_is_per_thread_inherited_and_restored() {
        if !is_root() {
            // An unprivileged thread may lower its priority but not raise it back.
            eprintln!("skipped: raising a thread's priority needs root or CAP_SYS_NICE");
            return;
        }
        let main_before = nice_of(0).unwrap();
        let target = if main_before == -5 { -6 } else { -5 };
        let (before, inside, slice, child, after, slice_after) = std::thread::spawn(move || {
            let g =
                SchedGuard::set(target, SAMPLER_SLICE_NS).expect("sched_setattr on this thread");
            let inside = nice_of(0).unwrap();
            let slice = slice_of(0).unwrap();
            // A thread created now inherits the raised priority.
            let child = std::thread::spawn(|| nice_of(0).unwrap()).join().unwrap();
            let before = g.before();
            drop(g);
            (
                before,
                inside,
                slice,
                child,
                nice_of(0).unwrap(),
                slice_of(0).unwrap(),
            )
        })
        .join()
        .unwrap();
        assert_eq!(
            before, main_before,
            "a new thread inherits its creator's nice"
        );
        assert_eq!(inside, target);
        assert_eq!(child, target, "threads created while raised inherit it");
        assert_eq!(after, main_before, "the guard restores the earlier value");
        // Kernels ≥ 6.12 report the slice of a fair task (0 before).
        if slice != 0 {
            assert_eq!(slice, SAMPLER_SLICE_NS);
            assert_ne!(slice_after, SAMPLER_SLICE_NS, "back to the default slice");
        }
        assert_eq!(
            nice_of(0).unwrap(),
            main_before,
            "other threads are untouched"
        );
        let tid = thread_id();
        assert_eq!(nice_of(tid).unwrap(), main_before, "by tid as by 0");
    }
}
