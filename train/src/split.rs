//! Leave-applications-out splits.
//!
//! * `paper`: `n` seeded random partitions of the applications (the paper uses 6): test = 2
//!   static-only + 2 dynamic applications when the dataset has enough of each, one further
//!   application held out for validation (early stopping, hyper-parameter search), the rest train.
//!   The test set keeps the paper's share (4 of 11 applications, rounded).
//!   An application is **dynamic** when at least one of its runs has a non-static scenario
//!   (`increasing`, `decreasing`, `periodic`, `random`, …), otherwise **static-only**. With fewer
//!   applications the split degrades: each kind keeps at least one application in training, the test
//!   set shrinks first, and with only two applications there is no validation application (the
//!   validation runs are then a seeded 15 % of the training application's runs).
//! * `loao`: leave-one-application-out, every application once; validation is one other
//!   application chosen by the seed (when at least 3 applications exist).
//!
//! Both take `n_val`, the validation applications per split (1 above; `eval --val-apps N`):
//! early stopping on one application picks epochs by that application's noise, more of them
//! average it out. They are taken one by one under the same rule (an application whose kind
//! stays in training), and at least one training application is always left.
//!
//! A test application never appears in training or validation; the normaliser and every
//! baseline's preprocessing are fitted on [`SplitIdx::train`] only.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{apps_of, Run};
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Paper,
    Loao,
}

impl std::str::FromStr for Protocol {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "paper" => Ok(Protocol::Paper),
            "loao" => Ok(Protocol::Loao),
            o => Err(TrainError::Invalid(format!(
                "unknown protocol {o:?} (paper | loao)"
            ))),
        }
    }
}

/// An application and its kind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppInfo {
    pub name: String,
    pub dynamic: bool,
    pub n_runs: usize,
}

/// The applications of a dataset, sorted by name, with their kind.
pub fn app_infos(runs: &[Run]) -> Vec<AppInfo> {
    let mut dynamic: BTreeMap<&str, bool> = BTreeMap::new();
    for r in runs {
        let d = dynamic.entry(&r.app).or_insert(false);
        *d |= r.is_dynamic();
    }
    apps_of(runs)
        .into_iter()
        .map(|(name, n_runs)| AppInfo {
            dynamic: dynamic[name.as_str()],
            name,
            n_runs,
        })
        .collect()
}

/// One partition of the applications.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Split {
    pub name: String,
    pub seed: u64,
    pub train_apps: Vec<String>,
    pub val_apps: Vec<String>,
    pub test_apps: Vec<String>,
    /// When there is no validation application: validation = this share of training runs.
    pub val_from_train_runs: Option<f64>,
}

/// Run indices of one split.
#[derive(Debug, Clone, Default)]
pub struct SplitIdx {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    /// Checks that the three sets of applications are disjoint and train/test are non-empty.
    pub fn check(&self) -> Result<()> {
        let tr: BTreeSet<_> = self.train_apps.iter().collect();
        let va: BTreeSet<_> = self.val_apps.iter().collect();
        let te: BTreeSet<_> = self.test_apps.iter().collect();
        if tr.is_empty() || te.is_empty() {
            return Err(TrainError::Invalid(format!(
                "split {}: empty train or test set",
                self.name
            )));
        }
        if let Some(a) = te.iter().find(|a| tr.contains(*a) || va.contains(*a)) {
            return Err(TrainError::Invalid(format!(
                "split {}: test application {a} is also in train/validation",
                self.name
            )));
        }
        if let Some(a) = va.iter().find(|a| tr.contains(*a)) {
            return Err(TrainError::Invalid(format!(
                "split {}: validation application {a} is also in train",
                self.name
            )));
        }
        Ok(())
    }

