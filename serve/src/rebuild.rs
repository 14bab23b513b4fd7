//! A tenant's window recomputed for another set of neighbours: what culprits ("without j"),
//! placement ("with the candidate") and the what-if check ask the model about.
//!
//! Two things move with the neighbours:
//!
//! - the neighbour columns (`nbr.*`, `placement.neighbours`, `placement.contending_cpu_pct`),
//!   rebuilt from the own halves of the tenants kept, by the agent's own function
//!   ([`collector::neighbours::rows_of_second`]) — exact;
//! - the tenant's **own CPU-wait columns** ([`CONTENTION_COLUMNS`]: its PSI, run-queue wait and
//!   involuntary switches), scaled second by second by `(c_new + u) / (c_rec + u)`, where
//!   `c_rec` is the CPU demand contending for its CPUs when its row was recorded (its own
//!   `placement.contending_cpu_pct`, as the agent wrote it), `c_new` the same demand with the
//!   neighbours kept, and `u` = [`UNATTRIBUTED_DEMAND_PCT`] background its waits are never
//!   attributed to. The assumption, written down: a tenant waits for its CPU in proportion to
//!   the demand that may run there. A second whose recorded or new demand is unknown is left as
//!   recorded; every other own column (usage, memory, …) always is. A pressure is capped at
//!   100 %.
//!
//! Without the second, "without the hog" is a window no host produces (a tenant waiting half
//! the time beside an idle neighbour), and a model that reads sharing from a tenant's own
//! pressure answers it as low as the real one — blaming an idle neighbour as much as a hog.

use collector::neighbours::{rows_of_second, OwnRow};
use dataset::catalogue::Catalogue;
use dataset::placement::PlacementColumns;

use crate::engine::WindowData;
use crate::live::SecondOfHost;

/// The tenant's own columns that measure it waiting for a CPU. (The host's CPU pressure is a
/// context column, not a feature.)
pub const CONTENTION_COLUMNS: [&str; 6] = [
    "cpu.psi_some_pct",
    "cpu.psi_full_pct",
    "cpu.psi_some_avg10",
    "proc.sched_wait_pct",
    "proc.sched_wait_per_slice_us",
    "proc.nonvoluntary_ctxsw_per_s",
];

/// CPU demand (percent of one CPU) that a tenant's waits are never attributed to neighbours
/// for: the host's own background and the noise of a per-second usage reading. Without it,
/// leaving out a neighbour that used 0.5 % beside no one else would clear every wait.
pub const UNATTRIBUTED_DEMAND_PCT: f32 = 10.0;

/// The factor a tenant's own waits are scaled by when the CPU demand contending for its CPUs
/// goes from `recorded` to `now` (1 when either is unknown).
pub fn wait_scale(recorded: f32, now: f32) -> f32 {
    if !recorded.is_finite() || !now.is_finite() {
        return 1.0;
    }
    let u = UNATTRIBUTED_DEMAND_PCT;
    (now.max(0.0) + u) / (recorded.max(0.0) + u)
}

