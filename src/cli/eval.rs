//! `cloudformer eval` (not implemented yet).

#[derive(clap::Args)]
pub struct EvalArgs {}

pub fn run(_args: EvalArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer eval` is not implemented yet")
}
