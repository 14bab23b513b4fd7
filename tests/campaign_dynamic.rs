//! A real dynamic run (campaigns/dynamic-smoke.toml): a sysbench victim on vCPU0, and a
//! neighbour that arrives mid-run (stress-ng at 100 % of the same vCPU, from 8 s to 14 s) and
//! leaves. The victim's per-second P steps down while the neighbour is there and back up after
//! it left; the runs table records the stay as it happened; the agent saw the neighbour come and
//! go (the victim's `placement.neighbours`). Fails, naming what is missing, when not root,
//! without cgroups, or without sysbench/stress-ng (`collector::testing::cannot_run`).

mod common;

use dataset::runs::{presence_per_second, schedule_from_json, RunKind};

#[test]
fn a_neighbour_arriving_mid_run_steps_the_victims_per_second_p() {
    let name = "a_neighbour_arriving_mid_run_steps_the_victims_per_second_p";
    if let Some(why) = common::campaign_skip_reason() {
        collector::testing::cannot_run(name, &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("camp");
    let st = common::campaign_command("dynamic-smoke.toml", &out)
        .status()
        .unwrap();
    assert!(st.success(), "campaign failed: {st}");
    let rows = common::runs_without_failures(&out);
    let d: Vec<_> = rows.iter().filter(|r| r.run_id == "d00000").collect();
    assert_eq!(d.len(), 1, "one row, the victim's");
    let v = d[0];
    assert_eq!(
        (v.kind, v.app.as_str()),
        (RunKind::Colocated, "sysbench-cpu")
    );
    assert_eq!(v.n_tenants, 2);
    assert_eq!(v.neighbours, "stress-cpu@l100");
    // The stay as it happened: planned 8–14 s; the neighbour has no server, so it arrives on
    // time (± the runner's 0.1 s poll).
    let stays = schedule_from_json(&v.neighbour_schedule).unwrap();
    assert_eq!(stays.len(), 1, "{stays:?}");
    let s = &stays[0];
    assert!(
        (8..=9).contains(&s.from_s) && (14..=15).contains(&s.to_s),
        "{s:?}"
    );
    // Per-second P: down while the neighbour shares the vCPU, up before and after (a second's
    // margin around each change: sysbench reports at the end of each second).
    let p = v
        .p_per_second
        .as_ref()
        .expect("sysbench reports every second");
    assert!(p.len() >= 18, "{p:?}");
    let present = presence_per_second(&stays, p.len() as u32);
    let near =
        |t: u32| t + 1 >= s.from_s && t <= s.from_s + 1 || t + 1 >= s.to_s && t <= s.to_s + 1;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for (t, (pt, who)) in p.iter().zip(&present).enumerate() {
        let t = t as u32;
        if near(t) || t == 0 || pt.is_nan() {
            continue;
        }
        if who.is_empty() {
            &mut without
        } else {
            &mut with
        }
        .push(*pt as f64);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    assert!(
        with.len() >= 3 && without.len() >= 8,
        "{with:?} {without:?}"
    );
    assert!(
        mean(&with) < 0.75 && mean(&without) > 0.85,
        "per-second P with the neighbour {with:?}, without {without:?}"
    );
    // The agent saw it come and go: the victim's placement.neighbours is 0, then 1, then 0.
    let ms = dataset::matrix::load_run_matrices(&out).unwrap();
    let m = ms.iter().find(|m| m.run_id == "d00000").unwrap();
    let names = dataset::catalogue::Catalogue::builtin().feature_names();
    let j = names
        .iter()
        .position(|n| n == "placement.neighbours")
        .unwrap();
    let seen: Vec<f32> = (0..m.t).map(|i| m.x[i * m.f + j]).collect();
    let ones = seen.iter().filter(|x| **x == 1.0).count();
    let zeros = seen.iter().filter(|x| **x == 0.0).count();
    assert!(
        ones >= 4 && zeros >= 8,
        "placement.neighbours per second: {seen:?}"
    );
    // Its cgroups are gone.
    for e in std::fs::read_dir("/sys/fs/cgroup/cpu").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = n.strip_prefix("cfc-") {
            assert!(
                std::path::Path::new("/proc").join(pid).exists(),
                "{n} left behind"
            );
        }
    }
}
