//! End-to-end: real cgroups running real load, `cloudformer collect` as a process, Parquet read
//! back. Needs root, a cgroup hierarchy and stress-ng (CI installs them); fails naming what
//! is missing otherwise (`collector::testing::cannot_run`).

mod common;

use std::time::Duration;

use common::{bin, skip_reason, Tenants};

use dataset::catalogue::Catalogue;
use dataset::samples::{self, Filter};

#[test]
fn collect_two_real_tenants_for_ten_seconds() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run("collect_two_real_tenants_for_ten_seconds", &why);
        return;
    }
    let prefix = format!("cf-e2e-{}", std::process::id());
    let sysbench = std::process::Command::new("sysbench")
        .arg("--version")
        .output()
        .is_ok();
    let b_load = if sysbench {
        "sysbench cpu --threads=1 --time=60 run"
    } else {
        "stress-ng --vm 1 --vm-bytes 64M --timeout 60s"
    };
    let tenants = Tenants::start(
        &prefix,
        &[
            ("a", "stress-ng --cpu 1 --cpu-load 60 --timeout 60s"),
            ("b", b_load),
        ],
    );
    let out = collect_for(&prefix, "10s");
    drop(tenants);

    let segs = samples::list_segments(out.path()).unwrap();
    assert_eq!(segs.len(), 1, "{segs:?}");
    let rel = segs[0]
        .strip_prefix(out.path())
        .unwrap()
        .display()
        .to_string();
    assert!(rel.starts_with("host="), "{rel}");
    assert!(rel.contains("/date="), "{rel}");
    let meta = samples::read_meta(&segs[0]).unwrap();
    let cat = Catalogue::builtin();
    assert_eq!(meta.catalogue_hash, cat.hash());
    let hw = meta.availability.get("perf.hw").copied();
    assert!(
        hw.is_some(),
        "availability map lists perf.hw: {:?}",
        meta.availability
    );

    let df = samples::read_samples(out.path(), &Filter::default()).unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, samples::column_names(cat));
    let feat: Vec<&String> = names
        .iter()
        .filter(|n| cat.feature_names().contains(n))
        .collect();
    // The paper's layout: every metric of the tenant, then its neighbours' mean of each (103
    // metrics in the paper, 107 here with Top-Down).
    assert_eq!(feat.len(), 2 * cat.n_metrics());
    assert!(cat.n_metrics() >= 103, "{} metrics", cat.n_metrics());

    let a = format!("{prefix}/a");
    let b = format!("{prefix}/b");
    let ma = samples::tenant_matrix(&df, &a, cat).unwrap();
    let mb = samples::tenant_matrix(&df, &b, cat).unwrap();
    eprintln!("rows: a {} b {}, total {}", ma.t, mb.t, df.height());
    assert!(
        (9..=11).contains(&ma.t),
        "one row per second for ~10 s: {}",
        ma.t
    );
    assert_eq!(df.height(), ma.t + mb.t, "only our two tenants");
    // One row per tenant per second, on the same grid.
    assert_eq!(ma.ts_ns, mb.ts_ns);
    for w in ma.ts_ns.windows(2) {
        let d = w[1] - w[0];
        assert!(
            (900_000_000..=2_100_000_000).contains(&d),
            "tick spacing {d} ns"
        );
    }
    let usage = cat.index_of("cpu.usage_pct").unwrap();
    let n = cat.n_metrics();
    assert!(ma.row(0)[usage].is_nan(), "first row of a counter is null");
    let mean_a: f32 = (1..ma.t).map(|i| ma.row(i)[usage]).sum::<f32>() / (ma.t - 1) as f32;
    eprintln!("tenant a cpu.usage_pct mean {mean_a}");
    assert!(mean_a > 20.0, "stress-ng at 60 % shows up: {mean_a}");
    // Software perf counters (one group per CPU, read at once): the tenant's task-clock is its
    // CPU time, so it agrees with the cgroup's usage, and every event has a value after row 0.
    if meta.availability.get("perf.sw") == Some(&true) {
        assert_software_perf(&ma, cat, "a");
        assert_software_perf(&mb, cat, "b");
    }
    // Neighbour means: with two tenants, nbr.x(a) == x(b) at the same second.
    let mut compared = 0;
    for i in 0..ma.t {
        for j in 0..n {
            let (x, y) = (ma.row(i)[n + j], mb.row(i)[j]);
            assert!(
                (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-3 * y.abs().max(1.0),
                "row {i} {}: nbr(a) {x} vs b {y}",
                cat.metrics()[j].name
            );
            compared += usize::from(!x.is_nan());
        }
    }
    assert!(compared > 100, "neighbour means compared: {compared}");
    // Hardware counters: null (never 0) when the PMU is absent; Top-Down too, when the probe
    // found no Top-Down events.
    for name in ["perf.cycles_per_s", "perf.instructions_per_s", "perf.ipc"] {
        let c = df.column(name).unwrap();
        if hw == Some(false) {
            assert_eq!(
                c.null_count(),
                df.height(),
                "{name} must be null without a PMU"
            );
        }
    }
    let td = meta.availability.get("perf.topdown").copied();
    assert!(td.is_some(), "availability lists perf.topdown");
    assert!(
        hw == Some(true) || td == Some(false),
        "no Top-Down without a PMU"
    );
    for m in cat.metrics().iter().filter(|m| m.family == "perf.topdown") {
        let c = df.column(&m.name).unwrap();
        if td == Some(false) {
            assert_eq!(c.null_count(), df.height(), "{} must be null", m.name);
        } else {
            // With a PMU, every row after the first has a share in [0, 1].
            let v = c.f32().unwrap();
            let ok = v
                .iter()
                .skip(2)
                .all(|x| x.is_some_and(|x| (0.0..=1.0).contains(&x)));
            assert!(ok, "{}: a share in [0, 1] after the first rows", m.name);
        }
    }
}

