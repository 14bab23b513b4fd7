//! `cloudformer collect` (not implemented yet).

#[derive(clap::Args)]
pub struct CollectArgs {}

pub fn run(_args: CollectArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer collect` is not implemented yet")
}
