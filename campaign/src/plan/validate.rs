//! Validation of a raw plan against this machine: every check names the plan line it is about.

use std::collections::BTreeMap;
use std::str::FromStr;

use dataset::runs::{Placement, Scenario};
use regex::Regex;

use super::raw::{RawApp, RawDynamic, RawLimits, RawPlan};
use super::text::{first_program, RUNNER_PLACEHOLDERS};
use super::text::{key_line, line_of, parse_cpulist, unknown_placeholder, value_str};
use super::{App, Dynamic, Level, Network, PlanError};

/// What the checks need: the plan's text and file name (for errors) and the machine.
pub(super) struct Checker<'a> {
    pub text: &'a str,
    pub file: String,
    pub ncpu: usize,
    pub mem_mb: f64,
}

impl Checker<'_> {
    pub fn err(&self, line: usize, msg: String) -> PlanError {
        PlanError::At {
            file: self.file.clone(),
            line,
            msg,
        }
    }

    /// The line of a top-level key.
    pub fn key(&self, key: &str) -> usize {
        key_line(self.text, key, 1)
    }

    /// The plan as TOML, with the line of a syntax or type error.
    pub fn toml<T: serde::de::DeserializeOwned>(&self) -> Result<T, PlanError> {
        toml::from_str(self.text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    self.text[..s.start.min(self.text.len())]
                        .matches('\n')
                        .count()
                        + 1
                })
                .unwrap_or(1);
            self.err(line, e.message().to_string())
        })
    }

    /// Run length, repeats, co-location sizes and trace steps.
    pub fn shape(&self, raw: &RawPlan) -> Result<(), PlanError> {
        if raw.run_seconds < 3 {
            return Err(self.err(
                self.key("run_seconds"),
                format!("run_seconds = {} is too short (≥ 3)", raw.run_seconds),
            ));
        }
        if let Some(b) = raw.baseline_seconds {
            if b < 3 || b > raw.run_seconds {
                return Err(self.err(
                    self.key("baseline_seconds"),
                    format!(
                        "baseline_seconds = {b} must be in 3..=run_seconds ({})",
                        raw.run_seconds
                    ),
                ));
            }
        }
        if raw.repeats < 3 {
            return Err(self.err(
                self.key("repeats"),
                format!(
                    "repeats = {}: at least 3 isolated baselines are needed to measure label noise",
                    raw.repeats
                ),
            ));
        }
        self.sizes(&raw.sizes)
    }

    /// Co-location sizes: tenants per run, 2..=8.
    pub fn sizes(&self, sizes: &[u32]) -> Result<(), PlanError> {
        if sizes.is_empty() || sizes.iter().any(|s| !(2..=8).contains(s)) {
            return Err(self.err(
                self.key("sizes"),
                format!("co-location sizes {sizes:?} must be in 2..=8 (tenants per run)"),
            ));
        }
        Ok(())
    }

    /// Trace steps, checked after placements and scenarios (as the plan reads).
    pub fn trace_steps(&self, raw: &RawPlan) -> Result<(), PlanError> {
        if raw.trace_steps == 0 || raw.trace_steps > raw.run_seconds {
            return Err(self.err(
                self.key("trace_steps"),
                format!(
                    "trace_steps = {} must be in 1..=run_seconds ({})",
                    raw.trace_steps, raw.run_seconds
                ),
            ));
        }
        Ok(())
    }

    /// The placements: named ones or `cpuset:<list>` of CPUs this machine has.
    pub fn placements(&self, names: &[String]) -> Result<Vec<Placement>, PlanError> {
        let line = self.key("placements");
        let mut out = Vec::new();
        for p in names {
            let placement = Placement::from_str(p)
                .ok()
                .filter(|pl| *pl != Placement::Alone)
                .ok_or_else(|| {
                    self.err(
                        line,
                        format!(
                            "unknown placement `{p}` (one of {:?} or `cpuset:<list>`)",
                            named()
                        ),
                    )
                })?;
            if let Placement::Cpuset(list) = &placement {
                let cpus = parse_cpulist(list).map_err(|e| self.err(line, e.to_string()))?;
                if let Some(c) = cpus.into_iter().find(|c| *c >= self.ncpu) {
                    return Err(self.err(
                        line,
                        format!(
                            "placement `{p}` names CPU {c}, this machine has {}",
                            self.ncpu
                        ),
                    ));
                }
            }
            out.push(placement);
        }
        if out.is_empty() {
            return Err(self.err(line, "no placement given".into()));
        }
        Ok(out)
    }

    pub fn scenarios(&self, names: &[String]) -> Result<Vec<Scenario>, PlanError> {
        let line = self.key("scenarios");
        let all: Vec<&str> = Scenario::ALL.iter().map(|s| s.as_str()).collect();
        let out = names
            .iter()
            .map(|s| {
                Scenario::from_str(s)
                    .map_err(|_| self.err(line, format!("unknown scenario `{s}` (one of {all:?})")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if out.is_empty() {
            return Err(self.err(line, "no scenario given".into()));
        }
        Ok(out)
    }

    /// CPU and memory limits that this machine can give (`section`: their section's line).
    pub fn limits(&self, l: &RawLimits, section: usize) -> Result<(), PlanError> {
        let line = key_line(self.text, "cpu", section);
        let ncpu = self.ncpu;
        if l.cpu.is_nan() || l.cpu < 0.0 || l.cpu > ncpu as f64 {
            return Err(self.err(
                line,
                format!(
                    "cpu limit {} vCPUs is impossible on this machine ({ncpu} CPUs)",
                    l.cpu
                ),
            ));
        }
        if l.cpu > 0.0 && l.cpu < 0.01 {
            return Err(self.err(line, format!("cpu limit {} vCPUs is below 0.01", l.cpu)));
        }
        let line = key_line(self.text, "mem_mb", section);
        let mem = self.mem_mb;
        if l.mem_mb.is_nan() || l.mem_mb < 0.0 || l.mem_mb > mem {
            return Err(self.err(
                line,
                format!(
                    "memory limit {} MiB is impossible (machine has {:.0} MiB)",
                    l.mem_mb, mem
                ),
            ));
        }
        if l.mem_mb > 0.0 && l.mem_mb < 16.0 {
            return Err(self.err(
                line,
                format!("memory limit {} MiB is below 16 MiB", l.mem_mb),
            ));
        }
        Ok(())
    }

    /// One `[[app]]` entry, validated (name, regexes, binaries, limits, levels, placeholders).
    pub fn app(
        &self,
        a: &RawApp,
        plan_limits: &RawLimits,
        has_binary: &dyn Fn(&str) -> bool,
    ) -> Result<App, PlanError> {
        let line = line_of(self.text, &format!("name = \"{}\"", a.name));
        let named_ok = a
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if a.name.is_empty() || !named_ok {
            return Err(self.err(
                line,
                format!("application name `{}` must be [A-Za-z0-9_-]+", a.name),
            ));
        }
        let run_regex = self.regex(&a.name, "run_regex", &a.run_regex, line)?;
        if a.slices && a.second_regex.is_some() {
            let msg = format!(
                "application `{}`: `slices = true` makes its own per-second values; drop \
                 `second_regex` (or the slices)",
                a.name
            );
            return Err(self.err(key_line(self.text, "slices", line), msg));
        }
        let second_regex = match &a.second_regex {
            None => None,
            Some(r) => Some(self.regex(&a.name, "second_regex", r, line)?),
        };
        self.binaries(a, line, has_binary)?;
        let limits = a.limits.clone().unwrap_or_else(|| plan_limits.clone());
        if a.limits.is_some() {
            self.limits(&limits, key_line(self.text, "limits", line))?;
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
            slices: a.slices,
            levels: self.levels(a, line)?,
            cpu_limit: limits.cpu,
            mem_limit_mb: limits.mem_mb,
            line,
        };
        self.placeholders(&app)?;
        self.ranges(a, &app.levels, line)?;
        if app.takes_rate() && app.levels.iter().any(|l| l.rate.is_none()) {
            return Err(self.err(
                line,
                format!(
                    "application `{}` takes {{rate}}: every level needs `rate`",
                    app.name
                ),
            ));
        }
        Ok(app)
    }

    /// A regex with a capture group for the number.
    fn regex(
        &self,
        app: &str,
        field: &str,
        pattern: &str,
        line: usize,
    ) -> Result<Regex, PlanError> {
        let at = key_line(self.text, field, line);
        let re = Regex::new(pattern)
            .map_err(|e| self.err(at, format!("application `{app}`: bad {field}: {e}")))?;
        if re.captures_len() < 2 {
            let what = if field == "run_regex" {
                "a capture group for the number"
            } else {
                "a capture group"
            };
            return Err(self.err(at, format!("application `{app}`: {field} needs {what}")));
        }
        Ok(re)
    }

    /// Every program the application names (`requires`, and the first of load and server).
    fn binaries(
        &self,
        a: &RawApp,
        line: usize,
        has_binary: &dyn Fn(&str) -> bool,
    ) -> Result<(), PlanError> {
        let mut bins: Vec<String> = a.requires.clone();
        for c in [Some(&a.load), a.server.as_ref()].into_iter().flatten() {
            if let Some(p) = first_program(c).filter(|p| !p.contains('{')) {
                bins.push(p);
            }
        }
        match bins.iter().find(|b| !has_binary(b)) {
            Some(b) => Err(self.err(
                line,
                format!(
                    "application `{}`: binary `{b}` is not installed (see scripts/apt-packages.d/campaign.txt)",
                    a.name
                ),
            )),
            None => Ok(()),
        }
    }

    /// The levels (one `default` level when none is given); each needs a name, and a rate
    /// where it has one must be positive.
    fn levels(&self, a: &RawApp, line: usize) -> Result<Vec<Level>, PlanError> {
        let raw_levels = if a.levels.is_empty() {
            vec![BTreeMap::from([(
                "name".to_string(),
                toml::Value::String("default".into()),
            )])]
        } else {
            a.levels.clone()
        };
        let lline = key_line(self.text, "levels", line);
        let mut levels = Vec::new();
        for l in &raw_levels {
            let name = match l.get("name") {
                Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(self.err(
                        lline,
                        format!(
                            "application `{}`: every level needs a `name` string",
                            a.name
                        ),
                    ))
                }
            };
            let rate = match l.get("rate") {
                None => None,
                Some(toml::Value::Integer(i)) if *i > 0 => Some(*i as f64),
                Some(toml::Value::Float(f)) if *f > 0.0 => Some(*f),
                Some(v) => {
                    return Err(self.err(
                        lline,
                        format!(
                            "application `{}` level `{name}`: rate {v} must be a positive number",
                            a.name
                        ),
                    ))
                }
            };
            let vars = l.iter().map(|(k, v)| (k.clone(), value_str(v))).collect();
            levels.push(Level { name, vars, rate });
        }
        Ok(levels)
    }

    /// Every placeholder of every command is a level's key or one the runner provides.
    /// `[dynamic]`: events that fit in a run, and victims that report every second.
    pub fn dynamic(
        &self,
        d: Option<&RawDynamic>,
        run_seconds: u32,
        apps: &[App],
    ) -> Result<Option<Dynamic>, PlanError> {
        let Some(d) = d else {
            return Ok(None);
        };
        let at = |key: &str| key_line(self.text, key, line_of(self.text, "[dynamic]"));
        if d.runs == 0 {
            return Ok(None);
        }
        if d.changes == 0 || d.min_gap_seconds == 0 {
            return Err(self.err(
                at("changes"),
                "a dynamic run needs changes ≥ 1 and min_gap_seconds ≥ 1".into(),
            ));
        }
        let needed = (d.changes + 1) * d.min_gap_seconds;
        if needed > run_seconds {
            return Err(self.err(
                at("min_gap_seconds"),
                format!(
                    "{} neighbour changes at least {} s apart (and from the run's ends) need \
                     {needed} s, longer than run_seconds = {}",
                    d.changes, d.min_gap_seconds, run_seconds
                ),
            ));
        }
        if !apps.iter().any(App::reports_per_second) {
            return Err(self.err(
                at("runs"),
                "dynamic runs need a victim that reports every second: no selected \
                 application has `second_regex` or `slices = true`"
                    .into(),
            ));
        }
        Ok(Some(Dynamic {
            runs: d.runs,
            changes: d.changes,
            min_gap_seconds: d.min_gap_seconds,
        }))
    }

    /// `network = "namespace" | "host"` (namespace when absent).
    pub fn network(&self, v: Option<&str>) -> Result<Network, PlanError> {
        let Some(v) = v else {
            return Ok(Network::default());
        };
        Network::parse(v).ok_or_else(|| {
            self.err(
                self.key("network"),
                format!("unknown network `{v}` (one of \"namespace\", \"host\")"),
            )
        })
    }

    /// With tenants in their own namespaces a server listens at the tenant's address, and its
    /// clients run on the host: a client that dials loopback would reach nothing.
    pub fn server_address(&self, app: &App, network: Network) -> Result<(), PlanError> {
        if network != Network::Namespace || app.server.is_none() {
            return Ok(());
        }
        let clients = [Some(&app.load), app.ready.as_ref(), app.prepare.as_ref()];
        for cmd in clients.into_iter().flatten() {
            if cmd.contains("127.0.0.1") || cmd.contains("localhost") {
                return Err(self.err(
                    app.line,
                    format!(
                        "application `{}`: its server runs in the tenant's network namespace and \
                         its clients on the host, so `{cmd}` must reach it at {{addr}}, not \
                         loopback (or set `network = \"host\"`)",
                        app.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn placeholders(&self, app: &App) -> Result<(), PlanError> {
        let cmds = [
            Some(&app.load),
            app.server.as_ref(),
            app.ready.as_ref(),
            app.prepare.as_ref(),
        ];
        for cmd in cmds.into_iter().flatten() {
            for lv in &app.levels {
                let mut vars = lv.vars.clone();
                for k in RUNNER_PLACEHOLDERS {
                    vars.entry(k.to_string()).or_insert_with(|| "1".into());
                }
                if let Some(p) = unknown_placeholder(cmd, &vars) {
                    return Err(self.err(
                        app.line,
                        format!(
                            "application `{}` level `{}`: unknown placeholder `{p}` in `{cmd}`",
                            app.name, lv.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The applications the plan selects (`apps = [...]`, all when absent), at least one.
    pub fn select(&self, mut apps: Vec<App>, selected: &[String]) -> Result<Vec<App>, PlanError> {
        if !selected.is_empty() {
            let aline = self.key("apps");
            if let Some(n) = selected
                .iter()
                .find(|n| !apps.iter().any(|a| &a.name == *n))
            {
                return Err(self.err(
                    aline,
                    format!("unknown application `{n}` (not defined by an [[app]] entry)"),
                ));
            }
            apps.retain(|a| selected.contains(&a.name));
        }
        if apps.is_empty() {
            return Err(self.err(1, "the plan defines no application".into()));
        }
        Ok(apps)
    }

    /// The largest co-location fits in memory with every tenant at the largest limit.
    pub fn memory(&self, apps: &[App], sizes: &[u32]) -> Result<(), PlanError> {
        let max_size = sizes.iter().copied().max().unwrap_or(2) as f64;
        let per_tenant = apps.iter().map(|a| a.mem_limit_mb).fold(0.0, f64::max);
        if per_tenant * max_size > self.mem_mb {
            return Err(self.err(
                self.key("sizes"),
                format!(
                    "{max_size} tenants × {per_tenant:.0} MiB memory limit exceed this machine's {:.0} MiB",
                    self.mem_mb
                ),
            ));
        }
        Ok(())
    }
}

fn named() -> Vec<String> {
    Placement::NAMED.iter().map(|p| p.to_string()).collect()
}
