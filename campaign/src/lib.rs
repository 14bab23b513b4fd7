//! Campaigns: real applications as tenants, alone and co-located, recorded by the collector's
//! agent and labelled with P = ideal / actual performance (whole run and per second).
//!
//! - [`plan`]: the TOML plan (applications are data), validated before any run;
//! - [`schedule`]: the co-located runs and their tenants, deterministic from the plan's seed;
//! - [`cgroup`]: tenant cgroups, always removed (drop, SIGINT/SIGTERM, stale at start);
//! - [`exec`] and [`output`]: processes inside tenants, their load scripts and what they report;
//! - [`runner`]: one run executed and recorded; [`baseline`]: isolated baseline groups;
//! - [`journal`]: the runs table as the resumable record of what is done.
//!
//! Labels are computed by `dataset::runs` ([`dataset::runs::RunRecord::label`]), the one place.

pub mod baseline;
pub mod cgroup;
pub mod dynamic;
pub mod error;
pub mod exec;
pub mod journal;
pub mod machine;
pub mod netns;
pub mod output;
pub mod plan;
pub mod preflight;
pub mod runner;
pub mod schedule;
pub mod sentinel;
pub mod slot;

use std::path::PathBuf;

use dataset::catalogue::Catalogue;
use dataset::runs::{RunKind, RunRecord, RunStatus};

pub use error::CampaignError;
pub use journal::{status, Status};
pub use plan::{App, Plan, PlanError};

use crate::cgroup::{Layout, Parent};
use crate::dynamic::DynamicRun;
use crate::journal::Journal;
use crate::runner::Runner;
use crate::schedule::{schedule, ColocatedRun, TenantSpec};

/// Campaign settings beyond the plan.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub quiet: bool,
    pub cgroup_root: PathBuf,
    /// Stop cleanly at the first run boundary after this long (`--stop-after`); the directory
    /// resumes. None: run to the end.
    pub stop_after: Option<std::time::Duration>,
    /// When no stored host's sentinel agrees, go on as a new host whose baselines are measured
    /// afresh (`--new-host`) instead of refusing.
    pub new_host: bool,
}

/// What a campaign did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub colocated_total: usize,
    pub colocated_done_before: usize,
    pub colocated_done_now: usize,
    pub baseline_groups_now: usize,
    pub baselines_retaken: usize,
    pub failed_tenant_runs: usize,
    /// Stopped at a run boundary by [`Options::stop_after`] with runs left.
    pub stopped_early: bool,
    /// The sentinel baseline replayed on resume (and passed).
    pub sentinel: Option<sentinel::SentinelCheck>,
    /// Other hosts' sentinels replayed on resume that did not agree (newest first).
    pub sentinels_refused: Vec<sentinel::SentinelCheck>,
    /// The host this part ran as (0: the directory's first), and whether it started it.
    pub host: u32,
    pub new_host: bool,
    /// The sentinel replayed once more when `stop_after` ended the part: how far the machine
    /// drifted while the part ran (recorded, never refused).
    pub closing_sentinel: Option<sentinel::SentinelCheck>,
}

