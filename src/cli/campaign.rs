//! `cloudformer campaign run|status|check`: real applications as tenants, labelled runs.

use std::path::PathBuf;

use ::campaign::{self as campaign, Plan};
use anyhow::Context as _;

#[derive(clap::Subcommand)]
pub enum CampaignCmd {
    /// Run (or resume) a campaign: baselines, co-located runs, labels, sample files
    #[command(
        after_help = "Example:\n  cloudformer campaign run --plan campaigns/default.toml --out /tmp/campaign --stop-after 100m\n  (rerun the same command to resume; it first replays one stored baseline as a sentinel)"
    )]
    Run {
        /// The plan (TOML), e.g. campaigns/default.toml
        #[arg(long)]
        plan: PathBuf,
        /// Output directory (runs.parquet, samples/, logs/, plan.toml); rerun to resume
        #[arg(long)]
        out: PathBuf,
        /// Where the cgroup hierarchies are mounted
        #[arg(long, default_value = "/sys/fs/cgroup")]
        cgroup_root: PathBuf,
        /// Stop cleanly at the first run boundary after this long (e.g. 100m, 2h); the same
        /// command resumes (first replaying one stored baseline as a sentinel). Default: to the end
        #[arg(long, value_name = "DURATION", value_parser = super::collect::parse_duration)]
        stop_after: Option<std::time::Duration>,
        /// When the sentinel replay finds a machine unlike every host the directory's runs were
        /// recorded on, go on as a new host: its baselines are measured afresh and each run is
        /// labelled against baselines of the host it ran on (`host` column). Without it such a
        /// resume is refused
        #[arg(long)]
        new_host: bool,
    },
    /// Show how far a campaign directory is
    #[command(after_help = "Example:\n  cloudformer campaign status --out /tmp/campaign")]
    Status {
        #[arg(long)]
        out: PathBuf,
    },
    /// Validate a plan (applications, binaries, regexes, limits) without running anything
    #[command(after_help = "Example:\n  cloudformer campaign check --plan campaigns/default.toml")]
    Check {
        #[arg(long)]
        plan: PathBuf,
    },
}

pub fn run(cmd: CampaignCmd, ctx: &super::Ctx) -> anyhow::Result<()> {
    match cmd {
        CampaignCmd::Run {
            plan,
            out,
            cgroup_root,
            stop_after,
            new_host,
        } => {
            let plan = Plan::load(&plan)?;
            let s = campaign::run_campaign(
                &plan,
                &campaign::Options {
                    out: out.clone(),
                    quiet: ctx.quiet,
                    cgroup_root,
                    stop_after,
                    new_host,
                },
            );
            let s = match s {
                Err(campaign::CampaignError::Interrupted) => {
                    eprintln!("interrupted: rerun the same command to resume");
                    std::process::exit(130);
                }
                other => other.with_context(|| format!("campaign into {}", out.display()))?,
            };
            report(&s, &out, ctx.quiet);
            Ok(())
        }
        CampaignCmd::Status { out } => {
            let s = campaign::status(&out)
                .with_context(|| format!("campaign status of {}", out.display()))?;
            println!(
                "co-located runs: {}/{} done; tenant-runs: {} ({} baselines), {} labelled, {} failed",
                s.colocated_done,
                s.colocated_total,
                s.tenant_rows,
                s.baseline_rows,
                s.labelled_rows,
                s.failed_rows
            );
            if s.plans.len() > 1 {
                for (name, done, total) in &s.plans {
                    println!("{name}: {done}/{total} co-located runs done");
                }
            }
            if s.hosts.len() > 1 {
                for (h, machine, n) in &s.hosts {
                    println!("host {h}: {n} tenant-runs ({machine})");
                }
            }
            Ok(())
        }
        CampaignCmd::Check { plan } => {
            let p = Plan::load(&plan)?;
            let dynamic = p.dynamic.map(|d| d.runs).unwrap_or(0);
            let extends = match &p.extension {
                Some(e) => format!(" extends {} (run ids `{}-…`),", p.path.display(), e.name),
                None => String::new(),
            };
            println!(
                "{}:{extends} ok ({} applications, {} co-located runs ({dynamic} dynamic), {} s \
                 runs, {} repeats)",
                plan.display(),
                p.apps.len(),
                p.colocated_runs + dynamic,
                p.run_seconds,
                p.repeats
            );
            Ok(())
        }
    }
}

/// What a campaign run did: the sentinel's verdict, where a budget stopped it, the counts.
fn report(s: &campaign::Summary, out: &std::path::Path, quiet: bool) {
    for c in &s.sentinels_refused {
        eprintln!(
            "sentinel baseline {} of host {} at the start: {:.4} against the stored {:.4} ({:.1} %, \
             limit {:.1} %): this machine is not that host",
            c.key,
            c.host,
            c.now,
            c.stored,
            c.deviation * 100.0,
            c.limit * 100.0
        );
    }
    if s.new_host {
        eprintln!(
            "--new-host: this machine is host {} of {}; its baselines are measured afresh and its \
             runs labelled against them",
            s.host,
            out.display()
        );
    }
    let replays = [
        ("at the start", &s.sentinel),
        ("at the end", &s.closing_sentinel),
    ];
    for (when, c) in replays
        .iter()
        .filter_map(|(when, c)| c.as_ref().map(|c| (when, c)))
    {
        eprintln!(
            "sentinel baseline {} {when}: {:.4} against the stored {:.4} ({:.1} %, limit {:.1} %)",
            c.key,
            c.now,
            c.stored,
            c.deviation * 100.0,
            c.limit * 100.0
        );
    }
    if s.stopped_early {
        let done = s.colocated_done_before + s.colocated_done_now;
        eprintln!(
            "stopped after --stop-after: {done} of {} co-located runs are in {}; run the same \
             command to continue",
            s.colocated_total,
            out.display()
        );
    }
    if !quiet {
        println!(
            "co-located runs: {} done now, {} before, {} in the plan; baseline groups now: {}; \
             baselines retaken for foreign load: {}; failed tenant-runs: {}",
            s.colocated_done_now,
            s.colocated_done_before,
            s.colocated_total,
            s.baseline_groups_now,
            s.baselines_retaken,
            s.failed_tenant_runs
        );
    }
}
