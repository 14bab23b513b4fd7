//! Parser and reader tests on fixture files copied from this VM's real cgroup v1 and v2 groups
//! and /proc (see tests/fixtures/README.md), arranged into fake cgroup/proc trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use collector::discover;
use collector::host::{host_values, HostReader};
use collector::parse;
use collector::specs::{self, hraw, raw::*};
use collector::tenant::TenantReader;
use dataset::catalogue::Catalogue;

fn fx(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn copy(src: &str, dst: &Path) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(fx(src), dst).unwrap_or_else(|e| panic!("copy {src}: {e}"));
}

/// A hybrid layout: v2 at root/unified (tenant t/a with controllers), v1 cpu/cpuacct/memory/
/// blkio/pids (tenant t/b). Both list this test process as their member.
fn fake_root() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("unified")).unwrap();
    std::fs::write(r.join("unified/cgroup.controllers"), "").unwrap();
    for c in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        std::fs::create_dir_all(r.join(c)).unwrap();
        std::fs::write(r.join(c).join("cgroup.procs"), "").unwrap();
    }
    let me = format!("{}\n", std::process::id());
    let a = r.join("unified/t/a");
    for f in [
        "cpu.stat",
        "memory.stat",
        "memory.current",
        "memory.max",
        "memory.swap.current",
        "memory.events",
        "io.stat",
        "pids.current",
        "cpu.pressure",
        "memory.pressure",
        "io.pressure",
        "cgroup.threads",
    ] {
        copy(&format!("v2-controllers/{f}"), &a.join(f));
    }
    std::fs::write(a.join("cgroup.procs"), &me).unwrap();
    let b = |c: &str| r.join(c).join("t/b");
    copy("v1/cpu.stat", &b("cpu").join("cpu.stat"));
    copy("v1/cpuacct.usage", &b("cpuacct").join("cpuacct.usage"));
    copy("v1/cpuacct.stat", &b("cpuacct").join("cpuacct.stat"));
    for f in [
        "memory.usage_in_bytes",
        "memory.stat",
        "memory.limit_in_bytes",
        "memory.failcnt",
        "memory.oom_control",
    ] {
        copy(&format!("v1/{f}"), &b("memory").join(f));
    }
    copy(
        "v1/blkio.throttle.io_service_bytes.busy",
        &b("blkio").join("blkio.throttle.io_service_bytes"),
    );
    copy(
        "v1/blkio.throttle.io_serviced",
        &b("blkio").join("blkio.throttle.io_serviced"),
    );
    copy("v1/pids.current", &b("pids").join("pids.current"));
    for c in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        std::fs::write(b(c).join("cgroup.procs"), &me).unwrap();
    }
    // Not a tenant: outside the glob.
    std::fs::create_dir_all(r.join("unified/other/x")).unwrap();
    d
}

fn reader(root: &Path, name: &str) -> TenantReader {
    let h = discover::hierarchies(root);
    let found = discover::discover(&h, &["t/*".to_string()]);
    let dirs = found.get(name).cloned().expect("tenant discovered");
    TenantReader::open(name, dirs, None)
}

