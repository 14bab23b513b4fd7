//! Baselines on per-run features (and one sequence baseline, the LSTM), fitted on a split's
//! training runs, with their hyper-parameters chosen on the validation runs.

pub mod gbdt;
pub mod glm;
pub mod linear;
pub mod lstm;
pub mod tree;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::features::{FeatureSet, Table};
use crate::metrics::mean_std;

/// A fitted tabular model.
pub trait TabularModel {
    /// One P̂ per row of `x` (raw, un-standardised features of the same [`FeatureSet`]).
    fn predict(&self, x: &Table) -> Vec<f64>;
    /// The chosen hyper-parameters, for the results file.
    fn describe(&self) -> String;
    /// The same model with the hyper-parameters it chose (λ, tree grid point, boosting
    /// rounds), fitted again on (`x`, `y`) without validation: `eval --refit-baselines`, the
    /// baselines' counterpart of CloudFormer's `--refit`.
    fn refit(&self, x: &Table, y: &[f64], seed: u64) -> Result<Box<dyn TabularModel>>;
}

/// Which tabular baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tabular {
    /// Predict the training mean of P.
    Mean,
    /// Linear regression (ridge, closed form, λ chosen on validation) on time-means.
    Linear,
    /// Gamma GLM with the inverse link (IRLS), on time-means.
    Glm,
    /// CART decision tree on time-means (depth/leaf search on validation).
    Tree,
    /// Random forest on time-means (small search on validation).
    Forest,
    /// Random forest on the rich aggregates.
    ForestRich,
    /// Gradient-boosted trees (forust-ml) on the rich aggregates, early stopping on validation.
    Gbdt,
    /// Trivial: a depth-3 tree on the placement alone (tenants, placement, quota), no metrics.
    Placement,
    /// Trivial: the CPU-share rule, P̂ = own CPU usage / the CPUs it may use (no fitting).
    CpuShare,
}

impl Tabular {
    pub const ALL: [Tabular; 9] = [
        Tabular::Mean,
        Tabular::Linear,
        Tabular::Glm,
        Tabular::Tree,
        Tabular::Forest,
        Tabular::ForestRich,
        Tabular::Gbdt,
        Tabular::Placement,
        Tabular::CpuShare,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tabular::Mean => "mean",
            Tabular::Linear => "lr",
            Tabular::Glm => "glm",
            Tabular::Tree => "dt",
            Tabular::Forest => "rf",
            Tabular::ForestRich => "rf-rich",
            Tabular::Gbdt => "gbdt",
            Tabular::Placement => "placement",
            Tabular::CpuShare => "cpu-share",
        }
    }

    /// A trivial predictor (training mean, placement-only tree, CPU-share rule): reported
    /// beside the models, never counted as "the best baseline".
    pub fn is_trivial(self) -> bool {
        matches!(self, Tabular::Mean | Tabular::Placement | Tabular::CpuShare)
    }

    pub fn from_name(s: &str) -> Option<Tabular> {
        Tabular::ALL.into_iter().find(|t| t.name() == s)
    }

    pub fn feature_set(self) -> FeatureSet {
        match self {
            Tabular::ForestRich | Tabular::Gbdt => FeatureSet::Rich,
            Tabular::Placement => FeatureSet::Context,
            Tabular::CpuShare => FeatureSet::CpuShare,
            _ => FeatureSet::Mean,
        }
    }

    /// Fits on (`x`, `y`), choosing hyper-parameters by MAE on (`xv`, `yv`) (when non-empty).
    pub fn fit(
        self,
        x: &Table,
        y: &[f64],
        xv: &Table,
        yv: &[f64],
        seed: u64,
    ) -> Result<Box<dyn TabularModel>> {
        Ok(match self {
            Tabular::Mean => Box::new(MeanModel {
                mean: mean_std(y).0,
            }),
            Tabular::Linear => Box::new(linear::fit(x, y, xv, yv)?),
            Tabular::Glm => Box::new(glm::fit(x, y, xv, yv)?),
            Tabular::Tree => Box::new(tree::fit_tree_search(x, y, xv, yv, seed)),
            Tabular::Forest | Tabular::ForestRich => {
                Box::new(tree::fit_forest_search(x, y, xv, yv, seed))
            }
            Tabular::Gbdt => Box::new(gbdt::fit(x, y, xv, yv, seed)?),
            Tabular::Placement => Box::new(tree::fit_forest(x, y, PLACEMENT_TREE, 1, seed)),
            Tabular::CpuShare => Box::new(CpuShareRule),
        })
    }
}

/// Predicts the training mean.
pub struct MeanModel {
    pub mean: f64,
}

impl TabularModel for MeanModel {
    fn predict(&self, x: &Table) -> Vec<f64> {
        vec![self.mean; x.rows]
    }
    fn describe(&self) -> String {
        format!("mean={:.4}", self.mean)
    }
    fn refit(&self, _x: &Table, y: &[f64], _seed: u64) -> Result<Box<dyn TabularModel>> {
        Ok(Box::new(MeanModel {
            mean: mean_std(y).0,
        }))
    }
}

/// The placement-only tree: small on purpose (it shows what the placement alone explains).
pub const PLACEMENT_TREE: tree::TreeParams = tree::TreeParams {
    max_depth: 3,
    min_leaf: 5,
    max_features: 0,
};

/// The CPU-share rule on [`FeatureSet::CpuShare`] rows: P̂ = (mean CPU usage / 100) / capacity,
/// in [0.01, 1]; 1 when the usage or the capacity is unknown (no evidence of starvation). It
/// reads an idle tenant as degraded: that is the rule's known blind spot.
pub struct CpuShareRule;

impl TabularModel for CpuShareRule {
    fn predict(&self, x: &Table) -> Vec<f64> {
        (0..x.rows)
            .map(|r| match x.row(r) {
                [usage, capacity]
                    if usage.is_finite() && capacity.is_finite() && *capacity > 0.0 =>
                {
                    (usage / 100.0 / capacity).clamp(0.01, 1.0)
                }
                _ => 1.0,
            })
            .collect()
    }
    fn describe(&self) -> String {
        "P = cpu.usage_pct / 100 / min(quota, cpuset size)".into()
    }
    fn refit(&self, _x: &Table, _y: &[f64], _seed: u64) -> Result<Box<dyn TabularModel>> {
        Ok(Box::new(CpuShareRule))
    }
}

/// MAE (in P units) of `pred` against `y`.
pub fn mae(pred: &[f64], y: &[f64]) -> f64 {
    if y.is_empty() {
        return f64::NAN;
    }
    pred.iter()
        .zip(y)
        .map(|(a, b)| (a.clamp(0.0, 1.0) - b).abs())
        .sum::<f64>()
        / y.len() as f64
}
