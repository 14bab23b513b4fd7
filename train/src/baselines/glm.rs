//! Gamma GLM with the canonical inverse link (μ = 1/η), fitted by IRLS with a small ridge
//! penalty (λ chosen on validation) — the paper's "GLR" baseline (Cloud White).

use super::{mae, TabularModel};
use crate::error::{Result, TrainError};
use crate::features::{Standardizer, Table};
use crate::linalg::ridge;

/// The intercept column's value: large so that the ridge penalty barely touches the intercept.
const ICOL: f64 = 10.0;

pub struct Glm {
    pub std: Standardizer,
    /// Coefficients; the last one multiplies the constant column [`ICOL`].
    pub beta: Vec<f64>,
    pub lambda: f64,
    pub iterations: usize,
}

fn design(z: &Table) -> Vec<f64> {
    let p = z.cols + 1;
    let mut d = Vec::with_capacity(z.rows * p);
    for r in 0..z.rows {
        d.extend_from_slice(z.row(r));
        d.push(ICOL);
    }
    d
}

impl Glm {
    fn eta(&self, d: &[f64], n: usize) -> Vec<f64> {
        let p = self.beta.len();
        (0..n)
            .map(|r| {
                d[r * p..(r + 1) * p]
                    .iter()
                    .zip(&self.beta)
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect()
    }
}

impl TabularModel for Glm {
    fn predict(&self, x: &Table) -> Vec<f64> {
        let z = self.std.apply(x);
        let d = design(&z);
        // η ≤ 0 has no meaning under the inverse link: the prediction saturates at P = 1.
        self.eta(&d, z.rows)
            .into_iter()
            .map(|e| if e > 1e-6 { 1.0 / e } else { 1.0 })
            .collect()
    }
    fn describe(&self) -> String {
        format!(
            "gamma-inverse lambda={} irls_iter={}",
            self.lambda, self.iterations
        )
    }
    fn refit(&self, x: &Table, y: &[f64], _seed: u64) -> Result<Box<dyn TabularModel>> {
        let none = x.select(&[]);
        Ok(Box::new(fit_grid(x, y, &none, &[], &[self.lambda])?))
    }
}

fn fit_one(
    std: &Standardizer,
    d: &[f64],
    y: &[f64],
    n: usize,
    p: usize,
    lambda: f64,
) -> Result<Glm> {
    let ym = y.iter().sum::<f64>() / n as f64;
    let mut beta = vec![0.0; p];
    beta[p - 1] = 1.0 / ym / ICOL;
    let mut m = Glm {
        std: std.clone(),
        beta,
        lambda,
        iterations: 0,
    };
    for it in 0..30 {
        let eta = m.eta(d, n);
        let mut z = Vec::with_capacity(n);
        let mut w = Vec::with_capacity(n);
        for (e, yi) in eta.iter().zip(y) {
            let e = e.max(1e-3);
            let mu = 1.0 / e;
            // dη/dμ = −1/μ², V(μ) = μ²  ⇒  working weight μ², working response η − (y − μ)/μ²
            z.push(e - (yi - mu) / (mu * mu));
            w.push(mu * mu);
        }
        let new = ridge(d, &z, &w, n, p, lambda)?;
        let delta = new
            .iter()
            .zip(&m.beta)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        m.beta = new;
        m.iterations = it + 1;
        if !delta.is_finite() {
            return Err(TrainError::Numeric("Gamma GLM IRLS diverged".into()));
        }
        if delta < 1e-7 {
            break;
        }
    }
    Ok(m)
}

pub fn fit(x: &Table, y: &[f64], xv: &Table, yv: &[f64]) -> Result<Glm> {
    let grid: &[f64] = if yv.is_empty() {
        &[1.0]
    } else {
        &[1e-2, 1.0, 100.0, 1e4]
    };
    fit_grid(x, y, xv, yv, grid)
}

/// Fits with the best λ of `grid` on the validation set (the first without one).
fn fit_grid(x: &Table, y: &[f64], xv: &Table, yv: &[f64], grid: &[f64]) -> Result<Glm> {
    let std = Standardizer::fit(x);
    let z = std.apply(x);
    let d = design(&z);
    let p = z.cols + 1;
    let mut best: Option<(f64, Glm)> = None;
    let mut last_err = None;
    for &lambda in grid {
        match fit_one(&std, &d, y, z.rows, p, lambda) {
            Ok(m) => {
                let s = if yv.is_empty() {
                    0.0
                } else {
                    mae(&m.predict(xv), yv)
                };
                if best.as_ref().is_none_or(|(b, _)| s < *b) {
                    best = Some((s, m));
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    match best {
        Some((_, m)) => Ok(m),
        None => Err(last_err.unwrap_or_else(|| TrainError::Numeric("Gamma GLM".into()))),
    }
}
