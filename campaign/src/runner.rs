//! One run, executed: the tenants' cgroups and work directories, their servers (started, ready,
//! prepared — not timed), the collector's [`Agent`] recording every tenant, the timed loads,
//! the foreign load beside them, and each tenant's outcome read from its log. Then a row of the
//! runs table per tenant ([`Runner::record`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use collector::{Agent, AgentConfig, CollectError};
use dataset::runs::{self, Placement, RunKind, RunRecord, RunStatus};

use crate::cgroup::{self, Parent, Tenant};
use crate::error::{io_err, CampaignError};
use crate::exec::{kill_group, spawn_in, tail, wait_deadline};
use crate::machine::{now_ns, ForeignProbe};
use crate::output::{load_script, parse_perf};
use crate::plan::Plan;
use crate::schedule::TenantSpec;
use crate::slot::Slot;

/// One tenant's outcome.
pub struct TenantOutcome {
    pub tenant: String,
    pub ok: bool,
    pub error: Option<String>,
    pub perf: f64,
    pub per_second: Vec<f32>,
}

/// One executed run.
pub struct Executed {
    pub start_ns: i64,
    pub end_ns: i64,
    pub foreign_cpu_pct: f64,
    pub samples_dir: String,
    pub tenants: Vec<TenantOutcome>,
}

/// Runs the campaign's runs inside its parent cgroup.
pub struct Runner<'a> {
    pub plan: &'a Plan,
    pub out: &'a Path,
    pub cgroup_root: &'a Path,
    pub parent: Parent,
    pub catalogue_hash: String,
    /// [`crate::machine::description`], recorded in every row.
    pub machine: String,
    /// Which of the directory's hosts this is ([`dataset::runs::RunRecord::host`]), set by the
    /// sentinel check ([`crate::sentinel::choose_host`]); recorded in every row.
    pub host: u32,
}

