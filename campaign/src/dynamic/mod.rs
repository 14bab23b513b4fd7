//! Dynamic runs: interference that changes during a run.
//!
//! A dynamic run (`d00000`, …) has one **victim**, tenant `t0`, that runs its load for the whole
//! run — a static level or a trace, labelled against the isolated repeats of the same load as
//! every co-located tenant is, so its per-second P stays exact — and neighbour **slots** `t1`,
//! `t2`, … whose VMs arrive (cgroup and namespace made, server started, load begun), change
//! level, and leave (load ended, cgroup removed) at seeded random times. Each slot has
//! `changes` events at least `min_gap_seconds` apart (and from the run's ends); it starts
//! present or absent at random; at an event an absent slot gets a new neighbour (application
//! and level drawn from the plan), a present one leaves or changes level, each half the time.
//!
//! Victims are drawn among the applications that report a value every second (`second_regex`),
//! so that their per-second P shows each change. Only the victim gets a row in the runs table;
//! its `neighbour_schedule` column records every stay ([`NeighbourStay`]) as it happened, from
//! which [`dataset::runs::presence_per_second`] says who was present, at what level, each second.
//! The neighbours' own samples are recorded by the agent like any tenant's (they make the
//! victim's `nbr.*` and placement features).

mod exec;

use dataset::runs::{NeighbourStay, Placement};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::machine::online_cpus;
use crate::plan::{App, Dynamic, Plan};
use crate::schedule::{cpuset_for, draw_shape, draw_tenant_of, TenantSpec};

pub use exec::execute_dynamic;

/// One dynamic run of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicRun {
    pub run_id: String,
    pub placement: Placement,
    pub victim: TenantSpec,
    /// The cpuset of each neighbour slot (`t1` first).
    pub slot_cpusets: Vec<Option<String>>,
    /// Every neighbour stay, by slot then time.
    pub stays: Vec<NeighbourStay>,
}

impl DynamicRun {
    /// The spec a stay's tenant is set up with (its first level; the load script runs them
    /// all).
    pub fn stay_spec(&self, stay: &NeighbourStay) -> TenantSpec {
        TenantSpec {
            app: stay.app.clone(),
            level: stay.levels.first().map(|l| l.0.clone()).unwrap_or_default(),
            scenario: dataset::runs::Scenario::Static,
            trace: "static".into(),
            multipliers: vec![1.0],
            cpuset: self
                .slot_cpusets
                .get(stay.slot.saturating_sub(1) as usize)
                .cloned()
                .flatten(),
            shape: stay.shape.clone(),
        }
    }
}

/// The dynamic runs of a plan (none without `[dynamic]`), deterministic from its seed.
pub fn dynamic_schedule(plan: &Plan) -> Vec<DynamicRun> {
    let Some(d) = plan.dynamic else {
        return Vec::new();
    };
    let victims = plan.per_second_apps();
    if victims.is_empty() {
        return Vec::new();
    }
    let all: Vec<&App> = plan.apps.iter().collect();
    let n = online_cpus();
    (0..d.runs as u64)
        .map(|i| {
            let seed = plan.seed.wrapping_mul(2_000_029).wrapping_add(0xd1 + i);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let size = plan.sizes[rng.random_range(0..plan.sizes.len())] as usize;
            let placement = plan.placements[rng.random_range(0..plan.placements.len())].clone();
            let victim = draw_tenant_of(plan, &victims, &mut rng, cpuset_for(&placement, 0, n));
            let slot_cpusets: Vec<Option<String>> =
                (1..size).map(|k| cpuset_for(&placement, k, n)).collect();
            let mut stays = Vec::new();
            for slot in 1..size as u32 {
                stays.extend(slot_stays(plan, &all, &d, slot, &mut rng));
            }
            DynamicRun {
                run_id: format!("{}d{i:05}", plan.run_prefix()),
                placement,
                victim,
                slot_cpusets,
                stays,
            }
        })
        .collect()
}

/// `changes` event times in (0, `t`), sorted, at least `gap` apart and from both ends (the plan
/// checks that they fit); evenly spaced when random draws keep colliding.
fn event_times(rng: &mut ChaCha8Rng, changes: u32, gap: u32, t: u32) -> Vec<u32> {
    let fits = |v: &[u32]| {
        let mut prev = 0;
        for &x in v {
            if x < prev + gap {
                return false;
            }
            prev = x;
        }
        prev + gap <= t
    };
    for _ in 0..1000 {
        let mut v: Vec<u32> = (0..changes)
            .map(|_| rng.random_range(gap..=t.saturating_sub(gap).max(gap)))
            .collect();
        v.sort_unstable();
        if fits(&v) {
            return v;
        }
    }
    (1..=changes).map(|k| t * k / (changes + 1)).collect()
}

/// One slot's stays over a run of `t` seconds.
fn slot_stays(
    plan: &Plan,
    apps: &[&App],
    d: &Dynamic,
    slot: u32,
    rng: &mut ChaCha8Rng,
) -> Vec<NeighbourStay> {
    let t = plan.run_seconds;
    let arrive = |rng: &mut ChaCha8Rng| {
        let app = apps[rng.random_range(0..apps.len())];
        let level = rng.random_range(0..app.levels.len());
        (app, level, draw_shape(plan, rng))
    };
    let mut bounds = vec![0];
    bounds.extend(event_times(rng, d.changes, d.min_gap_seconds, t));
    bounds.push(t);
    let mut present = rng.random_bool(0.5).then(|| arrive(rng));
    let mut stays: Vec<NeighbourStay> = Vec::new();
    let mut open = false;
    for (i, w) in bounds.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        if i > 0 {
            present = match present {
                None => Some(arrive(rng)),
                Some((app, l, shape)) if app.levels.len() > 1 && rng.random_bool(0.5) => {
                    let other = (l + rng.random_range(1..app.levels.len())) % app.levels.len();
                    Some((app, other, shape))
                }
                Some(_) => None,
            };
        }
        match &present {
            Some((app, l, shape)) => {
                let level = app.levels[*l].name.clone();
                match stays.last_mut() {
                    Some(s) if open => {
                        s.to_s = b;
                        s.levels.push((level, a, b));
                    }
                    _ => stays.push(NeighbourStay {
                        slot,
                        app: app.name.clone(),
                        from_s: a,
                        to_s: b,
                        levels: vec![(level, a, b)],
                        shape: shape.clone(),
                    }),
                }
                open = true;
            }
            None => open = false,
        }
    }
    stays
}

#[cfg(test)]
mod tests;
