//! Small parsers over byte buffers for cgroup (v1 and v2) and /proc files, and a reader that
//! keeps a file open and re-reads it with `pread` into a reused buffer.
//!
//! Every parser is total: a missing field is `None`, never a panic or a 0.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A file opened once and re-read from offset 0 at every tick into a reused buffer.
#[derive(Debug)]
pub struct PreadFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    len: usize,
    /// For a file with a fixed number of lines ([`PreadFile::with_fixed_lines`]): its lines at
    /// the last complete read.
    fixed_lines: Option<usize>,
    fixed: bool,
    /// `pread` calls so far.
    calls: u64,
}

impl PreadFile {
    pub fn open(path: &Path) -> io::Result<PreadFile> {
        let file = File::open(path)?;
        Ok(PreadFile {
            path: path.to_path_buf(),
            file,
            buf: vec![0; 4096],
            len: 0,
            fixed_lines: None,
            fixed: false,
            calls: 0,
        })
    }

    /// Marks the file as one whose number of lines never changes while the system runs
    /// (`/proc/vmstat`: one line per compiled-in counter). Such a file longer than
    /// [`SHORT_READ_IS_EOF`] is read in one call when the first read already holds as many
    /// complete lines as the last whole read had, instead of a second call that regenerates the
    /// whole file to confirm the end (`/proc/vmstat`, ~4 KB, costs ~30 µs per read).
    pub fn with_fixed_lines(mut self) -> PreadFile {
        self.fixed = true;
        self
    }

