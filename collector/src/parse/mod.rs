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

mod cgroup;
mod procfs;

pub use cgroup::{
    cfs_quota_cpus, parse_blkio_v1, parse_cpu_list, parse_cpu_max, parse_io_stat, parse_pressure,
    IoTotals, Pressure,
};
pub use procfs::{
    count_lines, parse_diskstats, parse_net_dev, parse_pid_stat, parse_pids, parse_proc_stat,
    parse_schedstat, whole_disks, DiskTotals, NetTotals, PidStat, ProcStat,
};

#[cfg(test)]
mod tests;
