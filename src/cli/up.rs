//! `cloudformer up` (not implemented yet).

#[derive(clap::Args)]
pub struct UpArgs {}

pub fn run(_args: UpArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer up` is not implemented yet")
}
