//! One fold of the comparison: a model fitted on a split's training (and validation) runs and
//! its predictions of the test runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::{member_seed, EvalOptions, ModelSpec, SeqTrainer};
use crate::baselines::lstm;
use crate::data::Run;
use crate::error::{io_err, Result, TrainError};
use crate::features::{FeatureSet, Table};
use crate::folds::Fold;
use crate::split::{Split, SplitIdx};

/// What one fold needs.
pub(super) struct FoldCtx<'a> {
    pub runs: &'a [Run],
    pub split: &'a Split,
    pub idx: &'a SplitIdx,
    pub ks: &'a [usize],
    pub tables: &'a BTreeMap<(FeatureSet, usize), Table>,
    pub options: &'a EvalOptions,
    pub scratch: &'a Path,
}

impl FoldCtx<'_> {
    fn subset(&self, ii: &[usize]) -> Vec<&Run> {
        ii.iter().map(|&i| &self.runs[i]).collect()
    }

    /// Fits `model` on the split's training (and validation) runs and predicts its test runs
    /// for every prefix k.
    pub fn run<'s>(
        &self,
        model: &ModelSpec,
        keys: Vec<String>,
        seq: Option<&mut (dyn SeqTrainer + 's)>,
    ) -> Result<Fold> {
        let (split, idx) = (self.split, self.idx);
        let t0 = Instant::now();
        let mut p_hat = BTreeMap::new();
        let chosen;
        match model {
            ModelSpec::Tabular(t) => {
                let y = |ii: &[usize]| {
                    ii.iter()
                        .map(|&i| self.runs[i].p as f64)
                        .collect::<Vec<_>>()
                };
                let set = t.feature_set();
                let full = &self.tables[&(set, 0)];
                let mut m = t.fit(
                    &full.select(&idx.train),
                    &y(&idx.train),
                    &full.select(&idx.val),
                    &y(&idx.val),
                    split.seed,
                )?;
                if self.options.refit_baselines && !idx.val.is_empty() {
                    let all = [&idx.train[..], &idx.val[..]].concat();
                    m = m.refit(&full.select(&all), &y(&all), split.seed)?;
                    chosen = format!("{} refit_rows={}", m.describe(), all.len());
                } else {
                    chosen = m.describe();
                }
                for &k in self.ks {
                    p_hat.insert(k, m.predict(&self.tables[&(set, k)].select(&idx.test)));
                }
            }
            ModelSpec::Lstm => {
                let (tr, va, te) = (
                    self.subset(&idx.train),
                    self.subset(&idx.val),
                    self.subset(&idx.test),
                );
                let m = lstm::fit(&tr, &va, self.options.lstm, split.seed)?;
                chosen = m.describe();
                for &k in self.ks {
                    p_hat.insert(k, m.predict(&te, k)?);
                }
            }
            ModelSpec::CloudFormer(variant) => {
                let trainer = seq.ok_or_else(|| {
                    TrainError::Invalid(format!("model {variant} needs the CloudFormer trainer"))
                })?;
                let (tr, va, te) = (
                    self.subset(&idx.train),
                    self.subset(&idx.val),
                    self.subset(&idx.test),
                );
                let n = self.options.members.max(1);
                let mut described = Vec::with_capacity(n);
                for j in 0..n {
                    // Member 0 where a single model always was; the others beside it.
                    let mut dir = self.scratch.join(&split.name).join(variant);
                    if j > 0 {
                        dir = dir.join(format!("member-{j}"));
                    }
                    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                    let seed = member_seed(split.seed, j);
                    let mut m = trainer.fit(variant, &tr, &va, seed, &dir)?;
                    described.push(m.describe());
                    for &k in self.ks {
                        let p = m.predict(&te, k)?;
                        let sum = p_hat.entry(k).or_insert_with(|| vec![0.0; p.len()]);
                        for (s, v) in sum.iter_mut().zip(&p) {
                            *s += v / n as f64;
                        }
                    }
                }
                chosen = if n == 1 {
                    described.remove(0)
                } else {
                    format!("members={n}: {}", described.join(" | "))
                };
            }
        }
        Ok(Fold {
            split: split.name.clone(),
            model: model.name(),
            seconds: t0.elapsed().as_secs_f64(),
            chosen,
            keys,
            p_hat,
        })
    }
}
