//! The production loader serves a real candle checkpoint and agrees with `model::Predictor`.

use model::{Checkpoint, CloudFormer, Config, Device, Normalizer, Predictor, Window};
use serve::engine::{default_loader, validate, WindowData};

#[test]
fn default_loader_serves_a_real_checkpoint_like_the_predictor() {
    let dir = tempfile::tempdir().unwrap();
    let f = 5;
    let cfg = Config {
        n_features: f,
        d_model: 16,
        n_heads: 2,
        d_ff: 32,
        temporal_blocks: 1,
        system_blocks: 1,
        head_hidden: 16,
        ..Config::default()
    };
    let m = CloudFormer::new(&cfg, 3, &Device::Cpu).unwrap();
    let rows: Vec<Vec<f32>> = (0..20)
        .map(|i| (0..f).map(|j| (i * j) as f32 * 0.1).collect())
        .collect();
    let norm = Normalizer::fit(vec![false; f], rows.iter().map(|r| r.as_slice())).unwrap();
    let mut ck = Checkpoint::new(cfg, norm, "hash", (0..f).map(|i| format!("m{i}")).collect());
    ck.seed = 3;
    ck.save(dir.path(), &m).unwrap();

    let mut engine = (default_loader())(dir.path()).expect("real checkpoint loads");
    validate(engine.as_mut()).expect("real model passes the load check");
    assert_eq!(engine.info().model_id, ck.model_id);
    let data: Vec<f32> = (0..3 * f).map(|i| i as f32 * 0.05).collect();
    let served = engine
        .predict(&[&WindowData {
            id: None,
            t: 3,
            data: data.clone(),
        }])
        .unwrap();
    let direct = Predictor::load(dir.path())
        .unwrap()
        .predict(&[Window { data: &data, t: 3 }])
        .unwrap();
    assert_eq!(served[0].p, direct[0].p);
    assert!(served[0].p > 0.0 && served[0].p < 1.0);

    let missing = (default_loader())(&dir.path().join("nope"));
    assert!(missing.is_err());
}
