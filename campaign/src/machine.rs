//! What the campaign reads of the machine: CPUs, memory, and the CPU time used outside the
//! campaign's tenants while a run is recorded (foreign load rejects a baseline).

use std::fs;
use std::time::Instant;

use crate::cgroup::Tenant;

/// CPUs this process may run on.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Total memory, MiB (infinite when `/proc/meminfo` cannot be read).
pub fn mem_total_mb() -> f64 {
    fs::read_to_string("/proc/meminfo")
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

/// This machine as the runs table records it: CPU model and kernel release (`model; kernel`),
/// so that runs recorded on different machines are never mixed up unseen.
pub fn description() -> String {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    format!("{model}; {kernel}")
}

/// Wall clock, ns since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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

/// Measures the CPU used outside the tenants and this process over a run.
pub struct ForeignProbe {
    t0: Instant,
    busy0: f64,
    self0: f64,
    tenants0: f64,
}

impl ForeignProbe {
    pub fn start(tenants: &[&Tenant]) -> ForeignProbe {
        ForeignProbe::start_at(tenants.iter().map(|t| t.cpu_seconds()).sum())
    }

    /// Starts with the tenants' CPU seconds so far given (e.g. their parent cgroup's, which
    /// keeps the time of tenants that left).
    pub fn start_at(tenants_cpu_s: f64) -> ForeignProbe {
        ForeignProbe {
            t0: Instant::now(),
            busy0: machine_busy_s(),
            self0: self_cpu_s(),
            tenants0: tenants_cpu_s,
        }
    }

    /// CPU used outside the tenants and this process since `start`, % of one vCPU.
    pub fn finish(&self, tenants: &[&Tenant]) -> f64 {
        self.finish_at(tenants.iter().map(|t| t.cpu_seconds()).sum())
    }

    /// [`ForeignProbe::finish`] with the tenants' CPU seconds given.
    pub fn finish_at(&self, tenants_cpu_s: f64) -> f64 {
        let wall = self.t0.elapsed().as_secs_f64().max(1e-3);
        let busy = machine_busy_s() - self.busy0;
        let own = self_cpu_s() - self.self0;
        let ten = tenants_cpu_s - self.tenants0;
        ((busy - own - ten) / wall * 100.0).max(0.0)
    }
}
