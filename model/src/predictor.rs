//! The inference API shared by `cloudformer predict` and the server: raw windows in (NaN =
//! null), P̂ with an uncertainty and an out-of-distribution flag out.
//!
//! A model directory may hold an ensemble: besides its own checkpoint, every checkpoint
//! directory under `members/` (the same recipe trained with other seeds). P̂ is then the mean
//! over the checkpoints and `std` adds their spread to the Monte-Carlo dropout spread
//! (see [`combine`]).

use std::path::{Path, PathBuf};

use crate::{
    batch_tensors, default_device, Checkpoint, CloudFormer, CoverageRule, FastBranches, ModelError,
    RawRanges, Tensor,
};

/// One raw (un-normalised) window: row-major T×F, NaN for null values.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub data: &'a [f32],
    pub t: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// P̂ ∈ (0, 1): 1 = no degradation.
    pub p: f32,
    /// Standard deviation of P̂: over Monte-Carlo dropout passes of the head (0 when disabled)
    /// and, for an ensemble, over its members (see [`combine`]).
    pub std: f32,
    /// Share of the features the model uses that the window observed (1 for a checkpoint of
    /// the plain encoding).
    pub coverage: f32,
    /// The window is unlike the training data: see [`out_of_distribution`].
    pub out_of_distribution: bool,
}

/// The out-of-distribution rule: a window is flagged when its coverage is below the model's
/// `coverage_floor` (half the lowest coverage of any training run; 0 for checkpoints without
/// one), or when more than `OOD_FRACTION` (5 %) of its observed values lie outside the
/// training range widened by a quarter on each side.
pub fn out_of_distribution(coverage: f32, coverage_floor: f32, out_of_range_fraction: f32) -> bool {
    coverage < coverage_floor || out_of_range_fraction > OOD_FRACTION
}

/// Windows per forward pass of the candle graph (its padded batch tensors grow with the batch);
/// larger requests are split. The slice path runs any number of windows at once.
const CHUNK: usize = 64;
/// Share of out-of-range values above which a window is flagged out of distribution.
const OOD_FRACTION: f32 = 0.05;
/// Dropout seed for the uncertainty passes: the same input always gets the same answer.
const MC_SEED: u64 = 0x5eed_cafe;
/// The sub-directory of a model directory that holds an ensemble's other members.
pub const MEMBERS_DIR: &str = "members";

/// One ensemble answer from its members' answers `(p, mc_std)`: P̂ is their mean; `std` is
/// the square root of the mean Monte-Carlo variance plus the variance of the members' P̂
/// (the law of total variance over an equally weighted mixture). One member is returned as is.
pub fn combine(members: &[(f32, f32)]) -> (f32, f32) {
    match members {
        [] => (f32::NAN, f32::NAN),
        [one] => *one,
        _ => {
            let n = members.len() as f32;
            let p = members.iter().map(|m| m.0).sum::<f32>() / n;
            let within = members.iter().map(|m| m.1 * m.1).sum::<f32>() / n;
            let between = members.iter().map(|m| (m.0 - p).powi(2)).sum::<f32>() / n;
            (p, (within + between).sqrt())
        }
    }
}

/// One checkpoint of the model directory with its inference buffers.
struct Member {
    ckpt: Checkpoint,
    model: CloudFormer,
    norm_buf: Vec<Vec<f32>>,
    /// The inference-only branches on plain slices (CPU); `None` runs the candle graph.
    fast: Option<FastBranches>,
    feat_buf: Vec<f32>,
}

