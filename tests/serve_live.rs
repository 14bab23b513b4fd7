//! Live mode end to end: two real cgroup tenants running real processes, `cloudformer serve
//! --live` as a process with a real checkpoint, predictions for both over a real socket within a
//! few seconds, and a change when a third, heavy neighbour starts. Needs root, a cgroup hierarchy
//! and stress-ng (CI installs them); fails naming what is missing
//! otherwise (`collector::testing::cannot_run`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{get, skip_reason, spawn_serve, Tenants};
use dataset::catalogue::{Catalogue, NBR_PREFIX};
use model::{Checkpoint, CloudFormer, Config, Device, Normalizer};

/// The bundled model when the repo has one (what `cloudformer up` serves); otherwise a small
/// randomly initialised checkpoint on this catalogue.
fn checkpoint(tmp: &Path) -> PathBuf {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    if bundled.join(model::CONFIG_FILE).exists() {
        eprintln!("using the bundled model {}", bundled.display());
        return bundled;
    }
    eprintln!("no bundled model: using a random checkpoint");
    let cat = Catalogue::builtin();
    let f = cat.n_features();
    let cfg = Config {
        n_features: f,
        d_model: 16,
        n_heads: 2,
        d_ff: 32,
        temporal_blocks: 1,
        system_blocks: 1,
        head_hidden: 16,
        ..Config::default()
    };
    let m = CloudFormer::new(&cfg, 5, &Device::Cpu).unwrap();
    let rows: Vec<Vec<f32>> = (0..20)
        .map(|i| (0..f).map(|j| ((i * 7 + j) % 13) as f32).collect())
        .collect();
    let counters = (0..f).map(|i| cat.is_counter_feature(i)).collect();
    let norm = Normalizer::fit(counters, rows.iter().map(|r| r.as_slice())).unwrap();
    let mut ck = Checkpoint::new(cfg, norm, cat.hash(), cat.feature_names());
    let dir = tmp.join("model");
    ck.save(&dir, &m).unwrap();
    dir
}

/// tenant id → (number of P̂ points, latest P̂) from `GET /v1/tenants`.
fn live_tenants(addr: std::net::SocketAddr) -> Vec<(String, f64, usize)> {
    let r = get(addr, "/v1/tenants");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    v["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("no tenants array: {v}"))
        .iter()
        .filter_map(|t| {
            let p = t["latest"]["p"].as_f64()?;
            Some((
                t["id"].as_str()?.to_string(),
                p,
                t["seconds"].as_u64()? as usize,
            ))
        })
        .collect()
}

fn p_history(addr: std::net::SocketAddr, id: &str) -> (Vec<(i64, f64)>, serde_json::Value) {
    let r = get(addr, &format!("/v1/tenants/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let h = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["ts_ns"].as_i64().unwrap(), p["p"].as_f64().unwrap()))
        .collect();
    (h, v)
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

#[test]
fn live_predictions_for_two_real_tenants_change_when_a_neighbour_starts() {
    if let Some(why) = skip_reason() {
        collector::testing::cannot_run(
            "live_predictions_for_two_real_tenants_change_when_a_neighbour_starts",
            &why,
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = checkpoint(tmp.path());
    let prefix = format!("cf-live-{}", std::process::id());
    let mut tenants = Tenants::start(
        &prefix,
        &[
            ("a", "stress-ng --cpu 1 --cpu-load 40 --timeout 120s"),
            ("b", "stress-ng --vm 1 --vm-bytes 32M --timeout 120s"),
        ],
    );
    let glob = format!("{prefix}/*");
    let (mut server, addr) = spawn_serve(
        &model,
        &[
            "--live",
            "--tenants",
            &glob,
            "--window-s",
            "8",
            "--min-window-s",
            "2",
        ],
    );
    let a = format!("{prefix}/a");
    let b = format!("{prefix}/b");

    // Both tenants get predictions within a few seconds.
    let t0 = Instant::now();
    wait_for("P̂ for both tenants", 15, || {
        let t = live_tenants(addr);
        t.iter().any(|x| x.0 == a) && t.iter().any(|x| x.0 == b)
    });
    eprintln!(
        "both tenants predicted after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    for (id, p, _) in live_tenants(addr) {
        assert!(p > 0.0 && p <= 1.0, "{id}: P̂ {p} outside (0, 1]");
    }
    // Let a's window fill with the quiet neighbourhood.
    std::thread::sleep(Duration::from_secs(8));
    let (before, _) = p_history(addr, &a);
    let started_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;

    // A heavy neighbour arrives.
    tenants.add("c", "stress-ng --cpu 2 --timeout 120s");
    let c = format!("{prefix}/c");
    wait_for("the new neighbour to be predicted", 15, || {
        live_tenants(addr).iter().any(|x| x.0 == c)
    });
    std::thread::sleep(Duration::from_secs(8));
    let (after_all, detail) = p_history(addr, &a);
    let after: Vec<f64> = after_all
        .iter()
        .filter(|(ts, _)| *ts > started_ns + 3_000_000_000)
        .map(|x| x.1)
        .collect();
    let before: Vec<f64> = before.iter().rev().take(4).map(|x| x.1).collect();
    assert!(
        !before.is_empty() && !after.is_empty(),
        "{before:?} {after:?}"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "tenant a: P̂ before the neighbour {:?} (mean {:.4}), after {:?} (mean {:.4})",
        before,
        mean(&before),
        after,
        mean(&after)
    );
    assert!(
        (mean(&before) - mean(&after)).abs() > 1e-4,
        "a's P̂ did not change when a heavy neighbour started"
    );
    // The window the latest P̂ was computed on shows the busier neighbourhood.
    let nbr_cpu = &detail["window"]["metrics"][format!("{NBR_PREFIX}cpu.usage_pct")];
    let vals: Vec<f64> = nbr_cpu
        .as_array()
        .unwrap_or_else(|| panic!("no {NBR_PREFIX}cpu.usage_pct in the window: {detail}"))
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    let last = *vals.last().expect("neighbour CPU values");
    for id in [&b, &c] {
        let (_, d) = p_history(addr, id);
        eprintln!(
            "{id}: cpu.usage_pct {}",
            d["window"]["metrics"]["cpu.usage_pct"]
        );
    }
    eprintln!("tenant a: neighbours' mean cpu.usage_pct in the window {vals:?}");
    assert!(
        last > 20.0,
        "neighbour mean CPU {last} after stress-ng --cpu 2 started"
    );

    // The Prometheus endpoint carries a gauge per tenant.
    let m = get(addr, "/metrics");
    assert!(
        m.text()
            .contains(&format!("cloudformer_tenant_p{{tenant=\"{a}\"}}")),
        "{}",
        m.text()
    );
    let _ = server.kill();
    let _ = server.wait();
    drop(tenants);
}