#[test]
fn discovery_globs_match_like_the_glob_crate() {
    // machine.slice/machine-qemu*.scope style patterns: wildcards in several components,
    // literal components, files that match a wildcard (not tenants), `**`.
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::write(r.join("cgroup.controllers"), "cpu memory").unwrap();
    for dir in [
        "machine.slice/machine-qemu\\x2d1\\x2dvm.scope",
        "machine.slice/machine-qemu\\x2d2\\x2dvm.scope/libvirt",
        "machine.slice/other.scope",
        "system.slice/a.service",
        "system.slice/b.service/nested",
        "user.slice/u1/x.service",
        "user.slice/u2/y.service",
    ] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    std::fs::write(r.join("system.slice/c.service"), "a file, not a cgroup").unwrap();
    let h = discover::hierarchies(r);
    let names = |globs: &[&str]| -> Vec<String> {
        let g: Vec<String> = globs.iter().map(|s| s.to_string()).collect();
        discover::discover(&h, &g).into_keys().collect()
    };
    assert_eq!(
        names(&["machine.slice/machine-qemu*.scope"]),
        [
            "machine.slice/machine-qemu\\x2d1\\x2dvm.scope",
            "machine.slice/machine-qemu\\x2d2\\x2dvm.scope"
        ]
    );
    assert_eq!(
        names(&["system.slice/*.service"]),
        ["system.slice/a.service", "system.slice/b.service"]
    );
    assert_eq!(
        names(&["user.slice/*/?.service"]),
        ["user.slice/u1/x.service", "user.slice/u2/y.service"]
    );
    assert_eq!(
        names(&["system.slice/b.service"]),
        ["system.slice/b.service"]
    );
    assert!(
        names(&["system.slice/c.service"]).is_empty(),
        "a file is no tenant"
    );
    assert!(names(&["nowhere/*"]).is_empty());
    assert_eq!(
        names(&["system.slice/**/nested"]),
        ["system.slice/b.service/nested"]
    );
}

/// A `Discovery` keeps the directories it lists open between ticks: tenants that appear or
/// vanish under a kept directory, and a parent removed and made again, must still be seen.
#[test]
fn discovery_kept_open_across_ticks_follows_changes() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::write(r.join("cgroup.controllers"), "cpu").unwrap();
    let mk = |p: &str| std::fs::create_dir_all(r.join(p)).unwrap();
    mk("slice/a");
    mk("slice/b");
    let mut disc = discover::Discovery::new(discover::hierarchies(r), vec!["slice/*".into()]);
    let mut names = || disc.find().into_keys().collect::<Vec<_>>();
    assert_eq!(names(), ["slice/a", "slice/b"]);
    mk("slice/c");
    std::fs::remove_dir(r.join("slice/a")).unwrap();
    assert_eq!(names(), ["slice/b", "slice/c"]);
    // The kept parent goes away and one of the same name comes back with other tenants.
    std::fs::remove_dir_all(r.join("slice")).unwrap();
    assert!(names().is_empty());
    mk("slice/d");
    assert_eq!(names(), ["slice/d"]);
    std::fs::remove_dir_all(r.join("slice")).unwrap();
    mk("slice/e");
    assert_eq!(
        names(),
        ["slice/e"],
        "a recreated parent under a kept handle"
    );
    // Many entries: more than one getdents64 buffer's worth.
    for i in 0..2000 {
        mk(&format!("slice/tenant-with-a-long-name-{i:05}"));
    }
    assert_eq!(names().len(), 2001);
}

/// `Discovery::poll` lists only when inotify saw an entry made or removed on the globs' paths:
/// `None` while nothing changes, the new set at the first poll after a change (a tenant made,
/// one removed, the watched parent removed and made again, a parent that did not exist yet).
#[test]
fn discovery_poll_lists_only_after_a_change() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::write(r.join("cgroup.controllers"), "cpu").unwrap();
    let mk = |p: &str| std::fs::create_dir_all(r.join(p)).unwrap();
    let mut disc = discover::Discovery::new(discover::hierarchies(r), vec!["slice/*".into()]);
    let mut poll = || disc.poll().map(|f| f.keys().cloned().collect::<Vec<_>>());
    assert_eq!(poll(), Some(vec![]), "the first poll lists");
    assert_eq!(poll(), None, "nothing changed");
    mk("slice/a");
    assert_eq!(poll(), Some(vec!["slice/a".to_string()]), "parent made");
    assert_eq!(poll(), None);
    mk("slice/b");
    assert_eq!(poll(), Some(vec!["slice/a".into(), "slice/b".into()]));
    std::fs::write(r.join("slice/a/cgroup.procs"), "1").unwrap();
    assert_eq!(poll(), None, "a file made inside a tenant is no change");
    std::fs::remove_dir_all(r.join("slice/a")).unwrap();
    assert_eq!(poll(), Some(vec!["slice/b".to_string()]));
    std::fs::remove_dir_all(r.join("slice")).unwrap();
    assert_eq!(poll(), Some(vec![]));
    mk("slice/c");
    assert_eq!(
        poll(),
        Some(vec!["slice/c".to_string()]),
        "parent made again"
    );
    assert_eq!(poll(), None);
    disc.invalidate();
    assert!(disc.poll().is_some(), "invalidate lists at the next poll");
    // The safety net: a listing every RELIST_EVERY polls even without events.
    let n = (0..discover::RELIST_EVERY)
        .filter(|_| disc.poll().is_some())
        .count();
    assert_eq!(n, 1);
}

