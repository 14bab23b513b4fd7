use super::*;
use std::sync::mpsc;
use std::time::Duration;

/// Per-thread counters (for tenants without a perf_event cgroup): a thread's task-clock is
/// counted from when it is first listed, and stays in the sums after the thread exits.
#[test]
fn per_thread_counters_follow_threads_and_never_decrease() {
    let Some(mut perf) = TenantPerf::per_thread(probe()) else {
        crate::testing::cannot_run(
            "per_thread_counters_follow_threads_and_never_decrease",
            "perf software events unavailable here",
        );
        return;
    };
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
        go_rx.recv().unwrap();
        // 300 ms of this thread's own CPU time, not of wall time: on a loaded machine a
        // 300-ms wall loop gets less CPU than that, and the counter rightly says so.
        let t0 = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - t0 < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        busy_tx.send(()).unwrap();
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
    busy_rx.recv().unwrap();
    perf.read(&mut raw, &[tid]);
    let busy = raw[PERF_TASK_CLOCK] - start;
    eprintln!("task-clock over the busy 300 ms: {busy} ns");
    assert!(
        (250e6..450e6).contains(&busy),
        "one thread busy for 300 ms of its CPU time: {busy} ns"
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

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
