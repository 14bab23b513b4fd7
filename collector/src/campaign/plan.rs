//! The campaign plan (TOML). Applications are **data**: how to start a server (if any), how to
//! prepare it, the load command (with `{rate}`, `{duration}`, `{port}`, `{workdir}`, `{cpus}` and
//! per-level placeholders), and regexes reading the performance metric per run and per second
//! from the load command's output. See `docs/campaigns.md` for the format.
//!
//! [`Plan::parse`] validates everything before any run starts; every error names the plan line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

/// Trace kinds. `static` keeps the level's rate; the others modulate it every step.
pub const SCENARIOS: &[&str] = &["static", "increasing", "decreasing", "periodic", "random"];
/// Placements.
pub const PLACEMENTS: &[&str] = &["same-core", "cross-core", "unpinned"];

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{file}:{line}: {msg}")]
    At {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("cannot read plan {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    seed: u64,
    run_seconds: u32,
    #[serde(default = "d_repeats")]
    repeats: u32,
    #[serde(default)]
    warmup_seconds: u32,
    #[serde(default = "d_foreign")]
    foreign_cpu_max_pct: f64,
    #[serde(default = "d_retakes")]
    max_retakes: u32,
    #[serde(default = "d_sizes")]
    sizes: Vec<u32>,
    #[serde(default = "d_placements")]
    placements: Vec<String>,
    #[serde(default = "d_scenarios")]
    scenarios: Vec<String>,
    #[serde(default = "d_steps")]
    trace_steps: u32,
    #[serde(default = "d_random_traces")]
    random_traces: u32,
    colocated_runs: u32,
    #[serde(default)]
    apps: Vec<String>,
    #[serde(default)]
    work_dir: Option<PathBuf>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(rename = "app", default)]
    app_defs: Vec<RawApp>,
}

fn d_repeats() -> u32 {
    3
}
fn d_foreign() -> f64 {
    30.0
}
fn d_retakes() -> u32 {
    2
}
fn d_sizes() -> Vec<u32> {
    vec![2]
}
fn d_placements() -> Vec<String> {
    vec!["same-core".into(), "cross-core".into()]
}
fn d_scenarios() -> Vec<String> {
    vec!["static".into()]
}
fn d_steps() -> u32 {
    5
}
fn d_random_traces() -> u32 {
    3
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// vCPUs per tenant (CFS quota); 0 = none.
    #[serde(default)]
    cpu: f64,
    /// MiB per tenant; 0 = none.
    #[serde(default)]
    mem_mb: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    ready: Option<String>,
    #[serde(default)]
    prepare: Option<String>,
    load: String,
    metric: String,
    higher_is_better: bool,
    run_regex: String,
    #[serde(default)]
    second_regex: Option<String>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    levels: Vec<BTreeMap<String, toml::Value>>,
    #[serde(default)]
    limits: Option<RawLimits>,
}

/// One load level of an application: its name and placeholder values.
#[derive(Debug, Clone)]
pub struct Level {
    pub name: String,
    pub vars: BTreeMap<String, String>,
    /// The level's request rate, when the generator takes one (`rate` key).
    pub rate: Option<f64>,
}

/// One application, validated.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub server: Option<String>,
    pub ready: Option<String>,
    pub prepare: Option<String>,
    pub load: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub run_regex: Regex,
    pub second_regex: Option<Regex>,
    pub levels: Vec<Level>,
    pub cpu_limit: f64,
    pub mem_limit_mb: f64,
    /// Plan line of the `[[app]]` entry.
    pub line: usize,
}

impl App {
    /// Whether dynamic traces apply (the load command takes `{rate}`).
    pub fn takes_rate(&self) -> bool {
        self.load.contains("{rate}")
    }
}

/// A validated plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub text: String,
    pub seed: u64,
    pub run_seconds: u32,
    pub repeats: u32,
    pub warmup_seconds: u32,
    pub foreign_cpu_max_pct: f64,
    pub max_retakes: u32,
    pub sizes: Vec<u32>,
    pub placements: Vec<String>,
    pub scenarios: Vec<String>,
    pub trace_steps: u32,
    /// How many distinct seeded traces the `random` scenario draws from.
    pub random_traces: u32,
    pub colocated_runs: u32,
    pub work_dir: PathBuf,
    pub apps: Vec<App>,
}

