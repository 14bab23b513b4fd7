//! The campaign plan (TOML). Applications are **data**: how to start a server (if any), how to
//! prepare it, the load command (with `{rate}`, `{duration}`, `{port}`, `{workdir}`, `{cpus}` and
//! per-level placeholders), and regexes reading the performance metric per run and per second
//! from the load command's output. See `docs/campaigns.md` for the format.
//!
//! [`Plan::parse`] validates everything before any run starts; every error names the plan line
//! (`raw` is the file as TOML gives it, `validate` the checks, `text` the helpers on its text).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dataset::runs::{Placement, Scenario};
use regex::Regex;

mod extension;
mod ranges;
mod raw;
mod shape;
mod text;
mod validate;

pub use extension::Extension;
pub use shape::Shape;
pub use text::{first_program, parse_cpulist, substitute, CpuListError, RUNNER_PLACEHOLDERS};

use crate::machine::{mem_total_mb, online_cpus};

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
    /// The load runs in 1-second slices (`slices = true`), each slice's `run_regex` value being
    /// that second's: a per-second value for tools that report only at their end.
    pub slices: bool,
    pub levels: Vec<Level>,
    pub cpu_limit: f64,
    pub mem_limit_mb: f64,
    /// Plan line of the `[[app]]` entry.
    pub line: usize,
}

impl App {
    /// Whether the application gives a value every second (its own reports or slices).
    pub fn reports_per_second(&self) -> bool {
        self.second_regex.is_some() || self.slices
    }

    /// Whether dynamic traces apply (the load command takes `{rate}`).
    pub fn takes_rate(&self) -> bool {
        self.load.contains("{rate}")
    }

    /// The level named `name`.
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.name == name)
    }
}

/// How tenants are networked (`network = "namespace" | "host"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Each tenant in its own network namespace, linked to the host by a veth pair (what a VM's
    /// tap device is): per-tenant network counters are real, and a server's clients (`ready`,
    /// `prepare`, `load`) run on the host side and reach it at `{addr}`.
    #[default]
    Namespace,
    /// Tenants share the host's namespace; servers are reached on loopback (`{addr}` is
    /// `127.0.0.1`) and no per-tenant network counter exists (datasets before v2).
    Host,
}

impl Network {
    fn parse(s: &str) -> Option<Network> {
        match s {
            "namespace" => Some(Network::Namespace),
            "host" => Some(Network::Host),
            _ => None,
        }
    }
}

/// `[dynamic]`: co-located runs whose neighbours come and go (see `crate::dynamic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dynamic {
    /// How many such runs (`d00000`, …; interleaved evenly with the static ones).
    pub runs: u32,
    /// Events per neighbour slot and run: each an arrival, a departure or a level change.
    pub changes: u32,
    /// The shortest time between two events of a slot (and from the run's ends).
    pub min_gap_seconds: u32,
}

