//! What a new user sees from the bundled model (`models/default`, what `cloudformer up` serves)
//! in live mode, on real cgroup tenants running real `stress-ng` pinned to one CPU (issue 27):
//!
//! | situation | truth | check |
//! |---|---|---|
//! | a tenant alone at 20 %, 60 %, 100 % of one CPU | ≈ 1.0 | P̂ ≥ 0.9 |
//! | two CPU-bound tenants time-sharing one CPU | ≈ 0.5 | P̂ ≤ 0.65 |
//! | an idle neighbour joins a tenant at 60 % | unchanged | \|ΔP̂\| ≤ 0.05 |
//! | that idle tenant itself | ≈ 1.0 (no work to slow) | P̂ ≥ 0.9 (reported only) |
//!
//! A check that today's dataset cannot teach is listed in [`REPORT_ONLY`] with the reason: it
//! prints its measured value instead of asserting, and becomes an assertion (same threshold)
//! when the dataset that teaches it lands. Every measured value is printed (`--nocapture`).
//! Needs root, a cgroup hierarchy and stress-ng; fails naming what is missing otherwise.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{get, skip_reason, Tenants};

/// Seconds of rows each live prediction is computed on: what `up` gives the bundled model (the
/// input length it was trained on).
fn window_s() -> u64 {
    common::bundled_window_s()
}

/// Checks that print their measured value instead of asserting, and why. "idle neighbour
/// joins" was one (the bundled model moved by 0.06-0.14, the v1 model by 0.58) until
/// 2026-12-06, when training read the per-process columns of sliced loads as missing
/// (`dataset::sliced`): they had taught the model that a CPU load's processes show no CPU time,
/// so a live VM's real ones, beside any neighbour, read as contention.
const REPORT_ONLY: &[(&str, &str)] = &[(
    IDLE_ITSELF,
    "no labelled tenant of the training data is idle (campaigns label tenants that run a load; \
     the lowest mean CPU of a labelled run is 0.73 % of a CPU, sysbench-fileio), so an idle \
     tenant's P̂ is an extrapolation (0.68-0.78 beside a tenant at 60 %, 0.41 once a CPU-bound \
     one joins; 2026-12-08); CPU alone cannot tell it from an I/O-bound load. \
     A campaign that labels idle tenants (P = 1: no work to slow) would teach it",
)];

/// The check on the idle tenant's own answer.
const IDLE_ITSELF: &str = "an idle tenant itself";

struct Check {
    name: &'static str,
    value: f64,
    ok: bool,
    rule: String,
}

/// The mean of a tenant's last three P̂ once its window holds [`window_s`] seconds of the
/// current situation (waits for that).
fn settled_p(addr: SocketAddr, id: &str) -> f64 {
    std::thread::sleep(Duration::from_secs(window_s() + 2));
    recent_p(addr, id)
}