/// The same on the real cgroup filesystem (kernfs): a cgroup made or removed with mkdir/rmdir
/// must be reported by inotify, or the agent would only see it at its periodic listing.
#[test]
fn discovery_poll_sees_real_cgroups_made_and_removed() {
    if unsafe { libc::geteuid() } != 0 {
        collector::testing::cannot_run(
            "discovery_poll_sees_real_cgroups_made_and_removed",
            "needs root",
        );
        return;
    }
    let h = discover::hierarchies(Path::new("/sys/fs/cgroup"));
    if h.is_empty() {
        collector::testing::cannot_run(
            "discovery_poll_sees_real_cgroups_made_and_removed",
            "no cgroup hierarchy",
        );
        return;
    }
    let parent = format!("cf-test-inotify-{}", std::process::id());
    let mut disc = discover::Discovery::new(h.clone(), vec![format!("{parent}/*")]);
    let kinds = |f: &discover::Found, t: &str| f.get(t).map(|m| m.len()).unwrap_or(0);
    assert!(disc.poll().unwrap().is_empty());
    assert!(disc.poll().is_none());
    for x in &h {
        std::fs::create_dir_all(x.path.join(&parent).join("t1")).unwrap();
    }
    let t1 = format!("{parent}/t1");
    let f = disc.poll().expect("cgroups made: a listing").clone();
    assert_eq!(kinds(&f, &t1), h.len(), "t1 in every hierarchy: {f:?}");
    assert!(disc.poll().is_none());
    for x in &h {
        std::fs::remove_dir(x.path.join(&parent).join("t1")).unwrap();
    }
    let f = disc.poll().expect("cgroups removed: a listing").clone();
    for x in &h {
        std::fs::remove_dir(x.path.join(&parent)).unwrap();
    }
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn discovery_over_v1_and_v2_by_glob() {
    let d = fake_root();
    let h = discover::hierarchies(d.path());
    let kinds: Vec<&str> = h.iter().map(|h| h.kind.as_str()).collect();
    assert_eq!(kinds, ["v2", "cpu", "cpuacct", "memory", "blkio", "pids"]);
    let found = discover::discover(&h, &["t/*".to_string()]);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["t/a", "t/b"]);
    assert_eq!(found["t/a"].keys().collect::<Vec<_>>(), ["v2"]);
    assert_eq!(
        found["t/b"].keys().collect::<Vec<_>>(),
        ["blkio", "cpu", "cpuacct", "memory", "pids"]
    );
    // A tenant appears: next discovery sees it.
    std::fs::create_dir_all(d.path().join("unified/t/c")).unwrap();
    let found = discover::discover(&h, &["t/*".to_string(), "/other/*".to_string()]);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["other/x", "t/a", "t/b", "t/c"]
    );
    // Pure v2 root.
    let v2 = tempfile::tempdir().unwrap();
    std::fs::write(v2.path().join("cgroup.controllers"), "cpu memory").unwrap();
    let h = discover::hierarchies(v2.path());
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].path, v2.path());
}

