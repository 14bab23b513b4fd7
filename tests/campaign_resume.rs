//! Interrupt a real campaign (campaigns/smoke.toml) twice — SIGTERM (clean stop: its cgroups are
//! gone at once) and SIGKILL (crash: its cgroups are removed by the next start) — then resume it:
//! a perturbed stored baseline makes the sentinel replay refuse to go on; restored, the resume
//! stops at a run boundary after `--stop-after`, and the last resume ends with every run exactly
//! once, no duplicate row, no sample row of a killed attempt.
//! Fails, naming what is missing, when not root, without cgroups, or without sysbench/stress-ng
//! (`collector::testing::cannot_run`).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use dataset::runs::{read_runs, runs_path, RunKind};

fn command(out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudformer"));
    c.args(["--quiet", "campaign", "run", "--plan"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("campaigns/smoke.toml"))
        .arg("--out")
        .arg(out);
    c
}

fn start(out: &Path) -> Child {
    command(out).spawn().unwrap()
}

/// Runs a resume to its end: (success, stderr).
fn resume(out: &Path, extra: &[&str]) -> (bool, String) {
    let o = command(out).args(extra).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn rows(out: &Path) -> usize {
    read_runs(&runs_path(out)).map(|r| r.len()).unwrap_or(0)
}

fn cg(pid: u32) -> PathBuf {
    PathBuf::from(format!("/sys/fs/cgroup/cpu/cfc-{pid}"))
}

type RowKey = (String, String, String, String, String);

/// (run id, application, level, trace, cpuset) of every row, sorted.
fn rows_by_plan(rs: &[dataset::runs::RunRecord]) -> Vec<RowKey> {
    let mut v: Vec<RowKey> = rs
        .iter()
        .map(|r| {
            let key = r.baseline_key();
            let cpuset = key.cpuset.unwrap_or_default();
            (
                r.run_id.clone(),
                r.app.clone(),
                r.level.clone(),
                r.trace.clone(),
                cpuset,
            )
        })
        .collect();
    v.sort();
    v
}

/// What the plan's schedule says the finished table holds.
fn expected_by_plan() -> Vec<RowKey> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("campaigns/smoke.toml");
    let plan = campaign::Plan::load(&path).unwrap();
    let mut v: Vec<RowKey> = Vec::new();
    let mut keys = HashSet::new();
    for w in campaign::work_of(&plan) {
        for t in w.labelled() {
            let cpuset = t.cpuset.clone().unwrap_or_default();
            let row = (t.app.clone(), t.level.clone(), t.trace.clone(), cpuset);
            v.push((
                w.run_id().to_string(),
                row.0.clone(),
                row.1.clone(),
                row.2.clone(),
                row.3.clone(),
            ));
            if keys.insert(t.baseline_key(0)) {
                for rep in 0..plan.repeats {
                    let id = t.baseline_run_id(0, rep);
                    v.push((
                        id,
                        row.0.clone(),
                        row.1.clone(),
                        row.2.clone(),
                        row.3.clone(),
                    ));
                }
            }
        }
    }
    v.sort();
    v
}

/// CPU model and kernel, as the campaign records them.
fn campaign_machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    format!("{model}; {}", kernel.trim())
}

