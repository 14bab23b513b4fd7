//! Unit-level tests of the network, checkpoints and predictor. Small configs keep them fast.

use model::{
    batch_tensors, log_cosh, Adam, Checkpoint, CloudFormer, Config, Device, ModelError, Normalizer,
    Predictor, Tensor, Variant, Window,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod common;
use common::{checkpoint_for, max_abs_diff, randn, small};

#[test]
fn output_is_in_unit_interval() {
    let dev = Device::Cpu;
    let m = CloudFormer::new(&small(5), 1, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = Tensor::from_vec(
        randn(&mut rng, 3 * 9 * 5)
            .iter()
            .map(|v| v * 50.0)
            .collect::<Vec<_>>(),
        (3, 9, 5),
        &dev,
    )
    .unwrap();
    let mask = Tensor::ones((3, 9), model::DType::F32, &dev).unwrap();
    for train in [false, true] {
        let p: Vec<f32> = m.forward(&x, &mask, train).unwrap().to_vec1().unwrap();
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|v| *v > 0.0 && *v < 1.0), "{p:?}");
    }
}

#[test]
fn masked_padding_leaves_output_unchanged() {
    let dev = Device::Cpu;
    for variant in [Variant::Full, Variant::TemporalOnly, Variant::SystemOnly] {
        let cfg = Config {
            variant,
            ..small(4)
        };
        let m = CloudFormer::new(&cfg, 3, &dev).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let real = randn(&mut rng, 7 * 4);
        let x1 = Tensor::from_vec(real.clone(), (1, 7, 4), &dev).unwrap();
        let m1 = Tensor::ones((1, 7), model::DType::F32, &dev).unwrap();
        // Append 5 padded seconds full of garbage: they must not matter.
        let mut padded = real.clone();
        padded.extend(randn(&mut rng, 5 * 4).iter().map(|v| v * 1000.0));
        let x2 = Tensor::from_vec(padded, (1, 12, 4), &dev).unwrap();
        let mut mv = vec![1f32; 7];
        mv.extend([0f32; 5]);
        let m2 = Tensor::from_vec(mv, (1, 12), &dev).unwrap();
        let a = m.forward(&x1, &m1, false).unwrap();
        let b = m.forward(&x2, &m2, false).unwrap();
        let d = max_abs_diff(&a, &b);
        assert!(d < 1e-5, "{variant:?}: padding changed the output by {d}");
    }
}

