//! Prints the parameter count of the paper's configuration and of its variants:
//! `cargo run -p model --example params [n_features]`.

use model::{CloudFormer, Config, Device, Variant};

fn main() -> Result<(), model::ModelError> {
    let f = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(206);
    let rows: [(&str, Config); 4] = [
        ("full (paper defaults)", Config::with_features(f)),
        (
            "full + metric embedding",
            Config {
                metric_embedding: true,
                ..Config::with_features(f)
            },
        ),
        (
            "temporal-only",
            Config {
                variant: Variant::TemporalOnly,
                ..Config::with_features(f)
            },
        ),
        (
            "system-only",
            Config {
                variant: Variant::SystemOnly,
                ..Config::with_features(f)
            },
        ),
    ];
    println!("CloudFormer parameter counts, F = {f}");
    for (name, cfg) in rows.iter() {
        let m = CloudFormer::new(cfg, 0, &Device::Cpu)?;
        let mut by_part: std::collections::BTreeMap<&str, usize> = Default::default();
        for (n, v) in m.params().named() {
            let part = n.split('.').next().unwrap_or("?");
            *by_part.entry(part).or_default() += v.elem_count();
        }
        println!("  {name:<26} {:>8}  {by_part:?}", m.n_params());
    }
    Ok(())
}
