//! cgroup block I/O: v2 `io.stat` and `io.pressure`, v1 `blkio.throttle.*`.

use super::{read_into, set, TenantPerf, TenantReader};
use crate::parse;
use crate::specs::raw::*;

impl TenantReader {
    pub(super) fn read_io(&mut self, raw: &mut [f64]) {
        if let Some(b) = read_into(&mut self.v2_io_stat) {
            let t = parse::parse_io_stat(b);
            set(raw, IO_RBYTES, t.rbytes);
            set(raw, IO_WBYTES, t.wbytes);
            set(raw, IO_RIOS, t.rios);
            set(raw, IO_WIOS, t.wios);
            set(raw, IO_DBYTES, t.dbytes);
        }
        if let Some(b) = read_into(&mut self.v1_blkio_bytes) {
            let (r, w, d) = parse::parse_blkio_v1(b);
            set(raw, IO_RBYTES, r);
            set(raw, IO_WBYTES, w);
            set(raw, IO_DBYTES, d);
        }
        if let Some(b) = read_into(&mut self.v1_blkio_ios) {
            let (r, w, _) = parse::parse_blkio_v1(b);
            set(raw, IO_RIOS, r);
            set(raw, IO_WIOS, w);
        }
        if let Some(b) = read_into(&mut self.v2_io_pressure) {
            let p = parse::parse_pressure(b);
            set(raw, IO_PSI_SOME_US, p.some_total);
            set(raw, IO_PSI_FULL_US, p.full_total);
        }
        if let Some(b) = read_into(&mut self.v2_pids) {
            set(raw, PIDS_CURRENT, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v1_pids) {
            set(raw, PIDS_CURRENT, parse::parse_u64(b));
        }
        self.tid_buf.clear();
        if let Some(b) = read_into(&mut self.threads) {
            raw[PIDS_THREADS] = parse::count_lines(b) as f64;
            if self.perf.as_ref().is_some_and(TenantPerf::is_per_thread) {
                parse::parse_pids(b, &mut self.tid_buf);
            }
        }
    }
}
