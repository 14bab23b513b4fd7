//! The campaign runner: schedule (deterministic from the plan's seed), isolated baselines
//! (≥ `repeats` per (app, level, trace, cpuset), cached in the runs table, retaken under foreign
//! load), co-located runs (every tenant labelled), recording with the collector's
//! [`Agent`](crate::agent::Agent), and a resumable journal: the runs table itself, rewritten
//! atomically after each finished run (or baseline group). A run that is not in the table when
//! the campaign starts is (re)done from scratch, its partial sample files deleted first.

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataset::catalogue::Catalogue;
use dataset::runs::{self, label_p, spread, RunRecord, STATUS_FAILED, STATUS_OK};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cgroup::{self, CgroupError, Layout, Limits, Parent, Tenant};
use super::plan::{substitute, App, Plan};
use crate::agent::{Agent, AgentConfig, CollectError};

/// Status of a co-located tenant whose baseline failed (no label possible).
pub const STATUS_NO_BASELINE: &str = "no_baseline";

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Runs(#[from] runs::RunsError),
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("interrupted (SIGINT/SIGTERM): the unfinished run was discarded; rerun the same command to resume")]
    Interrupted,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CampaignError + '_ {
    move |source| CampaignError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One tenant of a scheduled run.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    pub app: String,
    pub level: String,
    pub scenario: String,
    /// Trace id (baseline cache key part).
    pub trace: String,
    /// Rate multiplier per trace step (one step for `static`).
    pub multipliers: Vec<f64>,
    pub cpuset: Option<String>,
}

impl TenantSpec {
    /// Baseline cache key: (app, level, trace, cpuset).
    pub fn baseline_key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.app,
            self.level,
            self.trace,
            self.cpuset.as_deref().unwrap_or("any")
        )
    }
}

/// One co-located run of the schedule.
#[derive(Debug, Clone)]
pub struct ColocatedRun {
    pub run_id: String,
    pub placement: String,
    pub tenants: Vec<TenantSpec>,
}

/// Rate multipliers of a trace (in (0, 1], applied to the level's rate).
pub fn trace_multipliers(scenario: &str, steps: usize, seed: u64) -> Vec<f64> {
    let n = steps.max(1);
    let lin = |i: usize| {
        if n == 1 {
            1.0
        } else {
            i as f64 / (n - 1) as f64
        }
    };
    match scenario {
        "increasing" => (0..n).map(|i| 0.25 + 0.75 * lin(i)).collect(),
        "decreasing" => (0..n).map(|i| 1.0 - 0.75 * lin(i)).collect(),
        "periodic" => (0..n)
            .map(|i| 0.6 + 0.4 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).sin())
            .collect(),
        "random" => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..n).map(|_| rng.random_range(0.2..=1.0)).collect()
        }
        _ => vec![1.0],
    }
}

fn cpuset_for(placement: &str, k: usize, ncpu: usize) -> Option<String> {
    match placement {
        "same-core" => Some("0".into()),
        "cross-core" => Some((k % ncpu.max(1)).to_string()),
        "unpinned" => None,
        p => p.strip_prefix("cpuset:").map(str::to_string),
    }
}

fn ncpu() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The co-located runs of a plan, deterministic from its seed.
pub fn schedule(plan: &Plan) -> Vec<ColocatedRun> {
    let n = ncpu();
    (0..plan.colocated_runs as usize)
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(plan.seed.wrapping_mul(1_000_003) + i as u64);
            let size = plan.sizes[rng.random_range(0..plan.sizes.len())] as usize;
            let placement = plan.placements[rng.random_range(0..plan.placements.len())].clone();
            let tenants = (0..size)
                .map(|k| {
                    let app = &plan.apps[rng.random_range(0..plan.apps.len())];
                    let level = &app.levels[rng.random_range(0..app.levels.len())];
                    let scenario = if app.takes_rate() {
                        plan.scenarios[rng.random_range(0..plan.scenarios.len())].clone()
                    } else {
                        "static".to_string()
                    };
                    let (trace, mult) = match scenario.as_str() {
                        "static" => ("static".to_string(), vec![1.0]),
                        "random" => {
                            let v = rng.random_range(0..plan.random_traces.max(1) as u64);
                            (
                                format!("random-{v}"),
                                trace_multipliers(
                                    "random",
                                    plan.trace_steps as usize,
                                    plan.seed ^ (v + 1),
                                ),
                            )
                        }
                        s => (
                            s.to_string(),
                            trace_multipliers(s, plan.trace_steps as usize, 0),
                        ),
                    };
                    TenantSpec {
                        app: app.name.clone(),
                        level: level.name.clone(),
                        scenario,
                        trace,
                        multipliers: mult,
                        cpuset: cpuset_for(&placement, k, n),
                    }
                })
                .collect();
            ColocatedRun {
                run_id: format!("c{i:05}"),
                placement,
                tenants,
            }
        })
        .collect()
}