    /// The run indices of each part. Runs of applications in no part are ignored.
    pub fn indices(&self, runs: &[Run]) -> Result<SplitIdx> {
        self.check()?;
        let tr: BTreeSet<&str> = self.train_apps.iter().map(String::as_str).collect();
        let va: BTreeSet<&str> = self.val_apps.iter().map(String::as_str).collect();
        let te: BTreeSet<&str> = self.test_apps.iter().map(String::as_str).collect();
        let mut idx = SplitIdx::default();
        for (i, r) in runs.iter().enumerate() {
            if te.contains(r.app.as_str()) {
                idx.test.push(i);
            } else if va.contains(r.app.as_str()) {
                idx.val.push(i);
            } else if tr.contains(r.app.as_str()) {
                idx.train.push(i);
            }
        }
        if let Some(frac) = self.val_from_train_runs {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5a5a);
            let mut tr = std::mem::take(&mut idx.train);
            tr.shuffle(&mut rng);
            let n_val = ((tr.len() as f64 * frac).round() as usize)
                .clamp(1, tr.len().saturating_sub(1).max(1));
            if tr.len() >= 2 {
                idx.val = tr.split_off(tr.len() - n_val);
            }
            tr.sort_unstable();
            idx.val.sort_unstable();
            idx.train = tr;
        }
        if idx.train.is_empty() || idx.test.is_empty() {
            return Err(TrainError::Invalid(format!(
                "split {}: no training or no test runs ({} / {})",
                self.name,
                idx.train.len(),
                idx.test.len()
            )));
        }
        Ok(idx)
    }
}

