//! The plain-slice inference path (`FastBranches`, `kernels`) against the candle graph: the same
//! branch outputs for every variant, block count, embedding option, pooled and unpooled lengths,
//! and batches of windows of different lengths; and the kernels against plain formulas.

use model::kernels::{
    exp_affine_sums, exp_inplace, layer_norm_rows_inplace, portable_exp_affine_sums,
    portable_exp_inplace, portable_layer_norm_rows_inplace, portable_softmax_rows_inplace,
    softmax_rows_inplace,
};
use model::{
    batch_tensors, CloudFormer, Config, Device, FastBranches, Normalizer, Predictor, Variant,
    Window,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{checkpoint_with, randn, small};

/// The shared small config with 4 heads of width 4.
fn cfg(f: usize) -> Config {
    Config {
        n_heads: 4,
        ..small(f)
    }
}

/// Branch outputs of both paths for windows of the given lengths; returns the largest
/// absolute difference.
fn compare(cfg: &Config, lens: &[usize], seed: u64) -> f32 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let data: Vec<Vec<f32>> = lens
        .iter()
        .map(|t| randn(&mut rng, t * cfg.n_features))
        .collect();
    compare_data(cfg, &data, lens, seed)
}

/// [`compare`] on given windows.
fn compare_data(cfg: &Config, data: &[Vec<f32>], lens: &[usize], seed: u64) -> f32 {
    let f = cfg.n_features;
    let m = CloudFormer::new(cfg, seed, &Device::Cpu).unwrap();
    let items: Vec<(&[f32], usize)> = data.iter().zip(lens).map(|(d, t)| (&d[..], *t)).collect();
    let (x, mask) = batch_tensors(&items, f, &Device::Cpu).unwrap();
    let want: Vec<f32> = m
        .features(&x, &mask, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let fast = FastBranches::from_model(&m).unwrap().expect("CPU model");
    let mut got = Vec::new();
    fast.features(&items, None, &mut got).unwrap();
    assert_eq!(got.len(), want.len(), "output sizes differ");
    assert!(got.iter().all(|v| v.is_finite()));
    got.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn fast_branches_equal_the_candle_graph() {
    let base = cfg(7);
    let cases: Vec<(&str, Config, Vec<usize>)> = vec![
        ("full, one window", base.clone(), vec![9]),
        ("full, equal lengths", base.clone(), vec![5, 5, 5]),
        (
            "full, mixed lengths (padding)",
            base.clone(),
            vec![3, 11, 1, 6],
        ),
        (
            "temporal only",
            Config {
                variant: Variant::TemporalOnly,
                ..base.clone()
            },
            vec![4, 8],
        ),
        (
            "system only",
            Config {
                variant: Variant::SystemOnly,
                ..base.clone()
            },
            vec![4, 8],
        ),
        (
            "metric embedding, 3 + 1 blocks",
            Config {
                metric_embedding: true,
                temporal_blocks: 3,
                system_blocks: 1,
                ..base.clone()
            },
            vec![6, 2],
        ),
        (
            "closed-form first block as the only system block",
            Config {
                system_blocks: 1,
                ..base.clone()
            },
            vec![5, 9],
        ),
        (
            "closed-form first block, 3 system blocks",
            Config {
                system_blocks: 3,
                ..base.clone()
            },
            vec![7],
        ),
        (
            "pre-LN, mixed lengths",
            Config {
                pre_norm: true,
                ..base.clone()
            },
            vec![3, 11, 1, 6],
        ),
        (
            "pre-LN, one system block (no closed form), 3 temporal",
            Config {
                pre_norm: true,
                system_blocks: 1,
                temporal_blocks: 3,
                ..base.clone()
            },
            vec![5, 9],
        ),
        (
            "pre-LN, metric embedding, system only",
            Config {
                pre_norm: true,
                metric_embedding: true,
                variant: Variant::SystemOnly,
                ..base.clone()
            },
            vec![4, 8],
        ),
        (
            "pooled to max_len (equal lengths)",
            Config {
                max_len: 4,
                ..base.clone()
            },
            vec![13, 13],
        ),
    ];
    for (i, (name, c, lens)) in cases.iter().enumerate() {
        let diff = compare(c, lens, 100 + i as u64);
        assert!(diff < 1e-4, "{name}: fast and candle differ by {diff}");
    }
}

#[test]
fn metrics_with_equal_means_merge_into_one_token_exactly() {
    // Columns 2–4 constant 0 (imputed nulls), 5–6 copies of column 1 (equal means), as host
    // data has them: the fast path runs the system blocks over distinct means only, each
    // weighted by its count, and must still equal the candle graph over all tokens.
    let f = 9;
    let mut rng = ChaCha8Rng::seed_from_u64(40);
    let lens = [6usize, 3];
    let data: Vec<Vec<f32>> = lens
        .iter()
        .map(|t| {
            let mut d = randn(&mut rng, t * f);
            for row in d.chunks_exact_mut(f) {
                row[2] = 0.0;
                row[3] = 0.0;
                row[4] = 0.0;
                row[5] = row[1];
                row[6] = row[1];
            }
            d
        })
        .collect();
    for (i, blocks) in [1usize, 2, 3].into_iter().enumerate() {
        for variant in [Variant::Full, Variant::SystemOnly] {
            let c = Config {
                system_blocks: blocks,
                variant,
                ..cfg(f)
            };
            let diff = compare_data(&c, &data, &lens, 300 + i as u64);
            assert!(
                diff < 1e-4,
                "{blocks} system blocks, {variant:?}: fast and candle differ by {diff}"
            );
        }
    }
}

#[test]
fn fast_window_does_not_depend_on_its_batch() {
    let c = Config {
        max_len: 4,
        ..cfg(5)
    };
    let m = CloudFormer::new(&c, 7, &Device::Cpu).unwrap();
    let fast = FastBranches::from_model(&m).unwrap().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let a = randn(&mut rng, 10 * 5);
    let b = randn(&mut rng, 30 * 5);
    let (mut alone, mut batched) = (Vec::new(), Vec::new());
    fast.features(&[(&a, 10)], None, &mut alone).unwrap();
    fast.features(&[(&a, 10), (&b, 30)], None, &mut batched)
        .unwrap();
    assert_eq!(alone[..], batched[..alone.len()]);
}

#[test]
fn fast_branches_reject_bad_shapes() {
    let m = CloudFormer::new(&cfg(3), 1, &Device::Cpu).unwrap();
    let fast = FastBranches::from_model(&m).unwrap().unwrap();
    let mut out = Vec::new();
    let e = fast
        .features(&[(&[0.0; 5], 2)], None, &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("window 0") && e.contains("2×3"), "{e}");
    assert!(fast.features(&[(&[], 0)], None, &mut out).is_err());
}

#[test]
fn predictor_gives_the_same_answer_on_both_paths() {
    let f = 6;
    let (mut ck, m) = checkpoint_with(cfg(f), 3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let dir = tempfile::tempdir().unwrap();
    ck.save(dir.path(), &m).unwrap();
    let mut w1 = randn(&mut rng, 7 * f);
    w1[3] = f32::NAN; // a null value
    let w2 = randn(&mut rng, 7 * f);
    let windows = [Window { data: &w1, t: 7 }, Window { data: &w2, t: 7 }];
    let mut fast = Predictor::load(dir.path()).unwrap();
    let mut slow = Predictor::load(dir.path()).unwrap();
    slow.use_candle_graph();
    let a = fast.predict(&windows).unwrap();
    let b = slow.predict(&windows).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x.p - y.p).abs() < 1e-5 && (x.std - y.std).abs() < 1e-5,
            "{x:?} vs {y:?}"
        );
        assert_eq!(x.out_of_distribution, y.out_of_distribution);
    }
}