#[test]
fn a_time_permutation_changes_the_temporal_branch_but_not_the_system_mean() {
    let dev = Device::Cpu;
    let m = CloudFormer::new(&small(4), 5, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let t = 6;
    let v = randn(&mut rng, t * 4);
    let mut rev = Vec::with_capacity(v.len());
    for s in (0..t).rev() {
        rev.extend_from_slice(&v[s * 4..(s + 1) * 4]);
    }
    let mask = Tensor::ones((1, t), model::DType::F32, &dev).unwrap();
    let a = m
        .branches(&Tensor::from_vec(v, (1, t, 4), &dev).unwrap(), &mask, false)
        .unwrap();
    let b = m
        .branches(
            &Tensor::from_vec(rev, (1, t, 4), &dev).unwrap(),
            &mask,
            false,
        )
        .unwrap();
    assert!(max_abs_diff(&a.system_mean, &b.system_mean) < 1e-5);
    let dt = max_abs_diff(a.temporal.as_ref().unwrap(), b.temporal.as_ref().unwrap());
    assert!(
        dt > 1e-4,
        "temporal branch ignored the order of seconds (diff {dt})"
    );
    assert!(max_abs_diff(a.system.as_ref().unwrap(), b.system.as_ref().unwrap()) < 1e-5);
}

#[test]
fn every_parameter_gets_a_nonzero_gradient() {
    let dev = Device::Cpu;
    for metric_embedding in [false, true] {
        let cfg = Config {
            dropout: 0.0,
            head_dropout: 0.0,
            metric_embedding,
            ..small(5)
        };
        let m = CloudFormer::new(&cfg, 7, &dev).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x = Tensor::from_vec(randn(&mut rng, 4 * 6 * 5), (4, 6, 5), &dev).unwrap();
        let mut mv = vec![1f32; 24];
        mv[23] = 0.0;
        mv[22] = 0.0;
        let mask = Tensor::from_vec(mv, (4, 6), &dev).unwrap();
        let y = Tensor::from_vec(vec![0.2f32, 0.5, 0.9, 0.4], 4, &dev).unwrap();
        let loss = log_cosh(&m.forward(&x, &mask, true).unwrap(), &y).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in m.params().named() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} has no gradient"));
            let s = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(s > 0.0, "{name}: gradient is all zero");
            if name.ends_with("attn.qkv.weight") {
                // Q, K and V row blocks must each learn (softmax_last_dim would zero Q and K).
                let d = cfg.d_model;
                for (blk, label) in ["Q", "K", "V"].iter().enumerate() {
                    let part = g
                        .narrow(0, blk * d, d)
                        .unwrap()
                        .abs()
                        .unwrap()
                        .sum_all()
                        .unwrap();
                    assert!(
                        part.to_scalar::<f32>().unwrap() > 0.0,
                        "{name}: {label} rows get no gradient"
                    );
                }
            }
        }
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let dev = Device::Cpu;
    let a = CloudFormer::new(&small(3), 11, &dev).unwrap();
    let b = CloudFormer::new(&small(3), 11, &dev).unwrap();
    let c = CloudFormer::new(&small(3), 12, &dev).unwrap();
    let mut differs = false;
    for (((na, va), (_, vb)), (_, vc)) in a
        .params()
        .named()
        .iter()
        .zip(b.params().named())
        .zip(c.params().named())
    {
        assert_eq!(
            max_abs_diff(va.as_tensor(), vb.as_tensor()),
            0.0,
            "{na} differs for the same seed"
        );
        differs |= max_abs_diff(va.as_tensor(), vc.as_tensor()) > 0.0;
    }
    assert!(differs, "a different seed gave identical weights");
}

#[test]
fn parameter_count_matches_the_architecture() {
    let cfg = Config::default();
    let m = CloudFormer::new(&cfg, 0, &Device::Cpu).unwrap();
    let d = cfg.d_model;
    let block =
        (d * 3 * d + 3 * d) + (d * d + d) + (d * cfg.d_ff + cfg.d_ff) + (cfg.d_ff * d + d) + 4 * d;
    let temporal = cfg.n_features * d + d + d + cfg.temporal_blocks * block;
    let system = 2 * d + d + cfg.system_blocks * block;
    let head =
        (2 * d * cfg.head_hidden + cfg.head_hidden) + 2 * cfg.head_hidden + cfg.head_hidden + 1;
    println!(
        "CloudFormer (paper config, F = {}): {} parameters",
        cfg.n_features,
        m.n_params()
    );
    assert_eq!(m.n_params(), temporal + system + head);
}

#[test]
fn long_windows_are_pooled_to_max_len() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = Tensor::from_vec(randn(&mut rng, 2 * 50 * 3), (2, 50, 3), &dev).unwrap();
    let mut mv = vec![1f32; 100];
    for v in mv.iter_mut().skip(80) {
        *v = 0.0; // second window: 30 real seconds
    }
    let mask = Tensor::from_vec(mv, (2, 50), &dev).unwrap();
    let (px, pm) = model::pool_time(&x, &mask, 16).unwrap();
    assert!(px.dim(1).unwrap() <= 16);
    let pm: Vec<Vec<f32>> = pm.to_vec2().unwrap();
    // 50 steps, stride 4 → 13 steps; the second window has 30 real seconds → 8 pooled steps.
    assert_eq!(pm[0].iter().sum::<f32>(), 13.0);
    assert_eq!(pm[1].iter().sum::<f32>(), 8.0);
    let cfg = Config {
        max_len: 16,
        ..small(3)
    };
    let m = CloudFormer::new(&cfg, 1, &dev).unwrap();
    let p: Vec<f32> = m.forward(&x, &mask, false).unwrap().to_vec1().unwrap();
    assert!(p.iter().all(|v| v.is_finite() && *v > 0.0 && *v < 1.0));
}

