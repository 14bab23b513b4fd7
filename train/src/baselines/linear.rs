//! Linear regression (ridge, closed form) on standardised features.

use super::{mae, TabularModel};
use crate::error::Result;
use crate::features::{Standardizer, Table};
use crate::linalg::ridge;

pub struct Linear {
    pub std: Standardizer,
    pub beta: Vec<f64>,
    pub intercept: f64,
    pub lambda: f64,
}

impl TabularModel for Linear {
    fn predict(&self, x: &Table) -> Vec<f64> {
        let z = self.std.apply(x);
        (0..z.rows)
            .map(|r| {
                self.intercept
                    + z.row(r)
                        .iter()
                        .zip(&self.beta)
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
            })
            .collect()
    }
    fn describe(&self) -> String {
        format!("ridge lambda={}", self.lambda)
    }
    fn refit(&self, x: &Table, y: &[f64], _seed: u64) -> Result<Box<dyn TabularModel>> {
        let none = x.select(&[]);
        Ok(Box::new(fit_grid(x, y, &none, &[], &[self.lambda])?))
    }
}

pub const LAMBDAS: [f64; 7] = [1e-3, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4];

/// Fits with λ chosen from [`LAMBDAS`] on the validation set (λ = 1 without one).
pub fn fit(x: &Table, y: &[f64], xv: &Table, yv: &[f64]) -> Result<Linear> {
    fit_grid(x, y, xv, yv, if yv.is_empty() { &[1.0] } else { &LAMBDAS })
}

/// Fits with the best λ of `grid` on the validation set (the first without one).
fn fit_grid(x: &Table, y: &[f64], xv: &Table, yv: &[f64], grid: &[f64]) -> Result<Linear> {
    let std = Standardizer::fit(x);
    let z = std.apply(x);
    let ym = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let yc: Vec<f64> = y.iter().map(|v| v - ym).collect();
    let w = vec![1.0; z.rows];
    let mut best: Option<(f64, Linear)> = None;
    for &lambda in grid {
        let beta = match ridge(&z.data, &yc, &w, z.rows, z.cols, lambda) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let m = Linear {
            std: std.clone(),
            beta,
            intercept: ym,
            lambda,
        };
        let score = if yv.is_empty() {
            0.0
        } else {
            mae(&m.predict(xv), yv)
        };
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, m));
        }
    }
    best.map(|b| b.1).ok_or_else(|| {
        crate::TrainError::Numeric("ridge regression failed for every lambda".into())
    })
}
