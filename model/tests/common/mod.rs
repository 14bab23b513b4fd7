//! Helpers shared by the model's test files: a small config, random data, tensor comparison and a
//! checkpoint with a fitted normaliser.
#![allow(dead_code)]

use model::{Checkpoint, CloudFormer, Config, Device, Normalizer, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A small network (d 16, 2 heads, 2 + 2 blocks) over `f` features: fast tests.
pub fn small(f: usize) -> Config {
    Config {
        n_features: f,
        d_model: 16,
        n_heads: 2,
        d_ff: 32,
        temporal_blocks: 2,
        system_blocks: 2,
        dropout: 0.1,
        head_hidden: 16,
        head_dropout: 0.4,
        ..Config::default()
    }
}

pub fn randn(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A model of `cfg` and its checkpoint: normaliser fitted on 50 random rows, features `m0…`.
pub fn checkpoint_with(cfg: Config, seed: u64) -> (Checkpoint, CloudFormer) {
    let f = cfg.n_features;
    let m = CloudFormer::new(&cfg, seed, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows: Vec<Vec<f32>> = (0..50).map(|_| randn(&mut rng, f)).collect();
    let norm = Normalizer::fit(vec![false; f], rows.iter().map(|r| r.as_slice())).unwrap();
    let names = (0..f).map(|i| format!("m{i}")).collect();
    let mut ck = Checkpoint::new(cfg, norm, "cat123", names);
    ck.seed = seed;
    (ck, m)
}

pub fn checkpoint_for(f: usize, seed: u64) -> (Checkpoint, CloudFormer) {
    checkpoint_with(small(f), seed)
}
