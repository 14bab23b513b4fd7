//! Choosing the training recipe on the training applications only (`--inner-folds K`, with
//! `--select-lr` and `--select-blocks`): the applications a model may learn from (its
//! validation applications included) are dealt, seeded, into K groups; every candidate recipe
//! (peak learning rate × encoder blocks) is trained once per group with that group held out for
//! early stopping, and scored by the mean of its best validation MAEs. The best candidate is
//! then trained on all of those applications, with no validation, for the median of its best
//! epochs (as `--refit` does after plain early stopping). Costs candidates × K + 1 trainings;
//! the inner folds keep their `curve.csv` and `train.json` under `OUT/select/`, not their
//! weights, and `OUT/selection.json` records every score.

use std::path::Path;

use model::Predictor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cf::{TrainOptions, TrainSummary, OPTIMIZER_FILE};
use crate::data::Run;
use crate::error::{io_err, Result, TrainError};

/// The file, beside the model, that records a selection.
pub const SELECTION_FILE: &str = "selection.json";

/// What an inner selection tries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectOptions {
    /// Peak learning rates.
    pub lrs: Vec<f64>,
    /// Encoder blocks per branch (0 = the model's default).
    pub blocks: Vec<usize>,
    /// Groups the applications are dealt into; each is held out once.
    pub folds: usize,
}

/// One candidate recipe and how it did on the inner folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    pub lr: f64,
    pub blocks: usize,
    /// Best validation MAE (points of P×100) on each inner fold's held-out group.
    pub val_mae: Vec<f64>,
    /// The epoch of that best, per inner fold.
    pub best_epochs: Vec<usize>,
    /// Mean of `val_mae` (NaN when a fold had none).
    pub mean_val_mae: f64,
}

/// A whole selection: the groups, every candidate's scores and what was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The applications held out by each inner fold.
    pub groups: Vec<Vec<String>>,
    pub candidates: Vec<CandidateScore>,
    /// Index of the chosen candidate in `candidates`.
    pub chosen: usize,
    /// Epochs of the final training: the median best epoch of the chosen candidate.
    pub epochs: usize,
}

impl SelectOptions {
    /// Refuses what cannot select anything, naming the flag.
    fn check(&self, apps: &[String]) -> Result<()> {
        if self.lrs.is_empty() || self.blocks.is_empty() {
            return Err(TrainError::Invalid(
                "--select-lr and --select-blocks need at least one value each".into(),
            ));
        }
        if let Some(lr) = self.lrs.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(TrainError::Invalid(format!(
                "--select-lr {lr}: a learning rate must be positive"
            )));
        }
        if self.folds < 2 {
            return Err(TrainError::Invalid(format!(
                "--inner-folds {}: at least 2 groups are needed to hold one out",
                self.folds
            )));
        }
        if apps.len() < self.folds {
            return Err(TrainError::Invalid(format!(
                "--inner-folds {}: only {} applications to learn from ({}); use at most {}",
                self.folds,
                apps.len(),
                apps.join(", "),
                apps.len()
            )));
        }
        Ok(())
    }
}

/// Deals `apps` (once each, shuffled with `seed`) round-robin into `k` groups, each sorted.
pub fn deal_groups(apps: &[String], k: usize, seed: u64) -> Vec<Vec<String>> {
    let mut a = apps.to_vec();
    a.sort();
    a.dedup();
    a.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5e1e_c7ed));
    let mut groups = vec![Vec::new(); k.max(1)];
    for (i, app) in a.into_iter().enumerate() {
        groups[i % k.max(1)].push(app);
    }
    for g in &mut groups {
        g.sort();
    }
    groups
}

/// The lower median (`v` non-empty).
fn median(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[(s.len() - 1) / 2]
}

/// Removes an inner fold's weights and optimiser state (only its curve and summary stay).
fn drop_weights(dir: &Path) {
    for p in [
        dir.join(model::WEIGHTS_FILE),
        dir.join("last").join(model::WEIGHTS_FILE),
        dir.join("last").join(OPTIMIZER_FILE),
    ] {
        let _ = std::fs::remove_file(p);
    }
}

/// One candidate on every inner fold.
fn score_candidate(
    pool: &[&Run],
    groups: &[Vec<String>],
    opts: &TrainOptions,
    out: &Path,
    extra: &serde_json::Value,
) -> Result<CandidateScore> {
    let mut score = CandidateScore {
        lr: opts.lr,
        blocks: opts.blocks,
        val_mae: Vec::new(),
        best_epochs: Vec::new(),
        mean_val_mae: f64::NAN,
    };
    for (g, held) in groups.iter().enumerate() {
        let (val, train): (Vec<&Run>, Vec<&Run>) =
            pool.iter().copied().partition(|r| held.contains(&r.app));
        let dir = out
            .join("select")
            .join(format!("lr{:e}-blocks{}", opts.lr, opts.blocks))
            .join(format!("fold{g}"));
        let (s, _) = crate::fit::train_on(&train, &val, opts, &dir, false, extra.clone())?;
        drop_weights(&dir);
        tracing::info!(
            lr = opts.lr,
            blocks = opts.blocks,
            fold = g,
            held_out = ?held,
            val_mae = s.best_val_mae,
            best_epoch = s.best_epoch,
            "inner fold done"
        );
        score.val_mae.push(s.best_val_mae);
        score.best_epochs.push(s.best_epoch.max(1));
    }
    score.mean_val_mae = score.val_mae.iter().sum::<f64>() / score.val_mae.len() as f64;
    Ok(score)
}

