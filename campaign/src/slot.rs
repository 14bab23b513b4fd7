//! One tenant of a run, set up: its cgroup (and its clients' child cgroup), its network
//! namespace, an empty work directory, the values of its placeholders, its logs, and its
//! server started, ready and prepared (not timed).
//!
//! Where each command runs, with `network = "namespace"` (the default):
//!
//! | command | cgroup | network namespace |
//! |---|---|---|
//! | `server` | the tenant | the tenant's (listening at `{addr}`) |
//! | `ready`, `prepare`, `load` of an app with a server | the tenant's `client` child | the host's |
//! | `prepare`, `load` of an app without a server | the tenant | the tenant's |
//!
//! So a server's clients reach it over the tenant's link, as a VM's clients reach it over its
//! tap device, and their CPU, memory and I/O still count in the tenant's cgroup (as before), but
//! not in its processes (`proc.*`), which are the server's. With `network = "host"` everything
//! runs in the tenant's cgroup and the host's namespace, `{addr}` being `127.0.0.1`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::cgroup::{Limits, Parent, Tenant};
use crate::error::{io_err, CampaignError};
use crate::exec::{free_port, run_in, spawn_in, tail, Place};
use crate::machine::online_cpus;
use crate::netns::TenantNet;
use crate::plan::{parse_cpulist, substitute, App, Network, Plan};
use crate::schedule::TenantSpec;

/// How long a server may take to answer its readiness command.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one readiness probe may take.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an application's `prepare` command may take.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything one tenant of a run needs, and why it failed before its load started (if it
/// did). Fields drop in order: the clients' cgroup, the tenant's, then its namespace.
pub struct Slot<'a> {
    pub spec: &'a TenantSpec,
    pub app: &'a App,
    /// The clients' child cgroup (an app with a server, in a namespace).
    client: Option<Tenant>,
    pub cgroup: Tenant,
    net: Option<TenantNet>,
    pub vars: BTreeMap<String, String>,
    pub workdir: PathBuf,
    pub server_log: PathBuf,
    pub load_log: PathBuf,
    pub early_fail: Option<String>,
}

