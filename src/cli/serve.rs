//! `cloudformer serve` (not implemented yet).

#[derive(clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    anyhow::bail!("`cloudformer serve` is not implemented yet")
}
