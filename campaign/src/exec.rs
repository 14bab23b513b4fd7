//! Processes inside tenants: started in their own session, cgroups and (for a tenant with a
//! network namespace) namespace, waited for with a deadline (and the interrupt flag), killed as
//! a group.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cgroup::{self, Tenant};
use crate::error::{io_err, CampaignError};

/// Where a command runs: a tenant's cgroup (or its clients' child cgroup) and, when given, a
/// network namespace (the tenant's), else the host's.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub cgroup: &'a Tenant,
    pub netns: Option<RawFd>,
}

/// Spawns `sh -c cmd` in its own session, at `place`, output appended to `log`.
pub fn spawn_in(
    place: Place<'_>,
    cmd: &str,
    log: &Path,
    cwd: &Path,
) -> Result<Child, CampaignError> {
    let tenant = place.cgroup;
    let netns = place.netns;
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
    // close, setns) on memory prepared before fork; no allocation.
    unsafe {
        c.pre_exec(move || {
            join_cgroups(&files)?;
            match netns {
                Some(fd) => join_netns(fd),
                None => Ok(()),
            }
        });
    }
    c.spawn()
        .map_err(|e| CampaignError::Setup(format!("cannot start `{cmd}`: {e}")))
}

/// In the child between fork and exec: a new session, then this pid into every `cgroup.procs`.
/// Only async-signal-safe calls, no allocation.
fn join_cgroups(files: &[CString]) -> std::io::Result<()> {
    // SAFETY: setsid, getpid, open, write and close are async-signal-safe; the buffers are on
    // the stack or were allocated before fork.
    unsafe {
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
        for f in files {
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
    }
    Ok(())
}

/// In the child between fork and exec: into the network namespace `fd` (async-signal-safe).
fn join_netns(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: setns(2) is a plain system call on a descriptor the parent keeps open.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILLs the process group a [`spawn_in`] child leads.
pub fn kill_group(child: &Child) {
    // SAFETY: kill(2) of the process group we created with setsid.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
}

/// The last `lines` lines of a log (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(20000)
}

/// Waits for `child` with a deadline, polling the interrupt flag. `Ok(None)`: killed at the
/// deadline.
pub fn wait_deadline(
    child: &mut Child,
    deadline: Instant,
) -> Result<Option<ExitStatus>, CampaignError> {
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

/// Runs `cmd` at `place` until it ends or `limit` passes; `Ok(None)` when killed at the limit.
pub fn run_in(
    place: Place<'_>,
    cmd: &str,
    log: &Path,
    cwd: &Path,
    limit: Duration,
) -> Result<Option<ExitStatus>, CampaignError> {
    let mut c = spawn_in(place, cmd, log, cwd)?;
    wait_deadline(&mut c, Instant::now() + limit)
}