#[test]
fn learns_a_tiny_synthetic_regression() {
    let dev = Device::Cpu;
    let cfg = Config {
        dropout: 0.0,
        head_dropout: 0.0,
        temporal_blocks: 1,
        system_blocks: 1,
        ..small(4)
    };
    let m = CloudFormer::new(&cfg, 21, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    // Target: a smooth function of the window mean of feature 0.
    let make = |rng: &mut ChaCha8Rng| {
        let (b, t, f) = (32, 8, 4);
        let x = randn(rng, b * t * f);
        let y: Vec<f32> = (0..b)
            .map(|i| {
                let mean: f32 = (0..t).map(|s| x[(i * t + s) * f]).sum::<f32>() / t as f32;
                0.15 + 0.7 / (1.0 + (-3.0 * mean).exp())
            })
            .collect();
        (
            Tensor::from_vec(x, (b, t, f), &dev).unwrap(),
            Tensor::from_vec(y, b, &dev).unwrap(),
        )
    };
    let mask = Tensor::ones((32, 8), model::DType::F32, &dev).unwrap();
    let (xv, yv) = make(&mut rng);
    let eval = |m: &CloudFormer| {
        log_cosh(&m.forward(&xv, &mask, false).unwrap(), &yv)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let before = eval(&m);
    let mut opt = Adam::new(m.vars(), 3e-3, 0.0).unwrap();
    for _ in 0..300 {
        let (x, y) = make(&mut rng);
        let loss = log_cosh(&m.forward(&x, &mask, true).unwrap(), &y).unwrap();
        opt.backward_step(&loss, Some(1.0)).unwrap();
    }
    let after = eval(&m);
    println!("synthetic task: loss {before:.5} → {after:.5}");
    assert!(
        after * 10.0 < before,
        "loss fell only from {before} to {after}"
    );
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ck, m) = checkpoint_for(4, 31);
    ck.save(dir.path(), &m).unwrap();
    assert!(ck.model_id.starts_with("cf-"));
    let (ck2, m2) = Checkpoint::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(ck2.model_id, ck.model_id);
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let data = randn(&mut rng, 2 * 5 * 4);
    let items = [(&data[..20], 5), (&data[20..32], 3)];
    let (x, mask) = batch_tensors(&items, 4, &Device::Cpu).unwrap();
    let a = m.forward(&x, &mask, false).unwrap();
    let b = m2.forward(&x, &mask, false).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    // A model built with another seed but loaded from the file is the same model.
    assert!(ck2.check_catalogue("cat123").is_ok());
    match ck2.check_catalogue("other") {
        Err(e @ ModelError::CatalogueMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("cat123") && msg.contains("other"), "{msg}");
        }
        other => panic!("expected a catalogue mismatch, got {other:?}"),
    }
}

#[test]
fn corrupt_or_truncated_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ck, m) = checkpoint_for(4, 41);
    ck.save(dir.path(), &m).unwrap();
    let w = dir.path().join(model::WEIGHTS_FILE);
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let e = Predictor::load(dir.path())
        .err()
        .expect("truncated weights must fail");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    std::fs::write(&w, b"garbage").unwrap();
    assert!(Predictor::load(dir.path()).is_err());
    // Weights of another architecture: a named tensor shape error.
    let (mut ck_big, m_big) = checkpoint_for(6, 41);
    let other = tempfile::tempdir().unwrap();
    ck_big.save(other.path(), &m_big).unwrap();
    std::fs::copy(other.path().join(model::WEIGHTS_FILE), &w).unwrap();
    let e = Predictor::load(dir.path())
        .err()
        .expect("wrong shapes must fail");
    assert!(e.to_string().contains("temporal.input.weight"), "{e}");
    let c = dir.path().join(model::CONFIG_FILE);
    std::fs::write(&c, "{\"format_version\": 1, \"config\": ").unwrap();
    let e = Predictor::load(dir.path())
        .err()
        .expect("truncated config must fail");
    assert!(e.to_string().contains("config.json"), "{e}");
    std::fs::remove_file(&c).unwrap();
    assert!(Predictor::load(dir.path()).is_err());
}

