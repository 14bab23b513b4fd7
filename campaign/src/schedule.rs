//! The schedule: every co-located run of a plan and its tenants, deterministic from the plan's
//! seed, and the traces their loads follow.

use dataset::runs::{BaselineKey, Placement, Scenario};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::machine::online_cpus;
use crate::plan::{App, Plan};

/// One tenant of a scheduled run.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    pub app: String,
    pub level: String,
    pub scenario: Scenario,
    /// Trace id (baseline cache key part).
    pub trace: String,
    /// Rate multiplier per trace step (one step for `static`).
    pub multipliers: Vec<f64>,
    pub cpuset: Option<String>,
    /// The VM shape (plans with `[[shape]]`).
    pub shape: Option<String>,
}

impl TenantSpec {
    /// The baseline this tenant is labelled against on the campaign directory's host `host`
    /// (0: its first).
    pub fn baseline_key(&self, host: u32) -> BaselineKey {
        BaselineKey::new(&self.app, &self.level, &self.trace, self.cpuset.as_deref())
            .with_shape(self.shape.as_deref())
            .on_host(host)
    }

    /// Run id of baseline repeat `r` of this tenant's key on host `host`.
    pub fn baseline_run_id(&self, host: u32, r: u32) -> String {
        format!(
            "b-{}-{}-{}-r{r}",
            self.app,
            self.level,
            short_hash(&self.baseline_key(host).to_string())
        )
    }
}

/// One co-located run of the schedule.
#[derive(Debug, Clone)]
pub struct ColocatedRun {
    pub run_id: String,
    pub placement: Placement,
    pub tenants: Vec<TenantSpec>,
}

/// Rate multipliers of a trace (in (0, 1], applied to the level's rate).
pub fn trace_multipliers(scenario: Scenario, steps: usize, seed: u64) -> Vec<f64> {
    let n = steps.max(1);
    let lin = |i: usize| {
        if n == 1 {
            1.0
        } else {
            i as f64 / (n - 1) as f64
        }
    };
    match scenario {
        Scenario::Increasing => (0..n).map(|i| 0.25 + 0.75 * lin(i)).collect(),
        Scenario::Decreasing => (0..n).map(|i| 1.0 - 0.75 * lin(i)).collect(),
        Scenario::Periodic => (0..n)
            .map(|i| 0.6 + 0.4 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).sin())
            .collect(),
        Scenario::Random => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..n).map(|_| rng.random_range(0.2..=1.0)).collect()
        }
        Scenario::Static => vec![1.0],
    }
}

/// The cpuset of tenant `k` under `placement` on a machine of `ncpu` CPUs.
pub(crate) fn cpuset_for(placement: &Placement, k: usize, ncpu: usize) -> Option<String> {
    match placement {
        Placement::SameCore => Some("0".into()),
        Placement::CrossCore => Some((k % ncpu.max(1)).to_string()),
        Placement::Unpinned | Placement::Alone => None,
        Placement::Cpuset(list) => Some(list.clone()),
    }
}

/// The co-located runs of a plan, deterministic from its seed.
pub fn schedule(plan: &Plan) -> Vec<ColocatedRun> {
    let n = online_cpus();
    (0..plan.colocated_runs as usize)
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(plan.seed.wrapping_mul(1_000_003) + i as u64);
            let size = plan.sizes[rng.random_range(0..plan.sizes.len())] as usize;
            let placement = plan.placements[rng.random_range(0..plan.placements.len())].clone();
            let tenants = (0..size)
                .map(|k| draw_tenant(plan, &mut rng, cpuset_for(&placement, k, n)))
                .collect();
            ColocatedRun {
                run_id: format!("{}c{i:05}", plan.run_prefix()),
                placement,
                tenants,
            }
        })
        .collect()
}

/// One tenant of a run: application, level, and (for loads that take a rate) a trace.
fn draw_tenant(plan: &Plan, rng: &mut ChaCha8Rng, cpuset: Option<String>) -> TenantSpec {
    let all: Vec<&App> = plan.apps.iter().collect();
    draw_tenant_of(plan, &all, rng, cpuset)
}

