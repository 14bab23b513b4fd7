//! The tenant's processes: `/proc/PID/{stat,io,status,schedstat}` or taskstats, summed over
//! its processes with the counts of processes that exited kept.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{read_into, TenantReader};
use crate::parse::{self, PreadFile};
use crate::specs::raw::*;
use crate::taskstats::TaskCounters;

/// Per-process files, kept open while the process lives.
pub(super) struct PidFiles {
    dir: PathBuf,
    stat: Option<PreadFile>,
    io: Option<PreadFile>,
    /// status and schedstat: opened only when taskstats is not used.
    sched_files: Option<(Option<PreadFile>, Option<PreadFile>)>,
    /// Last cumulative values: utime, stime, minflt, majflt, blkio, vcsw, nvcsw, rchar, wchar,
    /// syscr, syscw, read_bytes, write_bytes, cancelled, run, wait, slices.
    last: Option<[u64; N_PCOUNTERS]>,
    seen: bool,
}

pub(super) const N_PCOUNTERS: usize = 17;
const PCOUNTER_RAW: [usize; N_PCOUNTERS] = [
    P_UTIME,
    P_STIME,
    P_MINFLT,
    P_MAJFLT,
    P_BLKIO,
    P_VCSW,
    P_NVCSW,
    P_RCHAR,
    P_WCHAR,
    P_SYSCR,
    P_SYSCW,
    P_READ_BYTES,
    P_WRITE_BYTES,
    P_CANCELLED_WB,
    P_RUN_NS,
    P_WAIT_NS,
    P_SLICES,
];

impl TenantReader {
    pub(super) fn read_procs(
        &mut self,
        raw: &mut [f64],
        tasks: Option<&HashMap<u32, TaskCounters>>,
    ) {
        if !self.alive {
            return;
        }
        if raw[PIDS_CURRENT].is_nan() {
            raw[PIDS_CURRENT] = self.pid_buf.len() as f64;
        }
        for f in self.pids.values_mut() {
            f.seen = false;
        }
        let (mut threads, mut running, mut blocked, mut rss, mut count) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut any_sched = false;
        let tick = self.tick_ns;
        for &pid in &self.pid_buf {
            let pf = self.pids.entry(pid).or_insert_with(|| {
                let dir = PathBuf::from(format!("/proc/{pid}"));
                PidFiles {
                    stat: PreadFile::open_opt(&dir.join("stat")),
                    io: PreadFile::open_opt(&dir.join("io")),
                    dir,
                    sched_files: None,
                    last: None,
                    seen: false,
                }
            });
            pf.seen = true;
            let Some(st) = read_into(&mut pf.stat).and_then(parse::parse_pid_stat) else {
                continue;
            };
            count += 1;
            threads += st.num_threads;
            rss += st.rss;
            match st.state {
                b'R' => running += 1,
                b'D' => blocked += 1,
                _ => {}
            }
            let mut cur = [0u64; N_PCOUNTERS];
            cur[0] = (st.utime as f64 * tick) as u64;
            cur[1] = (st.stime as f64 * tick) as u64;
            cur[2] = st.minflt;
            cur[3] = st.majflt;
            cur[4] = (st.blkio_ticks as f64 * tick) as u64;
            any_sched |= task_counters(tasks, pid, pf, &mut cur);
            if let Some(b) = read_into(&mut pf.io) {
                let v = parse::keyed_many(
                    b,
                    &[
                        "rchar",
                        "wchar",
                        "syscr",
                        "syscw",
                        "read_bytes",
                        "write_bytes",
                        "cancelled_write_bytes",
                    ],
                );
                for (c, v) in cur[7..14].iter_mut().zip(v) {
                    *c = v.unwrap_or(0);
                }
            }
            // Sum of per-process deltas over processes seen at both ticks; a process whose
            // counters went backwards (PID reuse) restarts its baseline.
            if let Some(last) = pf.last {
                if cur.iter().zip(last.iter()).all(|(c, l)| c >= l) {
                    for ((a, c), l) in self.pacc.iter_mut().zip(cur.iter()).zip(last.iter()) {
                        *a += c - l;
                    }
                }
            }
            pf.last = Some(cur);
        }
        self.pids.retain(|_, f| f.seen);
        raw[P_COUNT] = count as f64;
        raw[P_THREADS] = threads as f64;
        raw[P_RUNNING] = running as f64;
        raw[P_BLOCKED] = blocked as f64;
        raw[P_RSS] = rss as f64 * self.page;
        for (j, &r) in PCOUNTER_RAW.iter().enumerate() {
            raw[r] = self.pacc[j] as f64;
        }
        if !any_sched {
            for r in [P_RUN_NS, P_WAIT_NS, P_SLICES] {
                raw[r] = f64::NAN;
            }
        }
        self.read_net(raw);
    }
}

/// Puts process `pid`'s context switches (`cur[5..7]`) and schedstat (`cur[14..17]`) into
/// `cur`: from the taskstats `tasks` when given (a PID missing from them has exited), else from
/// its status and schedstat files. Whether schedstat values were found.
fn task_counters(
    tasks: Option<&HashMap<u32, TaskCounters>>,
    pid: u32,
    pf: &mut PidFiles,
    cur: &mut [u64; N_PCOUNTERS],
) -> bool {
    if let Some(t) = tasks {
        let Some(c) = t.get(&pid) else {
            return false;
        };
        cur[5..7].copy_from_slice(&[c.nvcsw, c.nivcsw]);
        cur[14..17].copy_from_slice(&[c.run_ns, c.wait_ns, c.slices]);
        return true;
    }
    let dir = &pf.dir;
    let (status, schedstat) = pf.sched_files.get_or_insert_with(|| {
        (
            PreadFile::open_opt(&dir.join("status")),
            PreadFile::open_opt(&dir.join("schedstat")),
        )
    });
    if let Some(b) = read_into(status) {
        let v = parse::keyed_many(
            b,
            &["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"],
        );
        for (c, v) in cur[5..7].iter_mut().zip(v) {
            *c = v.unwrap_or(0);
        }
    }
    let Some((run, wait, slices)) = read_into(schedstat).and_then(parse::parse_schedstat) else {
        return false;
    };
    cur[14..17].copy_from_slice(&[run, wait, slices]);
    true
}
