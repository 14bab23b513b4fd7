//! The scheduler endpoints on real cgroup tenants with the bundled model (issue 31), one server
//! in live mode on tenants pinned to CPU 0 with `taskset`, in three phases:
//!
//! 1. a CPU-bound tenant `donor` alone: `GET …/donor/profile` (its own columns, no `nbr.*`);
//!    the donor then leaves;
//! 2. a CPU-bound `victim` alone: `POST /v1/placement` of the donor's profile on CPU 0 lowers
//!    the victim's P̂ after placement, and the host score is the worst P̂ after; a short profile
//!    or another catalogue is a 422 naming it;
//! 3. a CPU-bound `hog` and an idle tenant join the victim: `GET …/victim/culprits` lists both
//!    with the seconds they were present, and P̂ alone above P̂ with every neighbour; `/metrics`
//!    names one of them as the victim's top culprit.
//!
//! Checks that today's bundled model cannot pass are in [`REPORT_ONLY`] with the reason: they
//! print their value instead of asserting. Every answer is printed (`--nocapture`). Needs root,
//! a cgroup hierarchy, stress-ng and taskset; fails naming what is missing otherwise.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{get, post, skip_reason, Tenants};

/// Seconds of rows each live prediction is computed on: what `up` gives the bundled model (the
/// input length it was trained on).
fn window_s() -> u64 {
    common::bundled_window_s()
}

/// Checks that print their value instead of asserting, and why (the v1 model named the idle
/// tenant first and the neighbours' `proc` columns on top; the v2 models pass the first). Empty
/// since 2026-12-08: "the neighbours' cpu resource is on top" was reported only while occluding
/// the neighbours' CPU left the tenant waiting beside them (mem 0.25 / cpu 0.14 with
/// cf-125436e7c8cdc23d); the occlusion now takes their CPU demand off its CPUs as well
/// (`serve/src/culprits.rs`), and the check is asserted again.
const REPORT_ONLY: &[(&str, &str)] = &[];

const PINNED: &str = "taskset -c 0 stress-ng --cpu 1 --timeout 120s";

/// GET that waits past 409s (a tenant without enough seconds yet), up to 10 s.
fn get_ready(addr: SocketAddr, path: &str) -> common::Resp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(addr, path);
        if r.status != 409 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[test]