/// 1-based line of the first line containing `needle` (1 when absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// Line of key `key` (at the start of a line, optionally indented) after line `from`.
fn key_line(text: &str, key: &str, from: usize) -> usize {
    for (i, l) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return i + 1;
            }
        }
    }
    from.max(1)
}

fn find_binary(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).is_file();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(name).is_file())
}

/// The program a shell command runs first (skips `VAR=value`, `exec`, `timeout N`,
/// `runuser -u USER --`, `env`).
pub fn first_program(cmd: &str) -> Option<String> {
    let toks: Vec<&str> = cmd.split_whitespace().collect();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let assignment = t.contains('=') && !t.starts_with('-') && !t.contains('/');
        if assignment || t == "exec" || t == "env" || t == "nice" {
            i += 1;
        } else if t == "timeout" {
            i += 1;
            while i < toks.len() && toks[i].starts_with('-') {
                // -s SIGNAL / -k DURATION take a value
                i += if toks[i] == "-s" || toks[i] == "-k" {
                    2
                } else {
                    1
                };
            }
            i += 1; // the duration
        } else if t == "runuser" {
            while i < toks.len() && toks[i] != "--" {
                i += 1;
            }
            i += 1;
        } else {
            return Some(t.trim_matches(|c| c == '(' || c == '\'').to_string());
        }
    }
    None
}

fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn mem_total_mb() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::INFINITY)
}

