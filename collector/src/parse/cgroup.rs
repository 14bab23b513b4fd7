//! Parsers of cgroup files: PSI, `io.stat` (v2) and `blkio` (v1), CPU quotas and cpu lists.

use super::{parse_f64, parse_u64};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pressure {
    pub some_avg10: Option<f64>,
    /// µs.
    pub some_total: Option<u64>,
    pub full_avg10: Option<f64>,
    /// µs; `None` on kernels whose cpu.pressure has no `full` line.
    pub full_total: Option<u64>,
}

pub fn parse_pressure(buf: &[u8]) -> Pressure {
    let mut p = Pressure::default();
    for line in buf.split(|&b| b == b'\n') {
        let (is_some, rest) = if let Some(r) = line.strip_prefix(b"some ") {
            (true, r)
        } else if let Some(r) = line.strip_prefix(b"full ") {
            (false, r)
        } else {
            continue;
        };
        let mut avg10 = None;
        let mut total = None;
        for tok in rest.split(|&b| b == b' ') {
            if let Some(v) = tok.strip_prefix(b"avg10=") {
                avg10 = parse_f64(v);
            } else if let Some(v) = tok.strip_prefix(b"total=") {
                total = parse_u64(v);
            }
        }
        if is_some {
            p.some_avg10 = avg10;
            p.some_total = total;
        } else {
            p.full_avg10 = avg10;
            p.full_total = total;
        }
    }
    p
}

/// I/O totals over all devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoTotals {
    pub rbytes: Option<u64>,
    pub wbytes: Option<u64>,
    pub rios: Option<u64>,
    pub wios: Option<u64>,
    pub dbytes: Option<u64>,
}

fn add(slot: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *slot = Some(slot.unwrap_or(0) + v);
    }
}

/// cgroup v2 `io.stat`: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…` per device.
/// An empty file (no I/O yet) gives zeros: the file exists, so the counters do.
pub fn parse_io_stat(buf: &[u8]) -> IoTotals {
    let mut t = IoTotals {
        rbytes: Some(0),
        wbytes: Some(0),
        rios: Some(0),
        wios: Some(0),
        dbytes: Some(0),
    };
    for line in buf.split(|&b| b == b'\n') {
        for tok in line.split(|&b| b == b' ') {
            let Some(eq) = tok.iter().position(|&b| b == b'=') else {
                continue;
            };
            let v = parse_u64(&tok[eq + 1..]);
            match &tok[..eq] {
                b"rbytes" => add(&mut t.rbytes, v),
                b"wbytes" => add(&mut t.wbytes, v),
                b"rios" => add(&mut t.rios, v),
                b"wios" => add(&mut t.wios, v),
                b"dbytes" => add(&mut t.dbytes, v),
                _ => {}
            }
        }
    }
    t
}

/// cgroup v1 `blkio.throttle.io_service_bytes` / `io_serviced`: `MAJ:MIN Op value` lines plus
/// `Total N`. Returns (read, write, discard) summed over devices.
pub fn parse_blkio_v1(buf: &[u8]) -> (Option<u64>, Option<u64>, Option<u64>) {
    let (mut r, mut w, mut d) = (Some(0), Some(0), Some(0));
    for line in buf.split(|&b| b == b'\n') {
        let mut it = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
        let (Some(_dev), Some(op), Some(v)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let v = parse_u64(v);
        match op {
            b"Read" => add(&mut r, v),
            b"Write" => add(&mut w, v),
            b"Discard" => add(&mut d, v),
            _ => {}
        }
    }
    (r, w, d)
}

/// CPU quota in CPUs from cgroup2 `cpu.max` (`"50000 100000"`; `"max 100000"` = unlimited →
/// `None`, as is anything that does not parse).
pub fn parse_cpu_max(buf: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(buf).ok()?;
    let mut it = text.split_whitespace();
    let (quota, period) = (it.next()?, it.next()?);
    quota_cpus(quota.parse().ok()?, period.parse().ok()?)
}

/// CPU quota in CPUs from cgroup1 `cpu.cfs_quota_us` (−1 = unlimited → `None`) and
/// `cpu.cfs_period_us`, each already parsed (`parse_i64`).
pub fn cfs_quota_cpus(quota_us: Option<i64>, period_us: Option<i64>) -> Option<f64> {
    quota_cpus(
        u64::try_from(quota_us?).ok()?,
        u64::try_from(period_us?).ok()?,
    )
}

fn quota_cpus(quota: u64, period: u64) -> Option<f64> {
    (period > 0).then(|| quota as f64 / period as f64)
}

/// A cpu list file (`cpuset.cpus.effective`, `/sys/devices/system/cpu/online`) into `out`;
/// false (and `out` empty) when it does not parse or is empty.
pub fn parse_cpu_list(buf: &[u8], out: &mut Vec<usize>) -> bool {
    out.clear();
    std::str::from_utf8(buf)
        .is_ok_and(|t| dataset::cpulist::parse_cpulist_into(t.trim(), out).is_ok())
}