fn placement_lowers_a_cpu_bound_victims_p_and_culprits_list_its_neighbours() {
    let name = "placement_lowers_a_cpu_bound_victims_p_and_culprits_list_its_neighbours";
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run(name, &why);
        return;
    }
    if !common::have("taskset") {
        collector::testing::cannot_run(name, "`taskset` (util-linux) is not installed");
        return;
    }
    let prefix = format!("cf-sched-{}", std::process::id());
    // 1. The donor alone: its profile.
    let donor = Tenants::start(&prefix, &[("donor", PINNED)]);
    let (mut server, addr) = common::spawn_live_bundled(&prefix, window_s());
    let missing = get(addr, &format!("/v1/tenants/{prefix}/nobody/culprits"));
    std::thread::sleep(Duration::from_secs(window_s() + 2));
    let profile = get(
        addr,
        &format!("/v1/tenants/{prefix}/donor/profile?seconds=10"),
    );
    let bad_seconds = get(
        addr,
        &format!("/v1/tenants/{prefix}/donor/profile?seconds=0"),
    );
    drop(donor);

    // 2. The victim alone, and the donor's profile placed beside it.
    let mut tenants = Tenants::start(&prefix, &[("victim", PINNED)]);
    let victim = format!("{prefix}/victim");
    std::thread::sleep(Duration::from_secs(window_s() + 2));
    let profile_v = profile.json();
    let place = |p: &serde_json::Value| {
        post(
            addr,
            "/v1/placement",
            serde_json::json!({"profile": p, "cpus": [0]})
                .to_string()
                .as_bytes(),
        )
    };
    let placed = place(&profile_v);
    let mut short = profile_v.clone();
    short["metrics"] = serde_json::json!({"cpu.usage_pct": [100.0]});
    let short = place(&short);
    let mut other = profile_v.clone();
    other["catalogue_hash"] = serde_json::json!("0123456789abcdef");
    let other = place(&other);

    // 3. A hog and an idle tenant join the victim.
    tenants.add("hog", PINNED);
    tenants.add("idle", "sleep 120");
    std::thread::sleep(Duration::from_secs(window_s() + 2));
    let culprits = get_ready(addr, &format!("/v1/tenants/{victim}/culprits"));
    let metrics = get(addr, "/metrics").text();
    let _ = server.kill();
    let _ = server.wait();
    drop(tenants);

    // The profile and what a scheduler gets wrong.
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(missing.text().contains("nobody"), "{}", missing.text());
    assert_eq!(profile.status, 200, "{}", profile.text());
    assert_eq!(profile_v["t"], 10, "{profile_v}");
    let usage = profile_v["metrics"]["cpu.usage_pct"][9]
        .as_f64()
        .unwrap_or(0.0);
    assert!(usage > 50.0, "the donor is CPU-bound: {usage}");
    assert!(profile_v["metrics"].get("nbr.cpu.usage_pct").is_none());
    assert_eq!(bad_seconds.status, 400, "{}", bad_seconds.text());
    assert_eq!(short.status, 422, "{}", short.text());
    assert!(short.text().contains("second"), "{}", short.text());
    assert_eq!(other.status, 422, "{}", other.text());
    assert!(
        other.text().contains("0123456789abcdef"),
        "{}",
        other.text()
    );

    // Placement.
    assert_eq!(placed.status, 200, "{}", placed.text());
    let pv = placed.json();
    eprintln!(
        "placing the donor's profile on CPU 0 beside the victim:\n{}",
        pretty(&pv)
    );
    let t = pv["tenants"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == victim.as_str()))
        .unwrap_or_else(|| panic!("no victim in {pv}"));
    let before = t["before"]["p"].as_f64().unwrap_or(f64::NAN);
    let after = t["after"]["p"].as_f64().unwrap_or(f64::NAN);
    assert!(
        after < before,
        "a CPU-bound candidate on the victim's CPU lowers its P̂: before {before}, after {after}"
    );
    let worst = pv["score"]["worst_p"].as_f64().unwrap_or(f64::NAN);
    assert!(
        worst <= after + 1e-6,
        "the host score is the worst P̂ after: {worst}"
    );

    // Culprits.
    assert_eq!(culprits.status, 200, "{}", culprits.text());
    let cv = culprits.json();
    eprintln!("culprits of {victim}:\n{}", pretty(&cv));
    assert_eq!(cv["id"], victim.as_str());
    let neighbours = cv["neighbours"].as_array().expect("neighbours");
    let mut ids: Vec<&str> = neighbours.iter().filter_map(|n| n["id"].as_str()).collect();
    ids.sort_unstable();
    let (hog, idle) = (format!("{prefix}/hog"), format!("{prefix}/idle"));
    assert_eq!(
        ids,
        vec![hog.as_str(), idle.as_str()],
        "both neighbours, nobody else"
    );
    assert!(neighbours
        .iter()
        .all(|n| n["seconds_present"].as_u64().unwrap_or(0) >= window_s() - 4));
    let alone = cv["alone"]["p"].as_f64().unwrap_or(f64::NAN);
    let with_all = cv["with_all"]["p"].as_f64().unwrap_or(f64::NAN);
    assert!(
        alone > with_all + 0.1,
        "alone {alone} vs with every neighbour {with_all}"
    );
    assert!(cv["resources"].as_array().is_some_and(|r| !r.is_empty()));

    // The operators' view: the victim's top culprit on /metrics, one of its two neighbours.
    let info = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "cloudformer_tenant_top_culprit_info{{tenant=\"{victim}\","
            ))
        })
        .unwrap_or_else(|| panic!("no top culprit of {victim} on /metrics:\n{metrics}"));
    eprintln!("{info}");
    assert!(
        [&hog, &idle]
            .iter()
            .any(|n| info.contains(&format!("neighbour=\"{n}\""))),
        "{info}"
    );
    assert!(info.ends_with("} 1"), "{info}");
    assert!(
        metrics.contains(&format!(
            "cloudformer_tenant_top_culprit_delta_p{{tenant=\"{victim}\"}} "
        )),
        "{metrics}"
    );

    let first = neighbours[0]["id"].as_str().unwrap_or("");
    let top = cv["resources"][0]["resource"].as_str().unwrap_or("");
    let checks = [
        (
            "the hog is named before the idle tenant",
            first == hog,
            first.to_string(),
        ),
        (
            "the neighbours' cpu resource is on top",
            top == "cpu",
            top.to_string(),
        ),
    ];
    let mut failed = Vec::new();
    for (check, ok, value) in checks {
        let why = REPORT_ONLY
            .iter()
            .find(|(n, _)| *n == check)
            .map(|(_, w)| *w);
        match (ok, why) {
            (true, _) => eprintln!("  {check}: ok ({value})"),
            (false, Some(why)) => eprintln!("  {check}: NOT MET ({value}), reported only: {why}"),
            (false, None) => failed.push(check),
        }
    }
    assert!(failed.is_empty(), "checks failed: {failed:?}");
}