/// A validated plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub text: String,
    pub seed: u64,
    pub run_seconds: u32,
    /// Length of a static load's isolated baselines (`baseline_seconds`, default
    /// `run_seconds`): its per-second ideal past their end is their steady state. A trace's
    /// baselines replay the whole trace (`run_seconds`).
    pub baseline_seconds: u32,
    pub repeats: u32,
    pub warmup_seconds: u32,
    pub foreign_cpu_max_pct: f64,
    pub max_retakes: u32,
    pub sizes: Vec<u32>,
    pub placements: Vec<Placement>,
    pub scenarios: Vec<Scenario>,
    pub trace_steps: u32,
    /// How many distinct seeded traces the `random` scenario draws from.
    pub random_traces: u32,
    pub colocated_runs: u32,
    pub work_dir: PathBuf,
    pub network: Network,
    /// None: no dynamic runs.
    pub dynamic: Option<Dynamic>,
    /// VM shapes tenants are drawn in (empty: every tenant gets its application's limits).
    pub shapes: Vec<Shape>,
    pub apps: Vec<App>,
    /// Set when the plan file extends a base plan (`extends = "..."`, see [`Extension`]): the
    /// fields above are the base's, but for the schedule the extension sets, and `path` and
    /// `text` are the base's.
    pub extension: Option<Extension>,
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
        Plan::parse_with(text, path, &text::find_binary)
    }

    /// [`Plan::parse`] with a custom binary check (tests). A plan that `extends` a base plan
    /// reads the base from its path relative to `path`'s directory.
    pub fn parse_with(
        text: &str,
        path: &Path,
        has_binary: &dyn Fn(&str) -> bool,
    ) -> Result<Plan, PlanError> {
        if let Some(base) = extension::extends_of(text) {
            let base_path = path.parent().unwrap_or(Path::new("")).join(base);
            let base_text =
                std::fs::read_to_string(&base_path).map_err(|source| PlanError::Io {
                    path: base_path.clone(),
                    source,
                })?;
            let base = Plan::parse_with(&base_text, &base_path, has_binary)?;
            return Plan::extended(base, text, path);
        }
        let check = validate::Checker {
            text,
            file: path.display().to_string(),
            ncpu: online_cpus(),
            mem_mb: mem_total_mb(),
        };
        let raw: raw::RawPlan = check.toml()?;
        check.shape(&raw)?;
        let placements = check.placements(&raw.placements)?;
        let scenarios = check.scenarios(&raw.scenarios)?;
        check.trace_steps(&raw)?;
        check.limits(&raw.limits, text::line_of(text, "[limits]"))?;
        let network = check.network(raw.network.as_deref())?;
        let mut apps = Vec::new();
        for a in &raw.app_defs {
            if apps.iter().any(|b: &App| b.name == a.name) {
                let line = text::line_of(text, &format!("name = \"{}\"", a.name));
                let msg = format!("application `{}` is defined twice", a.name);
                return Err(check.err(line, msg));
            }
            let app = check.app(a, &raw.limits, has_binary)?;
            check.server_address(&app, network)?;
            apps.push(app);
        }
        let apps = check.select(apps, &raw.apps)?;
        check.memory(&apps, &raw.sizes)?;
        let dynamic = check.dynamic(raw.dynamic.as_ref(), raw.run_seconds, &apps)?;
        let shapes = check.shapes(&raw.shapes)?;
        Ok(Plan {
            path: path.to_path_buf(),
            text: text.to_string(),
            seed: raw.seed,
            run_seconds: raw.run_seconds,
            baseline_seconds: raw.baseline_seconds.unwrap_or(raw.run_seconds),
            repeats: raw.repeats,
            warmup_seconds: raw.warmup_seconds,
            foreign_cpu_max_pct: raw.foreign_cpu_max_pct,
            max_retakes: raw.max_retakes,
            sizes: raw.sizes,
            placements,
            scenarios,
            trace_steps: raw.trace_steps,
            random_traces: raw.random_traces.max(1),
            colocated_runs: raw.colocated_runs,
            work_dir: raw
                .work_dir
                .unwrap_or_else(|| std::env::temp_dir().join("cloudformer-campaign")),
            network,
            dynamic,
            shapes,
            apps,
            extension: None,
        })
    }

    /// The application `name`: one this plan draws, else (an extension) one of its base's.
    pub fn app(&self, name: &str) -> Option<&App> {
        let base = || self.extension.as_ref().and_then(|e| e.base.app(name));
        self.apps.iter().find(|a| a.name == name).or_else(base)
    }

    /// The shape named `name`.
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.iter().find(|s| s.name == name)
    }

    /// Applications that report a value every second: the victims of dynamic runs (their
    /// per-second P shows what each neighbour change did).
    pub fn per_second_apps(&self) -> Vec<&App> {
        self.apps
            .iter()
            .filter(|a| a.reports_per_second())
            .collect()
    }

    /// How long an isolated baseline of a load following `scenario` runs: a static load's
    /// `baseline_seconds`, a trace's whole `run_seconds`.
    pub fn seconds_alone(&self, scenario: Scenario) -> u32 {
        if scenario == Scenario::Static {
            self.baseline_seconds
        } else {
            self.run_seconds
        }
    }

    /// The directory the plan file is in (absolute where it can be resolved).
    pub fn dir(&self) -> PathBuf {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        std::fs::canonicalize(&dir).unwrap_or(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const GOOD: &str = r#"
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
    fn a_server_dialled_on_loopback_is_refused_in_namespaces() {
        let text = GOOD.replace("pgbench -p {port}", "pgbench -h 127.0.0.1 -p {port}");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 21, "{msg}");
        assert!(msg.contains("`pg`") && msg.contains("{addr}"), "{msg}");
        let host = text.replace("sizes = [2]", "sizes = [2]\nnetwork = \"host\"");
        assert_eq!(parse(&host).unwrap().network, Network::Host);
        let addr = GOOD.replace("pgbench -p {port}", "pgbench -h {addr} -p {port}");
        assert_eq!(parse(&addr).unwrap().network, Network::Namespace);
    }

    #[test]
    fn shapes_are_validated_naming_their_line() {
        let shapes = "\n[[shape]]\nname = \"half\"\ncpu = 0.5\nmem_mb = 256\nweight = 50\n\n[[shape]]\nname = \"one\"\ncpu = 1.0\n";
        let p = parse(&format!("{GOOD}{shapes}")).unwrap();
        assert_eq!(p.shapes.len(), 2);
        assert_eq!(p.shape("half").unwrap().weight, Some(50));
        assert_eq!(p.shape("one").unwrap().mem_mb, 0.0);
        let sched = crate::schedule::schedule(&p);
        let drawn: std::collections::BTreeSet<_> = (sched.iter())
            .flat_map(|r| &r.tenants)
            .map(|t| t.shape.clone().unwrap())
            .collect();
        assert!(drawn.contains("half") || drawn.contains("one"), "{drawn:?}");
        assert!(parse(GOOD).unwrap().shapes.is_empty());
        let first = GOOD.lines().count();
        let dup = shapes.replace("\"one\"", "\"half\"");
        let (line, msg) = line_of_err(parse(&format!("{GOOD}{dup}")).unwrap_err());
        assert_eq!(line, first + 9, "{msg}");
        assert!(msg.contains("defined twice"), "{msg}");
        let big = shapes.replace("cpu = 1.0", "cpu = 99.0");
        let (line, msg) = line_of_err(parse(&format!("{GOOD}{big}")).unwrap_err());
        assert_eq!(line, first + 10, "{msg}");
        assert!(msg.contains("`one`") && msg.contains("99"), "{msg}");
        let heavy = shapes.replace("weight = 50", "weight = 0");
        let (line, msg) = line_of_err(parse(&format!("{GOOD}{heavy}")).unwrap_err());
        assert_eq!(line, first + 6, "{msg}");
    }

    #[test]
    fn a_level_outside_its_range_names_the_line() {
        let ranged = GOOD.replace(
            "levels = [{ name = \"low\", rate = 100 }]",
            "levels = [{ name = \"low\", rate = 100 }, { name = \"max\", rate = 900 }]\nranges = { rate = [1, 500] }",
        );
        let (line, msg) = line_of_err(parse(&ranged).unwrap_err());
        assert_eq!(line, 27, "{msg}");
        assert!(
            msg.contains("`max`") && msg.contains("900") && msg.contains("[1, 500]"),
            "{msg}"
        );
        let fine = ranged.replace("rate = 900", "rate = 500");
        assert!(parse(&fine).is_ok());
        let stray = fine.replace("ranges = { rate", "ranges = { rates");
        let (line, msg) = line_of_err(parse(&stray).unwrap_err());
        assert_eq!(line, 28, "{msg}");
        assert!(msg.contains("`rates`") && msg.contains("no level"), "{msg}");
    }

    #[test]
    fn slices_and_a_second_regex_are_one_too_many() {
        let text = GOOD.replace(
            "second_regex = 'eps: ([0-9.]+)'",
            "second_regex = 'eps: ([0-9.]+)'\nslices = true",
        );
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 18, "{msg}");
        assert!(msg.contains("slices") && msg.contains("`sb`"), "{msg}");
        let sliced = text.replace("second_regex = 'eps: ([0-9.]+)'\n", "");
        let p = parse(&sliced).unwrap();
        assert!(p.apps[0].slices && p.apps[0].reports_per_second());
        assert!(!p.apps[1].reports_per_second());
    }

    #[test]
    fn an_unknown_network_names_the_line() {
        let text = GOOD.replace("sizes = [2]", "sizes = [2]\nnetwork = \"bridge\"");
        let (line, msg) = line_of_err(parse(&text).unwrap_err());
        assert_eq!(line, 6, "{msg}");
        assert!(msg.contains("bridge") && msg.contains("namespace"), "{msg}");
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
    fn baselines_may_be_shorter_than_runs_for_static_loads_only() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.baseline_seconds, 10, "defaults to run_seconds");
        let p = parse(&GOOD.replace("seed = 1", "seed = 1\nbaseline_seconds = 4")).unwrap();
        assert_eq!(p.seconds_alone(Scenario::Static), 4);
        assert_eq!(
            p.seconds_alone(Scenario::Periodic),
            10,
            "a trace replays whole"
        );
        for bad in [2, 11] {
            let text = GOOD.replace("seed = 1", &format!("seed = 1\nbaseline_seconds = {bad}"));
            let (line, msg) = line_of_err(parse(&text).unwrap_err());
            assert_eq!(line, 3, "{msg}");
            assert!(msg.contains("3..=run_seconds (10)"), "{msg}");
        }
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
