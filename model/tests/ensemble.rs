//! A model directory with `members/`: P̂ is the members' mean, `std` carries their spread, and
//! members that do not belong together are refused naming the directory.

mod common;

use model::{combine, Predictor, Window, MEMBERS_DIR};

fn window() -> Vec<f32> {
    (0..12).map(|i| (i as f32 * 0.37).sin()).collect()
}

/// Saves the checkpoint of `seed` (4 features, catalogue `cat123` unless changed) in `dir`.
fn save(dir: &std::path::Path, seed: u64, catalogue: &str) -> String {
    let (mut ck, m) = common::checkpoint_for(4, seed);
    ck.catalogue_hash = catalogue.to_string();
    ck.save(dir, &m).unwrap();
    ck.model_id
}

#[test]
fn an_ensemble_answers_the_mean_of_its_members_and_their_spread_in_std() {
    let dir = tempfile::tempdir().unwrap();
    let first = save(dir.path(), 7, "cat123");
    let m8 = dir.path().join(MEMBERS_DIR).join("seed-8");
    let m9 = dir.path().join(MEMBERS_DIR).join("seed-9");
    let ids = [
        first.clone(),
        save(&m8, 8, "cat123"),
        save(&m9, 9, "cat123"),
    ];

    let data = window();
    let w = [Window { data: &data, t: 3 }];
    // Each member alone, as a single-checkpoint directory would answer.
    let mut alone = Vec::new();
    for (i, seed) in [7u64, 8, 9].into_iter().enumerate() {
        let (ck, m) = common::checkpoint_for(4, seed);
        let mut p = Predictor::from_parts(ck, m);
        p.set_mc_samples(0);
        let a = p.predict(&w).unwrap()[0];
        assert_eq!(a.std, 0.0, "member {i}");
        alone.push(a.p);
    }
    let mean = alone.iter().sum::<f32>() / 3.0;
    let spread = (alone.iter().map(|p| (p - mean).powi(2)).sum::<f32>() / 3.0).sqrt();
    assert!(
        spread > 1e-4,
        "the seeds must disagree for this test: {alone:?}"
    );

    let mut ens = Predictor::load(dir.path()).unwrap();
    assert_eq!(
        ens.member_ids(),
        ids.iter().map(|s| s.as_str()).collect::<Vec<_>>()
    );
    assert!(ens.model_id().starts_with("ens-"), "{}", ens.model_id());
    assert_ne!(ens.model_id(), first);
    assert_eq!(
        ens.checkpoint().model_id,
        first,
        "the directory's own checkpoint comes first"
    );

    ens.set_mc_samples(0);
    let a = ens.predict(&w).unwrap()[0];
    assert!((a.p - mean).abs() < 1e-6, "{} vs mean {mean}", a.p);
    assert!(
        (a.std - spread).abs() < 1e-6,
        "{} vs spread {spread}",
        a.std
    );

    // With dropout passes the members' own uncertainty adds to the spread.
    ens.set_mc_samples(16);
    let b = ens.predict(&w).unwrap()[0];
    assert!((b.p - mean).abs() < 1e-6);
    assert!(b.std > spread, "{} ≤ spread {spread}", b.std);

    // The id follows the members: another member set is another id.
    std::fs::remove_dir_all(&m9).unwrap();
    let two = Predictor::load(dir.path()).unwrap();
    assert_eq!(two.member_ids().len(), 2);
    assert!(two.model_id().starts_with("ens-"));
    assert_ne!(two.model_id(), ens.model_id());
}

#[test]
fn members_that_do_not_belong_together_are_refused_naming_the_member() {
    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), 7, "cat123");
    let members = dir.path().join(MEMBERS_DIR);

    std::fs::create_dir_all(&members).unwrap();
    let e = Predictor::load(dir.path()).err().unwrap().to_string();
    assert!(e.contains("holds no ensemble member"), "{e}");
    assert!(e.contains(MEMBERS_DIR), "{e}");

    let other = members.join("seed-8");
    save(&other, 8, "cat999");
    let e = Predictor::load(dir.path()).err().unwrap().to_string();
    assert!(
        e.contains("seed-8") && e.contains("cat999") && e.contains("cat123"),
        "{e}"
    );

    std::fs::remove_dir_all(&other).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let e = Predictor::load(dir.path()).err().unwrap().to_string();
    assert!(e.contains("seed-8") && e.contains("config.json"), "{e}");

    // Without members/ the directory is the single model it always was.
    std::fs::remove_dir_all(&members).unwrap();
    let p = Predictor::load(dir.path()).unwrap();
    assert_eq!(p.member_ids().len(), 1);
    assert_eq!(p.model_id(), p.checkpoint().model_id);
}

#[test]
fn combining_answers_is_the_mixture_mean_and_total_spread() {
    assert_eq!(combine(&[(0.4, 0.03)]), (0.4, 0.03));
    let (p, s) = combine(&[(0.5, 0.0), (0.7, 0.0)]);
    assert!((p - 0.6).abs() < 1e-6 && (s - 0.1).abs() < 1e-6, "{p} {s}");
    let (p, s) = combine(&[(0.6, 0.3), (0.6, 0.4)]);
    assert!((p - 0.6).abs() < 1e-6);
    assert!((s - (0.125f32).sqrt()).abs() < 1e-6, "{s}");
}