#[test]
fn v2_group_with_controllers() {
    let d = fake_root();
    let mut r = reader(d.path(), "t/a");
    let mut raw = vec![0.0; N_RAW];
    r.read(&mut raw, None);
    assert!(r.alive);
    assert_eq!(raw[CPU_USAGE_NS], 2_500_000_000.0);
    assert_eq!(raw[CPU_USER_NS], 2_000_000_000.0);
    assert_eq!(raw[CPU_NR_THROTTLED], 30.0);
    assert_eq!(raw[CPU_THROTTLED_NS], 400_000_000.0);
    assert_eq!(raw[CPU_PSI_SOME_US], 203058.0);
    assert_eq!(raw[CPU_PSI_FULL_US], 202865.0);
    assert!((raw[CPU_PSI_SOME_AVG10] - 1.81).abs() < 1e-9);
    assert_eq!(raw[MEM_CURRENT], 157286400.0);
    assert_eq!(raw[MEM_ANON], 104857600.0);
    assert_eq!(raw[MEM_SLAB], 1572864.0);
    assert_eq!(raw[MEM_WS_REFAULT], 12.0);
    assert_eq!(raw[MEM_WS_RESTORE], 3.0);
    assert_eq!(raw[MEM_PGMAJFAULT], 12.0);
    assert_eq!(raw[MEM_EV_HIGH], 2.0);
    assert!(raw[MEM_LIMIT].is_nan(), "memory.max = max is no limit");
    assert!(raw[MEM_PGPGIN].is_nan(), "v1-only field");
    assert_eq!(raw[IO_RBYTES], 2097152.0);
    assert_eq!(raw[IO_WIOS], 20.0);
    assert_eq!(raw[IO_DBYTES], 4096.0);
    assert_eq!(raw[PIDS_CURRENT], 3.0);
    assert_eq!(raw[PIDS_THREADS], 3.0);
    // This test process, read from the real /proc.
    assert_eq!(raw[P_COUNT], 1.0);
    assert!(raw[P_THREADS] >= 1.0);
    assert!(raw[P_RSS] > 0.0);
    // Counters accumulate from 0 at the tenant's first reading.
    assert_eq!(raw[P_UTIME], 0.0);
    // Perf not opened, host netns: null, never 0.
    assert!(raw[PERF_TASK_CLOCK].is_nan());
    assert!(raw[PERF_CYCLES].is_nan());
    assert!(raw[NET_RX_BYTES].is_nan());
}

#[test]
fn v1_group() {
    let d = fake_root();
    let mut r = reader(d.path(), "t/b");
    let mut raw = vec![0.0; N_RAW];
    r.read(&mut raw, None);
    assert_eq!(raw[CPU_USAGE_NS], 465010051.0);
    // cpuacct.stat is in USER_HZ ticks (100 Hz here).
    assert!((raw[CPU_USER_NS] - 45.0 * 1e7).abs() < 1.0);
    assert_eq!(raw[CPU_NR_PERIODS], 0.0);
    assert!(raw[CPU_PSI_SOME_US].is_nan(), "no PSI in v1");
    assert_eq!(raw[MEM_CURRENT], 393216.0);
    assert_eq!(raw[MEM_ANON], 114688.0);
    assert_eq!(raw[MEM_FILE], 94208.0);
    assert_eq!(raw[MEM_PGFAULT], 410.0);
    assert_eq!(raw[MEM_PGPGIN], 339.0);
    assert_eq!(raw[MEM_WS_REFAULT], 1.0);
    assert!(raw[MEM_LIMIT].is_nan(), "unlimited v1 limit is null");
    assert_eq!(raw[MEM_EV_OOM_KILL], 0.0);
    assert_eq!(raw[IO_RBYTES], 4196.0);
    assert_eq!(raw[IO_WBYTES], 8192.0);
    assert_eq!(raw[IO_RIOS], 0.0);
    assert_eq!(raw[PIDS_CURRENT], 2.0);
}

#[test]
fn cpu_pressure_without_full_gives_null_not_zero() {
    let p = parse::parse_pressure(&std::fs::read(fx("old-kernel/cpu.pressure")).unwrap());
    assert_eq!(p.some_total, Some(123456));
    assert_eq!(p.full_total, None);
    let p = parse::parse_pressure(&std::fs::read(fx("v2/cpu.pressure")).unwrap());
    assert_eq!(p.full_total, Some(202865));

    let d = fake_root();
    let f = d.path().join("unified/t/a/cpu.pressure");
    std::fs::copy(fx("old-kernel/cpu.pressure"), &f).unwrap();
    let mut r = reader(d.path(), "t/a");
    let mut prev = vec![0.0; N_RAW];
    let mut cur = vec![0.0; N_RAW];
    r.read(&mut prev, None);
    std::fs::write(&f, "some avg10=0.50 avg60=0.20 avg300=0.05 total=623456\n").unwrap();
    r.read(&mut cur, None);
    let some = specs::tenant_spec("cpu.psi_some_pct").unwrap();
    let full = specs::tenant_spec("cpu.psi_full_pct").unwrap();
    // 500 ms of stall in 1 s = 50 %.
    assert!((specs::eval(some, Some(&prev), &cur, 1.0) - 50.0).abs() < 1e-3);
    assert!(specs::eval(full, Some(&prev), &cur, 1.0).is_nan());
}