/// Runs (or resumes) a campaign: for each co-located run of the schedule not yet in the runs
/// table, first the baselines its tenants lack, then the run itself.
pub fn run_campaign(plan: &Plan, opts: &Options) -> Result<Summary, CampaignError> {
    let started = std::time::Instant::now();
    cgroup::can_create(&opts.cgroup_root)?;
    cgroup::install_signal_handlers();
    journal::claim_dir(&opts.out, plan)?;
    let layout = Layout::detect(&opts.cgroup_root)?;
    tracing::info!(hierarchies = ?layout.kinds(), "tenants join these cgroup hierarchies");
    let stale = cgroup::remove_stale(&layout);
    if stale > 0 {
        tracing::warn!(stale, "removed cgroups of a crashed earlier campaign");
    }
    if plan.network == plan::Network::Namespace {
        let stale = netns::remove_stale();
        if stale > 0 {
            tracing::warn!(
                stale,
                "removed network namespaces of a crashed earlier campaign"
            );
        }
    }
    let mut runner = Runner {
        plan,
        out: &opts.out,
        cgroup_root: &opts.cgroup_root,
        parent: Parent::create(layout)?,
        catalogue_hash: Catalogue::builtin().hash().to_string(),
        machine: machine::description(),
        host: 0,
    };
    let mut journal = Journal::open(&opts.out)?;
    let all = work_of(plan);
    let total = all.len();
    let todo: Vec<Work> = all
        .into_iter()
        .filter(|w| !journal.is_done(w.run_id()))
        .collect();
    let mut summary = Summary {
        colocated_total: total,
        colocated_done_before: total - todo.len(),
        ..Default::default()
    };
    let probed = preflight::check(&runner, &todo)?;
    tracing::info!(
        probed,
        "pre-flight: every tenant cgroup and namespace can be made"
    );
    if !todo.is_empty() {
        let choice = sentinel::choose_host(&mut runner, &journal, opts.new_host)?;
        summary.sentinel = choice.agreed;
        summary.sentinels_refused = choice.refused;
        summary.new_host = choice.new_host;
    }
    summary.host = runner.host;
    let pb = progress(opts.quiet, work_units(&runner, &journal, &todo));
    for work in &todo {
        if opts.stop_after.is_some_and(|d| started.elapsed() >= d) {
            summary.stopped_early = true;
            break;
        }
        for spec in work.labelled() {
            if journal.has_baseline(&runner.baseline_key(spec)) {
                continue;
            }
            pb.set_message(format!(
                "baseline {}@{} {}",
                spec.app, spec.level, spec.trace
            ));
            let group = baseline::take_group(&runner, spec, &mut summary, || pb.inc(1))?;
            journal.append(group)?;
            summary.baseline_groups_now += 1;
        }
        pb.set_message(work.describe());
        let rows = match work {
            Work::Static(run) => colocated(&runner, run, &journal)?,
            Work::Dynamic(run) => dynamic_rows(&runner, run, &journal)?,
        };
        summary.failed_tenant_runs += rows.iter().filter(|r| !r.is_ok()).count();
        journal.append(rows)?;
        summary.colocated_done_now += 1;
        pb.inc(1);
    }
    pb.finish_and_clear();
    if summary.stopped_early {
        summary.closing_sentinel = sentinel::replay(&runner, &journal)?;
        if let Some(c) = summary.closing_sentinel.as_ref().filter(|c| !c.passed()) {
            tracing::warn!(
                key = %c.key,
                deviation = c.deviation,
                limit = c.limit,
                "the sentinel baseline replayed at the end of this part differs from the stored \
                 one by more than twice its noise: the machine drifted during the part, and its \
                 labels may be biased"
            );
        }
    }
    Ok(summary)
}

/// One co-located run to do: static (its tenants stay throughout) or dynamic (neighbours come
/// and go, see [`dynamic`]).
#[derive(Debug, Clone)]
pub enum Work {
    Static(ColocatedRun),
    Dynamic(DynamicRun),
}

impl Work {
    pub fn run_id(&self) -> &str {
        match self {
            Work::Static(r) => &r.run_id,
            Work::Dynamic(r) => &r.run_id,
        }
    }

    /// Every tenant the run sets up (neighbour stays included).
    pub fn specs(&self) -> Vec<TenantSpec> {
        match self {
            Work::Static(r) => r.tenants.clone(),
            Work::Dynamic(r) => std::iter::once(r.victim.clone())
                .chain(r.stays.iter().map(|s| r.stay_spec(s)))
                .collect(),
        }
    }

    /// The tenants that get a row (and so need a baseline).
    pub fn labelled(&self) -> Vec<&TenantSpec> {
        match self {
            Work::Static(r) => r.tenants.iter().collect(),
            Work::Dynamic(r) => vec![&r.victim],
        }
    }

    fn describe(&self) -> String {
        match self {
            Work::Static(r) => format!(
                "{} ({} tenants, {})",
                r.run_id,
                r.tenants.len(),
                r.placement
            ),
            Work::Dynamic(r) => format!(
                "{} ({} under {} neighbour stays, {})",
                r.run_id,
                r.victim.app,
                r.stays.len(),
                r.placement
            ),
        }
    }
}

/// Every co-located run of a plan, in the order they run: the dynamic and the static runs
/// interleaved evenly (each kind in its own order), so that a campaign run in parts
/// (`--stop-after`) has both kinds, and the applications of both, in every part.
pub fn work_of(plan: &Plan) -> Vec<Work> {
    let dynamic: Vec<Work> = dynamic::dynamic_schedule(plan)
        .into_iter()
        .map(Work::Dynamic)
        .collect();
    let fixed: Vec<Work> = schedule(plan).into_iter().map(Work::Static).collect();
    interleave(dynamic, fixed)
}