#[test]
fn vector_exp_matches_libm() {
    let mut xs: Vec<f32> = (0..20_000).map(|i| -100.0 + i as f32 * 0.0094).collect();
    xs.extend([0.0, -0.0, 1.0, -1e9, -87.0, 88.0, f32::MIN]);
    let mut vector = xs.clone();
    exp_inplace(&mut vector);
    let mut portable = xs.clone();
    portable_exp_inplace(&mut portable);
    for (x, g) in xs.iter().zip(&vector).chain(xs.iter().zip(&portable)) {
        let want = (*x as f64).exp();
        if *x < -88.0 {
            assert_eq!(*g, 0.0, "exp({x})");
        } else if *x < -87.0 {
            // The bottom of the normal range: absolute error only.
            assert!(
                (*g as f64 - want).abs() < 2e-38,
                "exp({x}) = {g}, want {want}"
            );
        } else {
            let rel = ((*g as f64 - want) / want).abs();
            assert!(rel < 5e-7, "exp({x}) = {g}, want {want} (rel {rel:e})");
        }
    }
}

#[test]
fn softmax_rows_sum_to_one_and_match_the_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for m in [1usize, 3, 8, 17, 208] {
        let xs: Vec<f32> = (0..3 * m)
            .map(|_| rng.random_range(-30.0f32..30.0))
            .collect();
        let mut vector = xs.clone();
        softmax_rows_inplace(&mut vector, m, 0.5);
        let mut portable = xs.clone();
        portable_softmax_rows_inplace(&mut portable, m, 0.5);
        let rows = vector.chunks(m).chain(portable.chunks(m));
        for (src, row) in xs.chunks(m).cycle().zip(rows) {
            let mx = src.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64 * 0.5;
            let z: f64 = src.iter().map(|v| (*v as f64 * 0.5 - mx).exp()).sum();
            for (v, g) in src.iter().zip(row) {
                let want = (*v as f64 * 0.5 - mx).exp() / z;
                assert!((*g as f64 - want).abs() < 1e-6, "m={m}: {g} vs {want}");
            }
        }
    }
}

