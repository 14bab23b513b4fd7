//! `cloudformer predict --model DIR --data DIR [--json]`: P̂ per tenant-run of a dataset with a
//! checkpoint (the CLI twin of `POST /v1/predict`). `--json` prints `[{"run_id","tenant","p"}]`.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct PredictArgs {
    /// Model directory written by `cloudformer train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Dataset directory (campaign output: runs.parquet + samples/).
    #[arg(long)]
    pub data: PathBuf,
    /// Use only the first k seconds of each run (0 = whole run).
    #[arg(long, default_value_t = 0)]
    pub k: usize,
    /// Print JSON: [{"run_id","tenant","p"}].
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PredictArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    let runs = train::data::load(&args.data)
        .with_context(|| format!("loading the dataset {}", args.data.display()))?;
    let preds = train::cf::predict_dir(&args.model, &runs, args.k)
        .with_context(|| format!("predicting with the model {}", args.model.display()))?;
    if args.json {
        let v: Vec<serde_json::Value> = preds
            .iter()
            .map(|p| serde_json::json!({"run_id": p.run_id, "tenant": p.tenant, "p": p.p}))
            .collect();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("run_id\ttenant\tapp\tp_hat\tp_true");
        for p in &preds {
            println!(
                "{}\t{}\t{}\t{:.4}\t{:.4}",
                p.run_id, p.tenant, p.app, p.p, p.p_true
            );
        }
    }
    Ok(())
}