fn value_str(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Plan {
    /// Reads and validates a plan file.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Plan::parse(&text, path)
    }

    /// Parses and validates a plan; `path` names it in errors. Checks binaries exist.
    pub fn parse(text: &str, path: &Path) -> Result<Plan, PlanError> {
        Plan::parse_with(text, path, &find_binary)
    }

    /// [`Plan::parse`] with a custom binary check (tests).
    pub fn parse_with(
        text: &str,
        path: &Path,
        has_binary: &dyn Fn(&str) -> bool,
    ) -> Result<Plan, PlanError> {
        let file = path.display().to_string();
        let err = |line: usize, msg: String| PlanError::At {
            file: file.clone(),
            line,
            msg,
        };
        let raw: RawPlan = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(1);
            err(line, e.message().to_string())
        })?;
        let ncpu = online_cpus();
        let mem = mem_total_mb();
        let k = |key: &str| key_line(text, key, 1);

        if raw.run_seconds < 3 {
            return Err(err(
                k("run_seconds"),
                format!("run_seconds = {} is too short (≥ 3)", raw.run_seconds),
            ));
        }
        if raw.repeats < 3 {
            return Err(err(
                k("repeats"),
                format!(
                    "repeats = {}: at least 3 isolated baselines are needed to measure label noise",
                    raw.repeats
                ),
            ));
        }
        if raw.sizes.is_empty() || raw.sizes.iter().any(|s| !(2..=8).contains(s)) {
            return Err(err(
                k("sizes"),
                format!(
                    "co-location sizes {:?} must be in 2..=8 (tenants per run)",
                    raw.sizes
                ),
            ));
        }
        for p in &raw.placements {
            if !PLACEMENTS.contains(&p.as_str()) && !p.starts_with("cpuset:") {
                return Err(err(
                    k("placements"),
                    format!("unknown placement `{p}` (one of {PLACEMENTS:?} or `cpuset:<list>`)"),
                ));
            }
            if let Some(list) = p.strip_prefix("cpuset:") {
                for c in parse_cpulist(list).map_err(|m| err(k("placements"), m))? {
                    if c >= ncpu {
                        return Err(err(
                            k("placements"),
                            format!("placement `{p}` names CPU {c}, this machine has {ncpu}"),
                        ));
                    }
                }
            }
        }
        if raw.placements.is_empty() {
            return Err(err(k("placements"), "no placement given".into()));
        }
        for s in &raw.scenarios {
            if !SCENARIOS.contains(&s.as_str()) {
                return Err(err(
                    k("scenarios"),
                    format!("unknown scenario `{s}` (one of {SCENARIOS:?})"),
                ));
            }
        }
        if raw.scenarios.is_empty() {
            return Err(err(k("scenarios"), "no scenario given".into()));
        }
        if raw.trace_steps == 0 || raw.trace_steps > raw.run_seconds {
            return Err(err(
                k("trace_steps"),
                format!(
                    "trace_steps = {} must be in 1..=run_seconds ({})",
                    raw.trace_steps, raw.run_seconds
                ),
            ));
        }
        let check_limits = |l: &RawLimits, section: usize| -> Result<(), PlanError> {
            let line = key_line(text, "cpu", section);
            if l.cpu.is_nan() || l.cpu < 0.0 || l.cpu > ncpu as f64 {
                return Err(err(
                    line,
                    format!(
                        "cpu limit {} vCPUs is impossible on this machine ({ncpu} CPUs)",
                        l.cpu
                    ),
                ));
            }
            if l.cpu > 0.0 && l.cpu < 0.01 {
                return Err(err(
                    line,
                    format!("cpu limit {} vCPUs is below 0.01", l.cpu),
                ));
            }
            let line = key_line(text, "mem_mb", section);
            if l.mem_mb.is_nan() || l.mem_mb < 0.0 || l.mem_mb > mem {
                return Err(err(
                    line,
                    format!(
                        "memory limit {} MiB is impossible (machine has {:.0} MiB)",
                        l.mem_mb, mem
                    ),
                ));
            }
            if l.mem_mb > 0.0 && l.mem_mb < 16.0 {
                return Err(err(
                    line,
                    format!("memory limit {} MiB is below 16 MiB", l.mem_mb),
                ));
            }
            Ok(())
        };
        check_limits(&raw.limits, line_of(text, "[limits]"))?;

        let mut apps = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for a in &raw.app_defs {
            let line = line_of(text, &format!("name = \"{}\"", a.name));
            if !seen.insert(a.name.clone()) {
                return Err(err(
                    line,
                    format!("application `{}` is defined twice", a.name),
                ));
            }
            if a.name.is_empty()
                || !a
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(err(
                    line,
                    format!("application name `{}` must be [A-Za-z0-9_-]+", a.name),
                ));
            }
            let run_regex = Regex::new(&a.run_regex).map_err(|e| {
                err(
                    key_line(text, "run_regex", line),
                    format!("application `{}`: bad run_regex: {e}", a.name),
                )
            })?;
            if run_regex.captures_len() < 2 {
                return Err(err(
                    key_line(text, "run_regex", line),
                    format!(
                        "application `{}`: run_regex needs a capture group for the number",
                        a.name
                    ),
                ));
            }
            let second_regex = match &a.second_regex {
                None => None,
                Some(r) => {
                    let re = Regex::new(r).map_err(|e| {
                        err(
                            key_line(text, "second_regex", line),
                            format!("application `{}`: bad second_regex: {e}", a.name),
                        )
                    })?;
                    if re.captures_len() < 2 {
                        return Err(err(
                            key_line(text, "second_regex", line),
                            format!(
                                "application `{}`: second_regex needs a capture group",
                                a.name
                            ),
                        ));
                    }
                    Some(re)
                }
            };
            let mut bins: Vec<String> = a.requires.clone();
            for c in [Some(&a.load), a.server.as_ref()].into_iter().flatten() {
                if let Some(p) = first_program(c) {
                    if !p.contains('{') {
                        bins.push(p);
                    }
                }
            }
            for b in &bins {
                if !has_binary(b) {
                    return Err(err(
                        line,
                        format!(
                            "application `{}`: binary `{b}` is not installed (see scripts/apt-packages.d/campaign.txt)",
                            a.name
                        ),
                    ));
                }
            }
            let limits = a.limits.clone().unwrap_or_else(|| raw.limits.clone());
            if a.limits.is_some() {
                check_limits(&limits, key_line(text, "limits", line))?;
            }
            let mut levels = Vec::new();
            let raw_levels = if a.levels.is_empty() {
                vec![BTreeMap::from([(
                    "name".to_string(),
                    toml::Value::String("default".into()),
                )])]
            } else {
                a.levels.clone()
            };
            let lline = key_line(text, "levels", line);
            for l in &raw_levels {
                let name = match l.get("name") {
                    Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
                    _ => {
                        return Err(err(
                            lline,
                            format!(
                                "application `{}`: every level needs a `name` string",
                                a.name
                            ),
                        ))
                    }
                };
                let vars: BTreeMap<String, String> =
                    l.iter().map(|(k, v)| (k.clone(), value_str(v))).collect();
                let rate = match l.get("rate") {
                    None => None,
                    Some(toml::Value::Integer(i)) if *i > 0 => Some(*i as f64),
                    Some(toml::Value::Float(f)) if *f > 0.0 => Some(*f),
                    Some(v) => {
                        return Err(err(
                            lline,
                            format!(
                            "application `{}` level `{name}`: rate {v} must be a positive number",
                            a.name
                        ),
                        ))
                    }
                };
                levels.push(Level { name, vars, rate });
            }
            let app = App {
                name: a.name.clone(),
                server: a.server.clone(),
                ready: a.ready.clone(),
                prepare: a.prepare.clone(),
                load: a.load.clone(),
                metric: a.metric.clone(),
                higher_is_better: a.higher_is_better,
                run_regex,
                second_regex,
                levels,
                cpu_limit: limits.cpu,
                mem_limit_mb: limits.mem_mb,
                line,
            };
            // Every placeholder must be known.
            for cmd in [
                Some(&app.load),
                app.server.as_ref(),
                app.ready.as_ref(),
                app.prepare.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                for lv in &app.levels {
                    let probe = substitute(cmd, &probe_vars(lv));
                    if let Some(i) = probe.find('{') {
                        let rest = &probe[i..];
                        let end = rest.find('}').map(|e| e + 1).unwrap_or(rest.len());
                        return Err(err(
                            line,
                            format!(
                                "application `{}` level `{}`: unknown placeholder `{}` in `{cmd}`",
                                app.name,
                                lv.name,
                                &rest[..end]
                            ),
                        ));
                    }
                }
            }
            if app.takes_rate() && app.levels.iter().any(|l| l.rate.is_none()) {
                return Err(err(
                    line,
                    format!(
                        "application `{}` takes {{rate}}: every level needs `rate`",
                        app.name
                    ),
                ));
            }
            apps.push(app);
        }
        if !raw.apps.is_empty() {
            let aline = k("apps");
            for n in &raw.apps {
                if !apps.iter().any(|a| &a.name == n) {
                    return Err(err(
                        aline,
                        format!("unknown application `{n}` (not defined by an [[app]] entry)"),
                    ));
                }
            }
            apps.retain(|a| raw.apps.contains(&a.name));
        }
        if apps.is_empty() {
            return Err(err(1, "the plan defines no application".into()));
        }
        // Impossible co-locations: a tenant size that exceeds what the limits allow together.
        let max_size = raw.sizes.iter().copied().max().unwrap_or(2) as f64;
        let mem_need: f64 = apps.iter().map(|a| a.mem_limit_mb).fold(0.0, f64::max) * max_size;
        if mem_need > mem {
            return Err(err(
                k("sizes"),
                format!(
                    "{max_size} tenants × {:.0} MiB memory limit exceed this machine's {mem:.0} MiB",
                    mem_need / max_size
                ),
            ));
        }
        Ok(Plan {
            path: path.to_path_buf(),
            text: text.to_string(),
            seed: raw.seed,
            run_seconds: raw.run_seconds,
            repeats: raw.repeats,
            warmup_seconds: raw.warmup_seconds,
            foreign_cpu_max_pct: raw.foreign_cpu_max_pct,
            max_retakes: raw.max_retakes,
            sizes: raw.sizes,
            placements: raw.placements,
            scenarios: raw.scenarios,
            trace_steps: raw.trace_steps,
            random_traces: raw.random_traces.max(1),
            colocated_runs: raw.colocated_runs,
            work_dir: raw
                .work_dir
                .unwrap_or_else(|| std::env::temp_dir().join("cloudformer-campaign")),
            apps,
        })
    }

    pub fn app(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }
}

