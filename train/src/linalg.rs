//! Small dense linear algebra for the linear baselines (Cholesky solve of SPD systems).

use crate::error::{Result, TrainError};

/// Solves `A x = b` for symmetric positive-definite `A` (n × n, row-major). `A` is overwritten.
pub fn cholesky_solve(a: &mut [f64], b: &[f64], n: usize) -> Result<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err(TrainError::Numeric(format!(
                "Cholesky: matrix not positive definite at {j}"
            )));
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // forward: L y = b
    let mut y = b.to_vec();
    for i in 0..n {
        let mut s = y[i];
        for k in 0..i {
            s -= a[i * n + k] * y[k];
        }
        y[i] = s / a[i * n + i];
    }
    // backward: Lᵀ x = y
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= a[k * n + i] * y[k];
        }
        y[i] = s / a[i * n + i];
    }
    Ok(y)
}

/// Weighted ridge regression without intercept: minimises Σ wᵢ (yᵢ − xᵢ·β)² + λ‖β‖².
/// `x` is (n × p) row-major. Uses the primal (p × p) or dual (n × n) form, whichever is smaller.
pub fn ridge(x: &[f64], y: &[f64], w: &[f64], n: usize, p: usize, lambda: f64) -> Result<Vec<f64>> {
    let lambda = lambda.max(1e-9);
    if p <= n {
        let mut a = vec![0.0; p * p];
        let mut b = vec![0.0; p];
        for r in 0..n {
            let row = &x[r * p..(r + 1) * p];
            let wr = w[r];
            for i in 0..p {
                let xi = row[i] * wr;
                if xi == 0.0 {
                    continue;
                }
                b[i] += xi * y[r];
                for j in 0..=i {
                    a[i * p + j] += xi * row[j];
                }
            }
        }
        for i in 0..p {
            for j in 0..i {
                a[j * p + i] = a[i * p + j];
            }
            a[i * p + i] += lambda;
        }
        cholesky_solve(&mut a, &b, p)
    } else {
        // β = Xᵀ W^{1/2} (W^{1/2} X Xᵀ W^{1/2} + λ I)⁻¹ W^{1/2} y
        let sw: Vec<f64> = w.iter().map(|v| v.sqrt()).collect();
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let d: f64 = x[i * p..(i + 1) * p]
                    .iter()
                    .zip(&x[j * p..(j + 1) * p])
                    .map(|(a, b)| a * b)
                    .sum();
                let v = d * sw[i] * sw[j];
                k[i * n + j] = v;
                k[j * n + i] = v;
            }
            k[i * n + i] += lambda;
        }
        let rhs: Vec<f64> = (0..n).map(|i| sw[i] * y[i]).collect();
        let alpha = cholesky_solve(&mut k, &rhs, n)?;
        let mut beta = vec![0.0; p];
        for i in 0..n {
            let c = alpha[i] * sw[i];
            for (bj, xj) in beta.iter_mut().zip(&x[i * p..(i + 1) * p]) {
                *bj += c * xj;
            }
        }
        Ok(beta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primal_and_dual_agree_and_recover_coefficients() {
        // y = 2 x0 - x1, n = 4, p = 2 (primal) and p = 6 with padding zeros (dual)
        let x = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, -1.0];
        let y = [2.0, -1.0, 1.0, 5.0];
        let w = [1.0; 4];
        let b = ridge(&x, &y, &w, 4, 2, 1e-8).unwrap();
        assert!(
            (b[0] - 2.0).abs() < 1e-6 && (b[1] + 1.0).abs() < 1e-6,
            "{b:?}"
        );
        let mut xw = Vec::new();
        for r in 0..4 {
            xw.extend_from_slice(&x[r * 2..r * 2 + 2]);
            xw.extend_from_slice(&[0.0; 4]);
        }
        let b2 = ridge(&xw, &y, &w, 4, 6, 1e-8).unwrap();
        assert!(
            (b2[0] - 2.0).abs() < 1e-4 && (b2[1] + 1.0).abs() < 1e-4,
            "{b2:?}"
        );
    }
}