impl Runner<'_> {
    /// The baseline `spec` is labelled against on this host.
    pub fn baseline_key(&self, spec: &TenantSpec) -> dataset::runs::BaselineKey {
        spec.baseline_key(self.host)
    }

    pub(crate) fn logs_dir(&self, run_id: &str) -> PathBuf {
        self.out.join("logs").join(run_id)
    }

    /// Deletes whatever a killed attempt of `run_id` left (samples, logs).
    pub(crate) fn clear_run(&self, run_id: &str) -> Result<(), CampaignError> {
        let samples = self.out.join(runs::SAMPLES_DIR);
        if let Ok(rd) = fs::read_dir(&samples) {
            for app in rd.flatten() {
                let d = app.path().join(format!("run={run_id}"));
                if d.exists() {
                    fs::remove_dir_all(&d).map_err(io_err(&d))?;
                }
            }
        }
        let l = self.logs_dir(run_id);
        if l.exists() {
            fs::remove_dir_all(&l).map_err(io_err(&l))?;
        }
        Ok(())
    }

    /// Runs the tenants together, recording with the agent; cgroups and work directories are
    /// removed afterwards whatever happened.
    /// The loads run `seconds` (a co-located run's `run_seconds`, a baseline's
    /// [`Plan::seconds_alone`]).
    pub fn execute(
        &self,
        run_id: &str,
        specs: &[TenantSpec],
        seconds: u32,
    ) -> Result<Executed, CampaignError> {
        self.clear_run(run_id)?;
        let logs = self.logs_dir(run_id);
        fs::create_dir_all(&logs).map_err(io_err(&logs))?;
        let mut slots = Vec::new();
        for (k, spec) in specs.iter().enumerate() {
            let name = format!("t{k}");
            slots.push(Slot::new(
                self.plan,
                &self.parent,
                run_id,
                &name,
                spec,
                &logs,
            )?);
        }
        let result = self.execute_slots(run_id, &mut slots, seconds);
        for s in &slots {
            s.kill_all();
        }
        let workdirs: Vec<PathBuf> = slots.iter().map(|s| s.workdir.clone()).collect();
        drop(slots);
        for wd in &workdirs {
            let _ = fs::remove_dir_all(wd);
        }
        result
    }

    /// [`Runner::execute`] of one tenant alone (a baseline repeat or its sentinel replay), for
    /// as long as its baselines run ([`Plan::seconds_alone`]).
    pub fn execute_alone(
        &self,
        run_id: &str,
        spec: &TenantSpec,
    ) -> Result<Executed, CampaignError> {
        let seconds = self.plan.seconds_alone(spec.scenario);
        self.execute(run_id, std::slice::from_ref(spec), seconds)
    }

    /// Servers up, the agent recording, warm-up, the timed loads, then the outcomes.
    fn execute_slots(
        &self,
        run_id: &str,
        slots: &mut [Slot],
        seconds: u32,
    ) -> Result<Executed, CampaignError> {
        let plan = self.plan;
        let mut servers = Vec::new();
        for slot in slots.iter_mut() {
            servers.extend(slot.start_server()?);
        }
        let app_key = app_key(slots);
        let recording = Recording::start(self.agent_config(&app_key, run_id));
        std::thread::sleep(Duration::from_secs(plan.warmup_seconds.max(1) as u64));

        let start_ns = now_ns();
        let cgroups: Vec<&Tenant> = slots.iter().map(|s| &s.cgroup).collect();
        let probe = ForeignProbe::start(&cgroups);
        let loads = self.run_loads(slots, seconds);
        let foreign = probe.finish(&cgroups);
        let end_ns = now_ns();
        for s in &servers {
            kill_group(s);
        }
        for mut s in servers {
            let _ = s.wait();
        }
        recording.stop()?;
        let statuses = loads?;
        if cgroup::interrupted() {
            return Err(CampaignError::Interrupted);
        }
        let tenants = slots
            .iter()
            .zip(statuses)
            .map(|(slot, status)| outcome(slot, status, seconds))
            .collect();
        Ok(Executed {
            start_ns,
            end_ns,
            foreign_cpu_pct: foreign,
            samples_dir: format!("{}/app={app_key}/run={run_id}", runs::SAMPLES_DIR),
            tenants,
        })
    }

    /// The agent's settings for a run: every tenant of this campaign's parent, its samples
    /// partitioned by application set and run.
    pub(crate) fn agent_config(&self, app_key: &str, run_id: &str) -> AgentConfig {
        AgentConfig {
            cgroup_root: self.cgroup_root.to_path_buf(),
            tenant_globs: vec![format!("{}/*", self.parent.name())],
            out_dir: Some(self.out.join(runs::SAMPLES_DIR)),
            partition: vec![
                ("app".to_string(), app_key.to_string()),
                ("run".to_string(), run_id.to_string()),
            ],
            segment: Duration::from_secs(3600),
            duration: None,
            listen: None,
            ..AgentConfig::default()
        }
    }

    /// Starts every tenant's load at once and waits for them (at most twice the run plus a
    /// minute). One status per slot: `None` for a tenant that failed before, or was killed at
    /// the deadline. Interrupted: every load is killed.
    fn run_loads(
        &self,
        slots: &[Slot],
        seconds: u32,
    ) -> Result<Vec<Option<ExitStatus>>, CampaignError> {
        let mut loads: Vec<Option<Child>> = Vec::new();
        for s in slots {
            if s.early_fail.is_some() {
                loads.push(None);
                continue;
            }
            let script = load_script(s.app, s.spec, &s.vars, seconds);
            loads.push(Some(spawn_in(
                s.client_place(),
                &script,
                &s.load_log,
                &s.workdir,
            )?));
        }
        let deadline = Instant::now() + load_timeout(seconds);
        let mut statuses = Vec::new();
        let mut interrupted = false;
        for c in loads.iter_mut() {
            match c {
                None => statuses.push(None),
                Some(c) => match wait_deadline(c, deadline) {
                    Ok(s) => statuses.push(s),
                    Err(CampaignError::Interrupted) => {
                        interrupted = true;
                        statuses.push(None);
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        if interrupted {
            for c in loads.iter().flatten() {
                kill_group(c);
            }
            return Err(CampaignError::Interrupted);
        }
        Ok(statuses)
    }

    /// The runs-table row of one tenant of an executed run (unlabelled).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        run_id: &str,
        kind: RunKind,
        placement: &Placement,
        spec: &TenantSpec,
        neighbours: &[&TenantSpec],
        repeat: u32,
        ex: &Executed,
        o: &TenantOutcome,
    ) -> RunRecord {
        let app = self.plan.app(&spec.app);
        let limits = crate::slot::limits_of(self.plan, spec);
        RunRecord {
            run_id: run_id.to_string(),
            tenant: o.tenant.clone(),
            app: spec.app.clone(),
            kind,
            scenario: spec.scenario,
            level: spec.level.clone(),
            trace: spec.trace.clone(),
            placement: placement.clone(),
            cpuset: spec.cpuset.clone().unwrap_or_default(),
            cpu_limit: limits.cpu,
            mem_limit_mb: limits.mem_mb,
            neighbours: neighbours
                .iter()
                .map(|n| format!("{}@{}", n.app, n.level))
                .collect::<Vec<_>>()
                .join(","),
            n_tenants: neighbours.len() as u32 + 1,
            repeat,
            perf_metric: app.map(|a| a.metric.clone()).unwrap_or_default(),
            higher_is_better: app.map(|a| a.higher_is_better).unwrap_or(true),
            perf_actual: o.perf,
            perf_ideal: f64::NAN,
            p: f64::NAN,
            p_raw: f64::NAN,
            p_per_second: None,
            perf_per_second: (!o.per_second.is_empty()).then(|| o.per_second.clone()),
            label_noise: f64::NAN,
            foreign_cpu_pct: ex.foreign_cpu_pct,
            status: if o.ok {
                RunStatus::Ok
            } else {
                RunStatus::Failed
            },
            error: o.error.clone(),
            catalogue_hash: self.catalogue_hash.clone(),
            samples_dir: ex.samples_dir.clone(),
            start_ns: ex.start_ns,
            end_ns: ex.end_ns,
            seed: self.plan.seed,
            machine: self.machine.clone(),
            neighbour_schedule: String::new(),
            host: self.host,
            shape: spec.shape.clone().unwrap_or_default(),
        }
    }
}

/// How long a load of `seconds` may take: twice that plus a minute.
pub(crate) fn load_timeout(seconds: u32) -> Duration {
    Duration::from_secs(seconds as u64 * 2 + 60)
}

/// The run's applications, sorted and joined with `+` (its samples' `app=` partition).
fn app_key(slots: &[Slot]) -> String {
    let mut a: Vec<&str> = slots.iter().map(|s| s.spec.app.as_str()).collect();
    a.sort();
    a.dedup();
    a.join("+")
}

/// A tenant's outcome from its exit status and its log.
pub(crate) fn outcome(slot: &Slot, status: Option<ExitStatus>, seconds: u32) -> TenantOutcome {
    let tenant = slot.cgroup.name.clone();
    if let Some(e) = &slot.early_fail {
        return TenantOutcome {
            tenant,
            ok: false,
            error: Some(e.clone()),
            perf: f64::NAN,
            per_second: vec![],
        };
    }
    let log = &slot.load_log;
    let text = fs::read_to_string(log).unwrap_or_default();
    let (perf, per_second) = parse_perf(slot.app, &text);
    let error = match (status, perf) {
        (Some(s), Some(_)) if s.success() => None,
        (None, _) => Some(format!(
            "timed out after {} s:\n{}",
            load_timeout(seconds).as_secs(),
            tail(log, 20)
        )),
        (Some(s), Some(_)) => Some(format!("exited with {s}:\n{}", tail(log, 20))),
        (Some(s), None) => Some(format!(
            "exited with {s}; run_regex `{}` found no value in every step:\n{}",
            slot.app.run_regex.as_str(),
            tail(log, 20)
        )),
    };
    TenantOutcome {
        tenant,
        ok: error.is_none(),
        error,
        perf: perf.unwrap_or(f64::NAN),
        per_second,
    }
}

/// The collector's agent recording a run, on a thread of its own with its own runtime.
pub(crate) struct Recording {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), CollectError>>,
}

impl Recording {
    pub(crate) fn start(cfg: AgentConfig) -> Recording {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<(), CollectError> {
            let agent = Agent::new(cfg)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CollectError::Config(format!("tokio runtime: {e}")))?;
            rt.block_on(agent.run(async {
                let _ = stop_rx.await;
            }))?;
            Ok(())
        });
        Recording { stop, thread }
    }

    /// Stops the agent (its last segment is closed) and returns what it ended with.
    pub(crate) fn stop(self) -> Result<(), CampaignError> {
        let _ = self.stop.send(());
        match self.thread.join() {
            Ok(r) => Ok(r?),
            Err(_) => Err(CampaignError::Setup("agent thread panicked".into())),
        }
    }
}
