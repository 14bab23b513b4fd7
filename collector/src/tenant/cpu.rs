//! cgroup CPU accounting: v2 `cpu.stat` and `cpu.pressure`, v1 `cpu.stat` and `cpuacct.*`; the
//! tenant's CPU quota (`cpu.max`, `cpu.cfs_*`) and cpuset (`cpuset.cpus.effective`,
//! `cpuset.effective_cpus`).

use super::{read_into, set, TenantReader};
use crate::parse;
use crate::specs::raw::*;

impl TenantReader {
    pub(super) fn read_cpu(&mut self, raw: &mut [f64]) {
        if let Some(b) = read_into(&mut self.v2_cpu_stat) {
            let [usage, user, system, periods, throttled, throttled_us] = parse::keyed_many(
                b,
                &[
                    "usage_usec",
                    "user_usec",
                    "system_usec",
                    "nr_periods",
                    "nr_throttled",
                    "throttled_usec",
                ],
            );
            let ns = |v: Option<u64>| v.map(|v| v * 1000);
            set(raw, CPU_USAGE_NS, ns(usage));
            set(raw, CPU_USER_NS, ns(user));
            set(raw, CPU_SYSTEM_NS, ns(system));
            set(raw, CPU_NR_PERIODS, periods);
            set(raw, CPU_NR_THROTTLED, throttled);
            set(raw, CPU_THROTTLED_NS, ns(throttled_us));
        }
        // v1 where v2 has no cpu controller (hybrid hosts): v1 values win for what they cover.
        if let Some(b) = read_into(&mut self.v1_cpuacct_usage) {
            set(raw, CPU_USAGE_NS, parse::parse_u64(b));
        }
        let tick = self.tick_ns;
        if let Some(b) = read_into(&mut self.v1_cpuacct_stat) {
            let [user, system] = parse::keyed_many(b, &["user", "system"]);
            if let Some(v) = user {
                raw[CPU_USER_NS] = v as f64 * tick;
            }
            if let Some(v) = system {
                raw[CPU_SYSTEM_NS] = v as f64 * tick;
            }
        }
        if let Some(b) = read_into(&mut self.v1_cpu_stat) {
            let [periods, throttled, throttled_ns] =
                parse::keyed_many(b, &["nr_periods", "nr_throttled", "throttled_time"]);
            set(raw, CPU_NR_PERIODS, periods);
            set(raw, CPU_NR_THROTTLED, throttled);
            set(raw, CPU_THROTTLED_NS, throttled_ns);
        }
        self.read_cpu_placement(raw);
        if let Some(b) = read_into(&mut self.v2_cpu_pressure) {
            let p = parse::parse_pressure(b);
            set(raw, CPU_PSI_SOME_US, p.some_total);
            set(raw, CPU_PSI_FULL_US, p.full_total);
            if let Some(a) = p.some_avg10 {
                raw[CPU_PSI_SOME_AVG10] = a;
            }
        }
    }

    /// The quota in CPUs (null when unlimited) and the CPUs the tenant may run on (its cpuset;
    /// the online CPUs where it has none or it does not parse).
    fn read_cpu_placement(&mut self, raw: &mut [f64]) {
        let quota = match read_into(&mut self.v2_cpu_max) {
            Some(b) => parse::parse_cpu_max(b),
            None => {
                let q = read_into(&mut self.v1_cfs_quota).and_then(parse::parse_i64);
                let p = read_into(&mut self.v1_cfs_period).and_then(parse::parse_i64);
                parse::cfs_quota_cpus(q, p)
            }
        };
        if let Some(q) = quota {
            raw[CPU_QUOTA_CPUS] = q;
        }
        let mut found = false;
        for f in [&mut self.v2_cpuset, &mut self.v1_cpuset] {
            if let Some(b) = read_into(f) {
                if parse::parse_cpu_list(b, &mut self.cpus) {
                    found = true;
                    break;
                }
            }
        }
        if !found {
            self.cpus.clone_from(&self.online);
        }
        raw[CPUSET_CPUS] = self.cpus.len() as f64;
    }
}
