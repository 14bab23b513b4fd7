//! `cloudformer dataset …` (not implemented yet).

#[derive(clap::Subcommand)]
pub enum DatasetCmd {
    /// Not implemented yet.
    Todo,
}

pub fn run(_cmd: DatasetCmd, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer dataset` is not implemented yet")
}
