use std::path::Path;

use super::*;
use crate::plan::PlanError;

const PLAN: &str = r#"
seed = 5
run_seconds = 60
colocated_runs = 2
sizes = [2, 3]
placements = ["same-core"]

[dynamic]
runs = 6
changes = 3
min_gap_seconds = 8

[limits]
cpu = 1.0
mem_mb = 256

[[app]]
name = "sb"
load = "sysbench cpu --time={duration} run"
metric = "events_per_s"
higher_is_better = true
run_regex = 'events per second:\s*([0-9.]+)'
second_regex = 'eps: ([0-9.]+)'
levels = [{ name = "one", threads = 1 }]

[[app]]
name = "st"
load = "stress-ng --cpu 1 --cpu-load {load} -t {duration}s"
metric = "bogo"
higher_is_better = true
run_regex = 'x ([0-9.]+)'
levels = [{ name = "l30", load = 30 }, { name = "l60", load = 60 }, { name = "l100", load = 100 }]
"#;

fn parse(text: &str) -> Result<Plan, PlanError> {
    Plan::parse_with(text, Path::new("d.toml"), &|_| true)
}

#[test]
fn stays_fit_the_run_and_every_event_changes_something() {
    let plan = parse(PLAN).unwrap();
    let runs = dynamic_schedule(&plan);
    assert_eq!(runs.len(), 6);
    assert_eq!(runs, dynamic_schedule(&plan), "deterministic from the seed");
    assert_eq!(runs[0].run_id, "d00000");
    let mut changed_level = false;
    for r in &runs {
        assert_eq!(r.victim.app, "sb", "victims report every second");
        for slot in 1..=r.slot_cpusets.len() as u32 {
            let stays: Vec<&NeighbourStay> = r.stays.iter().filter(|s| s.slot == slot).collect();
            // Per second: who is there at what level; each of the 3 events changes it.
            let state: Vec<Option<(String, String)>> = (0..60)
                .map(|t| {
                    stays
                        .iter()
                        .find_map(|s| s.level_at(t).map(|l| (s.app.clone(), l.to_string())))
                })
                .collect();
            let changes = state.windows(2).filter(|w| w[0] != w[1]).count();
            assert_eq!(changes, 3, "{r:?} slot {slot}");
            for s in &stays {
                assert!(s.from_s < s.to_s && s.to_s <= 60);
                assert_eq!(s.levels.first().unwrap().1, s.from_s);
                assert_eq!(s.levels.last().unwrap().2, s.to_s);
                assert!(s.levels.windows(2).all(|w| w[0].2 == w[1].1));
                changed_level |= s.levels.len() > 1;
            }
            for w in stays.windows(2) {
                assert!(w[1].from_s >= w[0].to_s + 8, "stays too close: {w:?}");
            }
        }
    }
    assert!(changed_level, "no level change in 6 runs");
}

#[test]
fn a_schedule_longer_than_the_run_names_the_line() {
    let text = PLAN.replace("min_gap_seconds = 8", "min_gap_seconds = 20");
    match parse(&text).unwrap_err() {
        PlanError::At { line, msg, .. } => {
            assert_eq!(line, 11, "{msg}");
            assert!(
                msg.contains("80 s") && msg.contains("run_seconds = 60"),
                "{msg}"
            );
        }
        e => panic!("{e}"),
    }
}

#[test]
fn dynamic_runs_need_a_victim_that_reports_every_second() {
    let text = PLAN.replace("second_regex = 'eps: ([0-9.]+)'\n", "");
    match parse(&text).unwrap_err() {
        PlanError::At { line, msg, .. } => {
            assert_eq!(line, 9, "{msg}");
            assert!(msg.contains("second_regex"), "{msg}");
        }
        e => panic!("{e}"),
    }
    let none = PLAN.replace("runs = 6", "runs = 0");
    assert!(dynamic_schedule(&parse(&none).unwrap()).is_empty());
}