/// [`draw_tenant`] among the applications `apps` (not empty).
pub(crate) fn draw_tenant_of(
    plan: &Plan,
    apps: &[&App],
    rng: &mut ChaCha8Rng,
    cpuset: Option<String>,
) -> TenantSpec {
    let app = apps[rng.random_range(0..apps.len())];
    let level = &app.levels[rng.random_range(0..app.levels.len())];
    let scenario = if app.takes_rate() {
        plan.scenarios[rng.random_range(0..plan.scenarios.len())]
    } else {
        Scenario::Static
    };
    let steps = plan.trace_steps as usize;
    let (trace, multipliers) = match scenario {
        Scenario::Static => ("static".to_string(), vec![1.0]),
        Scenario::Random => {
            let v = rng.random_range(0..plan.random_traces.max(1) as u64);
            (
                format!("random-{v}"),
                trace_multipliers(scenario, steps, plan.seed ^ (v + 1)),
            )
        }
        s => (s.to_string(), trace_multipliers(s, steps, 0)),
    };
    TenantSpec {
        app: app.name.clone(),
        level: level.name.clone(),
        scenario,
        trace,
        multipliers,
        cpuset,
        shape: draw_shape(plan, rng),
    }
}

/// A VM shape drawn among the plan's (none without shapes: the draws of plans without shapes,
/// dataset v1's, stay as they were).
pub(crate) fn draw_shape(plan: &Plan, rng: &mut ChaCha8Rng) -> Option<String> {
    if plan.shapes.is_empty() {
        return None;
    }
    Some(
        plan.shapes[rng.random_range(0..plan.shapes.len())]
            .name
            .clone(),
    )
}

fn short_hash(s: &str) -> String {
    // FNV-1a, stable across builds.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_have_the_right_shape() {
        let inc = trace_multipliers(Scenario::Increasing, 5, 0);
        assert!(inc.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(inc[4], 1.0);
        let dec = trace_multipliers(Scenario::Decreasing, 5, 0);
        assert!(dec.windows(2).all(|w| w[0] > w[1]));
        let r1 = trace_multipliers(Scenario::Random, 6, 3);
        assert_eq!(r1, trace_multipliers(Scenario::Random, 6, 3));
        assert_ne!(r1, trace_multipliers(Scenario::Random, 6, 4));
        assert!(r1.iter().all(|m| (0.2..=1.0).contains(m)));
        let per = trace_multipliers(Scenario::Periodic, 8, 0);
        assert!(per.iter().all(|m| *m > 0.0 && *m <= 1.0));
        assert_eq!(trace_multipliers(Scenario::Static, 5, 0), vec![1.0]);
    }

    #[test]
    fn baseline_run_ids_are_stable() {
        // Run ids of the committed dataset (dataset/v1/logs/): a change here would make a
        // resumed campaign redo every baseline.
        let spec = |cpuset: Option<&str>| TenantSpec {
            app: "fio-randread".into(),
            level: "qd16".into(),
            scenario: Scenario::Static,
            trace: "static".into(),
            multipliers: vec![1.0],
            cpuset: cpuset.map(str::to_string),
            shape: None,
        };
        assert_eq!(
            spec(Some("1")).baseline_run_id(0, 0),
            "b-fio-randread-qd16-5e7d2168-r0"
        );
        assert_eq!(
            spec(Some("0")).baseline_run_id(0, 2),
            "b-fio-randread-qd16-5e7d231b-r2"
        );
        assert_eq!(
            spec(None).baseline_key(0).to_string(),
            "fio-randread|qd16|static|any"
        );
        // Another host's baselines are other runs.
        assert_ne!(
            spec(Some("1")).baseline_run_id(1, 0),
            spec(Some("1")).baseline_run_id(0, 0)
        );
    }
}