/// The mean of a tenant's last three P̂ (waits up to 10 s for three).
fn recent_p(addr: SocketAddr, id: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(addr, &format!("/v1/tenants/{id}"));
        if r.status == 200 {
            let v = r.json();
            let h: Vec<f64> = v["history"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["p"].as_f64()).collect())
                .unwrap_or_default();
            if h.len() >= 3 {
                return h[h.len() - 3..].iter().sum::<f64>() / 3.0;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no three P̂ for {id}: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A server in live mode on the tenants under `prefix`, serving the bundled model.
fn live_server(prefix: &str) -> (std::process::Child, SocketAddr) {
    common::spawn_live_bundled(prefix, window_s())
}

fn pinned_load(pct: u32) -> String {
    format!("taskset -c 0 stress-ng --cpu 1 --cpu-load {pct} --timeout 120s")
}

#[test]
fn bundled_model_in_live_mode_on_lone_shared_and_idle_neighbours() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run(
            "bundled_model_in_live_mode_on_lone_shared_and_idle_neighbours",
            &why,
        );
        return;
    }
    if !common::have("taskset") {
        collector::testing::cannot_run(
            "bundled_model_in_live_mode_on_lone_shared_and_idle_neighbours",
            "`taskset` (util-linux) is not installed",
        );
        return;
    }
    // The checks judge P̂ on a quiet machine: other CPU load beside them (a build, an
    // evaluation) is a neighbour too. Said beside the verdicts, so a failure can be read.
    let busy_at_start = cpu_busy_share(Duration::from_secs(1));
    let pid = std::process::id();
    let mut checks = Vec::new();

    // A tenant alone, at three loads.
    for pct in [20u32, 60, 100] {
        let prefix = format!("cf-scn-{pid}-alone{pct}");
        let _t = Tenants::start(&prefix, &[("vm", &pinned_load(pct))]);
        let (mut server, addr) = live_server(&prefix);
        let p = settled_p(addr, &format!("{prefix}/vm"));
        let _ = server.kill();
        let _ = server.wait();
        checks.push(Check {
            name: ["alone at 20 %", "alone at 60 %", "alone at 100 %"][match pct {
                20 => 0,
                60 => 1,
                _ => 2,
            }],
            value: p,
            ok: p >= 0.9,
            rule: "P̂ ≥ 0.9".into(),
        });
    }

    // Two CPU-bound tenants time-sharing CPU 0.
    {
        let prefix = format!("cf-scn-{pid}-shared");
        let _t = Tenants::start(
            &prefix,
            &[("a", &pinned_load(100)), ("b", &pinned_load(100))],
        );
        let (mut server, addr) = live_server(&prefix);
        let pa = settled_p(addr, &format!("{prefix}/a"));
        let pb = recent_p(addr, &format!("{prefix}/b"));
        let _ = server.kill();
        let _ = server.wait();
        let worst = pa.max(pb);
        checks.push(Check {
            name: "two sharing one CPU",
            value: worst,
            ok: worst <= 0.65,
            rule: format!("both P̂ ≤ 0.65 (a {pa:.3}, b {pb:.3})"),
        });
    }

    // An idle neighbour joins a tenant at 60 %.
    {
        let prefix = format!("cf-scn-{pid}-idle");
        let mut t = Tenants::start(&prefix, &[("vm", &pinned_load(60))]);
        let (mut server, addr) = live_server(&prefix);
        let id = format!("{prefix}/vm");
        let before = settled_p(addr, &id);
        t.add("idle", "sleep 120");
        let after = settled_p(addr, &id);
        let idle_p = recent_p(addr, &format!("{prefix}/idle"));
        // What of the idle neighbour the model reads: its resources, occluded one at a time.
        let c = get(addr, &format!("/v1/tenants/{id}/culprits"));
        if c.status == 200 {
            let v = c.json();
            eprintln!(
                "idle neighbour, culprits of {id}: with {} alone {}",
                v["with_all"]["p"], v["alone"]["p"]
            );
            for r in v["resources"].as_array().into_iter().flatten() {
                eprintln!(
                    "  {} ({} columns): ΔP̂ {}",
                    r["resource"], r["columns"], r["delta_p"]
                );
            }
        }
        let _ = server.kill();
        let _ = server.wait();
        let d = (after - before).abs();
        checks.push(Check {
            name: "idle neighbour joins",
            value: d,
            ok: d <= 0.05,
            rule: format!("|ΔP̂| ≤ 0.05 (before {before:.3}, after {after:.3})"),
        });
        checks.push(Check {
            name: IDLE_ITSELF,
            value: idle_p,
            ok: idle_p >= 0.9,
            rule: "P̂ ≥ 0.9 (nothing it does is slowed)".to_string(),
        });
    }

    eprintln!(
        "\nmodel {}, live mode ({}-s windows; CPU busy in the second before the checks: \
         {:.0} %):",
        common::bundled_model_dir().display(),
        window_s(),
        100.0 * busy_at_start
    );
    let mut failed = Vec::new();
    for c in &checks {
        let report_only = REPORT_ONLY.iter().find(|(n, _)| *n == c.name);
        let verdict = match (c.ok, report_only) {
            (true, _) => "ok".to_string(),
            (false, Some((_, why))) => format!("NOT MET, reported only: {why}"),
            (false, None) => {
                failed.push(c.name);
                "FAILED".to_string()
            }
        };
        eprintln!("  {:<22} {:.3}  {}  {verdict}", c.name, c.value, c.rule);
    }
    assert!(failed.is_empty(), "checks failed: {failed:?}");
}

/// The share of all CPUs' time not idle (nor waiting for I/O) over `over`, from /proc/stat.
fn cpu_busy_share(over: Duration) -> f64 {
    fn totals() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8) // user … steal; guest time is already in user
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (v.iter().sum(), idle)
    }
    let (t0, i0) = totals();
    std::thread::sleep(over);
    let (t1, i1) = totals();
    let dt = t1.saturating_sub(t0).max(1) as f64;
    1.0 - i1.saturating_sub(i0) as f64 / dt
}
