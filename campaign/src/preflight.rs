//! Before any run: a probe tenant for every distinct set of limits the runs left will use — its
//! cgroups with that quota, memory limit, CPU weight and cpuset — and, with tenant namespaces, a
//! namespace and its link, are made and removed at once. A plan this machine cannot host then
//! fails before its first run, naming what could not be made, not hours into a campaign.

use std::collections::BTreeSet;

use crate::error::CampaignError;
use crate::netns::TenantNet;
use crate::plan::Network;
use crate::runner::Runner;
use crate::slot::limits_of;
use crate::Work;

/// Makes and removes the probes; how many tenant cgroups were probed.
pub fn check(runner: &Runner, todo: &[Work]) -> Result<usize, CampaignError> {
    let plan = runner.plan;
    let mut seen = BTreeSet::new();
    for spec in todo.iter().flat_map(Work::specs) {
        let limits = limits_of(plan, &spec);
        if !seen.insert(format!("{limits:?}")) {
            continue;
        }
        let name = format!("preflight-{}", seen.len());
        let probe = runner.parent.tenant(&name, &limits).map_err(|e| {
            CampaignError::Setup(format!(
                "pre-flight: a tenant cgroup for {}@{} ({limits:?}) cannot be made: {e}; no run \
                 was started",
                spec.app, spec.level
            ))
        })?;
        drop(probe);
    }
    if plan.network == Network::Namespace && !todo.is_empty() {
        let net = TenantNet::create().map_err(|e| {
            CampaignError::Setup(format!(
                "pre-flight: a tenant network namespace cannot be made: {e}; no run was started"
            ))
        })?;
        drop(net);
    }
    Ok(seen.len())
}