#[test]
fn kill_9_leaves_completed_segments_readable() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run("kill_9_leaves_completed_segments_readable", &why);
        return;
    }
    let prefix = format!("cf-k9-{}", std::process::id());
    let tenants = Tenants::start(
        &prefix,
        &[("a", "stress-ng --cpu 1 --cpu-load 30 --timeout 60s")],
    );
    let out = tempfile::tempdir().unwrap();
    let glob = format!("{prefix}/*");
    let mut child = bin()
        .args(["--quiet", "collect", "--out"])
        .arg(out.path())
        .args(["--tenants", &glob, "--segment", "3s"])
        .spawn()
        .expect("spawn collect");
    std::thread::sleep(Duration::from_millis(8_500));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();

    let segs = samples::list_segments(out.path()).unwrap();
    assert!(
        !segs.is_empty(),
        "at least one 3 s segment closed before the kill: {segs:?}"
    );
    let mut rows = 0;
    for s in &segs {
        let m = samples::read_meta(s).unwrap_or_else(|e| panic!("{}: {e}", s.display()));
        assert_eq!(m.catalogue_hash, Catalogue::builtin().hash());
        rows += samples::row_group_sizes(s).unwrap().iter().sum::<usize>();
    }
    let df = samples::read_samples(out.path(), &Filter::default()).unwrap();
    assert_eq!(
        df.height(),
        rows,
        "the reader ignores the open *.partial segment"
    );
    assert!(rows >= 2, "{rows}");

    // A restart starts a new segment and leaves the old ones intact.
    let st = bin()
        .args(["--quiet", "collect", "--out"])
        .arg(out.path())
        .args(["--tenants", &glob, "--duration", "3s", "--segment", "3s"])
        .status()
        .unwrap();
    assert!(st.success());
    drop(tenants);
    let after = samples::list_segments(out.path()).unwrap();
    assert!(after.len() > segs.len(), "{after:?}");
    for s in &segs {
        assert!(after.contains(s));
    }
    let df2 = samples::read_samples(out.path(), &Filter::default()).unwrap();
    assert!(df2.height() > rows);
}

