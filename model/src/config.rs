use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Which branches feed the head (the paper's Table V ablations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    #[default]
    Full,
    TemporalOnly,
    SystemOnly,
}

/// Every architectural choice; the paper's values are the defaults. `n_features` comes from the
/// dataset's catalogue, never from a constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub n_features: usize,
    /// d_t = d_s (the paper uses 64 for both).
    pub d_model: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub temporal_blocks: usize,
    pub system_blocks: usize,
    /// Dropout inside the encoder blocks (not given by the paper).
    pub dropout: f32,
    pub head_hidden: usize,
    pub head_dropout: f32,
    pub variant: Variant,
    /// Add a learned per-metric embedding to the system branch's tokens. The paper's tokens are
    /// `w·mean + b` with a shared 1×1 convolution and carry no metric identity (default: off).
    pub metric_embedding: bool,
    /// Maximum number of time steps the temporal branch attends over. Longer windows are
    /// mean-pooled (mask-aware) with stride `ceil(T / max_len)`. `0` = unlimited (faithful).
    pub max_len: usize,
    /// Pre-LayerNorm blocks (`h + MHA(LN(h))`, `h + FFN(LN(h))`, a final LayerNorm per branch)
    /// instead of the paper's post-LN ones. Off in checkpoints written before it existed.
    pub pre_norm: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            n_features: 206,
            d_model: 64,
            n_heads: 4,
            d_ff: 256,
            temporal_blocks: 4,
            system_blocks: 4,
            dropout: 0.1,
            head_hidden: 64,
            head_dropout: 0.4,
            variant: Variant::Full,
            metric_embedding: false,
            max_len: 0,
            pre_norm: false,
        }
    }
}

impl Config {
    pub fn with_features(n_features: usize) -> Self {
        Config {
            n_features,
            ..Config::default()
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.n_features == 0 {
            return bad("n_features must be > 0".into());
        }
        if self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!(
                "d_model {} must be a positive multiple of n_heads {}",
                self.d_model, self.n_heads
            ));
        }
        for (name, p) in [
            ("dropout", self.dropout),
            ("head_dropout", self.head_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.d_ff == 0 || self.head_hidden == 0 {
            return bad("d_ff and head_hidden must be > 0".into());
        }
        Ok(())
    }

    pub fn uses_temporal(&self) -> bool {
        self.variant != Variant::SystemOnly
    }

    pub fn uses_system(&self) -> bool {
        self.variant != Variant::TemporalOnly
    }
}