/// `a` and `b` merged so that item i of a list of n sits at (i + ½) / n of the whole; ties go to
/// `a`.
fn interleave<T>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    let (na, nb) = (a.len(), b.len());
    let mut out = Vec::with_capacity(na + nb);
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    let (mut i, mut j) = (0usize, 0usize);
    while a.peek().is_some() || b.peek().is_some() {
        // Compare (2i + 1) / 2na with (2j + 1) / 2nb without division.
        let take_a =
            b.peek().is_none() || (a.peek().is_some() && (2 * i + 1) * nb <= (2 * j + 1) * na);
        if take_a {
            out.extend(a.next());
            i += 1;
        } else {
            out.extend(b.next());
            j += 1;
        }
    }
    out
}

/// Labels a tenant's row against its baseline on this host (a row whose every baseline failed
/// says so).
fn label_row(runner: &Runner, r: &mut RunRecord, spec: &TenantSpec, journal: &Journal) {
    match journal.baseline(&runner.baseline_key(spec)) {
        Some(b) => r.label(&b),
        None if r.is_ok() => {
            r.status = RunStatus::NoBaseline;
            r.error =
                Some("every isolated baseline of this (app, level, trace, cpuset) failed".into());
        }
        None => {}
    }
}

/// Runs one co-located run and labels each tenant against its baseline.
fn colocated(
    runner: &Runner,
    run: &ColocatedRun,
    journal: &Journal,
) -> Result<Vec<RunRecord>, CampaignError> {
    let ex = runner.execute(&run.run_id, &run.tenants, runner.plan.run_seconds)?;
    let mut rows = Vec::new();
    for (k, (spec, o)) in run.tenants.iter().zip(&ex.tenants).enumerate() {
        let nbrs: Vec<&TenantSpec> = (run.tenants.iter().enumerate())
            .filter(|(j, _)| *j != k)
            .map(|(_, t)| t)
            .collect();
        let kind = RunKind::Colocated;
        let mut r = runner.record(&run.run_id, kind, &run.placement, spec, &nbrs, 0, &ex, o);
        label_row(runner, &mut r, spec, journal);
        rows.push(r);
    }
    Ok(rows)
}

/// Runs one dynamic run: the victim's row, with every neighbour stay as it happened.
fn dynamic_rows(
    runner: &Runner,
    run: &DynamicRun,
    journal: &Journal,
) -> Result<Vec<RunRecord>, CampaignError> {
    let (ex, stays) = dynamic::execute_dynamic(runner, run)?;
    let o = &ex.tenants[0];
    let kind = RunKind::Colocated;
    let mut r = runner.record(
        &run.run_id,
        kind,
        &run.placement,
        &run.victim,
        &[],
        0,
        &ex,
        o,
    );
    let seen: std::collections::BTreeSet<String> = (stays.iter())
        .flat_map(|s| s.levels.iter().map(|(l, _, _)| format!("{}@{l}", s.app)))
        .collect();
    r.neighbours = seen.into_iter().collect::<Vec<_>>().join(",");
    let most = dataset::runs::presence_per_second(&stays, runner.plan.run_seconds)
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    r.n_tenants = 1 + most as u32;
    r.neighbour_schedule = dataset::runs::schedule_to_json(&stays);
    label_row(runner, &mut r, &run.victim, journal);
    Ok(vec![r])
}

/// Work units for the progress bar: baseline repeats still missing + co-located runs left.
fn work_units(runner: &Runner, journal: &Journal, todo: &[Work]) -> u64 {
    let mut missing = std::collections::BTreeSet::new();
    for t in todo.iter().flat_map(Work::labelled) {
        let key = runner.baseline_key(t);
        if !journal.has_baseline(&key) {
            missing.insert(key);
        }
    }
    missing.len() as u64 * runner.plan.repeats as u64 + todo.len() as u64
}

fn progress(quiet: bool, units: u64) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(units);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb
}

#[cfg(test)]
mod tests {
    use super::interleave;

    #[test]
    fn runs_of_both_kinds_are_spread_evenly() {
        let a: Vec<String> = (0..4).map(|i| format!("d{i}")).collect();
        let b: Vec<String> = (0..2).map(|i| format!("c{i}")).collect();
        assert_eq!(
            interleave(a, b),
            ["d0", "c0", "d1", "d2", "c1", "d3"].map(String::from)
        );
        assert_eq!(interleave(vec![1, 2], vec![]), vec![1, 2]);
        assert_eq!(interleave(vec![], vec![3]), vec![3]);
    }
}
