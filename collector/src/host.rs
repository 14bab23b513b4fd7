//! Host-wide context: /proc/stat (incl. steal), PSI, meminfo, vmstat, diskstats, net/dev.

use std::path::Path;

use crate::parse::{self, PreadFile};
use crate::specs::{hraw::*, Spec, JIFFY_MODES};

/// Derived jiffy modes from the 10 `/proc/stat` cpu fields: user−guest, nice−guest_nice, system,
/// idle, iowait, irq, softirq, steal, guest+guest_nice.
pub fn jiffy_modes(c: &[u64; 10]) -> [u64; JIFFY_MODES] {
    [
        c[0].saturating_sub(c[8]),
        c[1].saturating_sub(c[9]),
        c[2],
        c[3],
        c[4],
        c[5],
        c[6],
        c[7],
        c[8] + c[9],
    ]
}

/// Percentages of each mode over Δ total jiffies, each field's Δ clamped at 0 (iowait and idle
/// may go backwards). `None` when Δ total is 0.
pub fn jiffy_pcts(prev: &[u64; 10], cur: &[u64; 10]) -> Option<[f64; JIFFY_MODES]> {
    let d = |i: usize| cur[i].saturating_sub(prev[i]) as f64;
    // Total over the 8 base fields (guest is already inside user/nice).
    let total: f64 = (0..8).map(d).sum();
    if total <= 0.0 {
        return None;
    }
    let pm = jiffy_modes(prev);
    let cm = jiffy_modes(cur);
    let mut out = [0.0; JIFFY_MODES];
    for ((o, c), p) in out.iter_mut().zip(cm.iter()).zip(pm.iter()) {
        *o = (c.saturating_sub(*p) as f64 / total * 100.0).min(100.0);
    }
    Some(out)
}

/// One host reading.
#[derive(Debug, Clone)]
pub struct HostRaw {
    pub v: Vec<f64>,
    pub cpu: Option<[u64; 10]>,
}

/// The host files, open for the agent's life.
pub struct HostReader {
    stat: Option<PreadFile>,
    meminfo: Option<PreadFile>,
    vmstat: Option<PreadFile>,
    diskstats: Option<PreadFile>,
    netdev: Option<PreadFile>,
    psi_cpu: Option<PreadFile>,
    psi_mem: Option<PreadFile>,
    psi_io: Option<PreadFile>,
    disks: Vec<String>,
}

impl HostReader {
    /// Opens the files under `proc` (normally `/proc`) and lists whole disks under `sys_block`.
    pub fn open(proc: &Path, sys_block: &Path) -> HostReader {
        let o = |p: &str| PreadFile::open_opt(&proc.join(p));
        HostReader {
            stat: o("stat"),
            meminfo: o("meminfo"),
            vmstat: o("vmstat").map(PreadFile::with_fixed_lines),
            diskstats: o("diskstats"),
            netdev: o("net/dev"),
            psi_cpu: o("pressure/cpu"),
            psi_mem: o("pressure/memory"),
            psi_io: o("pressure/io"),
            disks: parse::whole_disks(sys_block),
        }
    }

    /// Whether the PSI files exist.
    pub fn has_psi(&self) -> bool {
        self.psi_cpu.is_some()
    }