#[test]
fn missing_files_give_nulls() {
    let d = fake_root();
    let dir = d.path().join("unified/t/empty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cgroup.procs"), "").unwrap();
    let mut r = reader(d.path(), "t/empty");
    let mut raw = vec![0.0; N_RAW];
    r.read(&mut raw, None);
    assert!(r.alive);
    for i in [
        CPU_USAGE_NS,
        MEM_CURRENT,
        MEM_ANON,
        IO_RBYTES,
        CPU_PSI_SOME_US,
    ] {
        assert!(raw[i].is_nan(), "raw {i} should be null");
    }
    assert_eq!(raw[P_COUNT], 0.0);
    assert_eq!(
        raw[PIDS_CURRENT], 0.0,
        "falls back to counting cgroup.procs"
    );
    let cat = Catalogue::builtin();
    let sp = specs::tenant_specs(cat).unwrap();
    let f: Vec<f32> = sp
        .iter()
        .map(|&s| specs::eval(s, Some(&raw), &raw, 1.0))
        .collect();
    let i = cat.index_of("mem.current_bytes").unwrap();
    assert!(f[i].is_nan());
}

#[test]
fn counter_going_backwards_is_null_then_recovers() {
    let d = fake_root();
    let f = d.path().join("unified/t/a/cpu.stat");
    let mut r = reader(d.path(), "t/a");
    let s = specs::tenant_spec("cpu.usage_pct").unwrap();
    let mut a = vec![0.0; N_RAW];
    let mut b = vec![0.0; N_RAW];
    let mut c = vec![0.0; N_RAW];
    r.read(&mut a, None);
    std::fs::write(&f, "usage_usec 1000\nuser_usec 500\nsystem_usec 500\n").unwrap();
    r.read(&mut b, None);
    assert!(
        specs::eval(s, Some(&a), &b, 1.0).is_nan(),
        "reset → null, no spike"
    );
    std::fs::write(&f, "usage_usec 501000\nuser_usec 500\nsystem_usec 500\n").unwrap();
    r.read(&mut c, None);
    let v = specs::eval(s, Some(&b), &c, 2.0);
    assert!((v - 25.0).abs() < 1e-3, "{v}");
}

#[test]
fn proc_pid_files() {
    let st = parse::parse_pid_stat(&std::fs::read(fx("proc/pid/stat")).unwrap()).unwrap();
    assert_eq!(st.state, b'S');
    assert_eq!((st.minflt, st.majflt, st.utime, st.stime), (140, 0, 45, 0));
    assert_eq!((st.num_threads, st.rss, st.vsize), (1, 403, 2654208));
    let ss = parse::parse_schedstat(&std::fs::read(fx("proc/pid/schedstat")).unwrap());
    assert_eq!(ss, Some((456185812, 205129092, 71)));
    let status = std::fs::read(fx("proc/pid/status")).unwrap();
    assert!(parse::keyed(&status, "voluntary_ctxt_switches").is_some());
    assert_eq!(parse::keyed(&status, "Threads"), Some(1));
    let io = std::fs::read(fx("proc/pid/io")).unwrap();
    assert_eq!(parse::keyed(&io, "wchar"), Some(20971650));
    assert_eq!(parse::keyed(&io, "write_bytes"), Some(20979712));
    let n = parse::parse_net_dev(&std::fs::read(fx("proc/pid/net_dev")).unwrap());
    assert_eq!(n.rx_bytes, 137249345);
    assert_eq!(n.tx_packets, 4368);
    assert_eq!(n.n_ifaces, 3, "lo excluded");
}

