//! cgroup memory: v2 `memory.{current,stat,events,swap.current,max,pressure}`, v1
//! `memory.{usage_in_bytes,stat,limit_in_bytes,failcnt,oom_control}`.

use super::{read_into, set, set_keyed, TenantReader};
use crate::parse;
use crate::specs::raw::*;

/// cgroup v2 `memory.stat` keys and the raw slot each feeds.
const V2_MEM_STAT: [(usize, &str); 23] = [
    (MEM_ANON, "anon"),
    (MEM_FILE, "file"),
    (MEM_KSTACK, "kernel_stack"),
    (MEM_SLAB, "slab"),
    (MEM_SOCK, "sock"),
    (MEM_SHMEM, "shmem"),
    (MEM_MAPPED, "file_mapped"),
    (MEM_DIRTY, "file_dirty"),
    (MEM_WRITEBACK, "file_writeback"),
    (MEM_THP, "anon_thp"),
    (MEM_ACTIVE_ANON, "active_anon"),
    (MEM_INACTIVE_ANON, "inactive_anon"),
    (MEM_ACTIVE_FILE, "active_file"),
    (MEM_INACTIVE_FILE, "inactive_file"),
    (MEM_UNEVICTABLE, "unevictable"),
    (MEM_PGFAULT, "pgfault"),
    (MEM_PGMAJFAULT, "pgmajfault"),
    (MEM_WS_NODERECLAIM, "workingset_nodereclaim"),
    (MEM_PGSCAN, "pgscan"),
    (MEM_PGSTEAL, "pgsteal"),
    (MEM_PGREFILL, "pgrefill"),
    (MEM_PGACTIVATE, "pgactivate"),
    (MEM_PGDEACTIVATE, "pgdeactivate"),
];

/// cgroup v1 `memory.stat` keys and the raw slot each feeds.
const V1_MEM_STAT: [(usize, &str); 17] = [
    (MEM_ANON, "rss"),
    (MEM_FILE, "cache"),
    (MEM_SHMEM, "shmem"),
    (MEM_MAPPED, "mapped_file"),
    (MEM_DIRTY, "dirty"),
    (MEM_WRITEBACK, "writeback"),
    (MEM_THP, "rss_huge"),
    (MEM_ACTIVE_ANON, "active_anon"),
    (MEM_INACTIVE_ANON, "inactive_anon"),
    (MEM_ACTIVE_FILE, "active_file"),
    (MEM_INACTIVE_FILE, "inactive_file"),
    (MEM_UNEVICTABLE, "unevictable"),
    (MEM_SWAP, "swap"),
    (MEM_PGFAULT, "pgfault"),
    (MEM_PGMAJFAULT, "pgmajfault"),
    (MEM_PGPGIN, "pgpgin"),
    (MEM_PGPGOUT, "pgpgout"),
];

impl TenantReader {
    pub(super) fn read_mem(&mut self, raw: &mut [f64]) {
        if let Some(b) = read_into(&mut self.v2_mem_current) {
            set(raw, MEM_CURRENT, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v2_mem_stat) {
            set_keyed(raw, b, &V2_MEM_STAT);
            // Kernels ≥ 5.9 split the workingset counters into anon and file.
            let ws = parse::keyed_many(
                b,
                &[
                    "workingset_refault",
                    "workingset_refault_anon",
                    "workingset_refault_file",
                    "workingset_activate",
                    "workingset_activate_anon",
                    "workingset_activate_file",
                    "workingset_restore",
                    "workingset_restore_anon",
                    "workingset_restore_file",
                ],
            );
            for (i, slot) in [MEM_WS_REFAULT, MEM_WS_ACTIVATE, MEM_WS_RESTORE]
                .into_iter()
                .enumerate()
            {
                set(
                    raw,
                    slot,
                    ws[3 * i].or_else(|| parse::sum_some(ws[3 * i + 1], ws[3 * i + 2])),
                );
            }
        }
        if let Some(b) = read_into(&mut self.v2_mem_events) {
            set_keyed(
                raw,
                b,
                &[
                    (MEM_EV_HIGH, "high"),
                    (MEM_EV_MAX, "max"),
                    (MEM_EV_OOM_KILL, "oom_kill"),
                ],
            );
        }
        if let Some(b) = read_into(&mut self.v2_mem_swap) {
            set(raw, MEM_SWAP, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v2_mem_max) {
            set(raw, MEM_LIMIT, parse::parse_u64(b)); // "max" → None
        }
        if let Some(b) = read_into(&mut self.v2_mem_pressure) {
            let p = parse::parse_pressure(b);
            set(raw, MEM_PSI_SOME_US, p.some_total);
            set(raw, MEM_PSI_FULL_US, p.full_total);
        }
        // cgroup v1 memory controller.
        if let Some(b) = read_into(&mut self.v1_mem_usage) {
            set(raw, MEM_CURRENT, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v1_mem_stat) {
            set_keyed(raw, b, &V1_MEM_STAT);
            let [anon, file, all] = parse::keyed_many(
                b,
                &[
                    "workingset_refault_anon",
                    "workingset_refault_file",
                    "workingset_refault",
                ],
            );
            set(raw, MEM_WS_REFAULT, parse::sum_some(anon, file).or(all));
        }
        if let Some(b) = read_into(&mut self.v1_mem_limit) {
            // "Unlimited" is PAGE_COUNTER_MAX rounded to pages: treat ≥ 2^62 as no limit.
            set(
                raw,
                MEM_LIMIT,
                parse::parse_u64(b).filter(|&v| v < (1u64 << 62)),
            );
        }
        if let Some(b) = read_into(&mut self.v1_mem_failcnt) {
            set(raw, MEM_EV_MAX, parse::parse_u64(b));
        }
        if let Some(b) = read_into(&mut self.v1_mem_oom) {
            set(raw, MEM_EV_OOM_KILL, parse::keyed(b, "oom_kill"));
        }
    }
}
