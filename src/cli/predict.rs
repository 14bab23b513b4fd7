//! `cloudformer predict` (not implemented yet).

#[derive(clap::Args)]
pub struct PredictArgs {}

pub fn run(_args: PredictArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer predict` is not implemented yet")
}
