//! Checkpoints: a directory with `model.safetensors` (the weights) and `config.json` (the
//! architecture, the normaliser, the catalogue hash and feature names of the training data, and
//! free-form training metadata).

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::{CloudFormer, Config, ModelError, Normalizer};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format_version: u32,
    /// `cf-<hash of the weights file and of what shapes the answers in this file>` (see
    /// [`Checkpoint::identity`]): set by [`Checkpoint::save`], checked by [`Checkpoint::load`].
    #[serde(default)]
    pub model_id: String,
    pub config: Config,
    pub normalizer: Normalizer,
    pub catalogue_hash: String,
    pub feature_names: Vec<String>,
    /// Features the network does not see (normaliser encoding 2: null or constant in every
    /// training row), by name; written for readers of `config.json`, derived from the
    /// normaliser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_features: Vec<String>,
    /// Seed used to build the network (weights are then overwritten by the file).
    #[serde(default)]
    pub seed: u64,
    /// Anything the trainer wants to keep (options, data, metrics).
    #[serde(default)]
    pub training: serde_json::Value,
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What of `config.json` shapes the answers: everything but the id itself, the derived list
/// of dropped features and the free-form training metadata.
#[derive(Serialize)]
struct Answering<'a> {
    format_version: u32,
    config: &'a Config,
    normalizer: &'a Normalizer,
    catalogue_hash: &'a str,
    feature_names: &'a [String],
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Checkpoint {
    pub fn new(
        config: Config,
        normalizer: Normalizer,
        catalogue_hash: &str,
        feature_names: Vec<String>,
    ) -> Self {
        let dropped_features = if normalizer.keep.len() == feature_names.len() {
            feature_names
                .iter()
                .zip(&normalizer.keep)
                .filter(|(_, &k)| !k)
                .map(|(n, _)| n.clone())
                .collect()
        } else {
            Vec::new()
        };
        Checkpoint {
            format_version: FORMAT_VERSION,
            model_id: String::new(),
            config,
            normalizer,
            catalogue_hash: catalogue_hash.to_string(),
            feature_names,
            dropped_features,
            seed: 0,
            training: serde_json::Value::Null,
        }
    }

    /// Writes the weights and `config.json` into `dir` (created if needed). Each file is written
    /// to a temporary name and renamed, so a crash never leaves a half-written checkpoint.
    pub fn save(&mut self, dir: &Path, model: &CloudFormer) -> Result<(), ModelError> {
        self.validate()?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let weights = dir.join(WEIGHTS_FILE);
        let tmp = dir.join(format!("{WEIGHTS_FILE}.tmp"));
        model.params().save(&tmp)?;
        let bytes = std::fs::read(&tmp).map_err(io(&tmp))?;
        self.model_id = self.identity(&bytes)?;
        std::fs::rename(&tmp, &weights).map_err(io(&weights))?;
        let cfg = dir.join(CONFIG_FILE);
        let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|e| ModelError::Checkpoint {
            path: cfg.clone(),
            msg: e.to_string(),
        })?;
        std::fs::write(&tmp, json).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &cfg).map_err(io(&cfg))?;
        Ok(())
    }

    /// Reads and validates `config.json` only.
    pub fn read(dir: &Path) -> Result<Checkpoint, ModelError> {
        let path: PathBuf = dir.join(CONFIG_FILE);
        let text = std::fs::read(&path).map_err(io(&path))?;
        let ck: Checkpoint = serde_json::from_slice(&text).map_err(|e| ModelError::Checkpoint {
            path: path.clone(),
            msg: format!("not a valid checkpoint config ({e})"),
        })?;
        if ck.format_version != FORMAT_VERSION {
            return Err(ModelError::Checkpoint {
                path,
                msg: format!(
                    "format version {} is not supported (expected {FORMAT_VERSION})",
                    ck.format_version
                ),
            });
        }
        ck.validate().map_err(|e| ModelError::Checkpoint {
            path,
            msg: e.to_string(),
        })?;
        Ok(ck)
    }

    /// The model's identity: `cf-` + a 64-bit FNV-1a hash of the weights file's bytes followed
    /// by the answer-shaping part of `config.json` (architecture, normaliser, catalogue, feature
    /// names). Any change to either gives another id.
    pub fn identity(&self, weights: &[u8]) -> Result<String, ModelError> {
        let answering = serde_json::to_vec(&Answering {
            format_version: self.format_version,
            config: &self.config,
            normalizer: &self.normalizer,
            catalogue_hash: &self.catalogue_hash,
            feature_names: &self.feature_names,
        })
        .map_err(|e| ModelError::Config(format!("cannot serialise the configuration: {e}")))?;
        let mut bytes = weights.to_vec();
        bytes.extend_from_slice(&answering);
        Ok(format!("cf-{:016x}", fnv1a(&bytes)))
    }

    /// Reads the checkpoint and its weights. The id is computed from them; a directory whose
    /// `config.json` records another one (a weight or setting changed after training, or files
    /// from two checkpoints) is refused naming both.
    pub fn load(dir: &Path, device: &Device) -> Result<(Checkpoint, CloudFormer), ModelError> {
        let mut ck = Checkpoint::read(dir)?;
        let path = dir.join(WEIGHTS_FILE);
        let mut model = CloudFormer::new(&ck.config, ck.seed, device)?;
        // Unreadable or misshapen weights fail here, naming the file or the tensor.
        model.params_mut().load(&path)?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let id = ck.identity(&bytes)?;
        if !ck.model_id.is_empty() && ck.model_id != id {
            let msg = format!(
                "config.json records model id {} but its weights and configuration are {id}: a file was changed after training, or the two files do not belong together",
                ck.model_id
            );
            return Err(ModelError::Checkpoint {
                path: dir.to_path_buf(),
                msg,
            });
        }
        ck.model_id = id;
        Ok((ck, model))
    }

    fn validate(&self) -> Result<(), ModelError> {
        self.config.validate()?;
        self.normalizer.validate()?;
        let (n, raw) = (self.config.n_features, self.feature_names.len());
        if self.normalizer.n_features() != raw || self.normalizer.n_inputs() != n {
            return Err(ModelError::Config(format!(
                "{raw} feature names, a normaliser of {} features giving {} network inputs, \
                 and a network of {n} inputs",
                self.normalizer.n_features(),
                self.normalizer.n_inputs()
            )));
        }
        Ok(())
    }

    /// Errors (naming both hashes) unless the data's catalogue is the one the model was trained on.
    pub fn check_catalogue(&self, data_hash: &str) -> Result<(), ModelError> {
        if self.catalogue_hash != data_hash {
            return Err(ModelError::CatalogueMismatch {
                model: self.catalogue_hash.clone(),
                data: data_hash.to_string(),
            });
        }
        Ok(())
    }
}
