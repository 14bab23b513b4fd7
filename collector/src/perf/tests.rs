use super::*;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