/// The inner selection on `train` and `val` together, then the final training of the chosen
/// recipe on all of them into `out` (see the module's documentation).
pub(crate) fn select_and_train(
    train: &[&Run],
    val: &[&Run],
    opts: &TrainOptions,
    sel: &SelectOptions,
    out: &Path,
    extra: serde_json::Value,
) -> Result<(TrainSummary, Predictor)> {
    let pool: Vec<&Run> = train.iter().chain(val).copied().collect();
    let apps = crate::fit::app_names(&pool);
    sel.check(&apps)?;
    let groups = deal_groups(&apps, sel.folds, opts.seed);
    let mut candidates = Vec::new();
    for &lr in &sel.lrs {
        for &blocks in &sel.blocks {
            let o = TrainOptions {
                lr,
                blocks,
                select: None,
                refit: false,
                ..opts.clone()
            };
            candidates.push(score_candidate(&pool, &groups, &o, out, &extra)?);
        }
    }
    let chosen = (0..candidates.len())
        .min_by(|&a, &b| {
            let (x, y) = (candidates[a].mean_val_mae, candidates[b].mean_val_mae);
            // NaN (a fold without a score) sorts last.
            x.is_nan().cmp(&y.is_nan()).then(x.total_cmp(&y))
        })
        .unwrap_or(0);
    let c = &candidates[chosen];
    let selection = Selection {
        epochs: median(&c.best_epochs),
        groups,
        candidates: candidates.clone(),
        chosen,
    };
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    crate::fit::write_json(&out.join(SELECTION_FILE), &selection)?;
    tracing::info!(
        lr = c.lr,
        blocks = c.blocks,
        epochs = selection.epochs,
        inner_val_mae = c.mean_val_mae,
        "recipe chosen by inner leave-applications-out; training on every application"
    );
    let final_opts = TrainOptions {
        lr: c.lr,
        blocks: c.blocks,
        select: None,
        refit: false,
        ..opts.clone()
    };
    let (mut summary, pred) = crate::fit::train_once(
        &pool,
        &[],
        &final_opts,
        out,
        false,
        extra,
        Some(selection.epochs),
    )?;
    summary.options = TrainOptions {
        select: opts.select.clone(),
        ..final_opts
    };
    summary.best_val_mae = c.mean_val_mae;
    summary.selection = Some(selection);
    crate::fit::write_json(&out.join("train.json"), &summary)?;
    Ok((summary, pred))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn applications_are_dealt_once_each_into_every_group() {
        let apps = names(&["e", "a", "c", "b", "d", "a"]);
        let g = deal_groups(&apps, 2, 7);
        assert_eq!(g.len(), 2);
        let mut all: Vec<String> = g.concat();
        all.sort();
        assert_eq!(all, names(&["a", "b", "c", "d", "e"]));
        assert!(g.iter().all(|x| x.len() >= 2), "{g:?}");
        assert_eq!(
            g,
            deal_groups(&apps, 2, 7),
            "the same seed deals the same groups"
        );
    }

    #[test]
    fn selections_that_cannot_run_name_the_flag() {
        let apps = names(&["a", "b", "c"]);
        let ok = SelectOptions {
            lrs: vec![1e-3],
            blocks: vec![1],
            folds: 3,
        };
        assert!(ok.check(&apps).is_ok());
        let e = |s: SelectOptions| s.check(&apps).unwrap_err().to_string();
        let m = e(SelectOptions {
            folds: 4,
            ..ok.clone()
        });
        assert!(
            m.contains("--inner-folds 4") && m.contains("a, b, c"),
            "{m}"
        );
        let m = e(SelectOptions {
            folds: 1,
            ..ok.clone()
        });
        assert!(m.contains("--inner-folds 1"), "{m}");
        let m = e(SelectOptions {
            lrs: vec![1e-3, -1.0],
            ..ok.clone()
        });
        assert!(m.contains("--select-lr -1"), "{m}");
        let m = e(SelectOptions {
            blocks: vec![],
            ..ok
        });
        assert!(m.contains("--select-blocks"), "{m}");
    }

    #[test]
    fn the_lower_median() {
        assert_eq!(median(&[5]), 5);
        assert_eq!(median(&[9, 2, 4]), 4);
        assert_eq!(median(&[7, 3, 4, 8]), 4);
    }
}
