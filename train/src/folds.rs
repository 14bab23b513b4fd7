//! An evaluation in parts: each (split, model) fold's predictions are written to
//! `OUT/folds/` as soon as the fold finishes, and an evaluation started again on the same
//! directory takes the folds already there instead of recomputing them. `OUT/folds/plan.json`
//! records what the folds were computed for (the options, the trainer's settings, the
//! dataset's applications); a different evaluation is refused rather than mixed in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{io_err, Result, TrainError};

/// One model's predictions on one split's test runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fold {
    pub split: String,
    pub model: String,
    /// Wall-clock seconds the fold took (fit and predictions).
    pub seconds: f64,
    /// The hyper-parameters the model chose.
    pub chosen: String,
    /// The test runs' keys, in the split's order (checked against the dataset on resume).
    pub keys: Vec<String>,
    /// Prefix length k (0 = the whole run) → P̂ per test run, in `keys` order.
    pub p_hat: BTreeMap<usize, Vec<f64>>,
}

/// The `folds/` directory of one evaluation.
#[derive(Debug, Clone)]
pub struct FoldStore {
    dir: PathBuf,
}

/// The file name of a fold: split and model with anything but `[A-Za-z0-9._-]` as `_`.
fn file_name(split: &str, model: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{}__{}.json", clean(split), clean(model))
}

fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Result<T> {
    let text = std::fs::read_to_string(p).map_err(io_err(p))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: p.to_path_buf(),
        source,
    })
}

/// Writes `value` as JSON to `p` through a temporary file renamed over it, so a fold file is
/// either whole or absent when the process is killed.
fn write_json(p: &Path, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: p.to_path_buf(),
        source,
    })?;
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, json).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, p).map_err(io_err(p))
}

/// The first key path at which two JSON values differ (for the refusal message).
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                first_difference(va, vb, &format!("{path}.{k}"))
            })
        }
        _ if a == b => None,
        _ => Some(format!("{path}: {a} before, {b} now")),
    }
}

impl FoldStore {
    /// Opens (creating) `dir` for the evaluation described by `plan`. A directory whose
    /// `plan.json` describes a different evaluation is refused, naming the first difference.
    pub fn open(dir: &Path, plan: &Value) -> Result<FoldStore> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let p = dir.join("plan.json");
        if p.exists() {
            let mut before: Value = read_json(&p)?;
            // Plans written before models were left out of them listed the models.
            let listed_models = before
                .get_mut("options")
                .and_then(Value::as_object_mut)
                .and_then(|o| o.remove("models"))
                .is_some();
            if let Some(diff) = first_difference(&before, plan, "plan") {
                return Err(TrainError::Invalid(format!(
                    "{} holds folds of a different evaluation ({diff}); use another --out, or \
                     remove {} to start over",
                    dir.display(),
                    dir.display()
                )));
            }
            if listed_models {
                write_json(&p, plan)?;
            }
        } else {
            write_json(&p, plan)?;
        }
        Ok(FoldStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stored fold of (`split`, `model`), if one was written; it must cover `keys`.
    pub fn load(&self, split: &str, model: &str, keys: &[String]) -> Result<Option<Fold>> {
        let p = self.dir.join(file_name(split, model));
        if !p.exists() {
            return Ok(None);
        }
        let fold: Fold = read_json(&p)?;
        let complete = fold.p_hat.values().all(|v| v.len() == keys.len());
        if fold.split != split || fold.model != model || fold.keys != keys || !complete {
            return Err(TrainError::Invalid(format!(
                "{} does not match split {split} / model {model} of this dataset (its test runs \
                 differ); remove it to recompute that fold",
                p.display()
            )));
        }
        Ok(Some(fold))
    }

    /// Writes `fold` (atomically).
    pub fn save(&self, fold: &Fold) -> Result<()> {
        write_json(&self.dir.join(file_name(&fold.split, &fold.model)), fold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fold() -> Fold {
        Fold {
            split: "split-1".into(),
            model: "cf-permetric".into(),
            seconds: 1.5,
            chosen: "epochs=3".into(),
            keys: vec!["a".into(), "b".into()],
            p_hat: BTreeMap::from([(0, vec![0.5, 0.25]), (10, vec![0.75, 1.0])]),
        }
    }

    #[test]
    fn folds_round_trip_and_must_match_their_test_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let s = FoldStore::open(tmp.path(), &json!({"seed": 1})).unwrap();
        let keys = fold().keys;
        assert_eq!(s.load("split-1", "cf-permetric", &keys).unwrap(), None);
        s.save(&fold()).unwrap();
        assert_eq!(
            s.load("split-1", "cf-permetric", &keys).unwrap(),
            Some(fold())
        );
        let e = s.load("split-1", "cf-permetric", &keys[..1]).unwrap_err();
        assert!(e.to_string().contains("split-1__cf-permetric.json"), "{e}");
    }

    #[test]
    fn a_different_evaluation_is_refused_naming_what_differs() {
        let tmp = tempfile::tempdir().unwrap();
        let plan = json!({"seed": 1, "cf": {"lr": 0.001, "blocks": 2}});
        FoldStore::open(tmp.path(), &plan).unwrap();
        FoldStore::open(tmp.path(), &plan).unwrap();
        let other = json!({"seed": 1, "cf": {"lr": 0.001, "blocks": 4}});
        let e = FoldStore::open(tmp.path(), &other).unwrap_err().to_string();
        assert!(e.contains("plan.cf.blocks: 2 before, 4 now"), "{e}");
    }

    #[test]
    fn a_plan_that_listed_its_models_is_read_as_one_that_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let old = json!({"options": {"seed": 1, "models": ["mean"]}});
        std::fs::write(tmp.path().join("plan.json"), old.to_string()).unwrap();
        let now = json!({"options": {"seed": 1}});
        FoldStore::open(tmp.path(), &now).unwrap();
        let stored: Value = read_json(&tmp.path().join("plan.json")).unwrap();
        assert_eq!(stored, now, "rewritten without the models");
        let e = FoldStore::open(tmp.path(), &json!({"options": {"seed": 2}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("plan.options.seed: 1 before, 2 now"), "{e}");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("app=a/b", "cf x"), "app_a_b__cf_x.json");
    }
}
