//! The folds gathered into the results: metrics per split and per early-prediction k, the
//! isolated test runs alone, every prediction, and the label-noise floor.

use std::collections::BTreeMap;

use super::{EvalOptions, EvalResults, ModelResult, PredRow};
use crate::data::Run;
use crate::error::Result;
use crate::folds::Fold;
use crate::metrics::{self, compute, summarise, Metrics, Pred};
use crate::split::{app_infos, Split};

/// The test runs `test` with their predictions `p_hat` (clamped to [0, 1]; a non-finite P̂
/// counts as 1).
fn preds_of(runs: &[Run], test: &[usize], p_hat: &[f64]) -> Vec<Pred> {
    test.iter()
        .zip(p_hat)
        .map(|(&i, &p_hat)| {
            let r = &runs[i];
            Pred {
                key: r.key(),
                app: r.app.clone(),
                p: r.p as f64,
                p_hat: if p_hat.is_finite() {
                    p_hat.clamp(0.0, 1.0)
                } else {
                    1.0
                },
                label_noise: r.label_noise as f64,
            }
        })
        .collect()
}

/// Per model: metrics per split, metrics per early-prediction k, descriptions, fold seconds,
/// metrics per split on the isolated test runs only.
type ModelAcc = (
    Vec<Metrics>,
    BTreeMap<usize, Vec<Metrics>>,
    Vec<String>,
    Vec<f64>,
    Vec<Metrics>,
);

/// The results of `folds` (in split-major order, as [`run_folds`] makes them).
pub(super) fn aggregate(
    runs: &[Run],
    options: &EvalOptions,
    splits: Vec<Split>,
    folds: &[Fold],
) -> Result<EvalResults> {
    let mut per_model: BTreeMap<String, ModelAcc> = BTreeMap::new();
    let mut predictions = Vec::new();
    let mut all_test_preds: Vec<Pred> = Vec::new();
    for split in &splits {
        let idx = split.indices(runs)?;
        let truth: Vec<f64> = idx.test.iter().map(|&i| runs[i].p as f64).collect();
        all_test_preds.extend(preds_of(runs, &idx.test, &truth));
        for fold in folds.iter().filter(|f| f.split == split.name) {
            let entry = per_model.entry(fold.model.clone()).or_default();
            entry.2.push(fold.chosen.clone());
            entry.3.push(fold.seconds);
            for (&k, ph) in &fold.p_hat {
                let preds = preds_of(runs, &idx.test, ph);
                predictions.extend(preds.iter().map(|p| PredRow {
                    split: split.name.clone(),
                    model: fold.model.clone(),
                    k,
                    key: p.key.clone(),
                    app: p.app.clone(),
                    p: p.p,
                    p_hat: p.p_hat,
                }));
                let m = compute(&preds);
                if k == 0 {
                    entry.0.push(m);
                    let isolated: Vec<Pred> = idx
                        .test
                        .iter()
                        .zip(&preds)
                        .filter(|(&i, _)| runs[i].context.is_isolated())
                        .map(|(_, p)| p.clone())
                        .collect();
                    entry.4.push(compute(&isolated));
                } else {
                    entry.1.entry(k).or_default().push(m);
                }
            }
        }
    }
    let models = options
        .models
        .iter()
        .filter_map(|m| {
            let name = m.name();
            per_model
                .remove(&name)
                .map(
                    |(per_split, early, chosen, fold_seconds, isolated)| ModelResult {
                        summary: summarise(&per_split),
                        isolated: summarise(&isolated),
                        early: early.into_iter().map(|(k, v)| (k, summarise(&v))).collect(),
                        name,
                        per_split,
                        chosen,
                        fit_seconds: fold_seconds.iter().sum(),
                        fold_seconds,
                    },
                )
        })
        .collect();
    Ok(EvalResults {
        options: options.clone(),
        apps: app_infos(runs),
        n_runs: runs.len(),
        splits,
        models,
        noise_floor: metrics::noise_floor(&all_test_preds),
        predictions,
    })
}
