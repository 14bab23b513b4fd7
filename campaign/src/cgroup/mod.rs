//! Tenant cgroups: created by the campaign under a parent `cfc-<pid>` in every hierarchy a
//! libvirt VM or a systemd unit has on this host, so that every source the agent reads is live:
//! on v1 / hybrid hosts the v1 controllers `cpu`, `cpuacct`, `cpuset`, `memory` (required),
//! `blkio` and `pids` (when mounted) **and** the unified hierarchy (`unified`: PSI and perf
//! events, which the agent counts on a tenant's v2 cgroup); on pure v2 hosts the v2 hierarchy
//! with its controllers. Always removed: on drop, on Ctrl-C / SIGTERM (the runner checks
//! [`interrupted`]), and — for a crashed earlier campaign — at the next start
//! ([`remove_stale`]: any `cfc-<pid>` whose pid is gone).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Prefix of the campaign's parent cgroup.
pub const PARENT_PREFIX: &str = "cfc-";

/// v1 controllers a campaign needs.
const V1_REQUIRED: &[&str] = &["cpu", "cpuacct", "cpuset", "memory"];
/// v1 controllers a tenant joins when they are mounted (block I/O and process counts).
const V1_OPTIONAL: &[&str] = &["blkio", "pids"];
/// Kind of the unified hierarchy of a hybrid host (`root/unified`): no controllers, but PSI
/// files and perf events per cgroup. Limits are never written there.
pub const UNIFIED: &str = "unified";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no usable cgroup hierarchy under {0} (need v1 cpu/cpuacct/cpuset/memory or v2)")]
    NoHierarchy(PathBuf),
    #[error("cgroup {0} still has processes after kill")]
    Busy(PathBuf),
    #[error("campaigns create cgroups: run as root")]
    NotRoot,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs SIGINT / SIGTERM handlers that set a flag (the runner polls it, kills its children,
/// removes its cgroups and stops).
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT / SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The layout of this machine's cgroups.
#[derive(Debug, Clone)]
pub enum Layout {
    /// v1: controller name (or [`UNIFIED`]) → mount directory.
    V1(Vec<(String, PathBuf)>),
    /// v2 root.
    V2(PathBuf),
}

impl Layout {
    /// Detects the hierarchy under `root` (`/sys/fs/cgroup`). v1 wins on hybrid machines (the
    /// v2 hierarchy there has no controllers); its unified hierarchy is joined as [`UNIFIED`].
    pub fn detect(root: &Path) -> Result<Layout, CgroupError> {
        let mut v1: Vec<(String, PathBuf)> = V1_REQUIRED
            .iter()
            .chain(V1_OPTIONAL)
            .map(|c| (c.to_string(), root.join(c)))
            .filter(|(_, p)| p.join("cgroup.procs").exists())
            .collect();
        if v1.iter().any(|(c, _)| c == "cpuacct") && v1.iter().any(|(c, _)| c == "cpu") {
            let unified = root.join(UNIFIED);
            if unified.join("cgroup.procs").exists() {
                v1.push((UNIFIED.to_string(), unified));
            }
            return Ok(Layout::V1(v1));
        }
        if root.join("cgroup.controllers").exists() {
            return Ok(Layout::V2(root.to_path_buf()));
        }
        Err(CgroupError::NoHierarchy(root.to_path_buf()))
    }

    fn dirs(&self) -> Vec<(String, PathBuf)> {
        match self {
            Layout::V1(v) => v.clone(),
            Layout::V2(p) => vec![("v2".to_string(), p.clone())],
        }
    }

    /// The hierarchies a tenant joins (controller names, `unified` or `v2`), for logs and
    /// docs.
    pub fn kinds(&self) -> Vec<String> {
        self.dirs().into_iter().map(|(k, _)| k).collect()
    }
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills every process in a cgroup directory (SIGKILL) and removes it, children first.
pub fn kill_and_remove(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                kill_and_remove(&e.path())?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            // SAFETY: plain kill(2) on a pid listed in our own cgroup.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        if Instant::now() > deadline {
            return Err(CgroupError::Busy(dir.to_path_buf()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut last = Ok(());
    for _ in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Err(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last.map_err(io_err(dir))
}

/// Removes the parents left by campaigns whose process is gone. Returns how many were removed.
pub fn remove_stale(layout: &Layout) -> usize {
    let mut n = 0;
    for (_, root) in layout.dirs() {
        let Ok(rd) = fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = name.strip_prefix(PARENT_PREFIX) else {
                continue;
            };
            let Ok(pid) = pid.parse::<i32>() else {
                continue;
            };
            if pid_alive(pid) {
                continue;
            }
            match kill_and_remove(&e.path()) {
                Ok(()) => {
                    tracing::warn!(path = %e.path().display(), "removed a stale campaign cgroup");
                    n += 1;
                }
                Err(err) => tracing::warn!(%err, "cannot remove a stale campaign cgroup"),
            }
        }
    }
    n
}

/// The campaign's parent cgroup (`cfc-<pid>` in each controller); removed on drop.
#[derive(Debug)]
pub struct Parent {
    layout: Layout,
    name: String,
}

impl Parent {
    pub fn create(layout: Layout) -> Result<Parent, CgroupError> {
        let name = format!("{PARENT_PREFIX}{}", std::process::id());
        for (ctrl, root) in layout.dirs() {
            let d = root.join(&name);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
            if ctrl == "cpuset" {
                copy_from_parent(&d, "cpuset.cpus")?;
                copy_from_parent(&d, "cpuset.mems")?;
            }
            if ctrl == "v2" {
                let _ = fs::write(
                    root.join("cgroup.subtree_control"),
                    "+cpu +cpuset +memory +io +pids",
                );
                let _ = fs::write(
                    d.join("cgroup.subtree_control"),
                    "+cpu +cpuset +memory +io +pids",
                );
            }
        }
        Ok(Parent { layout, name })
    }

    /// The parent's name, relative to each hierarchy (`cfc-<pid>`): the tenant glob is
    /// `<name>/*`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// CPU seconds used by every tenant so far, those removed since included (v1 `cpuacct` and
    /// v2 charge usage up the hierarchy as it happens).
    pub fn cpu_seconds(&self) -> f64 {
        for (ctrl, root) in self.layout.dirs() {
            let d = root.join(&self.name);
            match ctrl.as_str() {
                "cpuacct" => {
                    if let Some(ns) = read_f64(&d.join("cpuacct.usage")) {
                        return ns / 1e9;
                    }
                }
                "v2" => {
                    if let Some(us) = usage_usec(&d) {
                        return us / 1e6;
                    }
                }
                _ => {}
            }
        }
        0.0
    }

    /// Creates a tenant cgroup with its limits.
    pub fn tenant(&self, tenant: &str, limits: &Limits) -> Result<Tenant, CgroupError> {
        let mut dirs = Vec::new();
        for (ctrl, root) in self.layout.dirs() {
            let d = root.join(&self.name).join(tenant);
            if d.exists() {
                kill_and_remove(&d)?;
            }
            fs::create_dir_all(&d).map_err(io_err(&d))?;
            dirs.push((ctrl.clone(), d.clone()));
            match ctrl.as_str() {
                "cpuset" => {
                    match &limits.cpuset {
                        Some(c) => write(&d.join("cpuset.cpus"), c)?,
                        None => copy_from_parent(&d, "cpuset.cpus")?,
                    }
                    copy_from_parent(&d, "cpuset.mems")?;
                }
                "cpu" => {
                    if limits.cpu > 0.0 {
                        write(&d.join("cpu.cfs_period_us"), "100000")?;
                        let quota = (limits.cpu * 100_000.0).round() as i64;
                        write(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                    if let Some(w) = limits.weight {
                        let shares = (w as u64 * 1024 / 100).max(2);
                        write(&d.join("cpu.shares"), &shares.to_string())?;
                    }
                }
                "memory" if limits.mem_mb > 0.0 => {
                    write(
                        &d.join("memory.limit_in_bytes"),
                        &format!("{}", (limits.mem_mb * 1048576.0) as u64),
                    )?;
                }
                "v2" => {
                    if limits.cpu > 0.0 {
                        write(
                            &d.join("cpu.max"),
                            &format!("{} 100000", (limits.cpu * 100_000.0).round() as i64),
                        )?;
                    }
                    if limits.mem_mb > 0.0 {
                        let (high, max) = v2_memory_limits(limits.mem_mb);
                        write(&d.join("memory.high"), &high.to_string())?;
                        write(&d.join("memory.max"), &max.to_string())?;
                    }
                    if let Some(c) = &limits.cpuset {
                        write(&d.join("cpuset.cpus"), c)?;
                    }
                    if let Some(w) = limits.weight {
                        write(&d.join("cpu.weight"), &w.to_string())?;
                    }
                }
                _ => {}
            }
        }
        Ok(Tenant {
            name: format!("{}/{}", self.name, tenant),
            dirs,
        })
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        for (_, root) in self.layout.dirs() {
            let d = root.join(&self.name);
            if let Err(e) = kill_and_remove(&d) {
                tracing::warn!(%e, "cannot remove campaign cgroup");
            }
        }
    }
}

/// Headroom of v2 `memory.max` above a tenant's memory limit, as a share of the limit.
pub const V2_MEMORY_MAX_HEADROOM: f64 = 0.125;

/// A memory limit of `mem_mb` MiB on v2, in bytes: `memory.high` at the limit, where the tenant
/// reclaims (and is throttled while it does) as a v1 tenant reclaims at `memory.limit_in_bytes`,
/// and `memory.max` an eighth above it, so that a burst past the limit is reclaimed rather than
/// OOM-killed (v2's `memory.max` alone would kill the load where v1 swaps, and fail the run).
fn v2_memory_limits(mem_mb: f64) -> (u64, u64) {
    let high = mem_mb * 1_048_576.0;
    (high as u64, (high * (1.0 + V2_MEMORY_MAX_HEADROOM)) as u64)
}

fn write(path: &Path, v: &str) -> Result<(), CgroupError> {
    fs::write(path, v).map_err(io_err(path))
}

fn copy_from_parent(dir: &Path, file: &str) -> Result<(), CgroupError> {
    let parent = dir.parent().unwrap_or(dir);
    let v = fs::read_to_string(parent.join(file)).map_err(io_err(&parent.join(file)))?;
    write(&dir.join(file), v.trim())
}

fn read_f64(path: &Path) -> Option<f64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `usage_usec` of a v2 cgroup's `cpu.stat`.
fn usage_usec(dir: &Path) -> Option<f64> {
    let s = fs::read_to_string(dir.join("cpu.stat")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// Per-tenant limits.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// vCPUs (CFS quota); 0 = none.
    pub cpu: f64,
    /// MiB; 0 = none.
    pub mem_mb: f64,
    /// CPU list (`0`, `1`, `0-1`); None = all.
    pub cpuset: Option<String>,
    /// Relative CPU weight (v2 `cpu.weight`; v1 `cpu.shares` = weight × 1024 / 100); None =
    /// the default (100).
    pub weight: Option<u32>,
}

/// One tenant cgroup (in every controller); removed on drop.
#[derive(Debug)]
pub struct Tenant {
    /// Relative path, as the agent names the tenant (`cfc-<pid>/<tenant>`).
    pub name: String,
    dirs: Vec<(String, PathBuf)>,
}

impl Tenant {
    /// A child cgroup `name` in every hierarchy, for the tenant's clients: the tenant's limits
    /// and its CPU, memory and I/O accounting cover it (v1 and v2 count hierarchically), but its
    /// processes are not in the tenant's `cgroup.procs` (the agent finds the tenant's network
    /// namespace from those). Removed on drop, and with the tenant.
    pub fn child(&self, name: &str) -> Result<Tenant, CgroupError> {
        let mut dirs = Vec::new();
        for (ctrl, d) in &self.dirs {
            let c = d.join(name);
            fs::create_dir_all(&c).map_err(io_err(&c))?;
            if ctrl == "cpuset" {
                copy_from_parent(&c, "cpuset.cpus")?;
                copy_from_parent(&c, "cpuset.mems")?;
            }
            dirs.push((ctrl.clone(), c));
        }
        Ok(Tenant {
            name: format!("{}/{name}", self.name),
            dirs,
        })
    }

    /// `cgroup.procs` files a child must join (used from `pre_exec`).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// CPU time used by the tenant so far, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        for (ctrl, d) in &self.dirs {
            if ctrl == "cpuacct" {
                if let Some(ns) = read_f64(&d.join("cpuacct.usage")) {
                    return ns / 1e9;
                }
            }
            if ctrl == "v2" {
                if let Some(us) = usage_usec(d) {
                    return us / 1e6;
                }
            }
        }
        0.0
    }

    /// Kills everything in the tenant (the tenant's cgroups stay).
    pub fn kill_all(&self) {
        for (_, d) in &self.dirs {
            let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill(2) on a pid in our own tenant cgroup.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        for (_, d) in &self.dirs {
            if let Err(e) = kill_and_remove(d) {
                tracing::warn!(%e, "cannot remove tenant cgroup");
            }
        }
    }
}

/// Whether this process may create cgroups (root and a writable hierarchy).
pub fn can_create(root: &Path) -> Result<(), CgroupError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CgroupError::NotRoot);
    }
    Layout::detect(root).map(|_| ())
}

#[cfg(test)]
mod tests;
