//! End-to-end: real cgroups running real load, `cloudformer collect` as a process, Parquet read
//! back. Needs root, a cgroup hierarchy and stress-ng (CI installs them); skips with a reason
//! otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dataset::catalogue::Catalogue;
use dataset::samples::{self, Filter};

const ROOT: &str = "/sys/fs/cgroup";

fn skip_reason() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to create cgroups".into());
    }
    if Command::new("stress-ng").arg("--version").output().is_err() {
        return Some("stress-ng is not installed (apt-get install stress-ng)".into());
    }
    if hierarchies().is_empty() {
        return Some(format!("no writable cgroup hierarchy under {ROOT}"));
    }
    None
}

/// Every hierarchy a tenant should be created in: v2 (root or `unified`) and the v1 controllers.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let mut v = Vec::new();
    if root.join("unified/cgroup.controllers").exists() {
        v.push(root.join("unified"));
    }
    for c in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        if root.join(c).join("cgroup.procs").exists() {
            v.push(root.join(c));
        }
    }
    v
}

/// Tenant cgroups with a load in each; removed (and the load killed) on drop.
struct Tenants {
    prefix: String,
    names: Vec<String>,
    kids: Vec<Child>,
}

impl Tenants {
    fn start(prefix: &str, loads: &[(&str, &str)]) -> Tenants {
        let mut t = Tenants {
            prefix: prefix.to_string(),
            names: vec![],
            kids: vec![],
        };
        for (name, cmd) in loads {
            let rel = format!("{prefix}/{name}");
            let mut procs = Vec::new();
            for h in hierarchies() {
                let d = h.join(&rel);
                std::fs::create_dir_all(&d)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
                procs.push(d.join("cgroup.procs").display().to_string());
            }
            let script = format!(
                "for f in {}; do echo $$ > $f; done; exec {cmd}",
                procs.join(" ")
            );
            let child = Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn load");
            t.kids.push(child);
            t.names.push(rel);
        }
        std::thread::sleep(Duration::from_millis(300));
        t
    }
}

impl Drop for Tenants {
    fn drop(&mut self) {
        for k in &mut self.kids {
            let _ = k.kill();
            let _ = k.wait();
        }
        // stress-ng forks workers: kill whatever is left in the groups.
        for h in hierarchies() {
            for n in &self.names {
                if let Ok(s) = std::fs::read_to_string(h.join(n).join("cgroup.procs")) {
                    for pid in s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        for h in hierarchies() {
            for n in &self.names {
                let _ = std::fs::remove_dir(h.join(n));
            }
            let _ = std::fs::remove_dir(h.join(&self.prefix));
        }
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cloudformer"))
}

#[test]
fn collect_two_real_tenants_for_ten_seconds() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP collect_two_real_tenants_for_ten_seconds: {why}");
        return;
    }
    let prefix = format!("cf-e2e-{}", std::process::id());
    let sysbench = Command::new("sysbench").arg("--version").output().is_ok();
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
    let out = tempfile::tempdir().unwrap();
    let st = bin()
        .args(["--quiet", "collect", "--out"])
        .arg(out.path())
        .args(["--tenants", &format!("{prefix}/*"), "--duration", "10s"])
        .status()
        .expect("run cloudformer collect");
    assert!(st.success(), "collect failed: {st}");
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
    assert_eq!(feat.len(), 206);

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
    // Hardware counters: null (never 0) when the PMU is absent.
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
}

#[test]
fn kill_9_leaves_completed_segments_readable() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP kill_9_leaves_completed_segments_readable: {why}");
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
