//! Parsers of `/proc` and `/sys` files and of process lists: per-process stat and schedstat,
//! `/proc/net/dev`, `/proc/stat`, `/proc/diskstats`.

use std::path::Path;

use super::{parse_i64, parse_u64};

/// Number of non-empty lines (cgroup.procs, tasks, cgroup.threads).
pub fn count_lines(buf: &[u8]) -> u64 {
    buf.split(|&b| b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count() as u64
}

/// PIDs listed in cgroup.procs, appended to `out`.
pub fn parse_pids(buf: &[u8], out: &mut Vec<u32>) {
    for line in buf.split(|&b| b == b'\n') {
        if let Some(v) = parse_u64(line).and_then(|v| u32::try_from(v).ok()) {
            out.push(v);
        }
    }
}

/// The fields of `/proc/PID/stat` the catalogue uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PidStat {
    pub state: u8,
    pub minflt: u64,
    pub majflt: u64,
    /// Clock ticks.
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    pub vsize: u64,
    /// Pages.
    pub rss: u64,
    /// Clock ticks (field 42); 0 without delay accounting.
    pub blkio_ticks: u64,
}

/// Parses `/proc/PID/stat`; the command name may contain spaces and parentheses.
pub fn parse_pid_stat(buf: &[u8]) -> Option<PidStat> {
    let close = buf.iter().rposition(|&b| b == b')')?;
    let rest = buf.get(close + 2..)?;
    // Fields from 3 (state) on, 0-based index i ↔ field i + 3.
    let mut f: [&[u8]; 40] = [&[]; 40];
    let mut n = 0;
    for tok in rest.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        if n == f.len() {
            break;
        }
        f[n] = tok;
        n += 1;
    }
    if n < 22 {
        return None;
    }
    let g = |field: usize| parse_u64(f[field - 3]);
    Some(PidStat {
        state: *f[0].first()?,
        minflt: g(10)?,
        majflt: g(12)?,
        utime: g(14)?,
        stime: g(15)?,
        num_threads: g(20)?,
        vsize: g(23)?,
        rss: parse_i64(f[24 - 3]).map(|v| v.max(0) as u64)?,
        blkio_ticks: if n > 42 - 3 { g(42).unwrap_or(0) } else { 0 },
    })
}

/// `/proc/PID/schedstat`: (run time ns, run-queue wait ns, timeslices).
pub fn parse_schedstat(buf: &[u8]) -> Option<(u64, u64, u64)> {
    let mut it = buf
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    Some((
        parse_u64(it.next()?)?,
        parse_u64(it.next()?)?,
        parse_u64(it.next()?)?,
    ))
}

/// `/proc/net/dev` totals, `lo` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetTotals {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_drop: u64,
    pub n_ifaces: u32,
}

pub fn parse_net_dev(buf: &[u8]) -> NetTotals {
    let mut t = NetTotals::default();
    for line in buf.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name == b"lo" || name.is_empty() {
            continue;
        }
        let mut v = [0u64; 16];
        let mut n = 0;
        for tok in line[colon + 1..]
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
        {
            if n == 16 {
                break;
            }
            v[n] = parse_u64(tok).unwrap_or(0);
            n += 1;
        }
        if n < 12 {
            continue;
        }
        t.rx_bytes += v[0];
        t.rx_packets += v[1];
        t.rx_drop += v[3];
        t.tx_bytes += v[8];
        t.tx_packets += v[9];
        t.tx_drop += v[11];
        t.n_ifaces += 1;
    }
    t
}

/// `/proc/stat`: the aggregate `cpu` line and the scalar counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcStat {
    /// user nice system idle iowait irq softirq steal guest guest_nice (jiffies).
    pub cpu: [u64; 10],
    pub ctxt: Option<u64>,
    pub intr: Option<u64>,
    pub processes: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

pub fn parse_proc_stat(buf: &[u8]) -> ProcStat {
    let mut s = ProcStat::default();
    for line in buf.split(|&b| b == b'\n') {
        let mut it = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
        let Some(key) = it.next() else { continue };
        match key {
            b"cpu" => {
                for (i, tok) in it.take(10).enumerate() {
                    s.cpu[i] = parse_u64(tok).unwrap_or(0);
                }
            }
            b"ctxt" => s.ctxt = it.next().and_then(parse_u64),
            b"intr" => s.intr = it.next().and_then(parse_u64),
            b"processes" => s.processes = it.next().and_then(parse_u64),
            b"procs_running" => s.procs_running = it.next().and_then(parse_u64),
            b"procs_blocked" => s.procs_blocked = it.next().and_then(parse_u64),
            _ => {}
        }
    }
    s
}

/// `/proc/diskstats` summed over the devices in `disks` (whole disks): (reads, sectors read,
/// writes, sectors written, max io_ticks ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskTotals {
    pub reads: u64,
    pub read_sectors: u64,
    pub writes: u64,
    pub write_sectors: u64,
    pub io_ticks_max: u64,
    pub n_disks: u32,
}

pub fn parse_diskstats(buf: &[u8], disks: &[String]) -> DiskTotals {
    let mut t = DiskTotals::default();
    for line in buf.split(|&b| b == b'\n') {
        let mut f: [&[u8]; 14] = [&[]; 14];
        let mut n = 0;
        for tok in line.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            if n == 14 {
                break;
            }
            f[n] = tok;
            n += 1;
        }
        if n < 14 || !disks.iter().any(|d| d.as_bytes() == f[2]) {
            continue;
        }
        let g = |i: usize| parse_u64(f[i]).unwrap_or(0);
        t.reads += g(3);
        t.read_sectors += g(5);
        t.writes += g(7);
        t.write_sectors += g(9);
        t.io_ticks_max = t.io_ticks_max.max(g(12));
        t.n_disks += 1;
    }
    t
}

/// Whole disks: `/sys/block/*` minus loop, ram and zram devices.
pub fn whole_disks(sys_block: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sys_block)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram")
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