#[test]
fn predictor_handles_nulls_and_flags_out_of_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ck, m) = checkpoint_for(4, 51);
    ck.save(dir.path(), &m).unwrap();
    let mut p = Predictor::load(dir.path()).unwrap();
    let normal = vec![0.5f32, f32::NAN, -0.3, 1.0, 0.1, f32::NAN, 0.2, -1.0];
    let wild = vec![1e6f32; 8];
    let out = p
        .predict(&[
            Window {
                data: &normal,
                t: 2,
            },
            Window { data: &wild, t: 2 },
        ])
        .unwrap();
    assert!(out.iter().all(|o| o.p > 0.0 && o.p < 1.0 && o.std >= 0.0));
    assert!(!out[0].out_of_distribution);
    assert!(out[1].out_of_distribution);
    assert!(out[0].std > 0.0, "MC dropout gave no spread");
    // Deterministic: the same input gets the same answer.
    let again = p
        .predict(&[Window {
            data: &normal,
            t: 2,
        }])
        .unwrap();
    assert!(
        (again[0].p - out[0].p).abs() < 1e-6 && (again[0].std - out[0].std).abs() < 1e-6,
        "{:?} vs {:?}",
        again[0],
        out[0]
    );
    assert_eq!(again[0].out_of_distribution, out[0].out_of_distribution);
    // Bad windows are errors, not panics.
    assert!(p
        .predict(&[Window {
            data: &normal,
            t: 3
        }])
        .is_err());
    assert!(p.predict(&[Window { data: &[], t: 0 }]).is_err());
    assert!(p
        .predict(&[Window {
            data: &[f32::INFINITY; 4],
            t: 1
        }])
        .is_err());
}

#[test]
fn train_and_eval_paths_agree_without_dropout() {
    // Inference uses the same fused ops as training: with dropout off both modes must agree.
    let dev = Device::Cpu;
    let cfg = Config {
        dropout: 0.0,
        head_dropout: 0.0,
        ..small(5)
    };
    let m = CloudFormer::new(&cfg, 61, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(62);
    let x = Tensor::from_vec(randn(&mut rng, 3 * 7 * 5), (3, 7, 5), &dev).unwrap();
    let mut mv = vec![1f32; 21];
    mv[20] = 0.0;
    let mask = Tensor::from_vec(mv, (3, 7), &dev).unwrap();
    let a = m.forward(&x, &mask, true).unwrap();
    let b = m.forward(&x, &mask, false).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    // And dropout really is active in training mode.
    let d = CloudFormer::new(&small(5), 61, &dev).unwrap();
    let a = d.forward(&x, &mask, true).unwrap();
    let b = d.forward(&x, &mask, false).unwrap();
    assert!(max_abs_diff(&a, &b) > 0.0);
}

#[test]
fn lr_schedule_warms_up_then_decays() {
    let s = model::LrSchedule {
        peak: 1e-3,
        warmup_steps: 10,
        total_steps: 110,
        min_lr: 1e-5,
    };
    assert!((s.lr(0) - 1e-4).abs() < 1e-12);
    assert!((s.lr(9) - 1e-3).abs() < 1e-12);
    assert!((s.lr(60) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-9);
    assert!((s.lr(110) - 1e-5).abs() < 1e-12);
    assert!((s.lr(500) - 1e-5).abs() < 1e-12);
    let mut prev = f64::MAX;
    for step in 10..=110 {
        assert!(s.lr(step) <= prev);
        prev = s.lr(step);
    }
}

#[test]
fn predictor_refuses_data_of_another_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ck, m) = checkpoint_for(3, 71);
    ck.save(dir.path(), &m).unwrap();
    assert!(Predictor::load_checked(dir.path(), "cat123").is_ok());
    let e = Predictor::load_checked(dir.path(), "abc999")
        .err()
        .expect("mismatch must fail");
    let msg = e.to_string();
    assert!(msg.contains("cat123") && msg.contains("abc999"), "{msg}");
}

