//! A plan extension (`extends = "plan.toml"`) adds co-located runs to a finished campaign's
//! directory: its runs carry its name (`heavy-c00000`), reuse the baselines the base plan already
//! measured, are labelled like the base's, and its text is kept beside the base plan's copy; the
//! same name with another text is refused. A real campaign (campaigns/smoke.toml with one 5-s
//! run). Fails, naming what is missing, when not root, without cgroups, or without
//! sysbench/stress-ng (`collector::testing::cannot_run`).

mod common;

use std::collections::HashMap;

use dataset::runs::{read_runs, runs_path, RunKind};

/// Two more runs on one core, of `app` only.
fn heavy(app: &str) -> String {
    format!(
        "# Two more runs, same core.\nextends = \"plan.toml\"\nseed = 11\ncolocated_runs = 2\n\
         sizes = [2]\nplacements = [\"same-core\"]\napps = [\"{app}\"]\n"
    )
}

#[test]
fn an_extension_adds_runs_to_a_campaign_directory() {
    if let Some(why) = common::campaign_skip_reason() {
        collector::testing::cannot_run("an_extension_adds_runs_to_a_campaign_directory", &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // campaigns/smoke.toml with one co-located run of 5 s.
    let edits = [
        ("run_seconds = 8", "run_seconds = 5"),
        ("colocated_runs = 2", "colocated_runs = 1"),
    ];
    let base = common::smoke_plan(dir.path(), &edits);
    let out = dir.path().join("camp");
    let (ok, log) = common::campaign_at(&base, &out, &[]);
    assert!(ok, "base campaign failed:\n{log}");
    let before = read_runs(&runs_path(&out)).unwrap();
    let groups_before: HashMap<String, usize> = baseline_groups(&before);

    // The extension draws only the application the sentinel (the first stored baseline) is
    // not: the resume replays a load that only the base plan schedules.
    let sentinel = before.iter().find(|r| r.kind == RunKind::Baseline).unwrap();
    let app = ["sysbench-cpu", "stress-cpu"]
        .into_iter()
        .find(|a| *a != sentinel.app)
        .unwrap();
    let text = heavy(app);
    let heavy = dir.path().join("heavy.toml");
    std::fs::write(&heavy, &text).unwrap();
    let check = common::bin()
        .args(["campaign", "check", "--plan"])
        .arg(&heavy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && said.contains("extends") && said.contains("2 co-located runs"),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let (ok, log) = common::campaign_at(&heavy, &out, &[]);
    assert!(ok, "extension failed:\n{log}");
    let key = sentinel.baseline_key().to_string();
    assert!(
        log.contains(&format!("sentinel baseline {key} at the start"))
            && !log.contains("no sentinel"),
        "the base plan's sentinel must be replayed:\n{log}"
    );

    let rows = read_runs(&runs_path(&out)).unwrap();
    assert_eq!(&rows[..before.len()], &before[..], "earlier rows changed");
    for id in ["heavy-c00000", "heavy-c00001"] {
        let run: Vec<_> = rows.iter().filter(|r| r.run_id == id).collect();
        assert_eq!(run.len(), 2, "{id}: {rows:#?}");
        for r in run {
            assert_eq!(r.kind, RunKind::Colocated);
            assert_eq!(r.seed, 11, "the extension's seed is recorded");
            assert_eq!(r.app, app, "the extension draws its own applications");
            assert!(r.p > 0.0 && r.p <= 1.0, "{id}: P {}", r.p);
        }
    }
    // A load the base plan already measured is not measured again.
    for (key, n) in baseline_groups(&rows) {
        assert_eq!(n, 3, "{key}: {n} baseline repeats");
        if let Some(b) = groups_before.get(&key) {
            assert_eq!(*b, n, "{key} was measured again");
        }
    }
    let copy = out.join("plans/heavy.toml");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), text);
    assert_eq!(
        std::fs::read_to_string(out.join("plan.toml")).unwrap(),
        std::fs::read_to_string(&base).unwrap()
    );

    let (ok, status) = common::campaign_status(&out);
    assert!(
        ok && status.contains("3/3 done")
            && status.contains("plan: 1/1")
            && status.contains("heavy: 2/2"),
        "{status}"
    );

    // The same extension name with another text is refused and changes nothing.
    std::fs::write(
        &heavy,
        text.replace("colocated_runs = 2", "colocated_runs = 3"),
    )
    .unwrap();
    let (ok, log) = common::campaign_at(&heavy, &out, &[]);
    assert!(
        !ok && log.contains("another text of the extension `heavy`"),
        "{log}"
    );
    assert_eq!(read_runs(&runs_path(&out)).unwrap(), rows);
}

/// Baseline repeats per key.
fn baseline_groups(rows: &[dataset::runs::RunRecord]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in rows.iter().filter(|r| r.kind == RunKind::Baseline) {
        *n.entry(r.baseline_key().to_string()).or_default() += 1;
    }
    n
}