impl Member {
    fn new(ckpt: Checkpoint, model: CloudFormer) -> Member {
        let fast = match FastBranches::from_model(&model) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("fast inference path unavailable ({e}); using the candle graph");
                None
            }
        };
        Member {
            ckpt,
            model,
            norm_buf: Vec::new(),
            fast,
            feat_buf: Vec::new(),
        }
    }

    /// The branches' features of a chunk of windows (fast path or candle graph).
    fn features(&mut self, windows: &[Window<'_>]) -> Result<Tensor, ModelError> {
        match &self.fast {
            Some(fast) => {
                let items: Vec<(&[f32], usize)> = windows.iter().map(|w| (w.data, w.t)).collect();
                fast.features(&items, Some(&self.ckpt.normalizer), &mut self.feat_buf)?;
                Ok(Tensor::from_slice(
                    &self.feat_buf,
                    (windows.len(), fast.out_dim()),
                    self.model.device(),
                )?)
            }
            None => self.candle_features(windows),
        }
    }

    /// The branches through the candle graph (normalise, pad, forward in eval mode).
    fn candle_features(&mut self, windows: &[Window<'_>]) -> Result<Tensor, ModelError> {
        let f = self.ckpt.config.n_features;
        if self.norm_buf.len() < windows.len() {
            self.norm_buf.resize_with(windows.len(), Vec::new);
        }
        for (w, buf) in windows.iter().zip(self.norm_buf.iter_mut()) {
            self.ckpt.normalizer.apply_into(w.data, buf);
        }
        let items: Vec<(&[f32], usize)> = windows
            .iter()
            .zip(self.norm_buf.iter())
            .map(|(w, b)| (b.as_slice(), w.t))
            .collect();
        let (x, mask) = batch_tensors(&items, f, self.model.device())?;
        self.model.features(&x, &mask, false)
    }

    /// `(p, mc_std)` per window: P̂ from the deterministic head; the uncertainty from
    /// Monte-Carlo dropout in the head only (its 0.4 dropout), so it costs almost nothing.
    fn answer(
        &mut self,
        windows: &[Window<'_>],
        mc_samples: usize,
    ) -> Result<Vec<(f32, f32)>, ModelError> {
        let feats = self.features(windows)?;
        let p: Vec<f32> = self.model.head(&feats, false)?.to_vec1()?;
        if mc_samples == 0 {
            return Ok(p.into_iter().map(|p| (p, 0.0)).collect());
        }
        let k = mc_samples;
        // Per window, with the same dropout seed: a window's answer never depends on the
        // other windows of the batch.
        let mut out = Vec::with_capacity(p.len());
        for (i, &pi) in p.iter().enumerate() {
            let fs = feats.narrow(0, i, 1)?.repeat((k, 1))?;
            self.model.reseed_dropout(MC_SEED);
            let s: Vec<f32> = self.model.head(&fs, true)?.to_vec1()?;
            let m = s.iter().sum::<f32>() / k as f32;
            let var = s.iter().map(|v| (v - m).powi(2)).sum::<f32>() / k as f32;
            out.push((pi, var.sqrt()));
        }
        Ok(out)
    }
}

pub struct Predictor {
    /// The directory's own checkpoint first, then `members/*` by name.
    members: Vec<Member>,
    /// The checkpoint's id, or `ens-<hash of the members' ids>` for an ensemble.
    model_id: String,
    mc_samples: usize,
    /// The training ranges in raw units, for the out-of-distribution flag.
    ranges: RawRanges,
}

impl Predictor {
    /// Loads a checkpoint directory (see [`Checkpoint`]) and, when it has a `members/`
    /// directory, every checkpoint directory in it as further ensemble members. Every member
    /// must read the same catalogue and the same features; an empty `members/` is an error.
    pub fn load(dir: &Path) -> Result<Predictor, ModelError> {
        let device = default_device();
        let (ckpt, model) = Checkpoint::load(dir, &device)?;
        let mut p = Predictor::from_parts(ckpt, model);
        for sub in member_dirs(dir)? {
            let (ckpt, model) = Checkpoint::load(&sub, &device)?;
            p.add_member(&sub, ckpt, model)?;
        }
        Ok(p)
    }

    /// Loads a checkpoint and checks that it was trained on the catalogue `data_hash` (an error
    /// naming both hashes otherwise).
    pub fn load_checked(dir: &Path, data_hash: &str) -> Result<Predictor, ModelError> {
        let p = Predictor::load(dir)?;
        p.check_catalogue(data_hash)?;
        Ok(p)
    }

    /// Errors (naming both hashes) unless the data's catalogue is the model's.
    pub fn check_catalogue(&self, data_hash: &str) -> Result<(), ModelError> {
        self.checkpoint().check_catalogue(data_hash)
    }

    /// The first checkpoint's network.
    pub fn model(&self) -> &CloudFormer {
        &self.members[0].model
    }

    pub fn from_parts(ckpt: Checkpoint, model: CloudFormer) -> Predictor {
        let ranges = RawRanges::of(&ckpt.normalizer);
        let model_id = ckpt.model_id.clone();
        Predictor {
            members: vec![Member::new(ckpt, model)],
            model_id,
            mc_samples: 16,
            ranges,
        }
    }

    /// Adds an ensemble member (`path` names it in errors). It must read the catalogue and
    /// the features of the first checkpoint, as the same recipe with another seed does.
    pub fn add_member(
        &mut self,
        path: &Path,
        ckpt: Checkpoint,
        model: CloudFormer,
    ) -> Result<(), ModelError> {
        let first = self.checkpoint();
        let refuse = |msg: String| {
            ModelError::Checkpoint {
            path: path.to_path_buf(),
            msg: format!("{msg}; train ensemble members with the first checkpoint's recipe and data, changing only the seed"),
        }
        };
        if ckpt.catalogue_hash != first.catalogue_hash || ckpt.feature_names != first.feature_names
        {
            return Err(refuse(format!(
                "ensemble member of catalogue {} ({} features), the first checkpoint's is {} ({} features)",
                ckpt.catalogue_hash,
                ckpt.feature_names.len(),
                first.catalogue_hash,
                first.feature_names.len()
            )));
        }
        if ckpt.normalizer.coverage_rule().used != first.normalizer.coverage_rule().used {
            return Err(refuse(
                "ensemble member reads another set of features than the first checkpoint (its dropped features differ)".into(),
            ));
        }
        self.members.push(Member::new(ckpt, model));
        let ids: Vec<&str> = self
            .members
            .iter()
            .map(|m| m.ckpt.model_id.as_str())
            .collect();
        self.model_id = format!(
            "ens-{:016x}",
            crate::checkpoint::fnv1a(ids.join(",").as_bytes())
        );
        Ok(())
    }

    /// The ids of the checkpoints that answer (one unless the directory is an ensemble).
    pub fn member_ids(&self) -> Vec<&str> {
        self.members
            .iter()
            .map(|m| m.ckpt.model_id.as_str())
            .collect()
    }

    /// The derived inputs ([`crate::derived`]) the checkpoints compute from every window, by
    /// name, in the order the first member feeds them (then any only a later member has).
    pub fn derived_inputs(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for d in self.members.iter().flat_map(|m| &m.ckpt.normalizer.derived) {
            if !names.contains(&d.kind.name()) {
                names.push(d.kind.name());
            }
        }
        names
    }

    /// Runs the branches through the candle graph instead of the plain-slice inference path
    /// (for comparisons; both give the same P̂ to ~1e-6).
    pub fn use_candle_graph(&mut self) {
        for m in &mut self.members {
            m.fast = None;
        }
    }

    pub fn feature_names(&self) -> &[String] {
        &self.checkpoint().feature_names
    }

    pub fn catalogue_hash(&self) -> &str {
        &self.checkpoint().catalogue_hash
    }

    /// The checkpoint's id, or `ens-` + a hash of the members' ids for an ensemble.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The first checkpoint (the directory's own `config.json`).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.members[0].ckpt
    }

    /// Raw features per second of a window (the catalogue's width).
    pub fn n_features(&self) -> usize {
        self.checkpoint().feature_names.len()
    }

    /// Share of the features the model uses that a raw window observed (1 for a checkpoint of
    /// the plain encoding, which uses every feature and has no notion of missing).
    pub fn coverage(&self, window: &Window<'_>) -> f32 {
        self.checkpoint().normalizer.coverage(window.data)
    }

    /// The features this model reads and its coverage floor (see [`CoverageRule`]).
    pub fn coverage_rule(&self) -> CoverageRule {
        self.checkpoint().normalizer.coverage_rule()
    }

    /// Monte-Carlo dropout passes of the head for the uncertainty (0 disables it; default 16).
    pub fn set_mc_samples(&mut self, n: usize) {
        self.mc_samples = n;
    }

    /// Predicts every window. Errors name the offending window.
    pub fn predict(&mut self, windows: &[Window<'_>]) -> Result<Vec<Prediction>, ModelError> {
        let f = self.n_features();
        for (i, w) in windows.iter().enumerate() {
            if w.t == 0 {
                return Err(ModelError::Shape(format!("window {i} is empty (T = 0)")));
            }
            if w.data.len() != w.t * f {
                return Err(ModelError::Shape(format!(
                    "window {i}: {} values, expected T×F = {}×{f}",
                    w.data.len(),
                    w.t
                )));
            }
            if w.data.iter().any(|v| v.is_infinite()) {
                return Err(ModelError::Shape(format!(
                    "window {i} contains an infinite value"
                )));
            }
        }
        let all_fast = self.members.iter().all(|m| m.fast.is_some());
        let chunk = if all_fast {
            windows.len().max(1)
        } else {
            CHUNK
        };
        let mut out = Vec::with_capacity(windows.len());
        for ws in windows.chunks(chunk) {
            out.extend(self.predict_chunk(ws)?);
        }
        Ok(out)
    }

    fn predict_chunk(&mut self, windows: &[Window<'_>]) -> Result<Vec<Prediction>, ModelError> {
        let mut answers = Vec::with_capacity(self.members.len());
        for m in &mut self.members {
            answers.push(m.answer(windows, self.mc_samples)?);
        }
        let normalizer = &self.members[0].ckpt.normalizer;
        Ok(windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let per_member: Vec<(f32, f32)> = answers.iter().map(|a| a[i]).collect();
                let (p, std) = combine(&per_member);
                let coverage = normalizer.coverage(w.data);
                let outside = self.ranges.out_of_range_fraction(w.data);
                Prediction {
                    p,
                    std,
                    coverage,
                    out_of_distribution: out_of_distribution(
                        coverage,
                        normalizer.coverage_floor,
                        outside,
                    ),
                }
            })
            .collect())
    }
}

/// The checkpoint directories under `dir/members/`, sorted by name; none when there is no
/// `members/`, an error when it exists but holds none (a setting that matches nothing).
fn member_dirs(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let root = dir.join(MEMBERS_DIR);
    if !root.exists() {
        return Ok(Vec::new());
    }
    let io = |source| ModelError::Io {
        path: root.clone(),
        source,
    };
    let mut subs = Vec::new();
    for e in std::fs::read_dir(&root).map_err(io)? {
        let path = e.map_err(io)?.path();
        if path.is_dir() {
            subs.push(path);
        }
    }
    subs.sort();
    if subs.is_empty() {
        return Err(ModelError::Checkpoint {
            path: root,
            msg: "holds no ensemble member (expected checkpoint directories, each with config.json and model.safetensors); remove it for a single model".into(),
        });
    }
    Ok(subs)
}
