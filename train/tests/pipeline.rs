//! The evaluation pipeline on a synthetic set of runs (the real-format end-to-end tests live in
//! the workspace's tests/train_*.rs): splits never leak, baselines beat the mean, results and
//! the report round-trip.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use train::baselines::Tabular;
use train::eval::{evaluate, EvalOptions, EvalResults, ModelSpec};
use train::split::{app_infos, paper_splits, Protocol};
use train::Run;

/// 6 applications (3 with dynamic scenarios); P depends non-linearly on two features' means and
/// on a neighbour feature's trend; app-specific offsets make unseen apps harder.
pub fn synthetic_runs(n_per_app: usize, f: usize, seed: u64) -> Vec<Run> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut runs = Vec::new();
    for a in 0..6 {
        for i in 0..n_per_app {
            let t = rng.random_range(20..90);
            let pressure: f32 = rng.random_range(0.0..1.0);
            let trend: f32 = rng.random_range(-0.02..0.02);
            let mut x = vec![0f32; t * f];
            for s in 0..t {
                for j in 0..f {
                    let base = match j {
                        0 => pressure * 100.0 + rng.random_range(-5.0..5.0),
                        1 => (a as f32) * 3.0 + rng.random_range(0.0..1.0),
                        2 => trend * s as f32 * 50.0,
                        3 => f32::NAN, // always null, like an absent PMU
                        5 => 1000.0 * (a as f32 + 1.0), // identifies the application
                        _ => rng.random_range(0.0..1.0),
                    };
                    x[s * f + j] = base;
                }
            }
            let p = (1.0 - 0.6 * pressure * pressure - 8.0 * trend.max(0.0)).clamp(0.05, 1.0);
            let dynamic = a >= 3 && i % 2 == 0;
            runs.push(Run {
                run_id: format!("r{a}-{i}"),
                tenant: "t0".into(),
                app: format!("app{a}"),
                scenario: if dynamic {
                    "periodic".into()
                } else {
                    "static".into()
                },
                t,
                f,
                x,
                p,
                p_per_second: None,
                label_noise: 0.01,
                context: Default::default(),
            });
        }
    }
    runs
}

#[test]
fn splits_never_leak_test_apps() {
    let runs = synthetic_runs(10, 6, 1);
    let apps = app_infos(&runs);
    assert_eq!(apps.iter().filter(|a| a.dynamic).count(), 3);
    for s in paper_splits(&apps, 6, 9, 1).unwrap() {
        let idx = s.indices(&runs).unwrap();
        for &i in idx.train.iter().chain(&idx.val) {
            assert!(
                !s.test_apps.contains(&runs[i].app),
                "{} leaks into training",
                runs[i].app
            );
        }
        for &i in &idx.test {
            assert!(s.test_apps.contains(&runs[i].app));
        }
        assert_eq!(s.test_apps.len(), 2, "{s:?}"); // 1 static + 1 dynamic: keeps 2 of each kind
        assert_eq!(idx.train.len() + idx.val.len() + idx.test.len(), runs.len());
    }
}

