//! Shared helpers of the root end-to-end tests: real cgroup tenants running real processes,
//! what a test lacks when it cannot run here (it then fails: `collector::testing::cannot_run`),
//! the binary under test and the workspace's HTTP/1.1 test client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROOT: &str = "/sys/fs/cgroup";

pub fn skip_reason() -> Option<String> {
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
pub fn hierarchies() -> Vec<PathBuf> {
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
pub struct Tenants {
    prefix: String,
    pub names: Vec<String>,
    kids: Vec<Child>,
}

impl Tenants {
    pub fn start(prefix: &str, loads: &[(&str, &str)]) -> Tenants {
        let mut t = Tenants {
            prefix: prefix.to_string(),
            names: vec![],
            kids: vec![],
        };
        for (name, cmd) in loads {
            t.add(name, cmd);
        }
        std::thread::sleep(Duration::from_millis(300));
        t
    }

    /// Creates one more tenant `<prefix>/<name>` in every hierarchy and starts `cmd` in it.
    pub fn add(&mut self, name: &str, cmd: &str) {
        self.add_in(name, cmd, &hierarchies());
    }

    /// Creates one more tenant `<prefix>/<name>` in the hierarchies `hier` only (e.g. the v1
    /// controllers, as a cgroupfs-driver container runtime does) and starts `cmd` in it.
    pub fn add_in(&mut self, name: &str, cmd: &str, hier: &[PathBuf]) {
        let t = self;
        let prefix = t.prefix.clone();
        {
            let rel = format!("{prefix}/{name}");
            let mut procs = Vec::new();
            for h in hier {
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

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cloudformer"))
}

#[path = "../../serve/tests/common/client.rs"]
mod client;
#[allow(unused_imports)]
pub use client::{closed_by_server, get, http, post, slowloris, timed_get, Resp};

/// Starts `cloudformer` with `args`, waits for its "listening on http://ADDR" line on stdout.
pub fn spawn_server(args: &[&str]) -> (Child, SocketAddr) {
    let mut cmd = bin();
    cmd.args(args);
    spawn_server_cmd(cmd)
}

/// Starts `cmd` (a `cloudformer` server command line, perhaps behind a wrapper such as
/// `prlimit`), waits for its "listening on http://ADDR" line on stdout.
pub fn spawn_server_cmd(mut cmd: Command) -> (Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cloudformer");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            _ => {
                let st = child.wait();
                panic!("the server exited before listening: {st:?}");
            }
        };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let a = rest.split_whitespace().next().unwrap_or("");
            break a
                .parse()
                .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// `cloudformer --quiet serve --model MODEL --listen 127.0.0.1:0 --reload-poll-s 0 EXTRA…`
/// (reload on SIGHUP only), started and listening.
#[allow(dead_code)]
pub fn spawn_serve(model: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr) {
    let model = model.to_str().expect("model path is UTF-8");
    let mut args = vec![
        "--quiet",
        "serve",
        "--model",
        model,
        "--listen",
        "127.0.0.1:0",
        "--reload-poll-s",
        "0",
    ];
    args.extend_from_slice(extra);
    spawn_server(&args)
}

/// The model the live checks judge: `models/default` (what `cloudformer up` serves), or the
/// directory in `CLOUDFORMER_LIVE_MODEL`, which `scripts/train-default-model.sh` sets to judge
/// a candidate before it replaces the bundled one.
#[allow(dead_code)]
pub fn bundled_model_dir() -> PathBuf {
    match std::env::var_os("CLOUDFORMER_LIVE_MODEL") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join("config.json").is_file(),
                "CLOUDFORMER_LIVE_MODEL={}: no model there (config.json missing)",
                dir.display()
            );
            dir
        }
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default"),
    }
}

/// A server in live mode on the tenants under `prefix` (`--window-s window_s`, first prediction
/// after 3 s), serving the bundled model ([`bundled_model_dir`]), started and listening.
#[allow(dead_code)]
pub fn spawn_live_bundled(prefix: &str, window_s: u64) -> (Child, SocketAddr) {
    let model = bundled_model_dir();
    let glob = format!("{prefix}/*");
    let w = window_s.to_string();
    spawn_serve(
        &model,
        &[
            "--live",
            "--tenants",
            &glob,
            "--window-s",
            &w,
            "--min-window-s",
            "3",
        ],
    )
}

/// The live window `up` gives the bundled model (`serve::window::live_window_s`).
pub fn bundled_window_s() -> u64 {
    let model = bundled_model_dir();
    serve::window::live_window_s(&model) as u64
}

/// Whether `bin` is on the PATH.
pub fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Why a real campaign (campaigns/smoke.toml: sysbench + stress-ng) cannot run here, if it cannot.
pub fn campaign_skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: campaigns create cgroups".into());
    }
    if !Path::new("/sys/fs/cgroup/cpu/cgroup.procs").exists()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        return Some("no cgroup hierarchy".into());
    }
    for b in ["sysbench", "stress-ng", "ip"] {
        if !have(b) {
            return Some(format!("`{b}` is not installed (scripts/setup.sh)"));
        }
    }
    None
}

