//! A tenant's window recomputed for another set of neighbours: what culprits ("without j"),
//! placement ("with the candidate") and the what-if check ask the model about.
//!
//! Two things move with the neighbours:
//!
//! - the neighbour columns (`nbr.*`, `placement.neighbours`, `placement.contending_cpu_pct`),
//!   rebuilt from the own halves of the tenants kept, by the agent's own function
//!   ([`collector::neighbours::rows_of_second`]) — exact;
//! - the tenant's **own CPU-wait columns** ([`CONTENTION_COLUMNS`]: its PSI, run-queue wait and
//!   involuntary switches), second by second, from `c_rec`, the CPU demand contending for its
//!   CPUs when its row was recorded (its own `placement.contending_cpu_pct`, as the agent wrote
//!   it), and `c_new`, the same demand with the neighbours kept. Less demand (culprits): every
//!   wait column is scaled by `(c_new + u) / (c_rec + u)`, `u` = [`UNATTRIBUTED_DEMAND_PCT`]
//!   background its waits are never attributed to — a tenant waits in proportion to the demand
//!   that may run on its CPUs. More demand (placement, the what-if from baselines): the
//!   time-share columns ([`TIME_SHARE_COLUMNS`]: pressure and run-queue wait) **gain**
//!   [`added_wait`] = `usage × (c_new − c_rec) / max(100, usage + c_new)` — a CPU-bound tenant
//!   beside a CPU-bound newcomer waits half the time, a light one rarely — because scaling a
//!   tenant that was recorded alone (waits ≈ 0) would leave it at ≈ 0; the per-slice wait and
//!   the involuntary switches are scaled as above. A second whose recorded or new demand is
//!   unknown is left as recorded; every other own column (usage, memory, …) always is. A
//!   pressure is capped at 100 %.
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

/// The [`CONTENTION_COLUMNS`] that are shares of time (percent of wall time or of one CPU):
/// the ones that gain [`added_wait`] when the contending demand grows.
pub const TIME_SHARE_COLUMNS: [&str; 4] = [
    "cpu.psi_some_pct",
    "cpu.psi_full_pct",
    "cpu.psi_some_avg10",
    "proc.sched_wait_pct",
];

/// The wait (percent of time) a tenant using `usage` % of a CPU gains when the demand
/// contending for its CPUs grows from `recorded` to `now` (0 when it does not grow or either
/// is unknown): `usage × (now − recorded) / max(100, usage + now)`. Two CPU-bound tenants on
/// one CPU: 100 × 100 / 200 = 50 %; a tenant at 20 % beside 20 % more: 4 %.
pub fn added_wait(usage: f32, recorded: f32, now: f32) -> f32 {
    if !(usage.is_finite() && recorded.is_finite() && now.is_finite()) {
        return 0.0;
    }
    let (usage, recorded, now) = (usage.max(0.0), recorded.max(0.0), now.max(0.0));
    if now <= recorded {
        return 0.0;
    }
    usage * (now - recorded) / (usage + now).max(100.0)
}

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

/// Where a catalogue keeps a tenant's own CPU-wait columns ([`CONTENTION_COLUMNS`]), its CPU
/// usage and the CPU demand contending for its CPUs, to move the waits with that demand.
pub(crate) struct WaitColumns {
    /// Each wait column with its ceiling (a pressure is a share of wall time) and whether it is
    /// a share of time ([`TIME_SHARE_COLUMNS`]).
    waits: Vec<(usize, f32, bool)>,
    usage: Option<usize>,
    /// `placement.contending_cpu_pct`.
    pub contending: Option<usize>,
}

impl WaitColumns {
    pub fn of(cat: &Catalogue) -> WaitColumns {
        let waits = CONTENTION_COLUMNS
            .iter()
            .filter_map(|name| {
                let cap = if name.starts_with("cpu.psi") {
                    100.0
                } else {
                    f32::INFINITY
                };
                Some((cat.index_of(name)?, cap, TIME_SHARE_COLUMNS.contains(name)))
            })
            .collect();
        WaitColumns {
            waits,
            usage: cat.index_of("cpu.usage_pct"),
            contending: PlacementColumns::of(cat).map(|p| p.contending_cpu_pct),
        }
    }

    /// Moves the own waits of one row (`features`: own columns first) recorded beside
    /// `recorded` % of contending CPU demand to what they would be beside `now` %: scaled by
    /// [`wait_scale`] when the demand falls, the time shares gaining [`added_wait`] when it
    /// grows (the others scaled); a pressure capped at 100 %. Unknown demand: as recorded.
    pub fn follow_demand(&self, features: &mut [f32], recorded: f32, now: f32) {
        let k = wait_scale(recorded, now);
        let used = self.usage.map_or(f32::NAN, |u| features[u]);
        let gain = added_wait(used, recorded, now);
        for &(w, cap, time_share) in &self.waits {
            let v = features[w];
            if v.is_finite() {
                features[w] = if time_share && gain > 0.0 {
                    v + gain
                } else {
                    v * k
                }
                .min(cap);
            }
        }
    }
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
    let waits = WaitColumns::of(cat);
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
        let recorded = waits
            .contending
            .and_then(|c| own.iter().find(|r| r.tenant == id).map(|r| r.features[c]));
        match rows_of_second(own, nm, placement)
            .into_iter()
            .find(|r| r.tenant == id)
        {
            Some(mut row) => {
                if let (Some(c), Some(rec)) = (waits.contending, recorded) {
                    let now = row.features[c];
                    waits.follow_demand(&mut row.features, rec, now);
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
        assert!(
            close(w.data[psi], 40.0 + 50.0 * 100.0 / 150.0),
            "{}: 40 % plus the wait a CPU-bound newcomer adds",
            w.data[psi]
        );
        let wait = cat.index_of("proc.sched_wait_pct").unwrap();
        assert!(w.data[wait].is_nan(), "a missing wait stays missing");
        // A busy tenant recorded alone with no wait: the newcomer's share, capped at 100.
        let mut busy = row(cat, "profile", 100.0, 0.0);
        busy.features[psi] = 0.0;
        busy.features[wait] = 0.0;
        let slice = cat.index_of("proc.sched_wait_per_slice_us").unwrap();
        busy.features[slice] = 20.0;
        let placed = [second(vec![busy, row(cat, "candidate", 100.0, 0.0)])];
        let w = rebuilt_window("profile", &placed, cat, |_| true);
        assert!(
            close(w.data[psi], 50.0) && close(w.data[wait], 50.0),
            "{}",
            w.data[psi]
        );
        assert!(
            close(w.data[slice], 20.0 * (100.0 + u) / u),
            "the per-slice wait is scaled, not added to"
        );
        // Unknown recorded demand: as recorded.
        let unknown = [second(vec![
            row(cat, "victim", 50.0, f32::NAN),
            row(cat, "hog", 100.0, 0.0),
        ])];
        let w = rebuilt_window("victim", &unknown, cat, |_| false);
        assert_eq!(w.data[psi], 40.0);
        assert_eq!(wait_scale(f32::NAN, 5.0), 1.0);
        assert!(close(added_wait(20.0, 0.0, 20.0), 4.0));
        assert_eq!(
            added_wait(100.0, 80.0, 50.0),
            0.0,
            "less demand adds nothing"
        );
        assert_eq!(added_wait(f32::NAN, 0.0, 100.0), 0.0);
        assert_eq!(
            wait_scale(-3.0, 0.0),
            1.0,
            "a negative reading counts as none"
        );
    }
}
