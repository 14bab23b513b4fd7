//! Gradient-boosted trees from `forust-ml` (XGBoost's algorithm, pure Rust), squared loss,
//! early stopping on the validation runs.

use forust_ml::{GradientBooster, Matrix};

use super::TabularModel;
use crate::error::{Result, TrainError};
use crate::features::Table;

pub struct Gbdt {
    pub booster: GradientBooster,
    pub desc: String,
}

impl TabularModel for Gbdt {
    fn predict(&self, x: &Table) -> Vec<f64> {
        let cm = x.column_major();
        let m = Matrix::new(&cm, x.rows, x.cols);
        self.booster.predict(&m, false)
    }
    fn describe(&self) -> String {
        self.desc.clone()
    }
    /// As many rounds as early stopping kept (all of them when it did not stop).
    fn refit(&self, x: &Table, y: &[f64], seed: u64) -> Result<Box<dyn TabularModel>> {
        let rounds = self
            .booster
            .best_iteration
            .map_or(self.booster.trees.len(), |b| b + 1);
        let none = x.select(&[]);
        Ok(Box::new(fit_rounds(x, y, &none, &[], seed, rounds.max(1))?))
    }
}

/// 600 rounds max, lr 0.05, depth 4, subsample 0.8, colsample 0.5, 64 bins; early stopping
/// after 40 rounds without a better validation RMSE.
pub fn fit(x: &Table, y: &[f64], xv: &Table, yv: &[f64], seed: u64) -> Result<Gbdt> {
    fit_rounds(x, y, xv, yv, seed, MAX_ROUNDS)
}

/// The round limit of [`fit`].
const MAX_ROUNDS: usize = 600;

/// [`fit`] with at most `rounds` rounds.
fn fit_rounds(
    x: &Table,
    y: &[f64],
    xv: &Table,
    yv: &[f64],
    seed: u64,
    rounds: usize,
) -> Result<Gbdt> {
    let cm = x.column_major();
    let m = Matrix::new(&cm, x.rows, x.cols);
    let w = vec![1.0; y.len()];
    let mut b = GradientBooster::default()
        .set_objective_type(forust_ml::objective::ObjectiveType::SquaredLoss)
        .set_iterations(rounds)
        .set_learning_rate(0.05)
        .set_max_depth(4)
        .set_nbins(64)
        .set_subsample(0.8)
        .set_colsample_bytree(0.5)
        .set_min_leaf_weight(2.0)
        .set_seed(seed)
        .set_parallel(false);
    let vcm = xv.column_major();
    let wv = vec![1.0; yv.len()];
    let eval = if yv.is_empty() {
        None
    } else {
        b = b.set_early_stopping_rounds(Some(40));
        Some(vec![(
            Matrix::new(&vcm, xv.rows, xv.cols),
            yv,
            wv.as_slice(),
        )])
    };
    b.fit(&m, y, &w, eval)
        .map_err(|e| TrainError::Gbdt(e.to_string()))?;
    let desc = format!(
        "forust squared-loss lr=0.05 depth=4 subsample=0.8 colsample=0.5 trees={} best_iteration={:?}",
        b.trees.len(),
        b.best_iteration
    );
    Ok(Gbdt { booster: b, desc })
}