#[test]
fn all_null_columns_survive_a_checkpoint_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(3);
    let m = CloudFormer::new(&cfg, 61, &Device::Cpu).unwrap();
    // Column 1 is null in every row (a hardware counter on a VM without a PMU).
    let rows = [vec![1.0f32, f32::NAN, 2.0], vec![3.0, f32::NAN, 4.0]];
    let norm = Normalizer::fit(vec![false; 3], rows.iter().map(|r| r.as_slice())).unwrap();
    assert!(norm.min[1].is_nan());
    let mut ck = Checkpoint::new(
        cfg,
        norm.clone(),
        "h",
        vec!["a".into(), "b".into(), "c".into()],
    );
    ck.save(dir.path(), &m).unwrap();
    let back = Checkpoint::read(dir.path()).unwrap();
    assert!(back.normalizer.min[1].is_nan() && back.normalizer.max[1].is_nan());
    assert_eq!(back.normalizer.min[0], norm.min[0]);
}

/// Weights of `m` after `steps` Adam steps on fixed batches, starting at step `from` of the
/// stream; dropout off so the comparison is exact.
fn adam_steps(m: &CloudFormer, opt: &mut Adam, from: u64, steps: u64) {
    let dev = Device::Cpu;
    let mask = Tensor::ones((8, 6), model::DType::F32, &dev).unwrap();
    for s in from..from + steps {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + s);
        let x = Tensor::from_vec(randn(&mut rng, 8 * 6 * 4), (8, 6, 4), &dev).unwrap();
        let y = Tensor::from_vec((0..8).map(|i| 0.2 + 0.08 * i as f32).collect(), 8, &dev).unwrap();
        let loss = log_cosh(&m.forward(&x, &mask, false).unwrap(), &y).unwrap();
        opt.backward_step(&loss, Some(1.0)).unwrap();
    }
}

fn flat_weights(m: &CloudFormer) -> Vec<f32> {
    m.vars()
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn adam_state_round_trip_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        dropout: 0.0,
        head_dropout: 0.0,
        ..small(4)
    };
    let dev = Device::Cpu;
    // Reference: 6 uninterrupted steps.
    let full = CloudFormer::new(&cfg, 51, &dev).unwrap();
    let mut o_full = Adam::new(full.vars(), 1e-2, 0.0).unwrap();
    adam_steps(&full, &mut o_full, 0, 6);
    // Interrupted after 3 steps: weights and optimiser state saved, then a fresh process resumes.
    let first = CloudFormer::new(&cfg, 51, &dev).unwrap();
    let mut o_first = Adam::new(first.vars(), 1e-2, 0.0).unwrap();
    adam_steps(&first, &mut o_first, 0, 3);
    let (wpath, opath) = (
        dir.path().join("w.safetensors"),
        dir.path().join("opt.safetensors"),
    );
    first.params().save(&wpath).unwrap();
    o_first.save_state(&opath).unwrap();
    let resume = |with_state: bool| {
        let mut m = CloudFormer::new(&cfg, 99, &dev).unwrap();
        m.params_mut().load(&wpath).unwrap();
        let mut o = Adam::new(m.vars(), 1e-2, 0.0).unwrap();
        if with_state {
            o.load_state(&opath).unwrap();
            assert_eq!(o.steps(), 3);
        }
        adam_steps(&m, &mut o, 3, 3);
        flat_weights(&m)
    };
    let want = flat_weights(&full);
    let diff = |w: &[f32]| {
        w.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    };
    let resumed = diff(&resume(true));
    let restarted = diff(&resume(false));
    println!("max |Δw| vs uninterrupted: resumed {resumed:e}, moments reset {restarted:e}");
    assert!(resumed < 1e-6, "resumed training diverged by {resumed}");
    assert!(
        restarted > 1e-4,
        "resetting the moments should change the weights ({restarted})"
    );

    // A state file of another model is a clear error.
    let other = CloudFormer::new(&small(5), 1, &dev).unwrap();
    let mut o = Adam::new(other.vars(), 1e-2, 0.0).unwrap();
    let err = o.load_state(&opath).unwrap_err().to_string();
    assert!(err.contains("shape") || err.contains("tensors"), "{err}");
    std::fs::write(&opath, b"not safetensors").unwrap();
    assert!(o.load_state(&opath).is_err());
}

