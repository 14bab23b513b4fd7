use super::*;

fn tree(kinds: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for k in kinds {
        fs::create_dir_all(d.path().join(k)).unwrap();
        fs::write(d.path().join(k).join("cgroup.procs"), "").unwrap();
    }
    d
}

#[test]
fn hybrid_hosts_join_blkio_pids_and_the_unified_hierarchy() {
    let d = tree(&[
        "cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "unified",
    ]);
    let l = Layout::detect(d.path()).unwrap();
    assert_eq!(
        l.kinds(),
        ["cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "unified"]
    );
}

#[test]
fn a_tenants_limits_are_written_in_its_controllers() {
    let d = tree(&["cpu", "cpuacct", "cpuset", "memory", "unified"]);
    fs::write(d.path().join("cpuset/cpuset.cpus"), "0-1").unwrap();
    fs::write(d.path().join("cpuset/cpuset.mems"), "0").unwrap();
    let parent = Parent::create(Layout::detect(d.path()).unwrap()).unwrap();
    let limits = Limits {
        cpu: 0.5,
        mem_mb: 256.0,
        cpuset: Some("1".into()),
        weight: Some(50),
    };
    let t = parent.tenant("t0", &limits).unwrap();
    let read = |c: &str, f: &str| {
        let p = d.path().join(c).join(parent.name()).join("t0").join(f);
        fs::read_to_string(p).unwrap()
    };
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("memory", "memory.limit_in_bytes"), "268435456");
    assert_eq!(read("cpuset", "cpuset.cpus"), "1");
    // Nothing is written in the unified hierarchy (it has no controllers there).
    let unified = d.path().join("unified").join(parent.name()).join("t0");
    assert_eq!(fs::read_dir(unified).unwrap().count(), 0);
    // A plain directory tree is not a cgroup: skip the removal (it would wait for it).
    std::mem::forget(t);
    std::mem::forget(parent);
}

#[test]
fn on_pure_v2_hosts_a_tenant_reclaims_at_its_memory_limit_before_memory_max() {
    let d = tempfile::tempdir().unwrap();
    fs::write(
        d.path().join("cgroup.controllers"),
        "cpuset cpu io memory pids",
    )
    .unwrap();
    let parent = Parent::create(Layout::detect(d.path()).unwrap()).unwrap();
    let limits = Limits {
        cpu: 0.5,
        mem_mb: 256.0,
        cpuset: Some("1".into()),
        weight: Some(50),
    };
    let t = parent.tenant("t0", &limits).unwrap();
    let read =
        |f: &str| fs::read_to_string(d.path().join(parent.name()).join("t0").join(f)).unwrap();
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpu.weight"), "50");
    assert_eq!(read("cpuset.cpus"), "1");
    // memory.high at the limit (reclaim there, as v1's limit_in_bytes), memory.max an eighth
    // above it (a burst is reclaimed, not OOM-killed).
    assert_eq!(read("memory.high"), "268435456");
    assert_eq!(read("memory.max"), "301989888");
    // A tenant without a memory limit gets neither.
    let free = Limits {
        mem_mb: 0.0,
        ..limits
    };
    let u = parent.tenant("t1", &free).unwrap();
    let t1 = d.path().join(parent.name()).join("t1");
    assert!(!t1.join("memory.high").exists() && !t1.join("memory.max").exists());
    // A plain directory tree is not a cgroup: skip the removal (it would wait for it).
    std::mem::forget((t, u));
    std::mem::forget(parent);
}

#[test]
fn optional_hierarchies_are_left_out_when_not_mounted() {
    let d = tree(&["cpu", "cpuacct", "cpuset", "memory"]);
    assert_eq!(
        Layout::detect(d.path()).unwrap().kinds(),
        ["cpu", "cpuacct", "cpuset", "memory"]
    );
}

#[test]
fn pure_v2_hosts_use_the_v2_root() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("cgroup.controllers"), "cpu memory").unwrap();
    assert_eq!(Layout::detect(d.path()).unwrap().kinds(), ["v2"]);
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Layout::detect(empty.path()),
        Err(CgroupError::NoHierarchy(_))
    ));
}