/// Tenant `id`'s window over `seconds` with the neighbour columns (and the cross-tenant
/// placement columns) rebuilt from the own columns of `id` and the tenants `keep` accepts, and
/// its own waits scaled by [`wait_scale`].
pub(crate) fn rebuilt_window(
    id: &str,
    seconds: &[SecondOfHost],
    cat: &Catalogue,
    keep: impl Fn(&str) -> bool,
) -> WindowData {
    let nm = cat.n_metrics();
    let placement = PlacementColumns::of(cat);
    let placement = placement.as_ref();
    let contending = cat.index_of("placement.contending_cpu_pct");
    // Each wait column with its ceiling: a pressure is a share of wall time.
    let waits: Vec<(usize, f32)> = CONTENTION_COLUMNS
        .iter()
        .filter_map(|name| {
            let cap = if name.starts_with("cpu.psi") {
                100.0
            } else {
                f32::INFINITY
            };
            Some((cat.index_of(name)?, cap))
        })
        .collect();
    let mut data = Vec::with_capacity(seconds.len() * 2 * nm);
    for s in seconds {
        let own: Vec<OwnRow> = s
            .rows
            .iter()
            .filter(|r| r.tenant == id || keep(r.tenant.as_str()))
            .map(|r| {
                let mut features = vec![f32::NAN; 2 * nm];
                let n = r.features.len().min(nm);
                features[..n].copy_from_slice(&r.features[..n]);
                OwnRow {
                    tenant: r.tenant.clone(),
                    features,
                    gap: false,
                    dt_s: 1.0,
                    cpus: r.cpus.clone(),
                }
            })
            .collect();
        let recorded =
            contending.and_then(|c| own.iter().find(|r| r.tenant == id).map(|r| r.features[c]));
        match rows_of_second(own, nm, placement)
            .into_iter()
            .find(|r| r.tenant == id)
        {
            Some(mut row) => {
                if let (Some(c), Some(rec)) = (contending, recorded) {
                    let k = wait_scale(rec, row.features[c]);
                    for &(w, cap) in &waits {
                        let v = row.features[w];
                        if v.is_finite() {
                            row.features[w] = (v * k).min(cap);
                        }
                    }
                }
                data.extend_from_slice(&row.features);
            }
            // Not reached: `seconds` are the seconds of `id`'s own rows.
            None => data.resize(data.len() + 2 * nm, f32::NAN),
        }
    }
    WindowData {
        id: Some(id.to_string()),
        t: seconds.len(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::TenantSecond;

    /// A row of `tenant` at `usage` % on CPU 0 with a PSI of 40 %, recorded beside
    /// `contending` % of contending demand (NaN: not recorded).
    fn row(cat: &Catalogue, tenant: &str, usage: f32, contending: f32) -> TenantSecond {
        let mut features = vec![f32::NAN; cat.n_metrics()];
        features[cat.index_of("cpu.usage_pct").unwrap()] = usage;
        features[cat.index_of("cpu.psi_some_pct").unwrap()] = 40.0;
        features[cat.index_of("placement.contending_cpu_pct").unwrap()] = contending;
        TenantSecond {
            tenant: tenant.into(),
            features,
            cpus: vec![0],
        }
    }

    fn second(rows: Vec<TenantSecond>) -> SecondOfHost {
        SecondOfHost { ts_ns: 0, rows }
    }

    #[test]
    fn every_contention_column_is_a_feature() {
        let cat = Catalogue::builtin();
        for name in CONTENTION_COLUMNS {
            let k = cat
                .index_of(name)
                .unwrap_or_else(|| panic!("{name} is not in the catalogue"));
            assert!(k < cat.n_metrics(), "{name} is not a tenant metric");
        }
    }

    #[test]
    fn own_waits_follow_the_contending_demand() {
        let cat = Catalogue::builtin();
        let psi = cat.index_of("cpu.psi_some_pct").unwrap();
        let usage = cat.index_of("cpu.usage_pct").unwrap();
        let u = UNATTRIBUTED_DEMAND_PCT;
        let close = |a: f32, b: f32| (a - b).abs() < 1e-4;
        // Recorded beside a hog at 100 %: leaving it out shrinks the waits, keeping it does not.
        let shared = [second(vec![
            row(cat, "victim", 50.0, 100.0),
            row(cat, "hog", 100.0, 50.0),
        ])];
        let kept = rebuilt_window("victim", &shared, cat, |_| true);
        assert_eq!(kept.data[psi], 40.0);
        let left_out = rebuilt_window("victim", &shared, cat, |_| false);
        assert!(close(left_out.data[psi], 40.0 * u / (100.0 + u)));
        assert_eq!(left_out.data[usage], 50.0, "usage is not a wait");
        // Recorded alone (a profile): a CPU-bound candidate beside it grows them.
        let placed = [second(vec![
            row(cat, "profile", 50.0, 0.0),
            row(cat, "candidate", 100.0, 0.0),
        ])];
        let w = rebuilt_window("profile", &placed, cat, |_| true);
        assert_eq!(
            w.data[psi], 100.0,
            "40 % × 11, capped: a pressure is a share of time"
        );
        let wait = cat.index_of("proc.sched_wait_pct").unwrap();
        assert!(w.data[wait].is_nan(), "a missing wait stays missing");
        // Unknown recorded demand: as recorded.
        let unknown = [second(vec![
            row(cat, "victim", 50.0, f32::NAN),
            row(cat, "hog", 100.0, 0.0),
        ])];
        let w = rebuilt_window("victim", &unknown, cat, |_| false);
        assert_eq!(w.data[psi], 40.0);
        assert_eq!(wait_scale(f32::NAN, 5.0), 1.0);
        assert_eq!(
            wait_scale(-3.0, 0.0),
            1.0,
            "a negative reading counts as none"
        );
    }
}
