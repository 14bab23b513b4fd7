//! A campaign directory resumed on a machine that is not the host its baselines were measured
//! on: the resume is refused, naming `--new-host`; with `--new-host` it goes on as host 1, measures
//! fresh baselines there and labels each of its runs against them, leaving host 0's rows as they
//! were. A real campaign (campaigns/smoke.toml with shorter runs); the other machine is made by
//! scaling every stored baseline by 1.5, as a host that much slower would have measured them.
//! Fails, naming what is missing, when not root, without cgroups, or without sysbench/stress-ng
//! (`collector::testing::cannot_run`).

mod common;

use std::collections::HashSet;

use dataset::runs::{read_runs, runs_path, write_runs, Baseline, RunKind};

#[test]
fn a_new_host_measures_its_own_baselines() {
    if let Some(why) = common::campaign_skip_reason() {
        collector::testing::cannot_run("a_new_host_measures_its_own_baselines", &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // campaigns/smoke.toml (2 co-located runs of 2 tenants, 3 repeats per baseline), 5-s runs.
    let plan = common::smoke_plan(dir.path(), &[("run_seconds = 8", "run_seconds = 5")]);
    let out = dir.path().join("camp");

    // 1. A first part on this machine (host 0): the first co-located run and its baselines.
    let (ok, log) = common::campaign_at(&plan, &out, &["--stop-after", "1s"]);
    assert!(ok, "first part failed:\n{log}");
    assert!(log.contains("stopped after --stop-after: 1 of 2"), "{log}");
    let path = runs_path(&out);
    let first = read_runs(&path).unwrap();
    assert!(
        first.iter().all(|r| r.host == 0),
        "a new directory is host 0"
    );

    // 2. The stored host becomes a machine 1.5× faster than this one.
    let mut other = first.clone();
    for r in other.iter_mut().filter(|r| r.kind == RunKind::Baseline) {
        r.perf_actual *= 1.5;
    }
    write_runs(&path, &other).unwrap();

    // 3. Without --new-host the resume is refused, naming the flag, and changes nothing.
    let (ok, log) = common::campaign_at(&plan, &out, &[]);
    assert!(
        !ok,
        "a machine unlike the stored host must be refused:\n{log}"
    );
    assert!(
        log.contains("machine changed") && log.contains("--new-host"),
        "{log}"
    );
    assert_eq!(
        read_runs(&path).unwrap(),
        other,
        "the refusal changed the table"
    );

    // 4. With --new-host: this machine is host 1, with baselines of its own.
    let (ok, log) = common::campaign_at(&plan, &out, &["--new-host"]);
    assert!(ok, "--new-host resume failed:\n{log}");
    assert!(log.contains("this machine is host 1"), "{log}");
    let rows = read_runs(&path).unwrap();
    let old: Vec<_> = rows.iter().filter(|r| r.host == 0).cloned().collect();
    assert_eq!(old, other, "host 0's rows must stay as they were");
    let second: Vec<_> = rows.iter().filter(|r| r.run_id == "c00001").collect();
    assert_eq!(second.len(), 2, "{rows:#?}");
    let old_ids: HashSet<&str> = old.iter().map(|r| r.run_id.as_str()).collect();
    for r in &second {
        assert_eq!(r.host, 1, "{} {}", r.run_id, r.tenant);
        let key = r.baseline_key();
        let repeats: Vec<_> = (rows.iter())
            .filter(|b| b.kind == RunKind::Baseline && b.baseline_key() == key)
            .collect();
        assert_eq!(repeats.len(), 3, "host 1's baselines of {key}");
        assert!(repeats.iter().all(|b| b.host == 1 && b.is_ok()));
        assert!(
            repeats.iter().all(|b| !old_ids.contains(b.run_id.as_str())),
            "host 1's baselines are runs of their own"
        );
        let b = Baseline::of_key(&rows, &key).unwrap();
        assert_eq!(
            r.perf_ideal, b.perf_ideal,
            "labelled against host 1's baseline"
        );
        assert!(r.p > 0.0 && r.p <= 1.0, "P {}", r.p);
        // The same load's host-0 baseline (scaled ×1.5 above) would read ~1.5× as fast.
        let on_first = Baseline::of_key(&rows, &key.clone().on_host(0));
        if let Some(b0) = on_first {
            assert!(b0.perf_ideal > 1.2 * b.perf_ideal, "{key}: {b0:?} vs {b:?}");
        }
    }

    // 5. `campaign status` lists both hosts.
    let (ok, status) = common::campaign_status(&out);
    assert!(
        ok && status.contains("host 0:") && status.contains("host 1:"),
        "{status}"
    );
}