#[test]
fn killed_campaign_resumes_without_duplicates_or_partial_runs() {
    if let Some(why) = common::campaign_skip_reason() {
        collector::testing::cannot_run(
            "killed_campaign_resumes_without_duplicates_or_partial_runs",
            &why,
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("camp");

    // 1. SIGTERM in the middle of the first baseline: clean stop, nothing recorded, no cgroup.
    let mut c = start(&out);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        cg(c.id()).exists(),
        "the campaign's cgroup should exist while it runs"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let st = c.wait().unwrap();
    assert_eq!(st.code(), Some(130), "SIGTERM → exit 130, got {st}");
    assert!(!cg(c.id()).exists(), "cgroup left after SIGTERM");
    assert_eq!(rows(&out), 0, "an interrupted run must not be recorded");

    // 2. Resume, SIGKILL once the first baseline group is recorded, mid-way through the next.
    let mut c = start(&out);
    let t0 = Instant::now();
    while rows(&out) < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no baseline group after 120 s"
        );
        assert!(c.try_wait().unwrap().is_none(), "campaign ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    let done_before_kill = rows(&out);
    std::thread::sleep(Duration::from_secs(6));
    let killed_pid = c.id();
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(
        cg(killed_pid).exists(),
        "SIGKILL leaves the cgroup (removed at next start)"
    );
    let kill_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert_eq!(
        rows(&out),
        done_before_kill,
        "a killed run must not be recorded"
    );

    // 3. A stored baseline that the machine no longer reproduces: the sentinel replay refuses.
    let path = runs_path(&out);
    let stored = read_runs(&path).unwrap();
    let key = stored
        .iter()
        .find(|r| r.kind == RunKind::Baseline)
        .unwrap()
        .baseline_key();
    let mut perturbed = stored.clone();
    for r in perturbed.iter_mut().filter(|r| r.baseline_key() == key) {
        r.perf_actual *= 1.5;
    }
    dataset::runs::write_runs(&path, &perturbed).unwrap();
    let (ok, err) = resume(&out, &[]);
    assert!(!ok, "a perturbed sentinel must stop the resume:\n{err}");
    assert!(
        err.contains("sentinel baseline") && err.contains("machine changed"),
        "{err}"
    );
    assert_eq!(
        read_runs(&path).unwrap(),
        perturbed,
        "the refusal changed the table"
    );
    dataset::runs::write_runs(&path, &stored).unwrap();

    // 4. Restored: the sentinel agrees, and --stop-after stops at the first run boundary after
    // 15 s (the replay takes ~9 s, c00000 at least ~9 s more), leaving c00001 to do; the
    // sentinel is replayed again at the end of that part.
    let (ok, err) = resume(&out, &["--stop-after", "15s"]);
    assert!(ok, "resume with --stop-after failed:\n{err}");
    assert!(
        err.contains("sentinel baseline") && err.contains("against the stored"),
        "{err}"
    );
    assert!(err.contains("stopped after --stop-after: 1 of 2"), "{err}");
    // The part that the budget ended replays the sentinel once more (recorded, not refused).
    assert!(
        err.contains("at the start:") && err.contains("at the end:"),
        "the closing sentinel replay is reported:\n{err}"
    );
    let ids: HashSet<String> = read_runs(&path)
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert!(ids.contains("c00000") && !ids.contains("c00001"), "{ids:?}");
    // Every replay kept its own log: the refused one (3.) and both of this part.
    let mut replays: Vec<String> = std::fs::read_dir(out.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sentinel"))
        .collect();
    replays.sort();
    assert_eq!(replays, ["sentinel-1", "sentinel-2", "sentinel-3"]);
    for r in &replays {
        let logs = std::fs::read_dir(out.join("logs").join(r)).unwrap().count();
        assert!(logs > 0, "logs/{r} is empty");
    }

    // 5. Resume to the end.
    let (ok, err) = resume(&out, &[]);
    assert!(ok, "resumed campaign failed:\n{err}");
    assert!(
        !cg(killed_pid).exists(),
        "stale cgroup of the killed campaign not removed"
    );

    let rs = read_runs(&runs_path(&out)).unwrap();
    let machine = campaign_machine();
    assert!(
        rs.iter().all(|r| r.machine == machine),
        "machine column: {:?}",
        rs[0].machine
    );
    let mut keys = HashSet::new();
    for r in &rs {
        assert!(
            keys.insert((r.run_id.clone(), r.tenant.clone())),
            "duplicate row {} {}",
            r.run_id,
            r.tenant
        );
    }
    let ids: HashSet<&str> = rs.iter().map(|r| r.run_id.as_str()).collect();
    assert!(ids.contains("c00000") && ids.contains("c00001"), "{ids:?}");
    // The same table an uninterrupted campaign of this plan makes (same seed): every scheduled
    // run with its tenants' applications and levels, and `repeats` baselines of each key.
    assert_eq!(
        rows_by_plan(&rs),
        expected_by_plan(),
        "the resumed table differs from the plan"
    );
    let mut per_run: HashMap<&str, usize> = HashMap::new();
    for r in &rs {
        *per_run.entry(r.run_id.as_str()).or_default() += 1;
    }
    for (id, n) in &per_run {
        let want = if id.starts_with('c') { 2 } else { 1 };
        assert_eq!(*n, want, "run {id} has {n} tenant rows");
    }
    // Baselines: 3 per (app, cpuset) of every co-located tenant.
    let coloc: Vec<_> = rs.iter().filter(|r| r.kind == RunKind::Colocated).collect();
    for c in &coloc {
        let n = rs
            .iter()
            .filter(|b| b.kind == RunKind::Baseline && b.app == c.app && b.cpuset == c.cpuset)
            .count();
        assert_eq!(n, 3, "baselines of {}", c.app);
    }
    // The samples of each run come from its recorded attempt only (the killed attempt's files
    // were deleted before the redo): every row lies within the run's own time window.
    let ms = dataset::matrix::load_run_matrices(&out).unwrap();
    assert_eq!(ms.len(), rs.iter().filter(|r| r.is_ok()).count());
    for m in &ms {
        let r = rs
            .iter()
            .find(|r| r.run_id == m.run_id && r.tenant == m.tenant)
            .unwrap();
        let lo = r.start_ns - 5_000_000_000;
        let hi = r.end_ns + 5_000_000_000;
        assert!(
            m.ts_ns.iter().all(|t| *t >= lo && *t <= hi),
            "{} {}: sample rows outside the run's window (a killed attempt's leftovers?)",
            m.run_id,
            m.tenant
        );
        if r.start_ns > kill_ns {
            assert!(m.ts_ns.iter().all(|t| *t > kill_ns - 1_000_000_000));
        }
    }
}