#[test]
fn a_checkpoint_of_the_plain_encoding_reads_as_before_and_an_unknown_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ck, m) = common::checkpoint_for(4, 7);
    ck.save(dir.path(), &m).unwrap();
    let path = dir.path().join(model::CONFIG_FILE);
    // As written before the masked encoding: no `encoding`, no `keep`.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let nz = v["normalizer"].as_object_mut().unwrap();
    nz.remove("encoding");
    nz.remove("keep");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let back = Checkpoint::read(dir.path()).unwrap();
    assert_eq!(back.normalizer.encoding, model::masked::ENCODING_PLAIN);
    assert_eq!(back.normalizer, ck.normalizer);
    let window: Vec<f32> = (0..12).map(|i| i as f32 * 0.3).collect();
    let mut before = Predictor::from_parts(ck.clone(), m);
    let mut after = Predictor::load(dir.path()).unwrap();
    let w = [Window {
        data: &window,
        t: 3,
    }];
    assert_eq!(
        before.predict(&w).unwrap()[0].p,
        after.predict(&w).unwrap()[0].p
    );

    v["normalizer"]["encoding"] = 3.into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = Checkpoint::read(dir.path()).unwrap_err().to_string();
    assert!(e.contains("normaliser encoding 3 is not known"), "{e}");
}

#[test]
fn a_masked_checkpoint_feeds_kept_values_and_flags_and_lists_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // Feature 1 is constant and feature 2 null in training: 1 kept → 2 network inputs.
    let rows: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32, 5.0, f32::NAN]).collect();
    let norm = Normalizer::fit_masked(vec![true, false, false], rows.iter().map(|r| r.as_slice()))
        .unwrap();
    assert_eq!(norm.n_inputs(), 2);
    let cfg = common::small(2);
    let m = CloudFormer::new(&cfg, 3, &Device::Cpu).unwrap();
    let names = vec!["a".to_string(), "b".into(), "c".into()];
    let mut ck = Checkpoint::new(cfg, norm, "h", names);
    assert_eq!(ck.dropped_features, ["b", "c"]);
    ck.save(dir.path(), &m).unwrap();
    let mut p = Predictor::load(dir.path()).unwrap();
    assert_eq!(p.n_features(), 3, "windows are raw: the catalogue's width");
    let full = [1.0f32, 5.0, f32::NAN, 2.0, 5.0, f32::NAN];
    let sparse = [1.0f32, 5.0, f32::NAN, f32::NAN, 5.0, f32::NAN];
    let w = Window { data: &full, t: 2 };
    assert_eq!(p.coverage(&w), 1.0);
    assert_eq!(
        p.coverage(&Window {
            data: &sparse,
            t: 2
        }),
        0.5
    );
    let fast = p.predict(&[w]).unwrap()[0].p;
    p.use_candle_graph();
    let graph = p.predict(&[Window { data: &full, t: 2 }]).unwrap()[0].p;
    assert!((fast - graph).abs() < 1e-5, "{fast} vs {graph}");
}