#[test]
fn host_context_from_fixtures() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for (src, dst) in [
        ("host/stat", "stat"),
        ("host/meminfo", "meminfo"),
        ("host/vmstat", "vmstat"),
        ("host/diskstats", "diskstats"),
        ("host/net_dev", "net/dev"),
        ("host/pressure_cpu", "pressure/cpu"),
        ("host/pressure_memory", "pressure/memory"),
        ("host/pressure_io", "pressure/io"),
    ] {
        copy(src, &p.join(dst));
    }
    let stat = std::fs::read(p.join("stat")).unwrap();
    let s = parse::parse_proc_stat(&stat);
    assert!(s.cpu[3] > 0, "idle jiffies");
    assert!(s.ctxt.is_some() && s.procs_running.is_some());
    let mut h = HostReader::open(p, Path::new("/sys/block"));
    assert!(h.has_psi());
    let a = h.read();
    assert!(a.v[hraw::MEM_TOTAL] > 0.0);
    assert!(a.v[hraw::PSI_CPU_SOME] >= 0.0);
    let cat = Catalogue::builtin();
    let sp = specs::host_specs(cat).unwrap();
    let first = host_values(&sp, None, &a, 0.0);
    let names = cat.host_column_names();
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(
        first[col("host.cpu.steal_pct")].is_nan(),
        "first row: null rates"
    );
    assert!(first[col("host.mem.total_bytes")] > 0.0);
    // Advance the cpu line: 50 user + 50 steal jiffies of 200 total.
    let text = String::from_utf8(stat).unwrap();
    let line = text.lines().next().unwrap();
    let mut f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    f[0] += 50;
    f[3] += 100;
    f[7] += 50;
    let new_line = format!(
        "cpu  {}",
        f.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::fs::write(p.join("stat"), text.replacen(line, &new_line, 1)).unwrap();
    let b = h.read();
    let v = host_values(&sp, Some(&a), &b, 1.0);
    assert!((v[col("host.cpu.steal_pct")] - 25.0).abs() < 1e-3);
    assert!((v[col("host.cpu.idle_pct")] - 50.0).abs() < 1e-3);
    assert_eq!(v[col("host.cpu.ctxt_per_s")], 0.0);
}

/// A real cgroup that is removed while its reader is open: the next read reports it gone.
#[test]
fn tenant_that_disappears() {
    if unsafe { libc::geteuid() } != 0 {
        collector::testing::cannot_run("tenant_that_disappears", "needs root to create cgroups");
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let h = discover::hierarchies(root);
    let Some(hier) = h.first() else {
        collector::testing::cannot_run(
            "tenant_that_disappears",
            "no cgroup hierarchy under /sys/fs/cgroup",
        );
        return;
    };
    let name = format!("cf-test-vanish-{}", std::process::id());
    let dir = hier.path.join(&name);
    std::fs::create_dir(&dir).unwrap();
    let found = discover::discover(&h, std::slice::from_ref(&name));
    let dirs: BTreeMap<String, PathBuf> = found.get(&name).cloned().unwrap();
    let mut r = TenantReader::open(&name, dirs, None);
    let mut raw = vec![0.0; N_RAW];
    r.read(&mut raw, None);
    assert!(r.alive);
    std::fs::remove_dir(&dir).unwrap();
    r.read(&mut raw, None);
    assert!(!r.alive, "a removed cgroup must read as gone");
    assert!(discover::discover(&h, &[name]).is_empty());
}

/// Taskstats gives each process's main-thread context switches and schedstat, the same values
/// as its status and schedstat files: compared on sleeping processes (whose counters stand
/// still), more of them than one request batch, plus one that has exited.
#[test]
fn taskstats_matches_status_and_schedstat() {
    use collector::taskstats::{self, Taskstats};
    if unsafe { libc::geteuid() } != 0 {
        collector::testing::cannot_run(
            "taskstats_matches_status_and_schedstat",
            "taskstats needs CAP_NET_ADMIN",
        );
        return;
    }
    let mut ts = match Taskstats::open() {
        Ok(t) => t,
        Err(e) => {
            collector::testing::cannot_run(
                "taskstats_matches_status_and_schedstat",
                &e.to_string(),
            );
            return;
        }
    };
    let mut kids: Vec<std::process::Child> = (0..taskstats::BATCH + 8)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap()
        })
        .collect();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut pids: Vec<u32> = kids.iter().map(|k| k.id()).collect();
    pids.push(gone_pid);
    let mut table = std::collections::HashMap::new();
    ts.query_many(&pids, &mut table).unwrap();
    assert_eq!(
        table.len(),
        kids.len(),
        "every live process, not the exited one"
    );
    assert!(!table.contains_key(&gone_pid));
    for k in &kids {
        let pid = k.id();
        let c = table[&pid];
        let status = std::fs::read(format!("/proc/{pid}/status")).unwrap();
        let [v, nv] = parse::keyed_many(
            &status,
            &["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"],
        );
        let sched = std::fs::read(format!("/proc/{pid}/schedstat")).unwrap();
        let (run, wait, slices) = parse::parse_schedstat(&sched).unwrap();
        assert_eq!((c.nvcsw, c.nivcsw), (v.unwrap(), nv.unwrap()), "pid {pid}");
        assert_eq!(
            (c.run_ns, c.wait_ns, c.slices),
            (run, wait, slices),
            "pid {pid}"
        );
        assert_eq!(ts.query(pid).unwrap(), c, "one request gives the same");
    }
    assert!(table.values().any(|c| c.run_ns > 0 && c.slices > 0));
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
}