fn short_hash(s: &str) -> String {
    // FNV-1a, stable across builds.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", h as u32)
}

/// Run id of baseline repeat `r` of a key.
pub fn baseline_run_id(spec: &TenantSpec, r: u32) -> String {
    format!(
        "b-{}-{}-{}-r{r}",
        spec.app,
        spec.level,
        short_hash(&spec.baseline_key())
    )
}

/// Campaign settings beyond the plan.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub quiet: bool,
    pub cgroup_root: PathBuf,
}

/// What a campaign did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub colocated_total: usize,
    pub colocated_done_before: usize,
    pub colocated_done_now: usize,
    pub baseline_groups_now: usize,
    pub baselines_retaken: usize,
    pub failed_tenant_runs: usize,
}

/// One tenant's outcome.
struct TenantOutcome {
    tenant: String,
    ok: bool,
    error: Option<String>,
    perf: f64,
    per_second: Vec<f32>,
}

/// One executed run.
struct Executed {
    start_ns: i64,
    end_ns: i64,
    foreign_cpu_pct: f64,
    samples_dir: String,
    tenants: Vec<TenantOutcome>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Busy CPU seconds of the whole machine (from /proc/stat; steal excluded).
fn machine_busy_s() -> f64 {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(l) = s.lines().next() else {
        return 0.0;
    };
    let v: Vec<f64> = l
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 7 {
        return 0.0;
    }
    // user nice system idle iowait irq softirq [steal ...]
    let busy = v[0] + v[1] + v[2] + v[5] + v[6];
    busy / clk_tck()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds of this process (the campaign and its agent).
fn self_cpu_s() -> f64 {
    let s = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields after ')' start at field 3 (state): utime is field 14 → index 11.
    let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (ut + st) / clk_tck()
}

struct ForeignProbe {
    t0: Instant,
    busy0: f64,
    self0: f64,
    tenants0: f64,
}

impl ForeignProbe {
    fn start(tenants: &[Tenant]) -> ForeignProbe {
        ForeignProbe {
            t0: Instant::now(),
            busy0: machine_busy_s(),
            self0: self_cpu_s(),
            tenants0: tenants.iter().map(|t| t.cpu_seconds()).sum(),
        }
    }
    /// CPU used outside the tenants and this process, % of one vCPU.
    fn finish(&self, tenants: &[Tenant]) -> f64 {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-3);
        let busy = machine_busy_s() - self.busy0;
        let own = self_cpu_s() - self.self0;
        let ten: f64 = tenants.iter().map(|t| t.cpu_seconds()).sum::<f64>() - self.tenants0;
        ((busy - own - ten) / wall * 100.0).max(0.0)
    }
}

/// Spawns `sh -c cmd` in its own session, inside `tenant`, output appended to `log`.
fn spawn_in(tenant: &Tenant, cmd: &str, log: &Path, cwd: &Path) -> Result<Child, CampaignError> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(log))?;
    let err = out.try_clone().map_err(io_err(log))?;
    let files: Vec<CString> = tenant
        .procs_files()
        .iter()
        .filter_map(|p| CString::new(p.as_os_str().as_encoded_bytes()).ok())
        .collect();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: the closure only calls async-signal-safe functions (setsid, getpid, open, write,
    // close) on memory prepared before fork; no allocation.
    unsafe {
        c.pre_exec(move || {
            libc::setsid();
            let pid = libc::getpid();
            let mut buf = [0u8; 16];
            let mut n = pid as u32;
            let mut i = buf.len();
            loop {
                i -= 1;
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for f in &files {
                let fd = libc::open(f.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let w = libc::write(fd, buf[i..].as_ptr() as *const libc::c_void, buf.len() - i);
                libc::close(fd);
                if w < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    c.spawn()
        .map_err(|e| CampaignError::Setup(format!("cannot start `{cmd}`: {e}")))
}

fn kill_group(child: &Child) {
    // SAFETY: kill(2) of the process group we created with setsid.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(20000)
}

/// Waits for `child` with a deadline, polling the interrupt flag.
fn wait_deadline(
    child: &mut Child,
    deadline: Instant,
) -> Result<Option<std::process::ExitStatus>, CampaignError> {
    loop {
        if cgroup::interrupted() {
            kill_group(child);
            let _ = child.wait();
            return Err(CampaignError::Interrupted);
        }
        match child.try_wait() {
            Ok(Some(s)) => return Ok(Some(s)),
            Ok(None) => {}
            Err(e) => return Err(CampaignError::Setup(format!("wait: {e}"))),
        }
        if Instant::now() > deadline {
            kill_group(child);
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Values of the first capture group of every match, in order.
pub fn parse_numbers(re: &regex::Regex, text: &str) -> Vec<f64> {
    re.captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter_map(|m| m.as_str().replace(',', "").parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect()
}

/// Per-run performance of a tenant's log: the mean over trace steps of the last `run_regex`
/// match of each step (one step per `### step` marker).
pub fn parse_perf(app: &App, text: &str) -> (Option<f64>, Vec<f32>) {
    let mut vals = Vec::new();
    for step in text.split(STEP_MARKER).skip(1) {
        if let Some(v) = parse_numbers(&app.run_regex, step).last() {
            vals.push(*v);
        } else {
            return (None, Vec::new());
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
    if vals.is_empty() {
        (None, per_second)
    } else {
        (
            Some(vals.iter().sum::<f64>() / vals.len() as f64),
            per_second,
        )
    }
}

/// Marker line written before each trace step of a tenant's load.
pub const STEP_MARKER: &str = "### cloudformer step";

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Builds the load script of a tenant: one command per trace step.
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

struct Runner<'a> {
    plan: &'a Plan,
    opts: &'a Options,
    parent: Parent,
    cat_hash: String,
}

impl Runner<'_> {
    fn logs_dir(&self, run_id: &str) -> PathBuf {
        self.opts.out.join("logs").join(run_id)
    }

    /// Deletes whatever a killed attempt of `run_id` left (samples, logs).
    fn clear_run(&self, run_id: &str) -> Result<(), CampaignError> {
        let samples = self.opts.out.join(runs::SAMPLES_DIR);
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

    /// Runs the tenants together, recording with the agent.
    fn execute(&self, run_id: &str, specs: &[TenantSpec]) -> Result<Executed, CampaignError> {
        self.clear_run(run_id)?;
        let plan = self.plan;
        let logs = self.logs_dir(run_id);
        fs::create_dir_all(&logs).map_err(io_err(&logs))?;
        let mut tenants = Vec::new();
        let mut apps = Vec::new();
        let mut vars_all = Vec::new();
        let mut workdirs = Vec::new();
        for (k, s) in specs.iter().enumerate() {
            let app = plan
                .app(&s.app)
                .ok_or_else(|| CampaignError::Setup(format!("unknown application {}", s.app)))?;
            let t = self.parent.tenant(
                &format!("{run_id}-t{k}"),
                &Limits {
                    cpu: app.cpu_limit,
                    mem_mb: app.mem_limit_mb,
                    cpuset: s.cpuset.clone(),
                },
            )?;
            let wd = plan
                .work_dir
                .join(format!("{}-{run_id}-t{k}", std::process::id()));
            if wd.exists() {
                let _ = fs::remove_dir_all(&wd);
            }
            fs::create_dir_all(&wd).map_err(io_err(&wd))?;
            // Let unprivileged servers (postgres via runuser) write there.
            let _ = fs::set_permissions(&wd, std::os::unix::fs::PermissionsExt::from_mode(0o777));
            let level = app.levels.iter().find(|l| l.name == s.level);
            let mut vars: BTreeMap<String, String> =
                level.map(|l| l.vars.clone()).unwrap_or_default();
            vars.insert("port".into(), free_port().to_string());
            vars.insert("workdir".into(), wd.display().to_string());
            vars.insert("tenant".into(), format!("t{k}"));
            let plan_dir = plan
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let plan_dir = fs::canonicalize(&plan_dir).unwrap_or(plan_dir);
            vars.insert("plan_dir".into(), plan_dir.display().to_string());
            let cpus = s
                .cpuset
                .as_deref()
                .and_then(|c| super::plan::parse_cpulist(c).ok())
                .map(|v| v.len())
                .unwrap_or_else(ncpu);
            vars.insert("cpus".into(), cpus.to_string());
            vars.insert("duration".into(), plan.run_seconds.to_string());
            if let Some(r) = level.and_then(|l| l.rate) {
                vars.insert("rate".into(), format!("{}", r.round() as i64));
            }
            tenants.push(t);
            apps.push(app);
            vars_all.push(vars);
            workdirs.push(wd);
        }
        let result =
            self.execute_inner(run_id, specs, &tenants, &apps, &vars_all, &workdirs, &logs);
        for t in &tenants {
            t.kill_all();
        }
        drop(tenants);
        for wd in &workdirs {
            let _ = fs::remove_dir_all(wd);
        }
        result
    }

    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    fn execute_inner(
        &self,
        run_id: &str,
        specs: &[TenantSpec],
        tenants: &[Tenant],
        apps: &[&App],
        vars_all: &[BTreeMap<String, String>],
        workdirs: &[PathBuf],
        logs: &Path,
    ) -> Result<Executed, CampaignError> {
        let plan = self.plan;
        let mut servers: Vec<Child> = Vec::new();
        let mut early_fail: Vec<Option<String>> = vec![None; specs.len()];
        // Servers, readiness and preparation (not timed).
        for k in 0..specs.len() {
            let log = logs.join(format!("t{k}.server.log"));
            if let Some(srv) = &apps[k].server {
                servers.push(spawn_in(
                    &tenants[k],
                    &substitute(srv, &vars_all[k]),
                    &log,
                    &workdirs[k],
                )?);
            }
            if let Some(ready) = &apps[k].ready {
                let cmd = substitute(ready, &vars_all[k]);
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut ok = false;
                while Instant::now() < deadline {
                    let mut c = spawn_in(&tenants[k], &cmd, &log, &workdirs[k])?;
                    if let Some(s) =
                        wait_deadline(&mut c, Instant::now() + Duration::from_secs(10))?
                    {
                        if s.success() {
                            ok = true;
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                if !ok {
                    early_fail[k] = Some(format!(
                        "server not ready after 60 s (`{cmd}`):\n{}",
                        tail(&log, 20)
                    ));
                }
            }
            if let (Some(prep), None) = (&apps[k].prepare, &early_fail[k]) {
                let cmd = substitute(prep, &vars_all[k]);
                let mut c = spawn_in(&tenants[k], &cmd, &log, &workdirs[k])?;
                match wait_deadline(&mut c, Instant::now() + Duration::from_secs(300))? {
                    Some(s) if s.success() => {}
                    other => {
                        early_fail[k] = Some(format!(
                            "prepare `{cmd}` failed ({other:?}):\n{}",
                            tail(&log, 20)
                        ))
                    }
                }
            }
        }
        // The agent records every tenant of this campaign's parent.
        let app_key = {
            let mut a: Vec<&str> = specs.iter().map(|s| s.app.as_str()).collect();
            a.sort();
            a.dedup();
            a.join("+")
        };
        let samples_root = self.opts.out.join(runs::SAMPLES_DIR);
        let partition = vec![
            ("app".to_string(), app_key.clone()),
            ("run".to_string(), run_id.to_string()),
        ];
        let cfg = AgentConfig {
            cgroup_root: self.opts.cgroup_root.clone(),
            tenant_globs: vec![format!("{}/*", self.parent.name())],
            out_dir: Some(samples_root),
            partition,
            segment: Duration::from_secs(3600),
            duration: None,
            listen: None,
            ..AgentConfig::default()
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let agent_thread = std::thread::spawn(move || -> Result<(), CollectError> {
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
        std::thread::sleep(Duration::from_secs(plan.warmup_seconds.max(1) as u64));

        let start_ns = now_ns();
        let probe = ForeignProbe::start(tenants);
        let mut loads: Vec<Option<Child>> = Vec::new();
        for k in 0..specs.len() {
            if early_fail[k].is_some() {
                loads.push(None);
                continue;
            }
            let script = load_script(apps[k], &specs[k], &vars_all[k], plan.run_seconds);
            let log = logs.join(format!("t{k}.log"));
            loads.push(Some(spawn_in(&tenants[k], &script, &log, &workdirs[k])?));
        }
        let deadline = Instant::now() + Duration::from_secs(plan.run_seconds as u64 * 2 + 60);
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
        }
        let foreign = probe.finish(tenants);
        let end_ns = now_ns();
        for s in &servers {
            kill_group(s);
        }
        for mut s in servers {
            let _ = s.wait();
        }
        let _ = stop_tx.send(());
        match agent_thread.join() {
            Ok(r) => r?,
            Err(_) => return Err(CampaignError::Setup("agent thread panicked".into())),
        }
        if interrupted || cgroup::interrupted() {
            return Err(CampaignError::Interrupted);
        }
        let mut outcomes = Vec::new();
        for k in 0..specs.len() {
            let log = logs.join(format!("t{k}.log"));
            let tenant = tenants[k].name.clone();
            if let Some(e) = &early_fail[k] {
                outcomes.push(TenantOutcome {
                    tenant,
                    ok: false,
                    error: Some(e.clone()),
                    perf: f64::NAN,
                    per_second: vec![],
                });
                continue;
            }
            let text = fs::read_to_string(&log).unwrap_or_default();
            let (perf, ps) = parse_perf(apps[k], &text);
            let status = &statuses[k];
            let (ok, error) = match (status, perf) {
                (Some(s), Some(_)) if s.success() => (true, None),
                (None, _) => (
                    false,
                    Some(format!(
                        "timed out after {} s:\n{}",
                        plan.run_seconds * 2 + 60,
                        tail(&log, 20)
                    )),
                ),
                (Some(s), Some(_)) => {
                    (false, Some(format!("exited with {s}:\n{}", tail(&log, 20))))
                }
                (Some(s), None) => (
                    false,
                    Some(format!(
                        "exited with {s}; run_regex `{}` found no value in every step:\n{}",
                        apps[k].run_regex.as_str(),
                        tail(&log, 20)
                    )),
                ),
            };
            outcomes.push(TenantOutcome {
                tenant,
                ok,
                error,
                perf: perf.unwrap_or(f64::NAN),
                per_second: ps,
            });
        }
        let samples_dir = runs::SAMPLES_DIR.to_string() + &format!("/app={app_key}/run={run_id}");
        Ok(Executed {
            start_ns,
            end_ns,
            foreign_cpu_pct: foreign,
            samples_dir,
            tenants: outcomes,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        run_id: &str,
        kind: &str,
        placement: &str,
        spec: &TenantSpec,
        neighbours: &[&TenantSpec],
        n_tenants: usize,
        repeat: u32,
        ex: &Executed,
        o: &TenantOutcome,
    ) -> RunRecord {
        let app = self.plan.app(&spec.app);
        RunRecord {
            run_id: run_id.to_string(),
            tenant: o.tenant.clone(),
            app: spec.app.clone(),
            kind: kind.to_string(),
            scenario: spec.scenario.clone(),
            level: spec.level.clone(),
            trace: spec.trace.clone(),
            placement: placement.to_string(),
            cpuset: spec.cpuset.clone().unwrap_or_default(),
            cpu_limit: app.map(|a| a.cpu_limit).unwrap_or(0.0),
            mem_limit_mb: app.map(|a| a.mem_limit_mb).unwrap_or(0.0),
            neighbours: neighbours
                .iter()
                .map(|n| format!("{}@{}", n.app, n.level))
                .collect::<Vec<_>>()
                .join(","),
            n_tenants: n_tenants as u32,
            repeat,
            perf_metric: app.map(|a| a.metric.clone()).unwrap_or_default(),
            higher_is_better: app.map(|a| a.higher_is_better).unwrap_or(true),
            perf_actual: o.perf,
            perf_ideal: f64::NAN,
            p: f64::NAN,
            p_raw: f64::NAN,
            p_per_second: None,
            perf_per_second: if o.per_second.is_empty() {
                None
            } else {
                Some(o.per_second.clone())
            },
            label_noise: f64::NAN,
            foreign_cpu_pct: ex.foreign_cpu_pct,
            status: if o.ok {
                STATUS_OK.into()
            } else {
                STATUS_FAILED.into()
            },
            error: o.error.clone(),
            catalogue_hash: self.cat_hash.clone(),
            samples_dir: ex.samples_dir.clone(),
            start_ns: ex.start_ns,
            end_ns: ex.end_ns,
            seed: self.plan.seed,
        }
    }
}

/// Baseline of a key, from the runs table rows.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub perf_ideal: f64,
    pub noise: f64,
    pub per_second: Option<Vec<f32>>,
}

fn baseline_from(rows: &[&RunRecord]) -> Option<Baseline> {
    let ok: Vec<&&RunRecord> = rows
        .iter()
        .filter(|r| r.status == STATUS_OK && r.perf_actual.is_finite())
        .collect();
    if ok.is_empty() {
        return None;
    }
    let v: Vec<f64> = ok.iter().map(|r| r.perf_actual).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let series: Vec<&Vec<f32>> = ok
        .iter()
        .filter_map(|r| r.perf_per_second.as_ref())
        .collect();
    let per_second = if series.len() == ok.len() && !series.is_empty() {
        let n = series.iter().map(|s| s.len()).min().unwrap_or(0);
        Some(
            (0..n)
                .map(|i| series.iter().map(|s| s[i]).sum::<f32>() / series.len() as f32)
                .collect(),
        )
    } else {
        None
    };
    Some(Baseline {
        perf_ideal: mean,
        noise: spread(&v),
        per_second,
    })
}

fn per_second_p(actual: &[f32], ideal: &[f32], hib: bool) -> Option<Vec<f32>> {
    let n = actual.len().min(ideal.len());
    if n == 0 {
        return None;
    }
    Some(
        (0..n)
            .map(|i| {
                let (p, _) = label_p(actual[i] as f64, ideal[i] as f64, hib);
                p as f32
            })
            .collect(),
    )
}

fn baseline_key_of(r: &RunRecord) -> String {
    format!(
        "{}|{}|{}|{}",
        r.app,
        r.level,
        r.trace,
        if r.cpuset.is_empty() {
            "any"
        } else {
            &r.cpuset
        }
    )
}

/// Runs (or resumes) a campaign.
pub fn run_campaign(plan: &Plan, opts: &Options) -> Result<Summary, CampaignError> {
    cgroup::can_create(&opts.cgroup_root).map_err(CampaignError::Setup)?;
    cgroup::install_signal_handlers();
    fs::create_dir_all(&opts.out).map_err(io_err(&opts.out))?;
    let plan_copy = opts.out.join("plan.toml");
    if plan_copy.exists() {
        let old = fs::read_to_string(&plan_copy).map_err(io_err(&plan_copy))?;
        if old != plan.text {
            return Err(CampaignError::Setup(format!(
                "{} holds a campaign of a different plan ({}); use a new --out directory",
                opts.out.display(),
                plan_copy.display()
            )));
        }
    } else {
        fs::write(&plan_copy, &plan.text).map_err(io_err(&plan_copy))?;
    }
    let layout = Layout::detect(&opts.cgroup_root)?;
    let stale = cgroup::remove_stale(&layout);
    if stale > 0 {
        tracing::warn!(stale, "removed cgroups of a crashed earlier campaign");
    }
    let runner = Runner {
        plan,
        opts,
        parent: Parent::create(layout)?,
        cat_hash: Catalogue::builtin().hash().to_string(),
    };
    let table = runs::runs_path(&opts.out);
    let mut rows: Vec<RunRecord> = if table.exists() {
        runs::read_runs(&table)?
    } else {
        Vec::new()
    };
    let done: HashSet<String> = rows.iter().map(|r| r.run_id.clone()).collect();
    let sched = schedule(plan);
    let mut summary = Summary {
        colocated_total: sched.len(),
        ..Default::default()
    };
    summary.colocated_done_before = sched.iter().filter(|r| done.contains(&r.run_id)).count();

    // Work units for the progress bar: baseline repeats still missing + co-located runs left.
    let mut missing_keys: Vec<String> = Vec::new();
    let have_key: HashSet<String> = rows
        .iter()
        .filter(|r| r.kind == "baseline")
        .map(baseline_key_of)
        .collect();
    for r in &sched {
        if done.contains(&r.run_id) {
            continue;
        }
        for t in &r.tenants {
            let k = t.baseline_key();
            if !have_key.contains(&k) && !missing_keys.contains(&k) {
                missing_keys.push(k);
            }
        }
    }
    let units = missing_keys.len() as u64 * plan.repeats as u64
        + (sched.len() - summary.colocated_done_before) as u64;
    let pb = if opts.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new(units);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs, ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    };

    for run in &sched {
        if done.contains(&run.run_id) {
            continue;
        }
        // Baselines first (cached per key).
        for spec in &run.tenants {
            let key = spec.baseline_key();
            if rows
                .iter()
                .any(|r| r.kind == "baseline" && baseline_key_of(r) == key)
            {
                continue;
            }
            pb.set_message(format!(
                "baseline {}@{} {}",
                spec.app, spec.level, spec.trace
            ));
            let mut group: Vec<RunRecord> = Vec::new();
            for rep in 0..plan.repeats {
                let id = baseline_run_id(spec, rep);
                let mut tries = 0;
                let (ex, o) = loop {
                    let mut ex = runner.execute(&id, std::slice::from_ref(spec))?;
                    let o = ex.tenants.remove(0);
                    if ex.foreign_cpu_pct > plan.foreign_cpu_max_pct && tries < plan.max_retakes {
                        tries += 1;
                        summary.baselines_retaken += 1;
                        tracing::warn!(run = %id, foreign = ex.foreign_cpu_pct, "foreign load above threshold: baseline rejected, retaking");
                        continue;
                    }
                    break (ex, o);
                };
                if !o.ok {
                    summary.failed_tenant_runs += 1;
                }
                group.push(runner.record(&id, "baseline", "alone", spec, &[], 1, rep, &ex, &o));
                pb.inc(1);
            }
            let refs: Vec<&RunRecord> = group.iter().collect();
            if let Some(b) = baseline_from(&refs) {
                let hib = plan
                    .app(&spec.app)
                    .map(|a| a.higher_is_better)
                    .unwrap_or(true);
                for r in group.iter_mut() {
                    r.perf_ideal = b.perf_ideal;
                    r.label_noise = b.noise;
                    if r.status == STATUS_OK {
                        let (p, raw) = label_p(r.perf_actual, b.perf_ideal, hib);
                        r.p = p;
                        r.p_raw = raw;
                        if let (Some(a), Some(i)) = (&r.perf_per_second, &b.per_second) {
                            r.p_per_second = per_second_p(a, i, hib);
                        }
                    }
                }
            }
            runs::append_runs(&table, &group)?;
            rows.extend(group);
            summary.baseline_groups_now += 1;
        }
        pb.set_message(format!(
            "{} ({} tenants, {})",
            run.run_id,
            run.tenants.len(),
            run.placement
        ));
        let ex = runner.execute(&run.run_id, &run.tenants)?;
        let mut out = Vec::new();
        for (k, (spec, o)) in run.tenants.iter().zip(&ex.tenants).enumerate() {
            let nbrs: Vec<&TenantSpec> = run
                .tenants
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, t)| t)
                .collect();
            let mut r = runner.record(
                &run.run_id,
                "colocated",
                &run.placement,
                spec,
                &nbrs,
                run.tenants.len(),
                0,
                &ex,
                o,
            );
            let key = spec.baseline_key();
            let brows: Vec<&RunRecord> = rows
                .iter()
                .filter(|r| r.kind == "baseline" && baseline_key_of(r) == key)
                .collect();
            match baseline_from(&brows) {
                Some(b) => {
                    r.perf_ideal = b.perf_ideal;
                    r.label_noise = b.noise;
                    if r.status == STATUS_OK {
                        let (p, raw) = label_p(r.perf_actual, b.perf_ideal, r.higher_is_better);
                        r.p = p;
                        r.p_raw = raw;
                        if let (Some(a), Some(i)) = (&r.perf_per_second, &b.per_second) {
                            r.p_per_second = per_second_p(a, i, r.higher_is_better);
                        }
                    }
                }
                None if r.status == STATUS_OK => {
                    r.status = STATUS_NO_BASELINE.into();
                    r.error = Some(
                        "every isolated baseline of this (app, level, trace, cpuset) failed".into(),
                    );
                }
                None => {}
            }
            if r.status != STATUS_OK {
                summary.failed_tenant_runs += 1;
            }
            out.push(r);
        }
        runs::append_runs(&table, &out)?;
        rows.extend(out);
        summary.colocated_done_now += 1;
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(summary)
}

/// Progress of a campaign directory (for `campaign status`).
#[derive(Debug, Clone)]
pub struct Status {
    pub colocated_total: usize,
    pub colocated_done: usize,
    pub baseline_rows: usize,
    pub tenant_rows: usize,
    pub failed_rows: usize,
    pub labelled_rows: usize,
}

/// Reads a campaign directory's progress (needs its `plan.toml` copy).
pub fn status(out: &Path) -> Result<Status, CampaignError> {
    let plan =
        Plan::load(&out.join("plan.toml")).map_err(|e| CampaignError::Setup(e.to_string()))?;
    let table = runs::runs_path(out);
    let rows = if table.exists() {
        runs::read_runs(&table)?
    } else {
        Vec::new()
    };
    let ids: HashSet<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
    let sched = schedule(&plan);
    Ok(Status {
        colocated_total: sched.len(),
        colocated_done: sched
            .iter()
            .filter(|r| ids.contains(r.run_id.as_str()))
            .count(),
        baseline_rows: rows.iter().filter(|r| r.kind == "baseline").count(),
        tenant_rows: rows.len(),
        failed_rows: rows.iter().filter(|r| r.status != STATUS_OK).count(),
        labelled_rows: rows.iter().filter(|r| r.p.is_finite()).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_have_the_right_shape() {
        let inc = trace_multipliers("increasing", 5, 0);
        assert!(inc.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(inc[4], 1.0);
        let dec = trace_multipliers("decreasing", 5, 0);
        assert!(dec.windows(2).all(|w| w[0] > w[1]));
        let r1 = trace_multipliers("random", 6, 3);
        assert_eq!(r1, trace_multipliers("random", 6, 3));
        assert_ne!(r1, trace_multipliers("random", 6, 4));
        assert!(r1.iter().all(|m| (0.2..=1.0).contains(m)));
        let per = trace_multipliers("periodic", 8, 0);
        assert!(per.iter().all(|m| *m > 0.0 && *m <= 1.0));
        assert_eq!(trace_multipliers("static", 5, 0), vec![1.0]);
    }

    #[test]
    fn per_second_p_and_baseline() {
        let p = per_second_p(&[50.0, 100.0, 120.0], &[100.0, 100.0], true).unwrap();
        assert_eq!(p, vec![0.5, 1.0]);
        let mk = |v: f64| RunRecord {
            status: STATUS_OK.into(),
            perf_actual: v,
            perf_per_second: Some(vec![v as f32, 2.0 * v as f32]),
            ..Default::default()
        };
        let a = mk(9.0);
        let b = mk(11.0);
        let mut c = mk(1000.0);
        c.status = STATUS_FAILED.into();
        let base = baseline_from(&[&a, &b, &c]).unwrap();
        assert_eq!(base.perf_ideal, 10.0);
        assert_eq!(base.per_second.unwrap(), vec![10.0, 20.0]);
        assert!(base.noise > 0.1 && base.noise < 0.15);
    }
}
