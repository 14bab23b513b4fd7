//! A tenant's load as a shell script (one command per trace step, each after a marker line) and
//! its performance read back from the output with the application's regexes.
//!
//! An application with `slices = true` runs its command in 1-second slices instead (`{duration}`
//! = 1, each after a [`SLICE_MARKER`] line): each slice's last `run_regex` match is that
//! second's value, and a step's value is the mean of its slices. This gives a per-second value
//! to tools that report only at their end (stress-ng, wrk, fio) at the cost of restarting them
//! every second — the same cost in the baseline and the co-located runs, so P keeps its meaning.

use std::collections::BTreeMap;

use crate::plan::{substitute, App};
use crate::schedule::TenantSpec;

/// Marker line written before each trace step of a tenant's load.
pub const STEP_MARKER: &str = "### cloudformer step";
/// Marker line written before each 1-second slice of a sliced load.
pub const SLICE_MARKER: &str = "### cloudformer slice";

/// Values of the first capture group of every match, in order.
pub fn parse_numbers(re: &regex::Regex, text: &str) -> Vec<f64> {
    re.captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter_map(|m| m.as_str().replace(',', "").parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect()
}

/// Per-run performance of a tenant's log: the mean over trace steps of the last `run_regex`
/// match of each step (one step per [`STEP_MARKER`]), `None` when a step has none; and the
/// per-second values `second_regex` finds in the whole log.
pub fn parse_perf(app: &App, text: &str) -> (Option<f64>, Vec<f32>) {
    if app.slices {
        return parse_sliced(app, text);
    }
    let mut vals = Vec::new();
    for step in text.split(STEP_MARKER).skip(1) {
        match parse_numbers(&app.run_regex, step).last() {
            Some(v) => vals.push(*v),
            None => return (None, Vec::new()),
        }
    }
    let per_second = app
        .second_regex
        .as_ref()
        .map(|re| {
            parse_numbers(re, text)
                .into_iter()
                .map(|v| v as f32)
                .collect()
        })
        .unwrap_or_default();
    let perf = (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64);
    (perf, per_second)
}

/// A sliced load's values: per slice the last `run_regex` match (NaN where a slice printed
/// none), per step the mean of its slices (`None` when a step has no value at all).
fn parse_sliced(app: &App, text: &str) -> (Option<f64>, Vec<f32>) {
    let mut steps = Vec::new();
    let mut per_second = Vec::new();
    for step in text.split(STEP_MARKER).skip(1) {
        let vals: Vec<f64> = step
            .split(SLICE_MARKER)
            .skip(1)
            .map(|s| {
                parse_numbers(&app.run_regex, s)
                    .last()
                    .copied()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        per_second.extend(vals.iter().map(|v| *v as f32));
        let ok: Vec<f64> = vals.into_iter().filter(|v| v.is_finite()).collect();
        if ok.is_empty() {
            return (None, Vec::new());
        }
        steps.push(ok.iter().sum::<f64>() / ok.len() as f64);
    }
    let perf = (!steps.is_empty()).then(|| steps.iter().sum::<f64>() / steps.len() as f64);
    (perf, per_second)
}

/// One step of a load script: the command for `secs` seconds, or (sliced) `secs` 1-second runs
/// of it, each after its marker line.
pub fn step_commands(app: &App, vars: &BTreeMap<String, String>, secs: usize) -> String {
    let mut v = vars.clone();
    if !app.slices {
        v.insert("duration".into(), secs.to_string());
        return format!("{} || exit $?\n", substitute(&app.load, &v));
    }
    v.insert("duration".into(), "1".into());
    format!(
        "i=0; while [ $i -lt {secs} ]; do echo {}; {} || exit $?; i=$((i+1)); done\n",
        shell_quote(SLICE_MARKER),
        substitute(&app.load, &v)
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Builds the load script of a tenant: one command per trace step, the level's rate scaled by
/// the step's multiplier, each step `run_seconds / steps` long.
pub fn load_script(
    app: &App,
    spec: &TenantSpec,
    vars: &BTreeMap<String, String>,
    run_seconds: u32,
) -> String {
    let level = app.levels.iter().find(|l| l.name == spec.level);
    let steps = spec.multipliers.len().max(1);
    let step_s = (run_seconds as usize / steps).max(1);
    let mut script = String::new();
    for (i, m) in spec.multipliers.iter().enumerate() {
        let mut v = vars.clone();
        if let Some(rate) = level.and_then(|l| l.rate) {
            v.insert(
                "rate".into(),
                format!("{}", ((rate * m).round() as i64).max(1)),
            );
        }
        script.push_str(&format!(
            "echo {}\n",
            shell_quote(&format!("{STEP_MARKER} {i}"))
        ));
        script.push_str(&step_commands(app, &v, step_s));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::schedule::TenantSpec;

    fn app(load: &str) -> App {
        let text = format!(
            "seed = 1\nrun_seconds = 3\ncolocated_runs = 1\ntrace_steps = 1\n\n[[app]]\nname = \
             \"a\"\nload = '{load}'\nmetric = \"ops\"\nhigher_is_better = true\nrun_regex = \
             'rate ([0-9.]+)'\nslices = true\n"
        );
        Plan::parse_with(&text, std::path::Path::new("t.toml"), &|_| true)
            .unwrap()
            .apps
            .remove(0)
    }

    fn spec() -> TenantSpec {
        TenantSpec {
            app: "a".into(),
            level: "default".into(),
            scenario: dataset::runs::Scenario::Static,
            trace: "static".into(),
            multipliers: vec![1.0],
            cpuset: None,
            shape: None,
        }
    }

    /// Runs a load script with sh in `dir`; its output.
    fn run(script: &str, dir: &std::path::Path) -> String {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    #[test]
    fn a_sliced_load_runs_once_a_second_and_each_slice_is_a_value() {
        let dir = tempfile::tempdir().unwrap();
        // Each 1-second slice (duration 1) prints its own number: 1, 2, 3.
        let a =
            app("n=$(cat c 2>/dev/null || echo 0); n=$((n+{duration})); echo $n > c; echo rate $n");
        let script = load_script(&a, &spec(), &BTreeMap::new(), 3);
        let out = run(&script, dir.path());
        let (perf, per_second) = parse_perf(&a, &out);
        assert_eq!(per_second, vec![1.0, 2.0, 3.0], "{out}");
        assert_eq!(perf, Some(2.0));
    }

    #[test]
    fn a_slice_without_a_value_is_nan_and_left_out_of_the_mean() {
        let a = app("true");
        let text = format!(
            "{STEP_MARKER} 0\n{SLICE_MARKER}\nrate 4\n{SLICE_MARKER}\nnothing\n{SLICE_MARKER}\nrate 6\n"
        );
        let (perf, per_second) = parse_perf(&a, &text);
        assert_eq!(perf, Some(5.0));
        assert_eq!(per_second[0], 4.0);
        assert!(per_second[1].is_nan());
        let none = format!("{STEP_MARKER} 0\n{SLICE_MARKER}\nnothing\n");
        assert_eq!(parse_perf(&a, &none), (None, vec![]));
    }
}
