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
mod tests;
