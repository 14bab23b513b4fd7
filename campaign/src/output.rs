//! A tenant's load as a shell script (one command per trace step, each after a marker line) and
//! its performance read back from the output with the application's regexes.

use std::collections::BTreeMap;

use crate::plan::{substitute, App};
use crate::schedule::TenantSpec;

/// Marker line written before each trace step of a tenant's load.
pub const STEP_MARKER: &str = "### cloudformer step";

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
        v.insert("duration".into(), step_s.to_string());
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
        script.push_str(&substitute(&app.load, &v));
        script.push_str(" || exit $?\n");
    }
    script
}
