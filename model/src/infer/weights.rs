//! The branches' weights copied out of a [`CloudFormer`] into plain vectors, each linear layer
//! also transposed once, as the inference kernels read it.

use super::rank1;
use crate::kernels::{self, Mat};
use crate::{CloudFormer, Config, ModelError};

type R<T> = Result<T, ModelError>;

pub(super) struct Lin {
    /// [out, in], row-major (the stored layout).
    pub(super) w: Vec<f32>,
    /// The same weights transposed, [in, out] row-major: the matmul reads them as they lie
    /// (column-major for the kernel), without repacking them on every call.
    pub(super) wt: Vec<f32>,
    pub(super) b: Vec<f32>,
    pub(super) inp: usize,
    pub(super) out: usize,
}

impl Lin {
    /// `y[rows, out] = x[rows, in] · Wᵀ + b`.
    pub(super) fn forward(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        self.forward_rows_cols(x, rows, rows, 0, y)
    }

    /// Like [`Lin::forward`] into `y` [rows, out], but only the first `head_rows` rows get all
    /// `out` columns; the others get columns `skip..out` (the rest of their row is left 0).
    /// For the last block: the query columns are needed for the CLS row only.
    pub(super) fn forward_rows_cols(
        &self,
        x: &[f32],
        rows: usize,
        head_rows: usize,
        skip: usize,
        y: &mut Vec<f32>,
    ) {
        y.clear();
        y.resize(rows * self.out, 0.0);
        for r in 0..rows {
            let lo = if r < head_rows { 0 } else { skip };
            y[r * self.out + lo..(r + 1) * self.out].copy_from_slice(&self.b[lo..]);
        }
        kernels::matmul(
            y,
            self.out,
            Mat::rows(&x[..head_rows * self.inp], head_rows, self.inp),
            Mat::rows(&self.wt, self.inp, self.out),
            true,
        );
        let tail = rows - head_rows;
        kernels::matmul(
            &mut y[head_rows * self.out + skip..],
            self.out,
            Mat::rows(&x[head_rows * self.inp..rows * self.inp], tail, self.inp),
            Mat {
                data: &self.wt[skip..],
                rows: self.inp,
                cols: self.out - skip,
                rs: self.out,
                cs: 1,
            },
            true,
        );
    }
}

pub(super) struct Norm {
    pub(super) g: Vec<f32>,
    pub(super) b: Vec<f32>,
}

pub(super) struct Block {
    pub(super) qkv: Lin,
    pub(super) proj: Lin,
    pub(super) ln1: Norm,
    pub(super) ff1: Lin,
    pub(super) ff2: Lin,
    pub(super) ln2: Norm,
    /// Pre-LN (see `layers::EncoderBlock`).
    pub(super) pre_norm: bool,
}

impl Norm {
    /// LayerNorm of every d-wide row of `x`, in place.
    pub(super) fn apply(&self, x: &mut [f32]) {
        kernels::layer_norm_rows_inplace(x, &self.g, &self.b, 1e-5);
    }
}

pub(super) struct TemporalW {
    pub(super) input: Lin,
    pub(super) cls: Vec<f32>,
    pub(super) blocks: Vec<Block>,
    pub(super) final_ln: Option<Norm>,
}

pub(super) struct SystemW {
    pub(super) w: Vec<f32>,
    pub(super) b: Vec<f32>,
    pub(super) emb: Option<Vec<f32>>,
    pub(super) cls: Vec<f32>,
    pub(super) blocks: Vec<Block>,
    pub(super) final_ln: Option<Norm>,
    /// The first block's attention in closed form (faithful tokens and post-LN only; see
    /// `rank1.rs`).
    pub(super) rank1: Option<rank1::Rank1>,
}

/// The temporal and the system branch of `model` (each `None` when the model has no such branch).
pub(super) fn branches(model: &CloudFormer) -> R<(Option<TemporalW>, Option<SystemW>)> {
    let cfg: &Config = model.config();
    let get = |name: &str| -> R<Vec<f32>> {
        let v = model
            .params()
            .named()
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| ModelError::Config(format!("parameter {name} is missing")))?;
        Ok(v.1.as_tensor().flatten_all()?.to_vec1::<f32>()?)
    };
    let lin = |name: &str, inp: usize, out: usize| -> R<Lin> {
        let w = get(&format!("{name}.weight"))?;
        let mut wt = vec![0f32; w.len()];
        for (r, row) in w.chunks_exact(inp).enumerate() {
            for (c, v) in row.iter().enumerate() {
                wt[c * out + r] = *v;
            }
        }
        Ok(Lin {
            w,
            wt,
            b: get(&format!("{name}.bias"))?,
            inp,
            out,
        })
    };
    let norm = |name: &str| -> R<Norm> {
        Ok(Norm {
            g: get(&format!("{name}.weight"))?,
            b: get(&format!("{name}.bias"))?,
        })
    };
    let d = cfg.d_model;
    let blocks = |prefix: &str, n: usize| -> R<Vec<Block>> {
        (0..n)
            .map(|i| {
                let p = format!("{prefix}.block{i}");
                Ok(Block {
                    qkv: lin(&format!("{p}.attn.qkv"), d, 3 * d)?,
                    proj: lin(&format!("{p}.attn.out"), d, d)?,
                    ln1: norm(&format!("{p}.ln1"))?,
                    ff1: lin(&format!("{p}.ff1"), d, cfg.d_ff)?,
                    ff2: lin(&format!("{p}.ff2"), cfg.d_ff, d)?,
                    ln2: norm(&format!("{p}.ln2"))?,
                    pre_norm: cfg.pre_norm,
                })
            })
            .collect()
    };
    let final_ln = |prefix: &str| -> R<Option<Norm>> {
        cfg.pre_norm
            .then(|| norm(&format!("{prefix}.final_ln")))
            .transpose()
    };
    let temporal = if cfg.uses_temporal() {
        Some(TemporalW {
            input: lin("temporal.input", cfg.n_features, d)?,
            cls: get("temporal.cls")?,
            blocks: blocks("temporal", cfg.temporal_blocks)?,
            final_ln: final_ln("temporal")?,
        })
    } else {
        None
    };
    let system = if cfg.uses_system() {
        let mut sw = SystemW {
            w: get("system.conv.weight")?,
            b: get("system.conv.bias")?,
            emb: if cfg.metric_embedding {
                Some(get("system.metric_emb")?)
            } else {
                None
            },
            cls: get("system.cls")?,
            blocks: blocks("system", cfg.system_blocks)?,
            final_ln: final_ln("system")?,
            rank1: None,
        };
        if sw.emb.is_none() && !cfg.pre_norm {
            if let Some(first) = sw.blocks.first() {
                sw.rank1 = Some(rank1::Rank1::new(
                    &sw.w,
                    &sw.b,
                    &sw.cls,
                    &first.qkv,
                    &first.proj,
                    cfg.n_heads,
                ));
            }
        }
        Some(sw)
    } else {
        None
    };
    Ok((temporal, system))
}