    pub fn read(&mut self) -> HostRaw {
        let mut v = vec![f64::NAN; N_HRAW];
        let mut cpu = None;
        let set = |v: &mut Vec<f64>, i: usize, x: Option<u64>| {
            if let Some(x) = x {
                v[i] = x as f64;
            }
        };
        if let Some(b) = self.stat.as_mut().and_then(|f| f.read().ok()) {
            let s = parse::parse_proc_stat(b);
            cpu = Some(s.cpu);
            set(&mut v, CTXT, s.ctxt);
            set(&mut v, INTR, s.intr);
            set(&mut v, FORKS, s.processes);
            set(&mut v, PROCS_RUNNING, s.procs_running);
            set(&mut v, PROCS_BLOCKED, s.procs_blocked);
        }
        for (f, some, full) in [
            (&mut self.psi_cpu, PSI_CPU_SOME, PSI_CPU_FULL),
            (&mut self.psi_mem, PSI_MEM_SOME, PSI_MEM_FULL),
            (&mut self.psi_io, PSI_IO_SOME, PSI_IO_FULL),
        ] {
            if let Some(b) = f.as_mut().and_then(|f| f.read().ok()) {
                let p = parse::parse_pressure(b);
                set(&mut v, some, p.some_total);
                set(&mut v, full, p.full_total);
            }
        }
        if let Some(b) = self.meminfo.as_mut().and_then(|f| f.read().ok()) {
            let [total, free, available, buffers, cached, dirty, anon, swap_total, swap_free] =
                parse::keyed_many(
                    b,
                    &[
                        "MemTotal",
                        "MemFree",
                        "MemAvailable",
                        "Buffers",
                        "Cached",
                        "Dirty",
                        "AnonPages",
                        "SwapTotal",
                        "SwapFree",
                    ],
                );
            for (i, x) in [
                (MEM_TOTAL, total),
                (MEM_FREE, free),
                (MEM_AVAILABLE, available),
                (MEM_BUFFERS, buffers),
                (MEM_CACHED, cached),
                (MEM_DIRTY, dirty),
                (MEM_ANON, anon),
            ] {
                set(&mut v, i, x);
            }
            if let (Some(t), Some(f)) = (swap_total, swap_free) {
                v[MEM_SWAP_USED] = t.saturating_sub(f) as f64;
            }
        }
        if let Some(b) = self.vmstat.as_mut().and_then(|f| f.read().ok()) {
            let [pgfault, pgmajfault, pswpin, pswpout, scan_k, scan_d, steal_k, steal_d, oom] =
                parse::keyed_many(
                    b,
                    &[
                        "pgfault",
                        "pgmajfault",
                        "pswpin",
                        "pswpout",
                        "pgscan_kswapd",
                        "pgscan_direct",
                        "pgsteal_kswapd",
                        "pgsteal_direct",
                        "oom_kill",
                    ],
                );
            for (i, x) in [
                (VM_PGFAULT, pgfault),
                (VM_PGMAJFAULT, pgmajfault),
                (VM_PSWPIN, pswpin),
                (VM_PSWPOUT, pswpout),
                (VM_PGSCAN, parse::sum_some(scan_k, scan_d)),
                (VM_PGSTEAL, parse::sum_some(steal_k, steal_d)),
                (VM_OOM_KILL, oom),
            ] {
                set(&mut v, i, x);
            }
        }
        if let Some(b) = self.diskstats.as_mut().and_then(|f| f.read().ok()) {
            let d = parse::parse_diskstats(b, &self.disks);
            if d.n_disks > 0 {
                v[DISK_READS] = d.reads as f64;
                v[DISK_WRITES] = d.writes as f64;
                v[DISK_READ_BYTES] = d.read_sectors as f64 * 512.0;
                v[DISK_WRITE_BYTES] = d.write_sectors as f64 * 512.0;
                v[DISK_IO_TICKS_MS] = d.io_ticks_max as f64;
            }
        }
        if let Some(b) = self.netdev.as_mut().and_then(|f| f.read().ok()) {
            let n = parse::parse_net_dev(b);
            v[NET_RX_BYTES] = n.rx_bytes as f64;
            v[NET_TX_BYTES] = n.tx_bytes as f64;
            v[NET_RX_PACKETS] = n.rx_packets as f64;
            v[NET_TX_PACKETS] = n.tx_packets as f64;
            v[NET_DROP] = (n.rx_drop + n.tx_drop) as f64;
        }
        HostRaw { v, cpu }
    }
}

/// Evaluates the host columns.
pub fn host_values(specs: &[Spec], prev: Option<&HostRaw>, cur: &HostRaw, dt_s: f64) -> Vec<f32> {
    let pct = match (prev.and_then(|p| p.cpu), cur.cpu) {
        (Some(p), Some(c)) => jiffy_pcts(&p, &c),
        _ => None,
    };
    specs
        .iter()
        .map(|&s| match s {
            Spec::Jiffies(i) => pct.map_or(f32::NAN, |p| p[i] as f32),
            s => crate::specs::eval(s, prev.map(|p| p.v.as_slice()), &cur.v, dt_s),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jiffies_clamp_backwards_fields_and_use_delta_total() {
        let p = [100, 0, 50, 1000, 40, 0, 0, 10, 20, 0];
        // iowait goes backwards by 5: clamped to 0, not a negative share.
        let c = [160, 0, 70, 1100, 35, 0, 0, 30, 30, 0];
        let x = jiffy_pcts(&p, &c).unwrap();
        let total = 60.0 + 20.0 + 100.0 + 20.0;
        assert!((x[0] - (50.0 / total * 100.0)).abs() < 1e-9); // user minus guest
        assert!((x[7] - 20.0 / total * 100.0).abs() < 1e-9); // steal
        assert_eq!(x[4], 0.0);
        assert!((x[8] - 10.0 / total * 100.0).abs() < 1e-9);
        assert!(jiffy_pcts(&p, &p).is_none());
    }
}
