//! `EvalOptions::members`: a CloudFormer variant trains K members per fold, one per seed
//! `member_seed(split seed, j)`, and the fold's P̂ is the mean of theirs. A trainer whose
//! predictions encode the seed it was given makes the arithmetic and the seeds checkable
//! exactly (the real trainer's members are exercised end to end in tests/train_cli.rs).

use std::path::Path;

use train::eval::{
    evaluate, member_seed, plan, EvalOptions, EvalResults, ModelSpec, SeqPredictor, SeqTrainer,
};
use train::split::Protocol;
use train::{Run, TrainError};

/// Predicts, for every run, a number made from the seed it was trained with; records the
/// seeds and scratch directories it was given.
#[derive(Default)]
struct SeedEcho {
    fits: Vec<(u64, std::path::PathBuf)>,
}

struct Echo(f64);

fn echo(seed: u64) -> f64 {
    (seed % 1000) as f64 / 1000.0
}

impl SeqPredictor for Echo {
    fn predict(&mut self, runs: &[&Run], _k: usize) -> Result<Vec<f64>, TrainError> {
        Ok(vec![self.0; runs.len()])
    }
    fn describe(&self) -> String {
        format!("echo {}", self.0)
    }
}

impl SeqTrainer for SeedEcho {
    fn fit(
        &mut self,
        _variant: &str,
        _train: &[&Run],
        _val: &[&Run],
        seed: u64,
        out: &Path,
    ) -> Result<Box<dyn SeqPredictor>, TrainError> {
        self.fits.push((seed, out.to_path_buf()));
        Ok(Box::new(Echo(echo(seed))))
    }
}

fn runs() -> Vec<Run> {
    let mut out = Vec::new();
    for a in 0..4 {
        for i in 0..5 {
            out.push(Run {
                run_id: format!("r{a}-{i}"),
                tenant: "t0".into(),
                app: format!("app{a}"),
                scenario: "static".into(),
                t: 4,
                f: 2,
                x: (0..8).map(|v| (v + a + i) as f32).collect(),
                p: 0.5,
                p_per_second: None,
                label_noise: 0.01,
                context: Default::default(),
            });
        }
    }
    out
}

fn options(members: usize) -> EvalOptions {
    EvalOptions {
        n_splits: 1,
        seed: 11,
        members,
        command: "test".into(),
        ..EvalOptions::new(
            Protocol::Loao,
            vec![ModelSpec::CloudFormer("cf-temporal".into())],
        )
    }
}

fn eval(members: usize, dir: &Path) -> (EvalResults, SeedEcho) {
    let mut trainer = SeedEcho::default();
    let res = evaluate(
        &runs(),
        &options(members),
        Some(&mut trainer),
        dir,
        &mut |_, _, _| {},
    )
    .unwrap();
    (res, trainer)
}

#[test]
fn members_are_trained_with_their_own_seeds_and_averaged() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, t1) = eval(1, &tmp.path().join("one"));
    let (three, t3) = eval(3, &tmp.path().join("three"));
    let n_splits = one.splits.len();
    assert_eq!(n_splits, 4, "leave-one-application-out over 4 applications");
    assert_eq!(t1.fits.len(), n_splits);
    assert_eq!(t3.fits.len(), 3 * n_splits, "three members per fold");
    let model = &three.models[0];
    for (i, split) in three.splits.iter().enumerate() {
        let seeds: Vec<u64> = (0..3).map(|j| member_seed(split.seed, j)).collect();
        assert_eq!(seeds[0], split.seed, "member 0 keeps the split's seed");
        assert!(seeds[1] != seeds[0] && seeds[2] != seeds[1], "{seeds:?}");
        let fitted: Vec<u64> = t3.fits[3 * i..3 * i + 3].iter().map(|f| f.0).collect();
        assert_eq!(fitted, seeds, "{}", split.name);
        // Member 0 where a single model always was, the others in member-J beside it.
        let dirs: Vec<_> = t3.fits[3 * i..3 * i + 3].iter().map(|f| &f.1).collect();
        let scratch = tmp.path().join("three");
        assert_eq!(dirs[0], &scratch.join(&split.name).join("cf-temporal"));
        assert_eq!(dirs[1], &dirs[0].join("member-1"));
        assert_eq!(dirs[2], &dirs[0].join("member-2"));
        let want = seeds.iter().map(|&s| echo(s)).sum::<f64>() / 3.0;
        let got: Vec<f64> = three
            .predictions
            .iter()
            .filter(|p| p.split == split.name && p.k == 0)
            .map(|p| p.p_hat)
            .collect();
        assert!(!got.is_empty());
        for g in got {
            assert!((g - want).abs() < 1e-12, "{}: {g} vs {want}", split.name);
        }
        let single: Vec<f64> = one
            .predictions
            .iter()
            .filter(|p| p.split == split.name && p.k == 0)
            .map(|p| p.p_hat)
            .collect();
        assert!(single.iter().all(|&p| (p - echo(split.seed)).abs() < 1e-12));
        assert!(
            model.chosen[i].starts_with("members=3: echo "),
            "{}",
            model.chosen[i]
        );
        assert_eq!(model.chosen[i].matches(" | ").count(), 2);
    }
    assert!(one.models[0].chosen.iter().all(|c| c.starts_with("echo ")));
}

#[test]
fn one_member_stays_out_of_the_plan_and_more_are_another_evaluation() {
    let runs = runs();
    let p1 = plan(&runs, &options(1), None);
    let p3 = plan(&runs, &options(3), None);
    assert!(p1["options"].get("members").is_none(), "{p1}");
    assert_eq!(p3["options"]["members"], 3, "{p3}");
    // Results written before the field existed read back as one member.
    let mut v = serde_json::to_value(options(1)).unwrap();
    v.as_object_mut().unwrap().remove("members");
    let back: EvalOptions = serde_json::from_value(v).unwrap();
    assert_eq!(back.members, 1);
}
