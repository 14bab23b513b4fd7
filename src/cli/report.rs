//! `cloudformer report` (not implemented yet).

#[derive(clap::Args)]
pub struct ReportArgs {}

pub fn run(_args: ReportArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer report` is not implemented yet")
}
