//! Unit tests of the splits: counts, kinds, reproducibility, validation applications.

use super::*;

fn apps(n_s: usize, n_d: usize) -> Vec<AppInfo> {
    (0..n_s)
        .map(|i| AppInfo {
            name: format!("s{i}"),
            dynamic: false,
            n_runs: 10,
        })
        .chain((0..n_d).map(|i| AppInfo {
            name: format!("d{i}"),
            dynamic: true,
            n_runs: 10,
        }))
        .collect()
}

#[test]
fn paper_counts_match_the_paper_on_eleven_apps() {
    let a = apps(6, 5);
    let splits = paper_splits(&a, 6, 42, 1).unwrap();
    assert_eq!(splits.len(), 6);
    for s in &splits {
        s.check().unwrap();
        assert_eq!(s.test_apps.iter().filter(|n| n.starts_with('s')).count(), 2);
        assert_eq!(s.test_apps.iter().filter(|n| n.starts_with('d')).count(), 2);
        assert_eq!(s.val_apps.len(), 1);
        assert_eq!(s.train_apps.len(), 6);
    }
    // distinct partitions, and reproducible from the seed
    let keys: BTreeSet<_> = splits.iter().map(|s| s.test_apps.clone()).collect();
    assert!(keys.len() >= 5, "{keys:?}");
    assert_eq!(splits, paper_splits(&a, 6, 42, 1).unwrap());
    assert_ne!(splits, paper_splits(&a, 6, 43, 1).unwrap());
}

#[test]
fn degrades_with_few_apps() {
    for (ns, nd) in [
        (1, 1),
        (2, 0),
        (0, 2),
        (3, 0),
        (1, 2),
        (2, 2),
        (4, 4),
        (5, 3),
    ] {
        let a = apps(ns, nd);
        let splits = paper_splits(&a, 3, 1, 1).unwrap();
        for s in &splits {
            s.check().unwrap();
            let total = s.train_apps.len() + s.val_apps.len() + s.test_apps.len();
            assert_eq!(total, ns + nd, "{s:?}");
            assert!(!s.train_apps.is_empty());
            if ns + nd >= 3 {
                assert_eq!(s.val_apps.len(), 1, "{s:?}");
            } else {
                assert!(s.val_from_train_runs.is_some());
            }
        }
    }
    assert!(matches!(
        paper_splits(&apps(1, 0), 6, 1, 1),
        Err(TrainError::TooFewApps { .. })
    ));
    assert!(matches!(
        paper_splits(&apps(0, 0), 6, 1, 1),
        Err(TrainError::TooFewApps { .. })
    ));
}

#[test]
fn loao_covers_every_app_once() {
    let a = apps(3, 2);
    let splits = loao_splits(&a, 7, 1).unwrap();
    assert_eq!(splits.len(), 5);
    let tested: BTreeSet<_> = splits.iter().flat_map(|s| s.test_apps.clone()).collect();
    assert_eq!(tested.len(), 5);
    for s in &splits {
        assert_eq!(s.test_apps.len(), 1);
        assert!(!s.train_apps.contains(&s.test_apps[0]));
        assert!(!s.val_apps.contains(&s.test_apps[0]));
    }
}

#[test]
fn several_validation_apps_keep_both_kinds_and_a_training_app() {
    let a = apps(6, 5);
    let one = loao_splits(&a, 7, 1).unwrap();
    let three = loao_splits(&a, 7, 3).unwrap();
    for (s1, s3) in one.iter().zip(&three) {
        s3.check().unwrap();
        assert_eq!(s3.test_apps, s1.test_apps);
        assert_eq!(s3.val_apps.len(), 3, "{s3:?}");
        // The first validation application is the one a single-app split takes.
        assert!(s3.val_apps.contains(&s1.val_apps[0]), "{s1:?} {s3:?}");
        for kind in ['s', 'd'] {
            assert!(s3.train_apps.iter().any(|n| n.starts_with(kind)), "{s3:?}");
        }
    }
    for s in paper_splits(&a, 6, 42, 2).unwrap() {
        s.check().unwrap();
        assert_eq!((s.test_apps.len(), s.val_apps.len()), (4, 2), "{s:?}");
    }
    // More than there are: one application is always left to train on.
    for s in loao_splits(&apps(2, 2), 1, 10).unwrap() {
        assert_eq!((s.train_apps.len(), s.val_apps.len()), (1, 2), "{s:?}");
    }
    let err = loao_splits(&a, 7, 0).unwrap_err().to_string();
    assert!(err.contains("--val-apps"), "{err}");
}

#[test]
fn overlapping_split_is_rejected() {
    let s = Split {
        name: "x".into(),
        seed: 0,
        train_apps: vec!["a".into(), "b".into()],
        val_apps: vec![],
        test_apps: vec!["b".into()],
        val_from_train_runs: None,
    };
    assert!(s.check().is_err());
}

#[test]
fn train_only_split_takes_val_count_apps_by_the_seed() {
    let a = apps(6, 5);
    let one = train_only_split(&a, &[], 1, 42).unwrap();
    let three = train_only_split(&a, &[], 3, 42).unwrap();
    assert_eq!(one.val_apps.len(), 1, "{one:?}");
    assert_eq!(three.val_apps.len(), 3, "{three:?}");
    assert_eq!(three.train_apps.len() + 3, a.len());
    // The seed's first choice stays: three validation applications add to the one of before.
    assert!(
        three.val_apps.contains(&one.val_apps[0]),
        "{one:?} {three:?}"
    );
    assert_eq!(three, train_only_split(&a, &[], 3, 42).unwrap());
    for kind in ['s', 'd'] {
        assert!(
            three.train_apps.iter().any(|n| n.starts_with(kind)),
            "{three:?}"
        );
    }
    // Named applications win over the count.
    let named = train_only_split(&a, &["d1".into()], 3, 42).unwrap();
    assert_eq!(named.val_apps, vec!["d1".to_string()]);
    for bad in [0, a.len()] {
        let err = train_only_split(&a, &[], bad, 42).unwrap_err().to_string();
        assert!(
            err.contains("--val-count") && err.contains("11 applications"),
            "{err}"
        );
    }
    // Too few applications to hold any out: a count other than the default is refused, not
    // ignored; the default validates on a share of the training runs.
    let two = apps(1, 1);
    let err = train_only_split(&two, &[], 2, 42).unwrap_err().to_string();
    assert!(
        err.contains("--val-count 2") && err.contains("at least 3"),
        "{err}"
    );
    let split = train_only_split(&two, &[], DEFAULT_VAL_APPS, 42).unwrap();
    assert_eq!(split.val_from_train_runs, Some(0.15));
}
