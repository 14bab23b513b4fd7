//! `cloudformer train` (not implemented yet).

#[derive(clap::Args)]
pub struct TrainArgs {}

pub fn run(_args: TrainArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer train` is not implemented yet")
}
