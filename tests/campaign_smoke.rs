//! End-to-end smoke campaign (campaigns/smoke.toml): 2 applications, 2 tenants sharing vCPU0,
//! ~8 s runs, real processes in real cgroups, recorded by the collector's agent. The labels are
//! checked against the applications' own reported numbers, re-read here from their logs.
//! Fails, naming what is missing, when not root, without cgroups, or without sysbench/stress-ng
//! (`collector::testing::cannot_run`).

mod common;

use std::path::Path;
use std::process::Command;

use dataset::runs::{RunKind, RunRecord};

/// The application's own number, parsed here independently of the plan's regexes.
fn own_number(app: &str, log: &str) -> Option<f64> {
    match app {
        "sysbench-cpu" => log
            .lines()
            .find_map(|l| l.trim().strip_prefix("events per second:"))
            .and_then(|v| v.trim().parse().ok()),
        "stress-cpu" => log.lines().find_map(|l| {
            let i = l.find("metrc:")?;
            let f: Vec<&str> = l[i..].split_whitespace().collect();
            // metrc: [pid] cpu bogo-ops real usr sys bogo-ops/s(real) ...
            if f.get(2) == Some(&"cpu") {
                f.get(7)?.parse().ok()
            } else {
                None
            }
        }),
        _ => None,
    }
}

fn log_of(out: &Path, r: &RunRecord) -> String {
    let k = r.tenant.rsplit("-t").next().unwrap_or("0");
    let p = out.join("logs").join(&r.run_id).join(format!("t{k}.log"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn smoke_campaign_labels_match_the_applications_own_numbers() {
    if let Some(why) = common::campaign_skip_reason() {
        collector::testing::cannot_run(
            "smoke_campaign_labels_match_the_applications_own_numbers",
            &why,
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("camp");
    let st = common::campaign_command("smoke.toml", &out)
        .status()
        .unwrap();
    assert!(st.success(), "campaign failed: {st}");
    let rows = common::runs_without_failures(&out);
    let coloc: Vec<&RunRecord> = rows
        .iter()
        .filter(|r| r.kind == RunKind::Colocated)
        .collect();
    let base: Vec<&RunRecord> = rows
        .iter()
        .filter(|r| r.kind == RunKind::Baseline)
        .collect();
    assert_eq!(coloc.len(), 4, "2 co-located runs × 2 tenants");
    // Every (app, cpuset) used has exactly 3 isolated repeats.
    for c in &coloc {
        let b: Vec<_> = base
            .iter()
            .filter(|b| b.app == c.app && b.cpuset == c.cpuset)
            .collect();
        assert_eq!(b.len(), 3, "baselines of {}", c.app);
    }
    // perf_actual is the application's own number.
    for r in &rows {
        let own = own_number(&r.app, &log_of(&out, r))
            .unwrap_or_else(|| panic!("no own number in the log of {} {}", r.run_id, r.tenant));
        assert!(
            (own - r.perf_actual).abs() <= 1e-9 * own.abs().max(1.0),
            "{} {}: perf_actual {} but the application reported {own}",
            r.run_id,
            r.tenant,
            r.perf_actual
        );
    }
    // perf_ideal is the mean of the isolated repeats; P = actual / ideal (higher is better).
    for c in &coloc {
        let b: Vec<f64> = base
            .iter()
            .filter(|b| b.app == c.app && b.cpuset == c.cpuset)
            .map(|b| b.perf_actual)
            .collect();
        let ideal = b.iter().sum::<f64>() / b.len() as f64;
        assert!((c.perf_ideal - ideal).abs() < 1e-9 * ideal, "{c:?}");
        let p = (c.perf_actual / ideal).min(1.0);
        assert!(
            (c.p - p).abs() < 1e-9,
            "{} {}: p {} vs {p}",
            c.run_id,
            c.tenant,
            c.p
        );
        // Two CPU-bound tenants time-sharing one vCPU: each gets about half.
        assert!(
            c.p > 0.25 && c.p < 0.8,
            "{} {}: P = {} (expected ≈ 0.5)",
            c.run_id,
            c.tenant,
            c.p
        );
        assert!(
            c.label_noise.is_finite() && c.label_noise < 0.2,
            "noise {}",
            c.label_noise
        );
        assert!(c.foreign_cpu_pct.is_finite());
        assert_eq!(c.neighbours.split(',').count(), 1);
        if c.app == "sysbench-cpu" {
            let ps = c
                .p_per_second
                .as_ref()
                .expect("sysbench reports every second");
            assert!(ps.len() >= 6, "{ps:?}");
            let mean = ps.iter().map(|x| *x as f64).sum::<f64>() / ps.len() as f64;
            assert!(
                (mean - c.p).abs() < 0.15,
                "per-second P mean {mean} vs run P {}",
                c.p
            );
        }
    }
    // Recorded by the agent: one T × F matrix per labelled tenant-run.
    let ms = dataset::matrix::load_run_matrices(&out).unwrap();
    assert_eq!(ms.len(), rows.len());
    let f = dataset::catalogue::Catalogue::builtin().n_features();
    for m in &ms {
        assert_eq!(m.f, f);
        assert!(
            m.t >= 6 && m.t <= 14,
            "{} {}: {} seconds",
            m.run_id,
            m.tenant,
            m.t
        );
        let cpu = dataset::catalogue::Catalogue::builtin()
            .feature_names()
            .iter()
            .position(|n| n == "cpu.usage_pct");
        if let Some(j) = cpu {
            let busy = (0..m.t).filter(|i| m.x[i * f + j] > 20.0).count();
            assert!(
                busy >= m.t / 2,
                "{} {}: tenant not seen busy",
                m.run_id,
                m.tenant
            );
        }
    }
    // PSI, block I/O, pids, perf software counters and (zero) network counters are live.
    common::assert_live_sources_filled(&out, &ms, 2, true);
    // The campaign removed its cgroups.
    for ctrl in [
        "cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "unified",
    ] {
        let d = Path::new("/sys/fs/cgroup").join(ctrl);
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if let Some(pid) = n.strip_prefix("cfc-") {
                assert!(
                    Path::new("/proc").join(pid).exists(),
                    "cgroup {} left behind",
                    e.path().display()
                );
            }
        }
    }
    // `dataset summary` and `campaign status` read it.
    let o = Command::new(env!("CARGO_BIN_EXE_cloudformer"))
        .args(["dataset", "summary"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("labelled co-located tenant-runs: 4"),
        "{text}"
    );
    // … how much its labels vary, the feature columns per family and the trivial predictors.
    assert!(
        text.contains("label variety: 4 labelled co-located tenant-runs of 2 applications"),
        "{text}"
    );
    assert!(text.contains("feature columns over"), "{text}");
    assert!(text.contains("columns with a value:"), "{text}");
    assert!(text.contains("while the load runs"), "{text}");
    assert!(
        text.contains("cgroup.psi") && text.contains("net "),
        "{text}"
    );
    assert!(
        text.contains("trivial predictors, leave-one-application-out over 2 applications"),
        "{text}"
    );
    assert!(text.contains("CPU-share rule"), "{text}");
    let o = Command::new(env!("CARGO_BIN_EXE_cloudformer"))
        .args(["campaign", "status", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("2/2 done"), "{text}");
}