#[test]
fn exp_affine_sums_match_the_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for n in [0usize, 1, 7, 8, 9, 206] {
        let m: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect();
        let (a, c) = (0.7f32, -2.5f32);
        let mx = m
            .iter()
            .map(|x| a * x + c)
            .fold(f32::NEG_INFINITY, f32::max);
        let c = if n > 0 { c - mx } else { c };
        // Each value counted 1–3 times.
        let k: Vec<f32> = (0..n).map(|_| rng.random_range(1..4) as f32).collect();
        let z: f64 = m
            .iter()
            .zip(&k)
            .map(|(x, k)| ((a * x + c) as f64).exp() * *k as f64)
            .sum();
        let s1: f64 = m
            .iter()
            .zip(&k)
            .map(|(x, k)| ((a * x + c) as f64).exp() * *x as f64 * *k as f64)
            .sum();
        // Every count 1 (no counts given).
        let z1: f64 = m.iter().map(|x| ((a * x + c) as f64).exp()).sum();
        let s11: f64 = m
            .iter()
            .map(|x| ((a * x + c) as f64).exp() * *x as f64)
            .sum();
        for (name, (gz, gs), (uz, us)) in [
            (
                "vector",
                exp_affine_sums(&m, Some(&k), a, c),
                exp_affine_sums(&m, None, a, c),
            ),
            (
                "portable",
                portable_exp_affine_sums(&m, Some(&k), a, c),
                portable_exp_affine_sums(&m, None, a, c),
            ),
        ] {
            assert!(
                (gz as f64 - z).abs() < 1e-5 * (1.0 + z),
                "{name} n={n}: Σ {gz} vs {z}"
            );
            assert!(
                (gs as f64 - s1).abs() < 1e-4 * (1.0 + z),
                "{name} n={n}: Σm {gs} vs {s1}"
            );
            assert!(
                (uz as f64 - z1).abs() < 1e-5 * (1.0 + z1),
                "{name} n={n}, no counts: Σ {uz} vs {z1}"
            );
            assert!(
                (us as f64 - s11).abs() < 1e-4 * (1.0 + z1),
                "{name} n={n}, no counts: Σm {us} vs {s11}"
            );
        }
    }
}

