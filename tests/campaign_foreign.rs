//! Foreign load: a CPU hog outside the campaign's tenants makes every isolated baseline exceed the
//! plan's threshold, so each is rejected and retaken (up to `max_retakes`), the last attempt is
//! kept with its foreign load recorded, and a retake leaves no duplicate row or sample file.
//! Fails, naming what is missing, when not root, without cgroups, or without sysbench/stress-ng
//! (`collector::testing::cannot_run`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use dataset::runs::{read_runs, runs_path, RunKind};

#[test]
fn baselines_under_foreign_load_are_retaken_and_recorded() {
    if let Some(why) = common::campaign_skip_reason() {
        collector::testing::cannot_run(
            "baselines_under_foreign_load_are_retaken_and_recorded",
            &why,
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let smoke = std::fs::read_to_string(root.join("campaigns/smoke.toml")).unwrap();
    let plan_text = smoke
        .replace("run_seconds = 8", "run_seconds = 5")
        .replace(
            "foreign_cpu_max_pct = 1000.0",
            "foreign_cpu_max_pct = 20.0\nmax_retakes = 1",
        )
        .replace(
            "colocated_runs = 2",
            "colocated_runs = 1\napps = [\"sysbench-cpu\"]",
        );
    assert!(plan_text.contains("max_retakes = 1") && plan_text.contains("apps = "));
    let tmp = tempfile::tempdir().unwrap();
    let plan = tmp.path().join("foreign.toml");
    std::fs::write(&plan, plan_text).unwrap();
    let out = tmp.path().join("out");

    // The foreign load: two busy workers in no tenant of the campaign.
    let mut hog = Command::new("stress-ng")
        .args(["--cpu", "2", "--timeout", "120s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stress-ng");
    let res = common::bin()
        .args(["campaign", "run", "--plan"])
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run the campaign");
    let _ = hog.kill();
    let _ = hog.wait();
    let _ = Command::new("pkill")
        .args(["-f", "stress-ng --cpu 2 --timeout 120s"])
        .status();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "campaign failed: {stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let retaken: usize = stdout
        .split("baselines retaken for foreign load: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no retake count in {stdout:?}"));
    let rows = read_runs(&runs_path(&out)).unwrap();
    let base: Vec<_> = rows
        .iter()
        .filter(|r| r.kind == RunKind::Baseline)
        .collect();
    eprintln!(
        "retaken {retaken}; baseline foreign load {:?}",
        base.iter().map(|r| r.foreign_cpu_pct).collect::<Vec<_>>()
    );
    // One key (sysbench-cpu on vCPU0) × 3 repeats, each retaken once, never duplicated.
    assert_eq!(base.len(), 3, "one row per repeat");
    assert_eq!(retaken, 3, "each repeat rejected once (max_retakes = 1)");
    for r in &base {
        assert!(
            r.foreign_cpu_pct > 20.0,
            "{}: the kept attempt records its foreign load ({})",
            r.run_id,
            r.foreign_cpu_pct
        );
        let dir = out.join("samples");
        let segs: Vec<_> = dataset::samples::list_segments(&dir)
            .unwrap()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&format!("run={}/", r.run_id)))
            .collect();
        assert_eq!(
            segs.len(),
            1,
            "{}: one sample file, not one per attempt: {segs:?}",
            r.run_id
        );
    }
    // Every co-located row records its foreign load too.
    assert!(rows
        .iter()
        .filter(|r| r.kind == RunKind::Colocated)
        .all(|r| r.foreign_cpu_pct.is_finite()));
}