fn need_two(apps: &[AppInfo]) -> Result<()> {
    if apps.len() < 2 {
        return Err(TrainError::TooFewApps {
            n: apps.len(),
            apps: apps
                .iter()
                .map(|a| a.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}

/// How many static-only and dynamic applications go to test (paper: 2 + 2 out of 6 + 5).
fn test_counts(n_static: usize, n_dynamic: usize) -> (usize, usize) {
    let n = n_static + n_dynamic;
    // Keep at least one application of each kind in training when there are two or more.
    let mut s = 2.min(n_static.saturating_sub(1));
    let mut d = 2.min(n_dynamic.saturating_sub(1));
    // The paper's share of test applications (4 of 11), leaving >= 1 training app and >= 1
    // validation app when n >= 3.
    let share = ((n as f64 * 4.0 / 11.0).round() as usize).max(1);
    let cap = share.min(if n >= 3 { n - 2 } else { n - 1 });
    while s + d > cap {
        if s >= d {
            s -= 1;
        } else {
            d -= 1;
        }
    }
    if s + d == 0 {
        // e.g. one static + one dynamic app: test one of them.
        if n_static > 0 && n_dynamic >= n_static {
            s = 1;
        } else {
            d = 1;
        }
    }
    (s, d)
}

/// The paper's protocol: `n_splits` seeded random partitions (distinct when possible).
pub fn paper_splits(
    apps: &[AppInfo],
    n_splits: usize,
    seed: u64,
    n_val: usize,
) -> Result<Vec<Split>> {
    need_two(apps)?;
    need_val(n_val)?;
    if n_splits == 0 {
        return Err(TrainError::Invalid("--splits must be at least 1".into()));
    }
    let statics: Vec<&AppInfo> = apps.iter().filter(|a| !a.dynamic).collect();
    let dynamics: Vec<&AppInfo> = apps.iter().filter(|a| a.dynamic).collect();
    let (n_s, n_d) = test_counts(statics.len(), dynamics.len());
    let mut out: Vec<Split> = Vec::new();
    let mut seen: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for i in 0..n_splits {
        let mut tries = 0u64;
        loop {
            let split_seed = seed
                .wrapping_mul(1_000_003)
                .wrapping_add(i as u64 * 7919 + tries);
            let mut rng = ChaCha8Rng::seed_from_u64(split_seed);
            let mut s: Vec<&AppInfo> = statics.clone();
            let mut d: Vec<&AppInfo> = dynamics.clone();
            s.shuffle(&mut rng);
            d.shuffle(&mut rng);
            let mut test: Vec<String> = s[..n_s]
                .iter()
                .chain(&d[..n_d])
                .map(|a| a.name.clone())
                .collect();
            let mut rest: Vec<&AppInfo> = s[n_s..].iter().chain(&d[n_d..]).copied().collect();
            rest.shuffle(&mut rng);
            let (val, val_frac) = pick_val(&mut rest, n_val);
            let mut train: Vec<String> = rest.iter().map(|a| a.name.clone()).collect();
            test.sort();
            train.sort();
            let key = (test.clone(), val.clone());
            tries += 1;
            if seen.contains(&key) && tries < 200 {
                continue;
            }
            seen.insert(key);
            let split = Split {
                name: format!("paper-{i}"),
                seed: split_seed,
                train_apps: train,
                val_apps: val,
                test_apps: test,
                val_from_train_runs: val_frac,
            };
            split.check()?;
            out.push(split);
            break;
        }
    }
    Ok(out)
}

/// Validation applications per split unless told otherwise.
pub const DEFAULT_VAL_APPS: usize = 1;

/// [`DEFAULT_VAL_APPS`] as a serde default.
pub(crate) fn default_val_count() -> usize {
    DEFAULT_VAL_APPS
}

/// Whether a validation count is the default (then options files leave it out).
pub(crate) fn is_default_val_count(v: &usize) -> bool {
    *v == DEFAULT_VAL_APPS
}

/// Takes up to `n_val` validation applications out of `rest` (already shuffled), one by one,
/// each time the first whose kind stays represented in the rest (else the first), and always
/// leaves at least one application to train on. With fewer than 2 applications there is no
/// validation application: 15 % of the training runs validate instead.
fn pick_val(rest: &mut Vec<&AppInfo>, n_val: usize) -> (Vec<String>, Option<f64>) {
    if rest.len() < 2 {
        return (Vec::new(), Some(0.15));
    }
    let mut val = Vec::new();
    while val.len() < n_val && rest.len() >= 2 {
        let pos = (0..rest.len())
            .find(|&i| {
                let kind = rest[i].dynamic;
                rest.iter()
                    .enumerate()
                    .any(|(j, a)| j != i && a.dynamic == kind)
            })
            .unwrap_or(0);
        val.push(rest.remove(pos).name.clone());
    }
    val.sort();
    (val, None)
}

/// `n_val` must be at least 1 (a split with no validation application has nothing to stop on).
fn need_val(n_val: usize) -> Result<()> {
    if n_val == 0 {
        return Err(TrainError::Invalid(
            "--val-apps must be at least 1: early stopping needs a validation application".into(),
        ));
    }
    Ok(())
}

/// Leave-one-application-out: one split per application.
pub fn loao_splits(apps: &[AppInfo], seed: u64, n_val: usize) -> Result<Vec<Split>> {
    need_two(apps)?;
    need_val(n_val)?;
    let mut out = Vec::new();
    for (i, a) in apps.iter().enumerate() {
        let split_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(split_seed);
        let mut rest: Vec<&AppInfo> = apps.iter().filter(|b| b.name != a.name).collect();
        rest.shuffle(&mut rng);
        let (val, val_frac) = pick_val(&mut rest, n_val);
        let mut train: Vec<String> = rest.iter().map(|a| a.name.clone()).collect();
        train.sort();
        let split = Split {
            name: format!("loao-{}", a.name),
            seed: split_seed,
            train_apps: train,
            val_apps: val,
            test_apps: vec![a.name.clone()],
            val_from_train_runs: val_frac,
        };
        split.check()?;
        out.push(split);
    }
    Ok(out)
}

/// Splits for a protocol.
pub fn make_splits(
    protocol: Protocol,
    apps: &[AppInfo],
    n_splits: usize,
    seed: u64,
    n_val: usize,
) -> Result<Vec<Split>> {
    match protocol {
        Protocol::Paper => paper_splits(apps, n_splits, seed, n_val),
        Protocol::Loao => loao_splits(apps, seed, n_val),
    }
}

/// A split for training a single model on all applications (`cloudformer train`): the named
/// `val_apps`, else `val_count` applications chosen by the seed (or a share of runs when there
/// are fewer than 3 applications), held out for validation/early stopping; no test.
pub fn train_only_split(
    apps: &[AppInfo],
    val_apps: &[String],
    val_count: usize,
    seed: u64,
) -> Result<Split> {
    need_two(apps).or_else(|e| if apps.len() == 1 { Ok(()) } else { Err(e) })?;
    if apps.is_empty() {
        return Err(TrainError::EmptyDataset(String::new()));
    }
    let names: BTreeSet<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    for v in val_apps {
        if !names.contains(v.as_str()) {
            return Err(TrainError::Invalid(format!(
                "validation application {v:?} is not in the dataset"
            )));
        }
    }
    if val_count == 0 || (val_apps.is_empty() && apps.len() >= 3 && val_count >= apps.len()) {
        return Err(TrainError::Invalid(format!(
            "--val-count {val_count} with {} applications: at least 1, and fewer than the \
             applications (one must be left to train on)",
            apps.len()
        )));
    }
    if val_apps.is_empty() && apps.len() < 3 && val_count != DEFAULT_VAL_APPS {
        return Err(TrainError::Invalid(format!(
            "--val-count {val_count} with {} application(s): validation applications need at \
             least 3 (with fewer, 15 % of the training runs validate); leave --val-count out",
            apps.len()
        )));
    }
    let (val, frac) = if !val_apps.is_empty() {
        (val_apps.to_vec(), None)
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rest: Vec<&AppInfo> = apps.iter().collect();
        rest.shuffle(&mut rng);
        if apps.len() >= 3 {
            pick_val(&mut rest, val_count)
        } else {
            (Vec::new(), Some(0.15))
        }
    };
    let train: Vec<String> = apps
        .iter()
        .filter(|a| !val.contains(&a.name))
        .map(|a| a.name.clone())
        .collect();
    if train.is_empty() {
        return Err(TrainError::Invalid(
            "every application is a validation application".into(),
        ));
    }
    Ok(Split {
        name: "train".into(),
        seed,
        train_apps: train,
        val_apps: val,
        test_apps: Vec::new(),
        val_from_train_runs: frac,
    })
}

/// Train/val indices for a [`train_only_split`] (it has no test set, so [`Split::indices`] would refuse it).
pub fn train_val_indices(split: &Split, runs: &[Run]) -> Result<SplitIdx> {
    let mut s = split.clone();
    s.test_apps = vec!["\u{0}no-test".into()];
    let tr: BTreeSet<&str> = s.train_apps.iter().map(String::as_str).collect();
    let va: BTreeSet<&str> = s.val_apps.iter().map(String::as_str).collect();
    let mut idx = SplitIdx::default();
    for (i, r) in runs.iter().enumerate() {
        if va.contains(r.app.as_str()) {
            idx.val.push(i);
        } else if tr.contains(r.app.as_str()) {
            idx.train.push(i);
        }
    }
    if let Some(frac) = s.val_from_train_runs {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0x5a5a);
        let mut tr = std::mem::take(&mut idx.train);
        tr.shuffle(&mut rng);
        if tr.len() >= 2 {
            let n_val = ((tr.len() as f64 * frac).round() as usize).clamp(1, tr.len() - 1);
            idx.val = tr.split_off(tr.len() - n_val);
        }
        tr.sort_unstable();
        idx.val.sort_unstable();
        idx.train = tr;
    }
    if idx.train.is_empty() {
        return Err(TrainError::EmptyDataset(" (no training runs)".into()));
    }
    Ok(idx)
}

#[cfg(test)]
mod tests;