#[test]
fn baselines_beat_the_mean_and_results_round_trip() {
    let runs = synthetic_runs(30, 6, 2);
    let options = EvalOptions {
        n_splits: 2,
        seed: 3,
        early_ks: vec![10],
        lstm: train::baselines::lstm::LstmParams {
            epochs: 15,
            ..Default::default()
        },
        command: "test".into(),
        ..EvalOptions::new(
            Protocol::Paper,
            vec![
                ModelSpec::Tabular(Tabular::Mean),
                ModelSpec::Tabular(Tabular::Linear),
                ModelSpec::Tabular(Tabular::Glm),
                ModelSpec::Tabular(Tabular::Tree),
                ModelSpec::Tabular(Tabular::Forest),
                ModelSpec::Tabular(Tabular::Gbdt),
                ModelSpec::Lstm,
            ],
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let res = evaluate(&runs, &options, None, dir.path(), &mut |_, _, _| {}).unwrap();
    let mae = |n: &str| {
        res.models
            .iter()
            .find(|m| m.name == n)
            .unwrap()
            .summary
            .mae_mean
    };
    let mean = mae("mean");
    for m in ["lr", "dt", "rf", "gbdt"] {
        assert!(mae(m) < 0.7 * mean, "{m}: {} vs mean {mean}", mae(m));
    }
    assert!(mae("lstm").is_finite() && mae("glm").is_finite());
    assert!((res.noise_floor - 1.0).abs() < 1e-4);
    let gb = res.models.iter().find(|m| m.name == "gbdt").unwrap();
    assert!(gb.early.contains_key(&10));
    assert_eq!(gb.per_split.len(), 2);
    res.write(dir.path()).unwrap();
    let back = EvalResults::read(dir.path()).unwrap();
    assert_eq!(back.predictions.len(), res.predictions.len());
    assert_eq!(back.models.len(), res.models.len());
    let files = train::report::write_report(dir.path(), &dir.path().join("report")).unwrap();
    assert!(files.iter().any(|f| f.ends_with("report.html")));
    let md = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    assert!(md.contains("| gbdt |"), "{md}");
    // The README block is rewritten from the results; text around it is kept.
    let readme = dir.path().join("README.md");
    let name = dir.path().file_name().unwrap().to_str().unwrap();
    let (begin, end) = train::report::readme_markers(name);
    std::fs::write(&readme, "# intro\n\nno markers yet\n").unwrap();
    let e = train::report::update_readme(&readme, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&begin) && e.contains(&end), "{e}");
    assert_eq!(
        std::fs::read_to_string(&readme).unwrap(),
        "# intro\n\nno markers yet\n",
        "a failed update must not touch the file"
    );
    std::fs::write(
        &readme,
        format!("# intro\n{begin}\nold table\n{end}\n## after\n"),
    )
    .unwrap();
    train::report::update_readme(&readme, dir.path()).unwrap();
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(
        text.starts_with("# intro\n") && text.ends_with(&format!("{end}\n## after\n")),
        "{text}"
    );
    assert!(!text.contains("old table"), "{text}");
    assert!(
        text.contains("| gbdt |") && text.contains("Label-noise floor"),
        "{text}"
    );
    let mae_gbdt = format!("{:.2}", mae("gbdt"));
    assert!(
        text.contains(&mae_gbdt),
        "README lacks gbdt's MAE {mae_gbdt}: {text}"
    );
    if files.iter().any(|f| f.ends_with("mae-vs-k.png")) {
        assert!(
            std::fs::metadata(dir.path().join("report/mae-vs-k.png"))
                .unwrap()
                .len()
                > 1000
        );
    } else {
        eprintln!("plots were skipped (no usable font on this machine?)");
    }
}

#[test]
fn refit_baselines_fit_again_on_training_and_validation_runs() {
    let runs = synthetic_runs(30, 6, 2);
    let options = EvalOptions {
        n_splits: 1,
        seed: 5,
        val_apps: 2,
        refit_baselines: true,
        command: "test".into(),
        ..EvalOptions::new(
            Protocol::Loao,
            [
                Tabular::Mean,
                Tabular::Linear,
                Tabular::Glm,
                Tabular::Forest,
                Tabular::Gbdt,
            ]
            .map(ModelSpec::Tabular)
            .to_vec(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let eval = |o: &EvalOptions| evaluate(&runs, o, None, dir.path(), &mut |_, _, _| {}).unwrap();
    let refit = eval(&options);
    let plain = eval(&EvalOptions {
        refit_baselines: false,
        ..options.clone()
    });
    let model = |r: &EvalResults, n: &str| r.models.iter().find(|m| m.name == n).cloned().unwrap();
    let mean_p = |apps: &[String]| {
        let p: Vec<f64> = runs
            .iter()
            .filter(|r| apps.contains(&r.app))
            .map(|r| r.p as f64)
            .collect();
        p.iter().sum::<f64>() / p.len() as f64
    };
    for s in &refit.splits {
        assert_eq!(s.val_apps.len(), 2, "{s:?}");
        let p_hat = |r: &EvalResults| {
            r.predictions
                .iter()
                .find(|p| p.split == s.name && p.model == "mean" && p.k == 0)
                .unwrap()
                .p_hat
        };
        let all = [&s.train_apps[..], &s.val_apps[..]].concat();
        assert!((p_hat(&refit) - mean_p(&all)).abs() < 1e-9, "{}", s.name);
        assert!(
            (p_hat(&plain) - mean_p(&s.train_apps)).abs() < 1e-9,
            "{}",
            s.name
        );
        assert!((p_hat(&refit) - p_hat(&plain)).abs() > 1e-6, "{}", s.name);
    }
    let n_all = |i: usize| {
        let s = &refit.splits[i];
        runs.iter()
            .filter(|r| s.train_apps.contains(&r.app) || s.val_apps.contains(&r.app))
            .count()
    };
    for name in ["mean", "lr", "glm", "rf", "gbdt"] {
        let (r, p) = (model(&refit, name), model(&plain, name));
        for (i, (cr, cp)) in r.chosen.iter().zip(&p.chosen).enumerate() {
            assert!(cr.ends_with(&format!(" refit_rows={}", n_all(i))), "{cr}");
            assert!(!cp.contains("refit_rows"), "{cp}");
            if name != "mean" && name != "gbdt" {
                // The same hyper-parameters, fitted again.
                assert!(cr.starts_with(cp.as_str()), "{cr} / {cp}");
            }
            if name == "gbdt" {
                // As many rounds as early stopping kept.
                let field = |c: &str, k: &str| -> String {
                    c.split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .unwrap()
                        .to_string()
                };
                let best: usize = field(cp, "best_iteration=Some(")
                    .trim_end_matches(')')
                    .parse()
                    .unwrap();
                assert_eq!(
                    field(cr, "trees=").parse::<usize>().unwrap(),
                    best + 1,
                    "{cr}"
                );
            }
        }
        assert!(r.summary.mae_mean.is_finite());
    }
    assert!(model(&refit, "rf").summary.mae_mean < 0.7 * model(&refit, "mean").summary.mae_mean);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let options = EvalOptions {
        n_splits: 2,
        seed: 3,
        command: "test".into(),
        ..EvalOptions::new(Protocol::Paper, vec![ModelSpec::Tabular(Tabular::Mean)])
    };
    let e = evaluate(&[], &options, None, dir.path(), &mut |_, _, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("empty"), "{e}");
    let mut one = synthetic_runs(3, 4, 1);
    one.retain(|r| r.app == "app0");
    let e = evaluate(&one, &options, None, dir.path(), &mut |_, _, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("only 1 application") && e.contains("app0"),
        "{e}"
    );
    let mut mixed = synthetic_runs(3, 4, 1);
    mixed[5].f = 5;
    let e = evaluate(&mixed, &options, None, dir.path(), &mut |_, _, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("number of features"), "{e}");
    let mut bad = synthetic_runs(3, 4, 1);
    bad[2].p = 1.7;
    let e = evaluate(&bad, &options, None, dir.path(), &mut |_, _, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("not in (0, 1]") && e.contains(&bad[2].run_id),
        "{e}"
    );
    assert!(ModelSpec::parse("xgboost").is_err());
    // A sliding window longer than every run names the longest run.
    let runs = synthetic_runs(2, 4, 1);
    let longest = runs.iter().map(|r| r.t).max().unwrap();
    let refs: Vec<&Run> = runs.iter().collect();
    let opts = train::cf::TrainOptions {
        window_s: 500,
        epochs: 1,
        ..Default::default()
    };
    let e = train::cf::train_on(
        &refs,
        &refs,
        &opts,
        dir.path(),
        false,
        serde_json::json!({}),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("--window-s 500") && e.contains(&format!("the longest has {longest} s")),
        "{e}"
    );
}

/// `--per-window W`: every model trains and is tested on the runs' non-overlapping W-second
/// windows, labelled with the mean per-second P over each; early ks ≥ W are dropped; a window
/// longer than every run is refused, naming the longest.
#[test]
fn a_per_window_evaluation_tests_every_window_with_its_own_label() {
    let runs = stepped_runs();
    let w = 10;
    let options = window_options(w);
    let dir = tempfile::tempdir().unwrap();
    let res = evaluate(&runs, &options, None, dir.path(), &mut |_, _, _| {}).unwrap();
    let expected: usize = runs.iter().map(|r| r.t / w).sum();
    assert_eq!(res.n_runs, expected);
    for m in &res.models {
        let ks: Vec<usize> = m.early.keys().copied().collect();
        assert_eq!(ks, vec![5], "{}: early ks ≥ the window are dropped", m.name);
    }
    // Each whole-window prediction row carries its window's label.
    let whole: Vec<_> = res
        .predictions
        .iter()
        .filter(|p| p.k == 0 && p.model == "mean")
        .collect();
    assert_eq!(
        whole.len(),
        expected,
        "every window is tested once under LOAO"
    );
    let by_id: std::collections::HashMap<String, &Run> =
        runs.iter().map(|r| (r.key(), r)).collect();
    let mut stepped = 0;
    for p in whole {
        let (run_id, rest) = p
            .key
            .split_once('@')
            .expect("window keys are run@start/tenant");
        let (start, tenant) = rest.split_once('/').unwrap();
        let start: usize = start.parse().unwrap();
        let r = by_id[&format!("{run_id}/{tenant}")];
        let ps = r.p_per_second.as_ref().unwrap();
        let label = ps[start..start + w].iter().sum::<f32>() / w as f32;
        assert!(
            (p.p - label as f64).abs() < 1e-5,
            "{}: {} vs {label}",
            p.key,
            p.p
        );
        stepped += usize::from((p.p - r.p as f64).abs() > 1e-3);
    }
    assert!(
        stepped > 0,
        "some windows lie after a step and differ from their run's P"
    );
    let md = res.markdown();
    assert!(md.contains(&format!("{expected} {w}-s windows")), "{md}");
    let too_long = EvalOptions {
        window_s: 1000,
        ..options
    };
    let longest = runs.iter().map(|r| r.t).max().unwrap();
    let e = evaluate(&runs, &too_long, None, dir.path(), &mut |_, _, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("--per-window 1000") && e.contains(&format!("the longest has {longest} s")),
        "{e}"
    );
}

/// Synthetic runs with per-second labels: every other run steps to half its P half-way
/// through, so window labels differ from the run's P.
fn stepped_runs() -> Vec<Run> {
    let mut runs = synthetic_runs(6, 4, 5);
    for (n, r) in runs.iter_mut().enumerate() {
        let ps: Vec<f32> = (0..r.t)
            .map(|s| {
                if n % 2 == 0 && s >= r.t / 2 {
                    r.p * 0.5
                } else {
                    r.p
                }
            })
            .collect();
        r.p_per_second = Some(ps);
    }
    runs
}

/// A leave-one-application-out evaluation of two tabular models on `w`-second windows.
fn window_options(w: usize) -> EvalOptions {
    EvalOptions {
        seed: 3,
        early_ks: vec![5, 10, 30],
        window_s: w,
        command: "test".into(),
        ..EvalOptions::new(
            Protocol::Loao,
            vec![
                ModelSpec::Tabular(Tabular::Mean),
                ModelSpec::Tabular(Tabular::Tree),
            ],
        )
    }
}

/// `--train-stride`: overlapping training windows (every 5 s of 10) leave the test windows and
/// their labels as they were while the models learn from more windows (the training mean
/// moves); with two applications the validation runs come from the training runs, which
/// overlapping windows would leak into, so the stride is refused, naming the split.
#[test]
fn overlapping_training_windows_keep_the_test_windows() {
    let runs = stepped_runs();
    let dir = tempfile::tempdir().unwrap();
    let eval = |runs: &[Run], train_stride: usize| {
        let options = EvalOptions {
            train_stride,
            ..window_options(10)
        };
        evaluate(runs, &options, None, dir.path(), &mut |_, _, _| {})
    };
    let (plain, strided) = (eval(&runs, 0).unwrap(), eval(&runs, 5).unwrap());
    assert_eq!(
        strided.n_runs, plain.n_runs,
        "only non-overlapping windows are tested"
    );
    let rows = |r: &train::eval::EvalResults| -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = r
            .predictions
            .iter()
            .filter(|p| p.k == 0 && p.model == "mean")
            .map(|p| (p.split.clone(), p.key.clone(), p.p.to_bits()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(&strided), rows(&plain), "same test windows and labels");
    let moved = strided
        .predictions
        .iter()
        .zip(&plain.predictions)
        .filter(|(a, b)| a.model == "mean" && (a.p_hat - b.p_hat).abs() > 1e-9)
        .count();
    assert!(moved > 0, "the training mean uses the overlapping windows");
    let two: Vec<Run> = runs
        .iter()
        .filter(|r| r.app == "app0" || r.app == "app1")
        .cloned()
        .collect();
    let e = eval(&two, 5).err().unwrap().to_string();
    assert!(
        e.contains("--train-stride") && e.contains("no validation application"),
        "{e}"
    );
    let whole = EvalOptions {
        window_s: 0,
        train_stride: 5,
        val_apps: 1,
        refit_baselines: false,
        members: 1,
        ..window_options(10)
    };
    let e = evaluate(&runs, &whole, None, dir.path(), &mut |_, _, _| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--train-stride 5 needs a per-window"), "{e}");
}

#[test]
fn normaliser_is_fitted_on_training_apps_only() {
    let runs = synthetic_runs(4, 6, 5);
    let options = EvalOptions {
        n_splits: 2,
        seed: 11,
        command: "test".into(),
        ..EvalOptions::new(Protocol::Paper, vec![ModelSpec::CloudFormer("cf".into())])
    };
    let cf = train::cf::TrainOptions {
        epochs: 1,
        blocks: 1,
        max_len: 16,
        lr: 1e-3,
        ..Default::default()
    };
    let mut trainer = train::cf::CfTrainer::new(cf, true);
    let dir = tempfile::tempdir().unwrap();
    let res = evaluate(
        &runs,
        &options,
        Some(&mut trainer),
        dir.path(),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(res.models[0].per_split.len(), 2);
    for s in &res.splits {
        let ck = model::Checkpoint::read(&dir.path().join(&s.name).join("cf")).unwrap();
        let code =
            |a: &String| 1000.0 * (a.trim_start_matches("app").parse::<f32>().unwrap() + 1.0);
        let lo = s.train_apps.iter().map(code).fold(f32::INFINITY, f32::min);
        let hi = s
            .train_apps
            .iter()
            .map(code)
            .fold(f32::NEG_INFINITY, f32::max);
        // feature 5 identifies the app: its fitted range is exactly the training apps' range
        assert_eq!(
            (ck.normalizer.min[5], ck.normalizer.max[5]),
            (lo, hi),
            "{s:?}"
        );
        for t in s.test_apps.iter().chain(&s.val_apps) {
            assert!(!s.train_apps.contains(t));
        }
    }
}

#[test]
fn an_evaluation_in_parts_equals_one_run_through() {
    use train::eval::{evaluate_in_parts, plan, Outcome, Parts};
    use train::folds::FoldStore;
    let runs = synthetic_runs(12, 6, 5);
    let options = EvalOptions {
        n_splits: 2,
        seed: 3,
        early_ks: vec![10],
        command: "test".into(),
        ..EvalOptions::new(
            Protocol::Paper,
            vec![
                ModelSpec::Tabular(Tabular::Mean),
                ModelSpec::Tabular(Tabular::Tree),
                ModelSpec::Tabular(Tabular::Forest),
            ],
        )
    };
    let scratch = tempfile::tempdir().unwrap();
    let whole = evaluate(&runs, &options, None, scratch.path(), &mut |_, _, _| {}).unwrap();

    let out = tempfile::tempdir().unwrap();
    let folds = out.path().join("folds");
    let store = FoldStore::open(&folds, &plan(&runs, &options, None)).unwrap();
    // A deadline already past: every call computes one fold, then stops at the next boundary.
    let parts = Parts {
        store: &store,
        deadline: Some(std::time::Instant::now()),
    };
    let mut calls = 0;
    let parted = loop {
        calls += 1;
        assert!(calls <= 6, "more calls than folds");
        match evaluate_in_parts(
            &runs,
            &options,
            None,
            scratch.path(),
            &parts,
            &mut |_, _, _| {},
        )
        .unwrap()
        {
            Outcome::Complete(r) => break r,
            Outcome::Stopped { done, total } => assert_eq!((done, total), (calls, 6)),
        }
    };
    assert_eq!(calls, 6, "2 splits × 3 models, one fold per call");
    let json = |v: &dyn Fn(&train::eval::ModelResult) -> String, r: &EvalResults| {
        r.models.iter().map(v).collect::<Vec<_>>()
    };
    let metrics = |m: &train::eval::ModelResult| {
        serde_json::to_string(&(&m.name, &m.per_split, &m.early, &m.chosen)).unwrap()
    };
    assert_eq!(json(&metrics, &parted), json(&metrics, &whole));
    assert_eq!(parted.predictions.len(), whole.predictions.len());
    for (a, b) in parted.predictions.iter().zip(&whole.predictions) {
        assert_eq!((&a.key, a.k, a.p_hat), (&b.key, b.k, b.p_hat));
    }
    assert!(parted.models.iter().all(|m| m.fold_seconds.len() == 2));
    assert!(parted.markdown().contains("## Seconds per fold"));

    // Folds of another evaluation are not mixed in.
    let other = EvalOptions {
        seed: 4,
        ..options.clone()
    };
    let e = FoldStore::open(&folds, &plan(&runs, &other, None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("plan.options.seed: 3 before, 4 now"), "{e}");
    // One validation application is the default and stays out of the plan (folds written
    // before --val-apps still match); more of them are another evaluation.
    assert!(plan(&runs, &options, None)["options"]
        .get("val_apps")
        .is_none());
    let wider = EvalOptions {
        val_apps: 2,
        ..options.clone()
    };
    let e = FoldStore::open(&folds, &plan(&runs, &wider, None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("plan.options.val_apps"), "{e}");

    // A model added to a finished evaluation: only its folds are computed (one per call with
    // the past deadline), the others are read back unchanged.
    let more = EvalOptions {
        models: [
            options.models.clone(),
            vec![ModelSpec::Tabular(Tabular::Placement)],
        ]
        .concat(),
        ..options.clone()
    };
    let store = FoldStore::open(&folds, &plan(&runs, &more, None)).unwrap();
    let parts = Parts {
        store: &store,
        deadline: Some(std::time::Instant::now()),
    };
    let mut calls = 0;
    let grown = loop {
        calls += 1;
        assert!(calls <= 2, "the old folds were recomputed");
        match evaluate_in_parts(
            &runs,
            &more,
            None,
            scratch.path(),
            &parts,
            &mut |_, _, _| {},
        )
        .unwrap()
        {
            Outcome::Complete(r) => break r,
            Outcome::Stopped { done, total } => assert_eq!(total, 8, "{done}"),
        }
    };
    assert_eq!(calls, 2, "2 splits of the new model");
    assert_eq!(
        json(&metrics, &grown)[..3],
        json(&metrics, &whole)[..],
        "the old models' results are unchanged"
    );
}

/// Runs whose P follows the placement only, with `cpu.usage_pct` = 100 · P (one CPU each):
/// isolated runs (P 1), two tenants on one core (P 0.5), two on two cores (P 0.9).
fn placement_runs() -> Vec<Run> {
    use dataset::runs::Placement;
    use train::data::RunContext;
    let cat = dataset::catalogue::Catalogue::builtin();
    let (f, usage) = (cat.n_features(), cat.index_of("cpu.usage_pct").unwrap());
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut runs = Vec::new();
    for a in 0..4 {
        for i in 0..24 {
            let (n_tenants, placement, p) = match i % 3 {
                0 => (1, Placement::Alone, 1.0),
                1 => (2, Placement::SameCore, 0.5),
                _ => (2, Placement::CrossCore, 0.9),
            };
            let p: f32 = p - rng.random_range(0.0..0.02);
            let t = 10;
            let mut x = vec![f32::NAN; t * f];
            for s in 1..t {
                x[s * f + usage] = 100.0 * p;
            }
            runs.push(Run {
                run_id: format!("r{a}-{i}"),
                tenant: "t0".into(),
                app: format!("app{a}"),
                scenario: "static".into(),
                t,
                f,
                x,
                p,
                p_per_second: None,
                label_noise: 0.01,
                context: RunContext::from_table(n_tenants, placement, 0.0, "0"),
            });
        }
    }
    runs
}

#[test]
fn trivial_predictors_and_the_isolated_run_mae() {
    let runs = placement_runs();
    let options = EvalOptions {
        seed: 3,
        early_ks: vec![5],
        command: "test".into(),
        ..EvalOptions::new(
            Protocol::Loao,
            vec![
                ModelSpec::Tabular(Tabular::Mean),
                ModelSpec::Tabular(Tabular::Placement),
                ModelSpec::Tabular(Tabular::CpuShare),
            ],
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let res = evaluate(&runs, &options, None, dir.path(), &mut |_, _, _| {}).unwrap();
    let model = |n: &str| res.models.iter().find(|m| m.name == n).unwrap();
    let mean = model("mean");
    // The placement explains P: the small tree gets within the jitter, the mean does not.
    assert!(
        model("placement").summary.mae_mean < 2.0,
        "{:?}",
        model("placement").summary
    );
    assert!(mean.summary.mae_mean > 15.0, "{:?}", mean.summary);
    // Usage = 100 · P on one CPU: the CPU-share rule is exact.
    assert!(
        model("cpu-share").summary.mae_mean < 1e-3,
        "{:?}",
        model("cpu-share").summary
    );
    // Isolated runs (P ≈ 1): the mean predictor is off by ~1 − mean P, the tree is not.
    assert!(mean.isolated.mae_mean > 15.0 && mean.isolated.n_splits == 4);
    assert!(model("placement").isolated.mae_mean < 2.0);
    // Trivial predictors are never "the best baseline".
    assert!(res.best_baseline().is_none());
    assert!(
        res.headline_markdown().contains("MAE isolated runs"),
        "{}",
        res.headline_markdown()
    );
    // Unknown capacity (unpinned, no quota): the rule reads "not starved".
    let mut unpinned = runs[1].clone();
    unpinned.context.cpuset_size = None;
    let table = train::features::table(&[unpinned], train::features::FeatureSet::CpuShare, 0);
    assert!(table.data[1].is_nan());
    let m = Tabular::CpuShare
        .fit(&table, &[0.5], &table, &[0.5], 0)
        .unwrap();
    assert_eq!(m.predict(&table), vec![1.0]);
}

#[test]
fn a_refit_trains_on_training_and_validation_runs_for_the_chosen_epochs() {
    let runs = synthetic_runs(6, 6, 8);
    let (train, val): (Vec<&Run>, Vec<&Run>) = runs.iter().partition(|r| r.app != "app5");
    let opts = train::cf::TrainOptions {
        epochs: 3,
        patience: 3,
        blocks: 1,
        max_len: 16,
        lr: 1e-3,
        refit: true,
        pre_norm: true,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = train::cf::train_on(
        &train,
        &val,
        &opts,
        dir.path(),
        false,
        serde_json::Value::Null,
    )
    .unwrap();
    assert_eq!(summary.refit_runs, Some(runs.len()));
    let refit: Vec<String> = std::fs::read_to_string(dir.path().join("refit/curve.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    assert_eq!(refit.len(), summary.best_epoch, "{refit:?}");
    // The model kept is the refit one, and it is pre-LN.
    let kept = model::Checkpoint::read(dir.path()).unwrap();
    let refit_ck = model::Checkpoint::read(&dir.path().join("refit")).unwrap();
    assert_eq!(kept.model_id, refit_ck.model_id);
    assert!(kept.config.pre_norm);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("train.json")).unwrap())
            .unwrap();
    assert_eq!(written["refit_runs"], runs.len());
}

/// `--inner-folds`: every candidate trains once per group of held-out applications, the best
/// mean validation MAE wins, and the final model trains on every application (training and
/// validation) for the chosen candidate's median best epoch, without validation; the inner
/// folds keep no weights.
#[test]
fn an_inner_selection_chooses_on_training_applications_and_trains_on_all_of_them() {
    let runs = synthetic_runs(6, 6, 9);
    let (train, val): (Vec<&Run>, Vec<&Run>) = runs.iter().partition(|r| r.app != "app5");
    let opts = train::cf::TrainOptions {
        epochs: 2,
        patience: 2,
        blocks: 1,
        max_len: 16,
        lr: 1e-3,
        select: Some(train::select::SelectOptions {
            lrs: vec![1e-3, 3e-3],
            blocks: vec![1],
            folds: 2,
        }),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = train::cf::train_on(
        &train,
        &val,
        &opts,
        dir.path(),
        false,
        serde_json::Value::Null,
    )
    .unwrap();
    let sel = summary
        .selection
        .clone()
        .expect("the selection is in train.json");
    let written: train::select::Selection = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(train::select::SELECTION_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(written, sel);
    // Two groups of three applications, all six of train + val, each held out once.
    assert_eq!(sel.groups.len(), 2);
    let mut dealt = sel.groups.concat();
    dealt.sort();
    assert_eq!(dealt, (0..6).map(|a| format!("app{a}")).collect::<Vec<_>>());
    assert_eq!(sel.candidates.len(), 2);
    for c in &sel.candidates {
        assert_eq!(c.val_mae.len(), 2, "{c:?}");
        assert!(c.mean_val_mae.is_finite(), "{c:?}");
    }
    let best = sel.candidates[sel.chosen].mean_val_mae;
    assert!(sel.candidates.iter().all(|c| best <= c.mean_val_mae));
    // The final model: the chosen recipe, every run, the chosen number of epochs.
    assert_eq!(summary.options.lr, sel.candidates[sel.chosen].lr);
    assert_eq!(summary.n_train_runs, runs.len());
    assert_eq!(summary.n_val_runs, 0);
    let epochs = std::fs::read_to_string(dir.path().join("curve.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(epochs, sel.epochs);
    assert!(dir.path().join(model::WEIGHTS_FILE).exists());
    // The checkpoint records the input length it was trained on (live mode's default window).
    let mut lens: Vec<usize> = runs.iter().map(|r| r.t).collect();
    lens.sort_unstable();
    let ck = model::Checkpoint::read(dir.path()).unwrap();
    assert_eq!(ck.training["input_len_s"], lens[lens.len() / 2]);
    // The inner folds keep their curves, not their weights.
    let mut stack = vec![dir.path().join("select")];
    let (mut curves, mut weights) = (0, 0);
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() == "curve.csv" {
                curves += 1;
            } else if p.extension().is_some_and(|x| x == "safetensors") {
                weights += 1;
            }
        }
    }
    assert_eq!((curves, weights), (4, 0));
    // A selection cannot be resumed.
    let e = train::cf::train_on(
        &train,
        &val,
        &opts,
        dir.path(),
        true,
        serde_json::Value::Null,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("--resume") && e.contains("--inner-folds"), "{e}");
}

/// `--derived cpu-share`: the ratio is fitted on the training runs, saved with the model and fed
/// at prediction; data that cannot give it is refused with the reason.
#[test]
fn derived_inputs_are_fitted_saved_and_refused_where_the_data_lacks_them() {
    use model::DerivedKind;
    let cat = dataset::catalogue::Catalogue::builtin();
    let cpuset = cat.index_of("placement.cpuset_cpus").unwrap();
    let mut runs = placement_runs();
    for r in &mut runs {
        for row in r.x.chunks_exact_mut(r.f) {
            row[cpuset] = 1.0;
        }
    }
    let (train, val): (Vec<&Run>, Vec<&Run>) = runs.iter().partition(|r| r.app != "app3");
    let opts = train::cf::TrainOptions {
        epochs: 1,
        blocks: 1,
        max_len: 16,
        lr: 1e-3,
        derived: vec![DerivedKind::CpuShare],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let train_in = |opts: &train::cf::TrainOptions, train: &[&Run]| {
        train::cf::train_on(
            train,
            &val,
            opts,
            dir.path(),
            false,
            serde_json::Value::Null,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    train_in(&opts, &train).unwrap();
    let ck = model::Checkpoint::read(dir.path()).unwrap();
    let d = &ck.normalizer.derived;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].kind, DerivedKind::CpuShare);
    assert_eq!(
        d[0].sources[..2],
        [cat.index_of("cpu.usage_pct").unwrap(), cpuset]
    );
    // usage 100 P with P in {1, 0.9, 0.5} (less noise) on one CPU: the share's median is P's, 0.9.
    assert!((d[0].center - 0.9).abs() < 0.03, "{:?}", d[0]);
    // usage (kept) + the share, each with its flag.
    assert_eq!(ck.config.n_features, 4);
    let mut pred = model::Predictor::load(dir.path()).unwrap();
    // What the server lists in /readyz's `model_derived_inputs`.
    assert_eq!(pred.derived_inputs(), ["cpu-share"]);
    let w = model::Window {
        data: &runs[0].x,
        t: runs[0].t,
    };
    assert!(pred.predict(&[w]).unwrap()[0].p.is_finite());
    // What is refused, and why.
    let plain = train::cf::TrainOptions {
        encoding: train::cf::InputEncoding::Plain,
        ..opts.clone()
    };
    assert!(train_in(&plain, &train)
        .unwrap_err()
        .contains("masked encoding"));
    let twice = train::cf::TrainOptions {
        derived: vec![DerivedKind::CpuShare; 2],
        ..opts.clone()
    };
    assert!(train_in(&twice, &train)
        .unwrap_err()
        .contains("given twice"));
    // No neighbour ever contends here: contending_cpu_pct is null throughout.
    let demand = train::cf::TrainOptions {
        derived: vec![DerivedKind::CpuDemand],
        ..opts.clone()
    };
    let e = train_in(&demand, &train).unwrap_err();
    assert!(
        e.contains("cpu-demand") && e.contains("placement.contending_cpu_pct"),
        "{e}"
    );
    let narrow = synthetic_runs(2, 6, 1);
    let narrow: Vec<&Run> = narrow.iter().collect();
    let e = train_in(&opts, &narrow).unwrap_err();
    assert!(e.contains("catalogue") && e.contains("6 features"), "{e}");
}
