//! The resource a metric measures, for the culprits' occlusion by resource
//! (`GET /v1/tenants/{id}/culprits`, `resources[]`).
//!
//! Most metrics name their resource in their prefix (`cpu.`, `mem.`, `io.`, `net.`, `perf.`,
//! `placement.`). The per-process columns (`proc.`, read from `/proc/PID/*`) and the `pids.`
//! controller span several resources, so they are assigned by what each one counts: CPU time,
//! scheduling and runnable tasks to `cpu`, resident memory and page faults to `mem`, bytes and
//! calls of reads and writes to `io`. A scheduler then reads "the neighbours' CPU" whichever
//! interface the model learnt it from.

/// The resource of the CPU columns (the one whose occlusion also takes the neighbours' CPU
/// demand off the tenant's CPUs).
pub const CPU: &str = "cpu";

/// The resources a metric can be assigned to, in the order `docs/api.md` lists them.
pub const RESOURCES: [&str; 6] = [CPU, "mem", "io", "net", "perf", "placement"];

/// The resource of a per-tenant metric (a catalogue name without the `nbr.` prefix). A prefix
/// that names no resource is returned as it is.
pub fn resource_of(metric: &str) -> &str {
    let (prefix, rest) = metric.split_once('.').unwrap_or((metric, ""));
    match prefix {
        "pids" => CPU,
        "proc" => proc_resource(rest),
        _ => prefix,
    }
}

/// The resource of one `/proc`-sourced column (`proc.<rest>`).
fn proc_resource(rest: &str) -> &'static str {
    match rest {
        "rss_bytes" | "minflt_per_s" | "majflt_per_s" => "mem",
        "blkio_delay_pct"
        | "rchar_per_s"
        | "wchar_per_s"
        | "syscr_per_s"
        | "syscw_per_s"
        | "read_bytes_per_s"
        | "write_bytes_per_s"
        | "cancelled_write_bytes_per_s" => "io",
        // utime, stime, running, blocked, count, threads, context switches, schedstat
        _ => CPU,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_their_resource_and_proc_columns_go_by_what_they_count() {
        assert_eq!(resource_of("mem.current_bytes"), "mem");
        assert_eq!(resource_of("cpu.usage_pct"), "cpu");
        assert_eq!(resource_of("net.rx_bytes_per_s"), "net");
        assert_eq!(resource_of("placement.contending_cpu_pct"), "placement");
        assert_eq!(resource_of("proc.utime_pct"), "cpu");
        assert_eq!(resource_of("proc.sched_wait_pct"), "cpu");
        assert_eq!(resource_of("proc.nonvoluntary_ctxsw_per_s"), "cpu");
        assert_eq!(resource_of("proc.rss_bytes"), "mem");
        assert_eq!(resource_of("proc.majflt_per_s"), "mem");
        assert_eq!(resource_of("proc.read_bytes_per_s"), "io");
        assert_eq!(resource_of("proc.blkio_delay_pct"), "io");
        assert_eq!(resource_of("pids.current"), "cpu");
        assert_eq!(resource_of("nbr"), "nbr");
    }

    #[test]
    fn every_catalogue_metric_lands_on_a_listed_resource() {
        let cat = dataset::catalogue::Catalogue::builtin();
        for m in cat.metrics() {
            let r = resource_of(&m.name);
            assert!(
                RESOURCES.contains(&r),
                "{} -> {r}: not one of {RESOURCES:?}",
                m.name
            );
        }
    }
}
