//! `cloudformer report --results DIR --out DIR`: plots (PNG + SVG) and a Markdown/HTML summary
//! of an evaluation written by `cloudformer eval`.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Results directory written by `cloudformer eval --out`.
    #[arg(long)]
    pub results: PathBuf,
    /// Where to write the plots, report.md and report.html (default: the results directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also rewrite the block of this Markdown file (e.g. README.md) between
    /// `<!-- cloudformer report NAME begin -->` and `<!-- cloudformer report NAME end -->`
    /// (NAME = the results directory's name) with the results' main table.
    #[arg(long)]
    pub readme: Option<PathBuf>,
}

pub fn run(args: ReportArgs, ctx: &super::Ctx) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.results.clone());
    let files = train::report::write_report(&args.results, &out).with_context(|| {
        format!(
            "writing the report of {} into {}",
            args.results.display(),
            out.display()
        )
    })?;
    if !ctx.quiet {
        for f in files {
            println!("{}", f.display());
        }
    }
    if let Some(readme) = &args.readme {
        let f = train::report::update_readme(readme, &args.results).with_context(|| {
            format!(
                "updating {} from {}",
                readme.display(),
                args.results.display()
            )
        })?;
        if !ctx.quiet {
            println!("{}", f.display());
        }
    }
    Ok(())
}
