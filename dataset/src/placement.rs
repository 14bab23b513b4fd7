//! The placement columns (`placement.*`, catalogue version 3): what the host knows of where a
//! tenant runs and who competes with it for CPU.
//!
//! - `placement.neighbours`: the other tenants seen in the same second.
//! - `placement.cpuset_cpus`: CPUs the tenant may run on; `placement.cpu_quota_cpus`: its CPU
//!   quota in CPUs (null if unlimited). The agent reads both from the tenant's cgroup.
//! - `placement.contending_cpu_pct`: Σ over neighbours of (share of my CPUs the neighbour may
//!   also run on) × (the neighbour's `cpu.usage_pct`) — how much CPU demand lands where I run.
//!
//! The agent and the dataset reader compute the two cross-tenant columns with the same
//! function, [`fill_cross_tenant`]. For sample files written before version 3 the reader
//! derives all four from the runs table (cpuset, quota) and the file's rows of the same second
//! ([`derive_for_old_rows`]); where the runs table does not say (an unpinned tenant beside a
//! pinned one needs the host's CPU count, which it does not record) the value is null.

use std::collections::BTreeMap;

use crate::catalogue::Catalogue;

/// Column indices of the placement metrics and of `cpu.usage_pct` in a feature row (own
/// metrics first, then `nbr.` ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementColumns {
    pub neighbours: usize,
    pub cpuset_cpus: usize,
    pub cpu_quota_cpus: usize,
    pub contending_cpu_pct: usize,
    pub cpu_usage_pct: usize,
    /// Metrics per tenant (the offset of the `nbr.` half).
    pub n_metrics: usize,
}

impl PlacementColumns {
    /// The columns in `cat`; `None` for a catalogue without the placement metrics.
    pub fn of(cat: &Catalogue) -> Option<PlacementColumns> {
        Some(PlacementColumns {
            neighbours: cat.index_of("placement.neighbours")?,
            cpuset_cpus: cat.index_of("placement.cpuset_cpus")?,
            cpu_quota_cpus: cat.index_of("placement.cpu_quota_cpus")?,
            contending_cpu_pct: cat.index_of("placement.contending_cpu_pct")?,
            cpu_usage_pct: cat.index_of("cpu.usage_pct")?,
            n_metrics: cat.n_metrics(),
        })
    }

    /// The own columns, in catalogue order.
    pub fn own(&self) -> [usize; 4] {
        [
            self.neighbours,
            self.cpuset_cpus,
            self.cpu_quota_cpus,
            self.contending_cpu_pct,
        ]
    }
}

/// Share of `me`'s CPUs that `other` may also run on (`None` = unpinned: every CPU of the
/// host). `None` when it cannot be known without the host's CPU count (me unpinned, the other
/// pinned), or when `me` is empty.
pub fn cpu_overlap(me: Option<&[usize]>, other: Option<&[usize]>) -> Option<f32> {
    match (me, other) {
        (Some(me), Some(other)) if !me.is_empty() => {
            let shared = me.iter().filter(|c| other.contains(c)).count();
            Some(shared as f32 / me.len() as f32)
        }
        (Some(me), None) if !me.is_empty() => Some(1.0),
        (None, None) => Some(1.0),
        _ => None,
    }
}

/// Fills `placement.neighbours` and `placement.contending_cpu_pct` of every row of one second
/// (`rows[i]` the feature row of tenant i, whose CPUs are `cpus[i]`; `cpu.usage_pct` already
/// set). Contending demand is null when a neighbour's usage or overlap is unknown.
pub fn fill_cross_tenant(rows: &mut [&mut [f32]], cpus: &[Option<&[usize]>], c: &PlacementColumns) {
    let usage: Vec<f32> = rows.iter().map(|r| r[c.cpu_usage_pct]).collect();
    let n = rows.len();
    for (i, row) in rows.iter_mut().enumerate() {
        row[c.neighbours] = n.saturating_sub(1) as f32;
        let mut sum = 0f32;
        let mut known = true;
        for j in (0..n).filter(|&j| j != i) {
            match cpu_overlap(cpus[i], cpus[j]) {
                Some(0.0) => {}
                Some(share) if usage[j].is_finite() => sum += share * usage[j],
                _ => known = false,
            }
        }
        row[c.contending_cpu_pct] = if known { sum } else { f32::NAN };
    }
}

