//! Tenants with their own network namespaces (campaigns/net-smoke.toml): an nginx tenant whose
//! wrk clients run on the host side of its veth link, beside a CPU-bound tenant, ~6 s runs.
//! The agent's per-tenant network counters are then real: the server's traffic is seen in its
//! own row and in its neighbour's `nbr.net.*`, the CPU-bound tenant's link is silent, every
//! source the agent marks available fills its columns, and the namespaces are gone afterwards
//! (a crashed campaign's too). An address of the campaign's block held by another interface stops
//! a campaign before its first run (pre-flight). The tenants' VM shapes (`[[shape]]`) are their cgroups' limits, as
//! the agent reads them back. Fails, naming what is missing, when not root, without cgroups,
//! or without nginx/wrk/sysbench/ip (`collector::testing::cannot_run`).

mod common;

use std::path::Path;
use std::process::Command;

use dataset::matrix::RunMatrix;
use dataset::runs::{runs_path, RunKind};

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn column(m: &RunMatrix, name: &str) -> Vec<f32> {
    let names = dataset::catalogue::Catalogue::builtin().feature_names();
    let j = names.iter().position(|n| n == name).unwrap();
    (common::STARTUP_SECONDS..m.t.saturating_sub(1))
        .map(|i| m.x[i * m.f + j])
        .collect()
}

fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("cfc-{pid}-");
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

#[test]
fn tenants_in_their_own_namespaces_have_real_network_counters() {
    let name = "tenants_in_their_own_namespaces_have_real_network_counters";
    let why = common::campaign_skip_reason().or_else(|| {
        (["nginx", "wrk"].iter().find(|b| !have(b)))
            .map(|b| format!("`{b}` is not installed (scripts/setup.sh)"))
    });
    if let Some(why) = why {
        collector::testing::cannot_run(name, &why);
        return;
    }
    // A namespace left by a crashed campaign (its pid is above any pid_max, so never alive).
    let stale = "cfc-4194305-9999";
    let made = Command::new("ip").args(["netns", "add", stale]).status();
    assert!(made.is_ok_and(|s| s.success()), "ip netns add {stale}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("camp");
    let mut child = common::campaign_command("net-smoke.toml", &out)
        .spawn()
        .unwrap();
    let pid = child.id();
    let st = child.wait().unwrap();
    assert!(st.success(), "campaign failed: {st}");
    assert!(
        !Path::new("/run/netns").join(stale).exists(),
        "the stale namespace {stale} was not removed"
    );
    assert_eq!(namespaces_of(pid), Vec::<String>::new(), "namespaces left");

    let rows = common::runs_without_failures(&out);
    assert_eq!(
        rows.iter().filter(|r| r.kind == RunKind::Colocated).count(),
        2
    );
    // VM shapes: nginx drew "half" (0.5 vCPU, weight 50), sysbench "one"; every row and its
    // baseline key say so, and the agent read the same quota from the tenant's cgroup.
    for r in &rows {
        let want = if r.app == "nginx" {
            ("half", 0.5)
        } else {
            ("one", 1.0)
        };
        assert_eq!(
            (r.shape.as_str(), r.cpu_limit),
            want,
            "{} {}",
            r.run_id,
            r.tenant
        );
        assert_eq!(r.baseline_key().shape.as_deref(), Some(want.0));
    }
    let ms = dataset::matrix::load_run_matrices(&out).unwrap();
    common::assert_live_sources_filled(&out, &ms, 2, true);
    for m in &ms {
        let quota = column(m, "placement.cpu_quota_cpus");
        let want = if m.app == "nginx" { 0.5 } else { 1.0 };
        assert!(
            quota.iter().all(|q| (*q - want).abs() < 1e-6),
            "{} {}: the agent read quota {quota:?}, the shape says {want}",
            m.run_id,
            m.tenant
        );
    }
    for m in &ms {
        let rx = column(m, "net.rx_bytes_per_s");
        let tx = column(m, "net.tx_bytes_per_s");
        let (sum_rx, sum_tx): (f32, f32) = (rx.iter().sum(), tx.iter().sum());
        if m.app == "nginx" {
            // Requests in, larger responses out, every second of the load.
            let busy = rx.iter().filter(|v| **v > 10_000.0).count();
            assert!(
                busy * 10 >= rx.len() * 8,
                "{} {}: rx {rx:?}",
                m.run_id,
                m.tenant
            );
            assert!(sum_tx > sum_rx, "{}: tx {sum_tx} ≤ rx {sum_rx}", m.run_id);
        } else {
            // The CPU-bound tenant's link carries next to nothing (a counter, not null): it
            // sends nothing at all (IPv6 is off on the links), and receives under 100 B/s
            // from the host's end in some seconds.
            assert!(
                tx.iter().all(|v| *v == 0.0),
                "{} {}: tx {tx:?}",
                m.run_id,
                m.tenant
            );
            assert!(
                rx.iter().chain(&tx).all(|v| *v < 1_000.0),
                "{} {}: rx {rx:?} tx {tx:?}",
                m.run_id,
                m.tenant
            );
        }
        if m.kind == RunKind::Colocated && m.app != "nginx" {
            let nbr = column(m, "nbr.net.rx_bytes_per_s");
            assert!(
                nbr.iter().filter(|v| **v > 10_000.0).count() * 10 >= nbr.len() * 8,
                "the neighbour's traffic is not in nbr.net.*: {nbr:?}"
            );
        }
    }

    subnet_in_use_stops_the_campaign_before_any_run();
}

/// Another interface holding an address of 10.213.0.0/16: the pre-flight refuses at once.
fn subnet_in_use_stops_the_campaign_before_any_run() {
    let ip = |args: &[&str]| Command::new("ip").args(args).status().unwrap().success();
    let _ = ip(&["link", "del", "cfxtest0"]);
    assert!(ip(&[
        "link", "add", "cfxtest0", "type", "veth", "peer", "name", "cfxtest1"
    ]));
    assert!(ip(&["addr", "add", "10.213.200.1/24", "dev", "cfxtest0"]));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("camp");
    let o = common::campaign_command("net-smoke.toml", &out)
        .output()
        .unwrap();
    assert!(ip(&["link", "del", "cfxtest0"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "the campaign ran beside a conflicting address"
    );
    assert!(
        err.contains("pre-flight") && err.contains("10.213.200.1/24 on cfxtest0"),
        "{err}"
    );
    assert!(!runs_path(&out).exists(), "a run was recorded");
}
