//! Learning-rate schedule (linear warm-up then cosine decay), losses, and length bucketing.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to `peak × floor`
/// at `total` steps.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct WarmupCosine {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    pub floor: f64,
}

impl WarmupCosine {
    pub fn lr(&self, step: usize) -> f64 {
        if self.warmup > 0 && step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let t = ((step - self.warmup.min(step)) as f64 / span as f64).min(1.0);
        let min = self.peak * self.floor;
        min + (self.peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Training losses on (P̂ − P) × scale.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// log cosh(e): the paper's loss. On P ∈ (0,1] (scale 1) it behaves like e²/2.
    Logcosh,
    Mse,
    Mae,
}

impl std::str::FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logcosh" => Ok(Loss::Logcosh),
            "mse" => Ok(Loss::Mse),
            "mae" | "l1" => Ok(Loss::Mae),
            o => Err(format!("unknown loss {o:?} (logcosh | mse | mae)")),
        }
    }
}

/// Numerically stable log cosh(x) = |x| + log1p(exp(−2|x|)) − log 2, for checking.
pub fn logcosh(x: f64) -> f64 {
    let a = x.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

/// Batches of run indices with similar lengths: sort by length, cut into batches of `batch`,
/// shuffle the batches (and, within equal lengths, the runs) with `rng`. Keeps padding small.
pub fn bucket_batches(lengths: &[usize], batch: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..lengths.len()).collect();
    idx.shuffle(rng);
    idx.sort_by_key(|&i| lengths[i]); // stable: shuffled order within a length
    let mut batches: Vec<Vec<usize>> = idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect();
    batches.shuffle(rng);
    batches
}

/// Padding share of a set of batches: padded cells / all cells.
pub fn padding_fraction(lengths: &[usize], batches: &[Vec<usize>]) -> f64 {
    let (mut pad, mut all) = (0usize, 0usize);
    for b in batches {
        let m = b.iter().map(|&i| lengths[i]).max().unwrap_or(0);
        for &i in b {
            pad += m - lengths[i];
            all += m;
        }
    }
    if all == 0 {
        0.0
    } else {
        pad as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn warmup_then_cosine() {
        let s = WarmupCosine {
            peak: 1e-3,
            warmup: 10,
            total: 110,
            floor: 0.0,
        };
        assert!((s.lr(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr(9) - 1e-3).abs() < 1e-12);
        assert!((s.lr(10) - 1e-3).abs() < 1e-12);
        assert!((s.lr(60) - 5e-4).abs() < 1e-9);
        assert!(s.lr(110) < 1e-12);
        assert!(s.lr(500) < 1e-12);
        for st in 10..109 {
            assert!(s.lr(st + 1) <= s.lr(st));
        }
    }

    #[test]
    fn logcosh_is_half_square_near_zero() {
        assert!((logcosh(0.01) - 0.00005).abs() < 1e-9);
        assert!((logcosh(20.0) - (20.0 - std::f64::consts::LN_2)).abs() < 1e-9);
    }

    #[test]
    fn bucketing_reduces_padding() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let lengths: Vec<usize> = (0..200).map(|i| 10 + (i * 37) % 300).collect();
        let b = bucket_batches(&lengths, 16, &mut rng);
        let mut all: Vec<usize> = b.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
        let naive: Vec<Vec<usize>> = (0..200)
            .collect::<Vec<_>>()
            .chunks(16)
            .map(|c| c.to_vec())
            .collect();
        let pb = padding_fraction(&lengths, &b);
        let pn = padding_fraction(&lengths, &naive);
        assert!(pb < 0.1 && pb * 4.0 < pn, "bucketed {pb} naive {pn}");
    }
}