/// A tenant made while the agent runs is collected from the next second or so (discovery hears
/// of new cgroups from inotify; its own listing runs only every 30 s), and the processes'
/// schedstat (from taskstats where the agent may use it) agrees with the cgroup's CPU usage.
#[test]
fn tenant_made_mid_run_is_collected_at_once() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run("tenant_made_mid_run_is_collected_at_once", &why);
        return;
    }
    let prefix = format!("cf-mid-{}", std::process::id());
    let load = "stress-ng --cpu 1 --cpu-load 40 --timeout 60s";
    let mut tenants = Tenants::start(&prefix, &[("a", load)]);
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args(["--quiet", "collect", "--out"])
        .arg(out.path())
        .args(["--tenants", &format!("{prefix}/*"), "--duration", "10s"])
        .spawn()
        .expect("spawn collect");
    std::thread::sleep(Duration::from_secs(4));
    let made_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    tenants.add("b", load);
    let st = child.wait().unwrap();
    assert!(st.success(), "collect failed: {st}");
    drop(tenants);

    let cat = Catalogue::builtin();
    let segs = samples::list_segments(out.path()).unwrap();
    let meta = samples::read_meta(&segs[0]).unwrap();
    eprintln!("availability {:?}", meta.availability);
    let df = samples::read_samples(out.path(), &Filter::default()).unwrap();
    let mb = samples::tenant_matrix(&df, &format!("{prefix}/b"), cat).unwrap();
    let first = mb
        .ts_ns
        .first()
        .copied()
        .expect("rows of the tenant made mid-run");
    let late_s = (first - made_ns) as f64 / 1e9;
    eprintln!(
        "tenant b: first row {late_s:.2} s after its cgroup was made, {} rows",
        mb.t
    );
    assert!(
        late_s < 2.5,
        "first row {late_s:.2} s after the cgroup was made"
    );
    assert!(mb.t >= 3, "{} rows", mb.t);

    let ma = samples::tenant_matrix(&df, &format!("{prefix}/a"), cat).unwrap();
    let col = |name: &str| cat.index_of(name).unwrap();
    let mean = |j: usize| (1..ma.t).map(|i| ma.row(i)[j]).sum::<f32>() / (ma.t - 1) as f32;
    let (usage, run) = (mean(col("cpu.usage_pct")), mean(col("proc.sched_run_pct")));
    eprintln!("tenant a: cpu.usage_pct {usage}, proc.sched_run_pct {run}");
    // stress-ng's processes are single-threaded: their main threads' run time is the cgroup's.
    assert!(
        usage > 20.0 && (run - usage).abs() <= 0.15 * usage,
        "schedstat run {run} vs cgroup usage {usage}"
    );
    for name in ["proc.voluntary_ctxsw_per_s", "proc.sched_timeslices_per_s"] {
        let j = col(name);
        assert!(
            (1..ma.t).all(|i| !ma.row(i)[j].is_nan()),
            "{name} has a value in every row after the first"
        );
    }
}

/// A tenant that exists only in the v1 hierarchies (as a cgroupfs-driver container runtime
/// makes them on a hybrid host, where perf_event is bound to v2) still gets its software perf
/// counters: per thread, agreeing with its cgroup CPU usage like the cgroup-mode counters do.
#[test]
fn v1_only_tenant_gets_software_perf_counters_per_thread() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run(
            "v1_only_tenant_gets_software_perf_counters_per_thread",
            &why,
        );
        return;
    }
    let v1: Vec<_> = common::hierarchies()
        .into_iter()
        .filter(|h| !h.join("cgroup.controllers").exists())
        .collect();
    if v1.is_empty() {
        collector::testing::cannot_run(
            "v1_only_tenant_gets_software_perf_counters_per_thread",
            "no cgroup v1 hierarchy",
        );
        return;
    }
    let prefix = format!("cf-v1only-{}", std::process::id());
    let mut tenants = Tenants::start(&prefix, &[]);
    tenants.add_in("a", "stress-ng --cpu 2 --cpu-load 30 --timeout 60s", &v1);
    tenants.add("b", "stress-ng --cpu 1 --cpu-load 30 --timeout 60s");
    std::thread::sleep(Duration::from_millis(300));
    let out = collect_for(&prefix, "8s");
    drop(tenants);

    let cat = Catalogue::builtin();
    let segs = samples::list_segments(out.path()).unwrap();
    let meta = samples::read_meta(&segs[0]).unwrap();
    if meta.availability.get("perf.sw") != Some(&true) {
        collector::testing::cannot_run(
            "v1_only_tenant_gets_software_perf_counters_per_thread",
            "no perf.sw",
        );
        return;
    }
    let df = samples::read_samples(out.path(), &Filter::default()).unwrap();
    for t in ["a", "b"] {
        let m = samples::tenant_matrix(&df, &format!("{prefix}/{t}"), cat).unwrap();
        assert!(m.t >= 6, "tenant {t}: {} rows", m.t);
        assert_software_perf(&m, cat, t);
    }
}

/// The agent's sampling thread (the main one, which runs its runtime) is at nice -5 while its
/// Parquet writer thread keeps the process's priority (`collector/src/priority.rs`), and
/// `--nice` sets the value. Read from `/proc/PID/task/TID/stat` of the running process.
#[test]
fn sampling_thread_is_raised_and_the_writer_is_not() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run("sampling_thread_is_raised_and_the_writer_is_not", &why);
        return;
    }
    // This test process's own nice: what the agent's writer thread must keep.
    let ours = thread_nices(std::process::id())
        .into_iter()
        .map(|(_, _, n)| n)
        .next()
        .expect("our own /proc/self/task");
    for (arg, want) in [(None, -5), (Some("-3"), -3)] {
        let out = tempfile::tempdir().unwrap();
        let mut cmd = bin();
        cmd.args(["--quiet", "collect", "--out"])
            .arg(out.path())
            .args(["--tenants", "cf-no-such-tenant-*", "--duration", "4s"]);
        if let Some(a) = arg {
            cmd.args(["--nice", a]);
        }
        let mut child = cmd.spawn().expect("spawn collect");
        std::thread::sleep(Duration::from_millis(2_500));
        let threads = thread_nices(child.id());
        // No cgroup matches the glob: the run exits 1 saying so (its threads were sampled above).
        assert_eq!(child.wait().unwrap().code(), Some(1));
        let main = threads.iter().find(|(tid, _, _)| *tid == child.id());
        let writer = threads.iter().find(|(_, comm, _)| comm == "cf-writer");
        assert_eq!(
            main.map(|t| t.2),
            Some(want),
            "sampling thread: {threads:?}"
        );
        assert_eq!(
            writer.map(|t| t.2),
            Some(ours),
            "writer thread: {threads:?}"
        );
    }
}