impl<'a> Slot<'a> {
    /// Tenant `name` (`t0`, `t1s2`, …) of run `run_id`: cgroup `<run_id>-<name>`, namespace,
    /// an empty work directory, placeholders, logs `<name>.log` and `<name>.server.log`.
    pub fn new(
        plan: &'a Plan,
        parent: &Parent,
        run_id: &str,
        name: &str,
        spec: &'a TenantSpec,
        logs: &Path,
    ) -> Result<Slot<'a>, CampaignError> {
        let app = plan
            .app(&spec.app)
            .ok_or_else(|| CampaignError::Setup(format!("unknown application {}", spec.app)))?;
        let limits = limits_of(plan, spec);
        let cgroup = parent.tenant(&format!("{run_id}-{name}"), &limits)?;
        let net = match plan.network {
            Network::Namespace => Some(TenantNet::create()?),
            Network::Host => None,
        };
        let client = match (&net, &app.server) {
            (Some(_), Some(_)) => Some(cgroup.child("client")?),
            _ => None,
        };
        let workdir = plan
            .work_dir
            .join(format!("{}-{run_id}-{name}", std::process::id()));
        if workdir.exists() {
            let _ = fs::remove_dir_all(&workdir);
        }
        fs::create_dir_all(&workdir).map_err(io_err(&workdir))?;
        // Let unprivileged servers (postgres via runuser) write there.
        let _ = fs::set_permissions(
            &workdir,
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        );
        let addrs = net
            .as_ref()
            .map(|n| (n.addr.to_string(), n.host_addr.to_string()));
        let vars = tenant_vars(plan, app, spec, name, &workdir, addrs);
        Ok(Slot {
            spec,
            app,
            client,
            cgroup,
            net,
            vars,
            workdir,
            server_log: logs.join(format!("{name}.server.log")),
            load_log: logs.join(format!("{name}.log")),
            early_fail: None,
        })
    }

    /// Where the tenant itself runs: its cgroup and namespace.
    pub fn tenant_place(&self) -> Place<'_> {
        Place {
            cgroup: &self.cgroup,
            netns: self.net.as_ref().map(TenantNet::fd),
        }
    }

    /// Where its clients run (`ready`, `prepare`, `load`; see the module's table).
    pub fn client_place(&self) -> Place<'_> {
        match &self.client {
            Some(c) => Place {
                cgroup: c,
                netns: None,
            },
            None => self.tenant_place(),
        }
    }

    /// Kills every process of the tenant and of its clients (the cgroups stay).
    pub fn kill_all(&self) {
        if let Some(c) = &self.client {
            c.kill_all();
        }
        self.cgroup.kill_all();
    }

    /// Starts the tenant's server (if its application has one), waits until it is ready and
    /// prepares it; a failure is kept in `early_fail` (the tenant's load is then not started).
    pub fn start_server(&mut self) -> Result<Option<Child>, CampaignError> {
        let (app, log, wd) = (self.app, &self.server_log, &self.workdir);
        let server = match &app.server {
            Some(srv) => Some(spawn_in(
                self.tenant_place(),
                &substitute(srv, &self.vars),
                log,
                wd,
            )?),
            None => None,
        };
        let mut early_fail = None;
        if let Some(ready) = &app.ready {
            let cmd = substitute(ready, &self.vars);
            let deadline = Instant::now() + READY_TIMEOUT;
            let mut ok = false;
            while !ok && Instant::now() < deadline {
                let s = run_in(self.client_place(), &cmd, log, wd, READY_PROBE_TIMEOUT)?;
                ok = s.is_some_and(|s| s.success());
                if !ok {
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
            if !ok {
                early_fail = Some(format!(
                    "server not ready after {} s (`{cmd}`):\n{}",
                    READY_TIMEOUT.as_secs(),
                    tail(log, 20)
                ));
            }
        }
        if let (Some(prep), None) = (&app.prepare, &early_fail) {
            let cmd = substitute(prep, &self.vars);
            match run_in(self.client_place(), &cmd, log, wd, PREPARE_TIMEOUT)? {
                Some(s) if s.success() => {}
                other => {
                    early_fail = Some(format!(
                        "prepare `{cmd}` failed ({other:?}):\n{}",
                        tail(log, 20)
                    ))
                }
            }
        }
        self.early_fail = early_fail;
        Ok(server)
    }
}

/// A tenant's limits: its VM shape's when it has one, else its application's (or the plan's);
/// its placement's cpuset.
pub fn limits_of(plan: &Plan, spec: &TenantSpec) -> Limits {
    let app = plan.app(&spec.app);
    let shape = spec.shape.as_deref().and_then(|s| plan.shape(s));
    Limits {
        cpu: shape.map_or(app.map_or(0.0, |a| a.cpu_limit), |s| s.cpu),
        mem_mb: shape.map_or(app.map_or(0.0, |a| a.mem_limit_mb), |s| s.mem_mb),
        weight: shape.and_then(|s| s.weight),
        cpuset: spec.cpuset.clone(),
    }
}

/// The values of the placeholders a tenant's commands may use (`addr`: where its server
/// listens, `host_addr`: where its clients connect from; both loopback without a namespace).
fn tenant_vars(
    plan: &Plan,
    app: &App,
    spec: &TenantSpec,
    name: &str,
    workdir: &Path,
    addrs: Option<(String, String)>,
) -> BTreeMap<String, String> {
    let level = app.level(&spec.level);
    let mut vars = level.map(|l| l.vars.clone()).unwrap_or_default();
    let (addr, host_addr) = addrs.unwrap_or_else(|| ("127.0.0.1".into(), "127.0.0.1".into()));
    vars.insert("port".into(), free_port().to_string());
    vars.insert("addr".into(), addr);
    vars.insert("host_addr".into(), host_addr);
    vars.insert("workdir".into(), workdir.display().to_string());
    vars.insert("tenant".into(), name.to_string());
    vars.insert("plan_dir".into(), plan.dir().display().to_string());
    let cpus = spec
        .cpuset
        .as_deref()
        .and_then(|c| parse_cpulist(c).ok())
        .map(|v| v.len())
        .unwrap_or_else(online_cpus);
    vars.insert("cpus".into(), cpus.to_string());
    vars.insert("duration".into(), plan.run_seconds.to_string());
    if let Some(r) = level.and_then(|l| l.rate) {
        vars.insert("rate".into(), format!("{}", r.round() as i64));
    }
    vars
}
