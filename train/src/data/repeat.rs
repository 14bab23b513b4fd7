//! Oversampling one dataset directory among several: a small directory that teaches what the
//! large one lacks (idle neighbours, tenants time-sharing a CPU) weighs as much as its runs
//! appear, so `train --repeat idle=2` counts each of its runs twice.

use super::Run;
use crate::error::{Result, TrainError};

/// Every run loaded from the dataset directory named `name` (run ids `name:…`, as
/// [`super::load_many`] writes them with more than one directory) appears `times` times: the
/// copies get the run ids `name#2:…`, `name#3:…`, so every window keeps a key of its own.
/// Returns how many copies were added. `times` below 2, or a name that matches no run, is an
/// error naming it (a repeat that matches nothing would silently train on what it did before).
pub fn repeat_dir(runs: &mut Vec<Run>, name: &str, times: usize) -> Result<usize> {
    if times < 2 {
        return Err(TrainError::Dataset(format!(
            "repeating {name} {times} time(s) changes nothing: give 2 or more"
        )));
    }
    let prefix = super::dir_prefix(name);
    let originals: Vec<Run> = runs
        .iter()
        .filter(|r| r.run_id.starts_with(&prefix))
        .cloned()
        .collect();
    if originals.is_empty() {
        return Err(TrainError::Dataset(format!(
            "no run comes from a dataset directory named {name:?} (run ids {prefix}…); \
             repeat one of the --data directories by its last path component, with two or \
             more --data"
        )));
    }
    for copy in 2..=times {
        for r in &originals {
            let mut c = r.clone();
            c.run_id = format!("{name}#{copy}:{}", &r.run_id[prefix.len()..]);
            runs.push(c);
        }
    }
    Ok(originals.len() * (times - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RunContext;

    fn run(id: &str, app: &str) -> Run {
        Run {
            run_id: id.into(),
            tenant: "t0".into(),
            app: app.into(),
            scenario: "static".into(),
            t: 2,
            f: 1,
            x: vec![1.0, 2.0],
            p: 0.5,
            p_per_second: None,
            label_noise: 0.01,
            context: RunContext::default(),
        }
    }

    #[test]
    fn copies_the_named_directory_with_keys_of_their_own() {
        let mut runs = vec![
            run("data:c1", "a"),
            run("idle:c1", "b"),
            run("idle:c2", "b"),
            run("idler:c3", "c"),
        ];
        assert_eq!(repeat_dir(&mut runs, "idle", 3).unwrap(), 4);
        let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "data:c1",
                "idle:c1",
                "idle:c2",
                "idler:c3",
                "idle#2:c1",
                "idle#2:c2",
                "idle#3:c1",
                "idle#3:c2"
            ]
        );
        let keys: std::collections::BTreeSet<String> = runs.iter().map(Run::key).collect();
        assert_eq!(keys.len(), runs.len(), "every copy has a key of its own");
        assert!(runs[4..].iter().all(|r| r.app == "b" && r.x == [1.0, 2.0]));
    }

    #[test]
    fn a_repeat_that_changes_or_matches_nothing_is_refused() {
        let mut runs = vec![run("data:c1", "a"), run("idle:c1", "b")];
        let e = repeat_dir(&mut runs, "idel", 2).unwrap_err().to_string();
        assert!(e.contains("\"idel\""), "{e}");
        let e = repeat_dir(&mut runs, "idle", 1).unwrap_err().to_string();
        assert!(e.contains("2 or more"), "{e}");
        assert_eq!(runs.len(), 2, "nothing added by a refused repeat");
    }
}
