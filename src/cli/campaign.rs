//! `cloudformer campaign …` (not implemented yet).

#[derive(clap::Subcommand)]
pub enum CampaignCmd {
    /// Not implemented yet.
    Todo,
}

pub fn run(_cmd: CampaignCmd, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer campaign` is not implemented yet")
}