#[test]
fn the_out_of_distribution_rule_on_both_sides() {
    use model::out_of_distribution;
    assert!(!out_of_distribution(1.0, 0.2, 0.0));
    assert!(!out_of_distribution(0.2, 0.2, 0.05));
    assert!(out_of_distribution(0.19, 0.2, 0.0), "too little observed");
    assert!(
        out_of_distribution(1.0, 0.2, 0.06),
        "too much outside the training range"
    );

    // Through a masked checkpoint with a floor of 0.5: 1 of 2 kept features observed is
    // coverage 0.5 (not flagged);
    // none observed is flagged; a value far outside the training range is flagged.
    let rows: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32, (i * i) as f32]).collect();
    let mut norm =
        Normalizer::fit_masked(vec![false; 2], rows.iter().map(|r| r.as_slice())).unwrap();
    norm.coverage_floor = 0.5;
    let cfg = common::small(norm.n_inputs());
    let m = CloudFormer::new(&cfg, 3, &Device::Cpu).unwrap();
    let ck = Checkpoint::new(cfg, norm, "h", vec!["a".into(), "b".into()]);
    let mut p = Predictor::from_parts(ck, m);
    let ask = |p: &mut Predictor, data: &[f32]| {
        let w = Window {
            data,
            t: data.len() / 2,
        };
        p.predict(&[w]).unwrap()[0]
    };
    let full = ask(&mut p, &[3.0, 9.0, 4.0, 16.0]);
    assert_eq!((full.coverage, full.out_of_distribution), (1.0, false));
    let half = ask(&mut p, &[3.0, f32::NAN, 4.0, f32::NAN]);
    assert_eq!((half.coverage, half.out_of_distribution), (0.5, false));
    let none = ask(&mut p, &[f32::NAN; 4]);
    assert_eq!((none.coverage, none.out_of_distribution), (0.0, true));
    let far = ask(&mut p, &[300.0, 9.0, 400.0, 16.0]);
    assert!(far.coverage == 1.0 && far.out_of_distribution);
}

#[test]
fn a_pre_norm_model_round_trips_and_a_config_without_the_field_reads_as_post_norm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        pre_norm: true,
        ..small(4)
    };
    let (mut ck, m) = common::checkpoint_with(cfg, 9);
    let names: Vec<String> = m.params().named().iter().map(|(n, _)| n.clone()).collect();
    assert!(
        names.iter().any(|n| n == "temporal.final_ln.weight"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "system.final_ln.bias"));
    ck.save(dir.path(), &m).unwrap();
    let mut p = Predictor::load(dir.path()).unwrap();
    assert!(p.checkpoint().config.pre_norm);
    let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.1).collect();
    let out = p.predict(&[Window { data: &data, t: 3 }]).unwrap();
    assert!(out[0].p > 0.0 && out[0].p < 1.0);
    // A post-LN model has no final LayerNorm, and a config.json written before the field
    // existed is post-LN.
    let post = CloudFormer::new(&small(4), 9, &Device::Cpu).unwrap();
    assert!(!post
        .params()
        .named()
        .iter()
        .any(|(n, _)| n.contains("final_ln")));
    let mut json: serde_json::Value = serde_json::to_value(small(4)).unwrap();
    json.as_object_mut().unwrap().remove("pre_norm");
    let old: Config = serde_json::from_value(json).unwrap();
    assert!(!old.pre_norm);
}

#[test]
fn the_model_id_is_the_weights_and_configuration_and_a_changed_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ck, m) = checkpoint_for(4, 3);
    ck.save(dir.path(), &m).unwrap();
    let id = ck.model_id.clone();
    let (back, _) = Checkpoint::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(back.model_id, id);
    let weights = dir.path().join(model::WEIGHTS_FILE);
    let config = dir.path().join(model::CONFIG_FILE);
    let original = std::fs::read(&weights).unwrap();
    // One byte of one float changed: the recorded id no longer matches.
    let mut changed = original.clone();
    let last = changed.len() - 2;
    changed[last] ^= 0x40;
    std::fs::write(&weights, &changed).unwrap();
    let e = match Checkpoint::load(dir.path(), &Device::Cpu) {
        Ok(_) => panic!("a changed weight was loaded under the old id"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&id) && e.contains("changed after training"),
        "{e}"
    );
    // Without a recorded id (older files) the load computes it, and it is another one.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    json["model_id"] = serde_json::Value::String(String::new());
    std::fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();
    let (other, _) = Checkpoint::load(dir.path(), &Device::Cpu).unwrap();
    assert!(other.model_id.starts_with("cf-") && other.model_id != id);
    // The weights restored but a normaliser setting changed under the old id: refused too.
    std::fs::write(&weights, &original).unwrap();
    json["model_id"] = serde_json::Value::String(id.clone());
    json["normalizer"]["mean"][0] = serde_json::json!(123.0);
    std::fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(Checkpoint::load(dir.path(), &Device::Cpu).is_err());
}
