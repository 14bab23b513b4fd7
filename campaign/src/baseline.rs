//! Isolated baselines: `repeats` runs of one tenant alone per (app, level, trace, cpuset), a
//! repeat retaken (at most `max_retakes` times) when foreign load above the plan's threshold ran
//! beside it, and every repeat labelled against the group's mean.

use dataset::runs::{Baseline, Placement, RunKind, RunRecord};

use crate::error::CampaignError;
use crate::runner::Runner;
use crate::schedule::TenantSpec;
use crate::Summary;

/// Takes the baseline group of `spec`'s key and returns its rows, labelled.
pub fn take_group(
    runner: &Runner,
    spec: &TenantSpec,
    summary: &mut Summary,
    mut done_one: impl FnMut(),
) -> Result<Vec<RunRecord>, CampaignError> {
    let plan = runner.plan;
    let mut group = Vec::new();
    for rep in 0..plan.repeats {
        let id = spec.baseline_run_id(runner.host, rep);
        let mut tries = 0;
        let (ex, o) = loop {
            let mut ex = runner.execute_alone(&id, spec)?;
            let o = ex.tenants.remove(0);
            if ex.foreign_cpu_pct > plan.foreign_cpu_max_pct && tries < plan.max_retakes {
                tries += 1;
                summary.baselines_retaken += 1;
                tracing::warn!(run = %id, foreign = ex.foreign_cpu_pct, "foreign load above threshold: baseline rejected, retaking");
                continue;
            }
            break (ex, o);
        };
        if !o.ok {
            summary.failed_tenant_runs += 1;
        }
        let alone = Placement::Alone;
        group.push(runner.record(&id, RunKind::Baseline, &alone, spec, &[], rep, &ex, &o));
        done_one();
    }
    if let Some(b) = Baseline::from_repeats(&group) {
        for r in group.iter_mut() {
            r.label(&b);
        }
    }
    Ok(group)
}