/// (tid, comm, nice) of every thread of `pid`.
fn thread_nices(pid: u32) -> Vec<(u32, String, i32)> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return v;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(l), Some(r)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        // Fields after the comm start at field 3 (state); nice is field 19.
        let nice = stat[r + 1..]
            .split_whitespace()
            .nth(16)
            .and_then(|f| f.parse().ok());
        if let (Ok(tid), Some(nice)) = (stat[..l].trim().parse(), nice) {
            v.push((tid, stat[l + 1..r].to_string(), nice));
        }
    }
    v
}

/// Runs `cloudformer collect` on the tenants `<prefix>/*` for `duration` in the foreground;
/// the output directory.
fn collect_for(prefix: &str, duration: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let st = bin()
        .args(["--quiet", "collect", "--out"])
        .arg(out.path())
        .args(["--tenants", &format!("{prefix}/*"), "--duration", duration])
        .status()
        .expect("run cloudformer collect");
    assert!(st.success(), "collect failed: {st}");
    out
}

/// A tenant's software perf counters: its task-clock is its CPU time, so it agrees with the
/// cgroup's usage (within 10 %; the tenant must be busy), and every software event has a value in
/// every row after the first.
fn assert_software_perf(m: &samples::Matrix, cat: &Catalogue, tenant: &str) {
    let col = |name: &str| cat.index_of(name).unwrap();
    let mean = |j: usize| (1..m.t).map(|i| m.row(i)[j]).sum::<f32>() / (m.t - 1) as f32;
    let (usage, tc) = (mean(col("cpu.usage_pct")), mean(col("perf.task_clock_pct")));
    eprintln!("tenant {tenant}: cpu.usage_pct {usage}, perf.task_clock_pct {tc}");
    assert!(usage > 20.0, "tenant {tenant}: its load shows up: {usage}");
    assert!(
        (tc - usage).abs() <= 0.1 * usage,
        "tenant {tenant}: perf task-clock {tc} vs cgroup usage {usage}"
    );
    for name in [
        "perf.task_clock_pct",
        "perf.context_switches_per_s",
        "perf.cpu_migrations_per_s",
        "perf.page_faults_per_s",
        "perf.major_faults_per_s",
    ] {
        let j = col(name);
        assert!(
            (1..m.t).all(|i| !m.row(i)[j].is_nan()),
            "tenant {tenant}: {name} has a value in every row after the first"
        );
    }
}

/// A setting that would collect nothing, expose the agent or overflow is refused with a
/// message naming it, and a run in which no cgroup matched exits non-zero naming what exists.
#[test]
fn silent_settings_are_refused_naming_them() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run("silent_settings_are_refused_naming_them", &why);
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let o = bin()
            .args(["-q", "collect", "--no-perf", "--out"])
            .arg(out.path())
            .args(extra)
            .output()
            .expect("run cloudformer collect");
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        (o.status.code(), err)
    };
    let cases: [(&[&str], &str); 4] = [
        (&["--tenants", "", "--duration", "2s"], "empty tenant glob"),
        (
            &["--tenants", "/nowhere/x/*", "--duration", "2s"],
            "under none of the cgroup hierarchies",
        ),
        (&["--listen", "0.0.0.0:0", "--duration", "2s"], "--insecure"),
        (&["--duration", "99999999999999999999h"], "longer than"),
    ];
    for (args, needle) in cases {
        let (code, err) = run(args);
        assert!(
            matches!(code, Some(c) if c != 0 && c != 101),
            "{args:?}: exit {code:?}\n{err}"
        );
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, err) = run(&["--tenants", "cf-no-such-tenant-*", "--duration", "2s"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no cgroup matched --tenants cf-no-such-tenant-*")
            && err.contains("first-level cgroups"),
        "{err}"
    );
    // An absolute glob under a hierarchy is taken as the relative one.
    let root = collector::discover::hierarchies(std::path::Path::new("/sys/fs/cgroup"));
    let abs = format!("{}/cf-no-such-tenant-*", root[0].path.display());
    let (code, err) = run(&["--tenants", &abs, "--duration", "2s"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no cgroup matched") && !err.contains("under none"),
        "{err}"
    );
}