    /// Opens `path` if it exists; `None` otherwise (a missing source is not an error).
    pub fn open_opt(path: &Path) -> Option<PreadFile> {
        PreadFile::open(path).ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `pread` calls made so far (each regenerates a /proc or cgroup file in the kernel).
    pub fn read_calls(&self) -> u64 {
        self.calls
    }

    /// Re-reads the whole file; returns its bytes (valid until the next read).
    ///
    /// A first read shorter than [`SHORT_READ_IS_EOF`] ends the file, which saves the second,
    /// empty read that would confirm it (half of the agent's syscalls): /proc and cgroup files
    /// are seq_files, which fill a read with records until their one-page buffer would overflow,
    /// so a read that stopped short of the page by more than a record is the end of the file.
    /// Longer files are read on until a read returns nothing.
    pub fn read(&mut self) -> io::Result<&[u8]> {
        let mut off = 0usize;
        // The first read held the known number of lines of a fixed-line file: nothing to recount.
        let mut by_count = false;
        loop {
            if off == self.buf.len() {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            let n = self.file.read_at(&mut self.buf[off..], off as u64)?;
            self.calls += 1;
            if n == 0 {
                break;
            }
            off += n;
            if off == n {
                by_count = self
                    .fixed_lines
                    .is_some_and(|k| self.buf[n - 1] == b'\n' && newlines(&self.buf[..n]) == k);
                if n < SHORT_READ_IS_EOF || by_count {
                    break;
                }
            }
        }
        self.len = off;
        if self.fixed && !by_count {
            self.fixed_lines = Some(newlines(&self.buf[..off]));
        }
        Ok(&self.buf[..self.len])
    }
}

fn newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

/// A first read of fewer bytes than this is taken as the whole file. A seq_file stops filling a
/// read at its 4 KiB page only when the next record would not fit, so a non-final read of a file
/// with records shorter than 1 KiB (every file the agent reads) returns more than this.
pub const SHORT_READ_IS_EOF: usize = 3072;

/// Parses an unsigned decimal integer (leading/trailing ASCII whitespace allowed).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

/// Parses a signed decimal integer.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    match s.first() {
        Some(b'-') => parse_u64(&s[1..])
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        _ => parse_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// Parses a float such as `1.81`.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s.trim_ascii()).ok()?.parse().ok()
}

/// Value of `key` in a flat keyed file: lines `key value` (cpu.stat, memory.stat, cpuacct.stat,
/// memory.events, oom_control, vmstat) or `key: value [kB]` (/proc/PID/io, status, meminfo).
/// The unit suffix is not applied.
pub fn keyed(buf: &[u8], key: &str) -> Option<u64> {
    let [v] = keyed_many(buf, &[key]);
    v
}

/// The values of several keys of a flat keyed file (as [`keyed`]) in one pass over it: the
/// first line of each key wins, `None` where a key is absent or its value is not a number.
pub fn keyed_many<const N: usize>(buf: &[u8], keys: &[&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    let mut found = [false; N];
    let mut left = N;
    for line in buf.split(|&b| b == b'\n') {
        if left == 0 {
            break;
        }
        let Some(sep) = line.iter().position(|&b| matches!(b, b' ' | b'\t' | b':')) else {
            continue;
        };
        let (key, rest) = line.split_at(sep);
        let rest = rest.strip_prefix(b":").unwrap_or(rest);
        for (j, k) in keys.iter().enumerate() {
            if !found[j] && k.as_bytes() == key {
                found[j] = true;
                left -= 1;
                out[j] = rest
                    .split(|b| b.is_ascii_whitespace())
                    .find(|t| !t.is_empty())
                    .and_then(parse_u64);
            }
        }
    }
    out
}

/// Sum of several keys of a flat keyed file; `None` if none of them is present.
pub fn keyed_sum<const N: usize>(buf: &[u8], keys: &[&str; N]) -> Option<u64> {
    keyed_many(buf, keys).into_iter().fold(None, sum_some)
}

/// `a + b` where either is present; `None` where neither is.
pub fn sum_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        _ => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// A PSI file (`cpu.pressure`, `/proc/pressure/io`, …).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b" 42\n"), Some(42));
        assert_eq!(parse_u64(b"x"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_f64(b"1.81"), Some(1.81));
    }

    #[test]
    fn keyed_needs_an_exact_key() {
        let b = b"pgfault 10\npgfault_extra 99\nworkingset_refault_anon 3\nrchar: 7\nMemFree:   12 kB\n";
        assert_eq!(keyed(b, "pgfault"), Some(10));
        assert_eq!(keyed(b, "pgfaul"), None);
        assert_eq!(keyed(b, "rchar"), Some(7));
        assert_eq!(keyed(b, "MemFree"), Some(12));
        assert_eq!(keyed(b, "missing"), None);
        assert_eq!(
            keyed_sum(b, &["workingset_refault_anon", "workingset_refault_file"]),
            Some(3)
        );
        assert_eq!(keyed_sum(b, &["a", "b"]), None);
    }

    #[test]
    fn keyed_many_reads_every_key_in_one_pass_and_first_line_wins() {
        let b = b"b 2\na 1\nb 3\n:odd 5\nc: x\n  d 4\nMemFree:   12 kB\n";
        assert_eq!(
            keyed_many(b, &["a", "b", "c", "d", "MemFree", "e"]),
            [Some(1), Some(2), None, None, Some(12), None]
        );
        assert_eq!(keyed_many(b"", &["a"]), [None]);
        assert_eq!(sum_some(None, Some(2)), Some(2));
        assert_eq!(sum_some(Some(1), Some(2)), Some(3));
        assert_eq!(sum_some(None, None), None);
    }

    /// The short-read rule must not cut a multi-record seq_file longer than one page:
    /// /proc/kallsyms (~100k short records, megabytes, static) is filled a page at a time.
    #[test]
    fn pread_file_reads_a_multi_page_seq_file_whole() {
        let path = Path::new("/proc/kallsyms");
        let Ok(expect) = std::fs::read(path) else {
            return; // not Linux
        };
        assert!(
            expect.len() > 4096,
            "{} is {} bytes",
            path.display(),
            expect.len()
        );
        let mut f = PreadFile::open(path).unwrap();
        for _ in 0..2 {
            assert!(f.read().unwrap() == expect.as_slice());
        }
        let mut small = PreadFile::open(Path::new("/proc/self/stat")).unwrap();
        let n = small.read().unwrap().len();
        assert!(n > 0 && n < SHORT_READ_IS_EOF);
    }

    /// A fixed-line file over 3 KB is read in one call once its line count is known, and read
    /// whole again when the count changes; /proc/vmstat is such a file.
    #[test]
    fn fixed_line_files_are_read_in_one_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmstat");
        let text = |n: usize| -> String {
            (0..n)
                .map(|i| format!("nr_counter_{i:03} {:>40}\n", i * 7))
                .collect()
        };
        std::fs::write(&path, text(60)).unwrap();
        assert!(text(60).len() > SHORT_READ_IS_EOF && text(61).len() < 4096);
        let mut f = PreadFile::open(&path).unwrap().with_fixed_lines();
        assert_eq!(f.read().unwrap(), text(60).as_bytes());
        assert_eq!(f.read_calls(), 2, "first read confirms the end");
        assert_eq!(f.read().unwrap(), text(60).as_bytes());
        assert_eq!(f.read_calls(), 3, "then one call");
        std::fs::write(&path, text(61)).unwrap();
        assert_eq!(
            f.read().unwrap(),
            text(61).as_bytes(),
            "a changed count is read whole"
        );
        assert_eq!(f.read_calls(), 5);
        // Unmarked, every read of a file over 3 KB takes two calls.
        let mut g = PreadFile::open(&path).unwrap();
        g.read().unwrap();
        g.read().unwrap();
        assert_eq!(g.read_calls(), 4);
        // The real one: whole (same keys as a plain read) in one call after the first.
        if let Ok(expect) = std::fs::read_to_string("/proc/vmstat") {
            let keys = |b: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(b)
                    .lines()
                    .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                    .collect()
            };
            let mut v = PreadFile::open(Path::new("/proc/vmstat"))
                .unwrap()
                .with_fixed_lines();
            v.read().unwrap();
            let c = v.read_calls();
            let got = keys(v.read().unwrap());
            assert_eq!(got, keys(expect.as_bytes()));
            assert_eq!(v.read_calls(), c + 1);
        }
    }

    #[test]
    fn stat_with_odd_comm() {
        let b = b"12 (a b) c)) R 1 1 1 0 -1 4194304 140 335 0 1 45 7 0 0 20 0 3 0 482969 2654208 403 18446744073709551615 1 2 3 0 0 0 0 6 65536 1 0 0 17 0 0 0 9 0 0\n";
        let s = parse_pid_stat(b).unwrap();
        assert_eq!(s.state, b'R');
        assert_eq!((s.minflt, s.majflt, s.utime, s.stime), (140, 0, 45, 7));
        assert_eq!((s.num_threads, s.vsize, s.rss), (3, 2654208, 403));
        assert_eq!(s.blkio_ticks, 9);
        assert!(parse_pid_stat(b"12 (x) R 1 2").is_none());
    }
}
