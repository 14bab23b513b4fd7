//! The fused CPU ops (bias add, masked softmax, LayerNorm, attention, dropout mask) must give the same values and the
//! same gradients as candle's composed, differentiable primitives.

use model::fused;
use model::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::{max_abs, max_abs_diff};

fn rand_var(rng: &mut ChaCha8Rng, shape: &[usize], scale: f32) -> Var {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
}

/// Weighted sum with fixed random weights, so every output element gets its own gradient.
fn loss(y: &Tensor, w: &Tensor) -> Tensor {
    (y * w).unwrap().sum_all().unwrap()
}

fn check_grads(vars: &[&Var], fused: &Tensor, composed: &Tensor, w: &Tensor, what: &str) {
    let d = max_abs_diff(fused, composed);
    assert!(d < 1e-5, "{what}: values differ by {d}");
    let gf = loss(fused, w).backward().unwrap();
    let gc = loss(composed, w).backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let a = gf
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{what}: fused gives no gradient for input {i}"));
        let b = gc.get(v.as_tensor()).expect("composed gradient");
        let scale = max_abs(b);
        assert!(scale > 0.0, "{what}: composed gradient {i} is zero");
        let d = max_abs_diff(a, b);
        assert!(
            d < 1e-4 * scale.max(1.0),
            "{what}: gradient {i} differs by {d} (scale {scale})"
        );
    }
}

#[test]
fn bias_add_matches_broadcast_add() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = rand_var(&mut rng, &[3, 4, 6], 2.0);
    let b = rand_var(&mut rng, &[6], 1.0);
    let w = rand_var(&mut rng, &[3, 4, 6], 1.0);
    let f = fused::bias_add(x.as_tensor(), b.as_tensor()).unwrap();
    let c = x.as_tensor().broadcast_add(b.as_tensor()).unwrap();
    check_grads(&[&x, &b], &f, &c, w.as_tensor(), "bias_add");
}

#[test]
fn softmax_matches_composed_with_and_without_key_bias() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let s = rand_var(&mut rng, &[2, 3, 5, 5], 3.0);
    let w = rand_var(&mut rng, &[2, 3, 5, 5], 1.0);
    // Batch 0: every key real; batch 1: the last two keys padded.
    let bias = Tensor::from_vec(
        vec![0f32, 0., 0., 0., 0., 0., 0., 0., -1e9, -1e9],
        (2, 5),
        &Device::Cpu,
    )
    .unwrap();
    let scale = 0.25;
    for b in [None, Some(&bias)] {
        let f = fused::softmax(s.as_tensor(), scale, b).unwrap();
        let c = fused::softmax_composed(s.as_tensor(), scale, b).unwrap();
        check_grads(&[&s], &f, &c, w.as_tensor(), "softmax");
        let rows: Vec<f32> = f.sum(3).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(rows.iter().all(|r| (r - 1.0).abs() < 1e-5));
    }
    let f = fused::softmax(s.as_tensor(), scale, Some(&bias)).unwrap();
    let padded = f.get(1).unwrap().narrow(2, 3, 2).unwrap();
    assert_eq!(
        padded
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
}

#[test]
fn layer_norm_matches_composed() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = rand_var(&mut rng, &[4, 3, 8], 5.0);
    let g = rand_var(&mut rng, &[8], 2.0);
    let b = rand_var(&mut rng, &[8], 1.0);
    let w = rand_var(&mut rng, &[4, 3, 8], 1.0);
    let f = fused::layer_norm(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5).unwrap();
    let c = fused::layer_norm_composed(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5).unwrap();
    check_grads(&[&x, &g, &b], &f, &c, w.as_tensor(), "layer_norm");
}

#[test]
fn fused_ops_accept_non_contiguous_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = rand_var(&mut rng, &[6, 4], 1.0);
    let b = rand_var(&mut rng, &[6], 1.0);
    let xt = x.as_tensor().t().unwrap(); // [4, 6], strided
    let f = fused::bias_add(&xt, b.as_tensor()).unwrap();
    let c = xt.broadcast_add(b.as_tensor()).unwrap();
    assert!(max_abs_diff(&f, &c) < 1e-6);
}

#[test]
fn attention_matches_composed_with_key_bias_and_dropout() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (b, h, n, dh) = (2usize, 3usize, 5usize, 4usize);
    let q = rand_var(&mut rng, &[b, h, n, dh], 1.5);
    let k = rand_var(&mut rng, &[b, h, n, dh], 1.5);
    let v = rand_var(&mut rng, &[b, h, n, dh], 1.0);
    let w = rand_var(&mut rng, &[b, h, n, dh], 1.0);
    // Batch 0: every key real; batch 1: the last two keys padded.
    let bias = Tensor::from_vec(
        vec![0f32, 0., 0., 0., 0., 0., 0., 0., -1e9, -1e9],
        (b, n),
        &Device::Cpu,
    )
    .unwrap();
    // Dropout mask with p = 0.3: 0 or 1/0.7.
    let mask: Vec<f32> = (0..b * h * n * n)
        .map(|_| {
            if rng.random_range(0.0f32..1.0) < 0.3 {
                0.0
            } else {
                1.0 / 0.7
            }
        })
        .collect();
    let scale = 0.5;
    for (kb, m, what) in [
        (None, None, "plain"),
        (Some(&bias), None, "key bias"),
        (None, Some(mask.clone()), "dropout"),
        (Some(&bias), Some(mask.clone()), "key bias + dropout"),
    ] {
        let (qt, kt, vt) = (q.as_tensor(), k.as_tensor(), v.as_tensor());
        let f = fused::attention(qt, kt, vt, scale, kb, m.clone()).unwrap();
        let c = fused::attention_composed(qt, kt, vt, scale, kb, m).unwrap();
        check_grads(&[&q, &k, &v], &f, &c, w.as_tensor(), what);
    }
}

#[test]
fn mask_mul_passes_the_gradient_to_x_only() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = rand_var(&mut rng, &[3, 7], 2.0);
    let w = rand_var(&mut rng, &[3, 7], 1.0);
    let mask: Vec<f32> = (0..21)
        .map(|i| if i % 3 == 0 { 0.0 } else { 1.25 })
        .collect();
    let f = fused::mask_mul(x.as_tensor(), mask.clone()).unwrap();
    let m = Tensor::from_vec(mask, (3, 7), &Device::Cpu).unwrap();
    let c = (x.as_tensor() * &m).unwrap();
    check_grads(&[&x], &f, &c, w.as_tensor(), "mask_mul");
}