#[test]
fn layer_norm_rows_match_the_formula() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for d in [8usize, 16, 64, 12] {
        let xs: Vec<f32> = (0..3 * d).map(|_| rng.random_range(-5.0f32..5.0)).collect();
        let g: Vec<f32> = (0..d).map(|_| rng.random_range(0.5f32..1.5)).collect();
        let b: Vec<f32> = (0..d).map(|_| rng.random_range(-0.5f32..0.5)).collect();
        let mut vector = xs.clone();
        layer_norm_rows_inplace(&mut vector, &g, &b, 1e-5);
        let mut portable = xs.clone();
        portable_layer_norm_rows_inplace(&mut portable, &g, &b, 1e-5);
        for (r, src) in xs.chunks(d).enumerate() {
            let mean = src.iter().map(|v| *v as f64).sum::<f64>() / d as f64;
            let var = src.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            for k in 0..d {
                let want = (src[k] as f64 - mean) / (var + 1e-5).sqrt() * g[k] as f64 + b[k] as f64;
                for (name, got) in [("vector", &vector), ("portable", &portable)] {
                    let v = got[r * d + k] as f64;
                    assert!((v - want).abs() < 1e-5, "{name} d={d}: {v} vs {want}");
                }
            }
        }
    }
}

#[test]
fn raw_range_check_equals_the_normalised_space_rule() {
    // The rule of Normalizer::out_of_range_fraction, written in normalised (log1p) space:
    // a value is out when u = signed_log1p(v) (or v) lies beyond [min − m, max + m],
    // m = max(0.25·(max − min), 1e-3·(|min| + |max|), 1e-6).
    let f = 6;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let rows: Vec<Vec<f32>> = (0..40)
        .map(|_| {
            (0..f)
                .map(|j| rng.random_range(-3.0f32..3.0) * 10f32.powi(j as i32))
                .collect()
        })
        .collect();
    let log1p = vec![false, true, false, true, true, false];
    let nz = Normalizer::fit(log1p.clone(), rows.iter().map(|r| r.as_slice())).unwrap();
    let json = serde_json::to_value(&nz).unwrap();
    let lo: Vec<f32> = serde_json::from_value(json["min"].clone()).unwrap();
    let hi: Vec<f32> = serde_json::from_value(json["max"].clone()).unwrap();
    let out = |j: usize, v: f32| {
        let u = if log1p[j] {
            v.signum() * v.abs().ln_1p()
        } else {
            v
        };
        let m = (0.25 * (hi[j] - lo[j]))
            .max(1e-3 * (lo[j].abs() + hi[j].abs()))
            .max(1e-6);
        u < lo[j] - m || u > hi[j] + m
    };
    let ranges = model::RawRanges::of(&nz);
    for _ in 0..200 {
        // Values spread far beyond the training range, with some nulls.
        let w: Vec<f32> = (0..3 * f)
            .map(|i| {
                if rng.random_range(0..10) == 0 {
                    f32::NAN
                } else {
                    rng.random_range(-12.0f32..12.0) * 10f32.powi((i % f) as i32)
                }
            })
            .collect();
        let seen = w.iter().filter(|v| v.is_finite()).count();
        let n_out = w
            .iter()
            .enumerate()
            .filter(|(i, v)| v.is_finite() && out(i % f, **v))
            .count();
        let want = if seen == 0 {
            0.0
        } else {
            n_out as f32 / seen as f32
        };
        assert_eq!(ranges.out_of_range_fraction(&w), want, "{w:?}");
        assert_eq!(nz.out_of_range_fraction(&w), want);
    }
}