/// The Top-Down probe resolves the events the kernel announces to perf configs: slot events
/// (with their SMT scales), perf metrics, the big cores of a hybrid part; none on AMD or without a
/// PMU; a clear error naming the file when the description cannot be read.
#[test]
fn topdown_events_resolve_from_sysfs() {
    use collector::topdown::{find, Flavour};
    let pmu = fx("pmu");

    let sk = find(&pmu.join("skylake-smt"))
        .unwrap()
        .expect("slot events");
    assert_eq!(sk.flavour, Flavour::SlotEvents);
    assert_eq!(sk.pmu_type, 4);
    // event 0x3c | umask 0 << 8 | any << 21
    assert_eq!(sk.configs[0], 0x3c | 1 << 21);
    assert_eq!(sk.configs[1], 0x0e | 0x01 << 8);
    assert_eq!(sk.configs[2], 0xc2 | 0x02 << 8);
    assert_eq!(sk.configs[3], 0x9c | 0x01 << 8);
    // recovery bubbles: cmask=1 at bits 24-31, any=1
    assert_eq!(sk.configs[4], 0x0d | 0x03 << 8 | 1 << 24 | 1 << 21);
    assert_eq!(sk.scales, [2.0, 1.0, 1.0, 1.0, 2.0]);

    let icl = find(&pmu.join("icelake")).unwrap().expect("perf metrics");
    assert_eq!(icl.flavour, Flavour::PerfMetrics);
    // `slots` is perf's TOPDOWN_SLOTS (0x0400); the metrics are umask 0x80-0x83.
    assert_eq!(icl.configs, [0x0400, 0x8000, 0x8100, 0x8200, 0x8300]);
    assert_eq!(icl.scales, [1.0; 5]);

    let adl = find(&pmu.join("alderlake-hybrid"))
        .unwrap()
        .expect("cpu_core");
    assert_eq!(adl, icl, "the big cores' PMU, not cpu_atom (type 10)");

    assert_eq!(find(&pmu.join("amd-zen")), Ok(None));
    assert_eq!(find(&pmu.join("no-pmu")), Ok(None));
    let e = find(&pmu.join("broken")).unwrap_err().to_string();
    assert!(e.contains("format/umask"), "{e}");
    // This host: whatever its PMU, the probe answers without error.
    assert!(find(std::path::Path::new(collector::topdown::SYSFS_PMUS)).is_ok());
}