/// Recomputes the `nbr.` means of the placement columns of one second's rows (the mean over
/// the other tenants with a value, as the agent computes every `nbr.` column).
pub fn fill_neighbour_means(rows: &mut [&mut [f32]], c: &PlacementColumns) {
    for col in c.own() {
        let vals: Vec<f32> = rows.iter().map(|r| r[col]).collect();
        for (i, row) in rows.iter_mut().enumerate() {
            let (s, k) = vals
                .iter()
                .enumerate()
                .filter(|&(j, v)| j != i && v.is_finite())
                .fold((0f64, 0usize), |(s, k), (_, &v)| (s + v as f64, k + 1));
            row[c.n_metrics + col] = if k > 0 {
                (s / k as f64) as f32
            } else {
                f32::NAN
            };
        }
    }
}

/// What the runs table says of one tenant's placement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantSetup {
    /// Its cpuset's CPUs; `None` = unpinned.
    pub cpus: Option<Vec<usize>>,
    /// Its CPU quota in CPUs; `None` = unlimited.
    pub quota_cpus: Option<f32>,
}

/// Derives the placement columns (own and `nbr.`) of rows written before catalogue version 3:
/// `x` row-major with `f` features, `tenants[i]` and `ts[i]` the tenant and second of row i.
/// Tenants missing from `setups` get null cpuset and quota and are treated as unpinned.
pub fn derive_for_old_rows(
    x: &mut [f32],
    f: usize,
    tenants: &[String],
    ts: &[i64],
    setups: &BTreeMap<String, TenantSetup>,
    c: &PlacementColumns,
) {
    let mut seconds: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &t) in ts.iter().enumerate() {
        seconds.entry(t).or_default().push(i);
    }
    let none = TenantSetup::default();
    for idx in seconds.values() {
        let setup: Vec<&TenantSetup> = idx
            .iter()
            .map(|&i| setups.get(&tenants[i]).unwrap_or(&none))
            .collect();
        let cpus: Vec<Option<&[usize]>> = setup.iter().map(|s| s.cpus.as_deref()).collect();
        let mut rows: Vec<&mut [f32]> = Vec::with_capacity(idx.len());
        // Rows of one second are disjoint slices of `x`: split it once, in index order.
        let mut rest: &mut [f32] = x;
        let mut at = 0;
        for &i in idx {
            let (_, tail) = rest.split_at_mut((i - at) * f);
            let (row, tail) = tail.split_at_mut(f);
            rows.push(row);
            rest = tail;
            at = i + 1;
        }
        for (row, s) in rows.iter_mut().zip(&setup) {
            row[c.cpuset_cpus] = s.cpus.as_ref().map_or(f32::NAN, |c| c.len() as f32);
            row[c.cpu_quota_cpus] = s.quota_cpus.unwrap_or(f32::NAN);
        }
        fill_cross_tenant(&mut rows, &cpus, c);
        fill_neighbour_means(&mut rows, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> PlacementColumns {
        PlacementColumns::of(Catalogue::builtin()).expect("catalogue v3 has the placement metrics")
    }

    #[test]
    fn overlap_of_cpu_sets() {
        assert_eq!(cpu_overlap(Some(&[0]), Some(&[0, 1])), Some(1.0));
        assert_eq!(cpu_overlap(Some(&[0, 1]), Some(&[1])), Some(0.5));
        assert_eq!(cpu_overlap(Some(&[0]), Some(&[1])), Some(0.0));
        assert_eq!(cpu_overlap(Some(&[0]), None), Some(1.0));
        assert_eq!(cpu_overlap(None, None), Some(1.0));
        assert_eq!(
            cpu_overlap(None, Some(&[0])),
            None,
            "needs the host's CPU count"
        );
    }

    #[test]
    fn contending_demand_counts_only_shared_cpus() {
        let c = cols();
        let f = 2 * c.n_metrics;
        let mut a = vec![f32::NAN; f];
        let mut b = vec![f32::NAN; f];
        let mut d = vec![f32::NAN; f];
        a[c.cpu_usage_pct] = 50.0;
        b[c.cpu_usage_pct] = 100.0;
        d[c.cpu_usage_pct] = 30.0;
        let cpus: [Option<&[usize]>; 3] = [Some(&[0]), Some(&[0, 1]), Some(&[1])];
        let mut rows: Vec<&mut [f32]> = vec![&mut a, &mut b, &mut d];
        fill_cross_tenant(&mut rows, &cpus, &c);
        fill_neighbour_means(&mut rows, &c);
        // a on CPU 0: b may run there (share 1), d may not.
        assert_eq!(a[c.contending_cpu_pct], 100.0);
        // b on CPUs 0-1: a covers half of them, d the other half.
        assert_eq!(b[c.contending_cpu_pct], 0.5 * 50.0 + 0.5 * 30.0);
        assert_eq!(d[c.contending_cpu_pct], 100.0);
        assert_eq!(a[c.neighbours], 2.0);
        assert_eq!(a[c.n_metrics + c.contending_cpu_pct], (40.0 + 100.0) / 2.0);
        // A neighbour whose usage is unknown (its first second) makes the sum unknown.
        let mut e = vec![f32::NAN; f];
        let mut g = vec![f32::NAN; f];
        e[c.cpu_usage_pct] = 10.0;
        let mut rows: Vec<&mut [f32]> = vec![&mut e, &mut g];
        fill_cross_tenant(&mut rows, &[Some(&[0]), Some(&[0])], &c);
        assert!(e[c.contending_cpu_pct].is_nan());
        assert_eq!(g[c.contending_cpu_pct], 10.0);
    }

    #[test]
    fn old_rows_get_the_runs_table_placement() {
        let c = cols();
        let f = 2 * c.n_metrics;
        // Two seconds of two same-core tenants, then a second where only one is seen.
        let tenants: Vec<String> = ["a", "b", "a", "b", "a"].map(String::from).to_vec();
        let ts = [1, 1, 2, 2, 3];
        let mut x = vec![f32::NAN; 5 * f];
        for (i, u) in [80.0, 40.0, 60.0, 20.0, 90.0].iter().enumerate() {
            x[i * f + c.cpu_usage_pct] = *u;
        }
        let setups = BTreeMap::from([
            (
                "a".to_string(),
                TenantSetup {
                    cpus: Some(vec![0]),
                    quota_cpus: None,
                },
            ),
            (
                "b".to_string(),
                TenantSetup {
                    cpus: Some(vec![0]),
                    quota_cpus: Some(0.5),
                },
            ),
        ]);
        derive_for_old_rows(&mut x, f, &tenants, &ts, &setups, &c);
        let row = |i: usize| &x[i * f..(i + 1) * f];
        assert_eq!(row(0)[c.contending_cpu_pct], 40.0);
        assert_eq!(row(1)[c.contending_cpu_pct], 80.0);
        assert_eq!(row(3)[c.contending_cpu_pct], 60.0);
        assert_eq!(row(1)[c.cpu_quota_cpus], 0.5);
        assert!(row(0)[c.cpu_quota_cpus].is_nan());
        assert_eq!(row(0)[c.n_metrics + c.cpu_quota_cpus], 0.5);
        assert_eq!(row(2)[c.cpuset_cpus], 1.0);
        assert_eq!(row(4)[c.neighbours], 0.0);
        assert_eq!(row(4)[c.contending_cpu_pct], 0.0, "alone: nothing contends");
        assert!(
            row(4)[c.n_metrics + c.neighbours].is_nan(),
            "no neighbour, no mean"
        );
    }
}
