use candle_core::Tensor;

use crate::ModelError;

/// The paper's loss: mean(log cosh(ŷ − y)), written as |x| + log1p(e^{−2|x|}) − log 2, which
/// is exact and never overflows.
pub fn log_cosh(pred: &Tensor, target: &Tensor) -> Result<Tensor, ModelError> {
    let a = (pred - target)?.abs()?;
    let soft = ((a.affine(-2.0, 0.0)?.exp()? + 1.0)?).log()?;
    Ok(((a + soft)? - std::f64::consts::LN_2)?.mean_all()?)
}

/// Mean squared error.
pub fn mse(pred: &Tensor, target: &Tensor) -> Result<Tensor, ModelError> {
    Ok((pred - target)?.sqr()?.mean_all()?)
}