/// `cloudformer campaign run` of `campaigns/<plan>` into `out`, quietly: the campaign's command
/// (its pid is the campaign's, which names its cgroups and namespaces).
pub fn campaign_command(plan: &str, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudformer"));
    c.args(["--quiet", "campaign", "run", "--plan"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("campaigns")
                .join(plan),
        )
        .arg("--out")
        .arg(out);
    c
}

/// `campaigns/smoke.toml` with each `(from, to)` of `edits` applied (each `from` must be in it),
/// written as `dir/plan.toml`.
pub fn smoke_plan(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/smoke.toml");
    let mut text = std::fs::read_to_string(smoke).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "campaigns/smoke.toml has no `{from}`");
        text = text.replace(from, to);
    }
    let p = dir.join("plan.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `cloudformer campaign run --plan PLAN --out OUT EXTRA…` to its end (any plan file, with
/// progress and the closing report): whether it succeeded, and its stderr then stdout.
pub fn campaign_at(plan: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let o = bin()
        .args(["campaign", "run", "--plan"])
        .arg(plan)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    (o.status.success(), text)
}

/// `cloudformer campaign status --out OUT`: whether it succeeded, and its stdout.
pub fn campaign_status(out: &Path) -> (bool, String) {
    let o = bin()
        .args(["campaign", "status", "--out"])
        .arg(out)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The runs table of a finished campaign directory, asserting that no tenant-run failed.
pub fn runs_without_failures(out: &Path) -> Vec<dataset::runs::RunRecord> {
    let rows = dataset::runs::read_runs(&dataset::runs::runs_path(out)).unwrap();
    let failed: Vec<_> = rows.iter().filter(|r| !r.is_ok()).collect();
    assert!(failed.is_empty(), "failed tenant-runs: {failed:#?}");
    rows
}

/// Whether the agent's availability map (a sample file's footer) says that the source of a
/// metric exists for a campaign tenant on this host (`own_netns`: the tenants have their own
/// network namespaces). Memory statistics that only the v2 memory controller has are absent
/// where memory is a v1 controller.
pub fn source_is_live(
    family: &str,
    source: &str,
    avail: &std::collections::BTreeMap<String, bool>,
    own_netns: bool,
) -> bool {
    let has = |k: &str| avail.get(k).copied().unwrap_or(false);
    let v1_memory = has("cgroup1.memory");
    match family {
        "cgroup.psi" => has("psi"),
        "cgroup.io" => has("cgroup1.blkio") || (has("cgroup2") && !v1_memory),
        "cgroup.pids" => has("cgroup1.pids") || (has("cgroup2") && !v1_memory),
        "cgroup.memory" => {
            !(v1_memory && source.starts_with("cgroup2") && !source.contains("cgroup1"))
        }
        "perf.sw" => has("perf.sw"),
        "perf.hw" => has("perf.hw"),
        "perf.topdown" => has("perf.topdown"),
        "proc.sched" => has("proc.schedstat"),
        "net" => own_netns,
        _ => true,
    }
}

/// Seconds at the start of a short campaign run in which a tenant's process counters may still
/// be null: the agent starts, a 1-s warm-up, the load's processes start; their per-process
/// counters (`proc.*`, the network of their namespace) have a first sample at the next tick and a
/// first delta at the one after. The runs of dataset v2 last 60–300 s, where this is ≤ 5 %.
pub const STARTUP_SECONDS: usize = 3;

/// Every feature whose source the agent marks available is non-null in ≥ 95 % of each
/// application's rows (`apps` of them), each run's first [`STARTUP_SECONDS`] and its last second
/// left out (the agent may tick once more after a short load has ended and its processes are
/// gone). A ratio of two
/// deltas (`delta_ratio`: wait per timeslice, throttled per period) is undefined in a second
/// where its divisor did not move, so it is checked through its two counters instead.
pub fn assert_live_sources_filled(
    out: &Path,
    ms: &[dataset::matrix::RunMatrix],
    apps: usize,
    own_netns: bool,
) {
    let cat = dataset::catalogue::Catalogue::builtin();
    let seg = dataset::samples::list_segments(&out.join("samples")).unwrap();
    let avail = dataset::samples::read_meta(&seg[0]).unwrap().availability;
    let by_app = dataset::columns::column_stats_by_app(cat, ms, STARTUP_SECONDS, 1);
    assert_eq!(by_app.len(), apps, "{:?}", by_app.keys());
    let mut empty = Vec::new();
    let mut live = 0;
    for (app, stats) in &by_app {
        for (j, c) in stats.iter().enumerate() {
            let m = cat.feature_metric(j).unwrap();
            let ratio = m.transform == dataset::catalogue::Transform::DeltaRatio;
            if ratio || !source_is_live(&m.family, &m.source, &avail, own_netns) {
                continue;
            }
            live += 1;
            if c.null_share() > 0.05 {
                let pct = c.null_share() * 100.0;
                empty.push(format!("{app} {} ({pct:.0} % null)", c.name));
            }
        }
    }
    assert!(
        empty.is_empty(),
        "live sources with null columns: {empty:#?}\n{avail:?}"
    );
    assert!(live > 100, "only {live} live columns");
}

/// A run's window as a posted `matrix` (rows of feature values, `null` = missing).
pub fn matrix_of(r: &train::data::Run) -> Vec<Vec<Option<f32>>> {
    r.x.chunks(r.f)
        .map(|row| row.iter().map(|v| v.is_finite().then_some(*v)).collect())
        .collect()
}