fn probe_vars(lv: &Level) -> BTreeMap<String, String> {
    let mut v = lv.vars.clone();
    for k in [
        "rate", "duration", "port", "workdir", "cpus", "tenant", "plan_dir",
    ] {
        v.entry(k.to_string()).or_insert_with(|| "1".into());
    }
    v
}

/// Replaces `{key}` by its value for every key in `vars`.
pub fn substitute(cmd: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = cmd.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Parses a cpu list such as `0-1,3`.
pub fn parse_cpulist(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad cpu list `{s}`");
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if b < a {
                return Err(bad());
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| bad())?);
        }
    }
    if out.is_empty() {
        return Err(format!("empty cpu list `{s}`"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
seed = 1
run_seconds = 10
colocated_runs = 4
sizes = [2]

[limits]
cpu = 1.0
mem_mb = 512

[[app]]
name = "sb"
load = "sysbench cpu --time={duration} run"
metric = "events_per_s"
higher_is_better = true
run_regex = 'events per second:\s*([0-9.]+)'
second_regex = 'eps: ([0-9.]+)'
levels = [{ name = "one", threads = 1 }]

[[app]]
name = "pg"
server = "postgres -p {port}"
load = "pgbench -p {port} -T {duration} -R {rate}"
metric = "latency_ms"
higher_is_better = false
run_regex = 'latency average = ([0-9.]+)'
levels = [{ name = "low", rate = 100 }]
"#;

    fn parse(text: &str) -> Result<Plan, PlanError> {
        Plan::parse_with(text, Path::new("p.toml"), &|b| b != "missingbin")
    }

    fn line_of_err(e: PlanError) -> (usize, String) {
        match e {
            PlanError::At { line, msg, .. } => (line, msg),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn good_plan_parses() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.apps.len(), 2);
        assert!(p.apps[1].takes_rate());
        assert_eq!(p.apps[1].levels[0].rate, Some(100.0));
        assert_eq!(p.apps[0].cpu_limit, 1.0);
        assert_eq!(p.repeats, 3);
    }

    #[test]
    fn unknown_application_names_the_line() {
        let text = GOOD.replace("sizes = [2]", "sizes = [2]\napps = [\"sb\", \"nosuch\"]");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 6, "{msg}");
        assert!(msg.contains("nosuch"), "{msg}");
    }

    #[test]
    fn missing_binary_names_the_line() {
        let text = GOOD.replace("sysbench cpu", "missingbin cpu");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 12, "{msg}");
        assert!(msg.contains("missingbin") && msg.contains("sb"), "{msg}");
    }

    #[test]
    fn bad_regex_names_the_line() {
        let text = GOOD.replace(
            r"latency average = ([0-9.]+)",
            r"latency (average = [0-9.]+",
        );
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 26, "{msg}");
        assert!(msg.contains("run_regex") && msg.contains("pg"), "{msg}");
    }

    #[test]
    fn regex_without_group_is_rejected() {
        let text = GOOD.replace(r"'eps: ([0-9.]+)'", r"'eps: [0-9.]+'");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 17, "{msg}");
        assert!(msg.contains("capture group"), "{msg}");
    }

    #[test]
    fn impossible_limits_name_the_line() {
        let text = GOOD.replace("cpu = 1.0", "cpu = 64.0");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 8, "{msg}");
        assert!(msg.contains("64"), "{msg}");
        let text = GOOD.replace("mem_mb = 512", "mem_mb = 99999999");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 9, "{msg}");
        assert!(msg.contains("memory"), "{msg}");
    }

    #[test]
    fn too_few_repeats_and_bad_toml_name_the_line() {
        let text = GOOD.replace("seed = 1", "seed = 1\nrepeats = 2");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 3, "{msg}");
        assert!(msg.contains("at least 3"), "{msg}");
        let text = GOOD.replace("colocated_runs = 4", "colocated_runs = = 4");
        let (line, _) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 4);
    }

    #[test]
    fn rate_app_needs_rates_and_placeholders_are_checked() {
        let text = GOOD.replace(r#"{ name = "low", rate = 100 }"#, r#"{ name = "low" }"#);
        let (_, msg) = line_of_err(parse(&text).unwrap_err());
        assert!(msg.contains("rate"), "{msg}");
        let text = GOOD.replace("--time={duration}", "--time={durration}");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 12);
        assert!(msg.contains("{durration}"), "{msg}");
    }

    #[test]
    fn first_program_skips_wrappers() {
        assert_eq!(
            first_program("FOO=1 timeout -s INT 5 redis-benchmark -q").as_deref(),
            Some("redis-benchmark")
        );
        assert_eq!(
            first_program("runuser -u postgres -- pgbench -T 3").as_deref(),
            Some("pgbench")
        );
        assert_eq!(parse_cpulist("0-1,3").unwrap(), vec![0, 1, 3]);
        assert!(parse_cpulist("2-1").is_err());
    }
}
