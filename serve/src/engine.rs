//! The model behind the server. `Engine` is what the inference worker drives; the production
//! implementation wraps `model::Predictor` (see [`load_predictor`]).

use std::path::Path;
use std::sync::Arc;

/// One window handed to the engine: raw (un-normalised) values, row-major `t × n_features`,
/// NaN = missing.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowData {
    pub id: Option<String>,
    pub t: usize,
    pub data: Vec<f32>,
}

/// One answer per window.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Pred {
    pub p: f32,
    pub std: f32,
    /// Share of the features the model uses that the window observed.
    pub coverage: f32,
    pub out_of_distribution: bool,
}

/// What the HTTP layer needs to know about the loaded model (cheap to clone, shared).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub model_id: String,
    pub catalogue_hash: String,
    pub feature_names: Vec<String>,
    pub dir: String,
    /// The features the model reads and its coverage floor: `/v1/predict` refuses thinner
    /// windows unless the request says `"partial": true`.
    pub coverage: model::CoverageRule,
    /// The ids of the checkpoints that answer: one, or an ensemble's members (`members/`).
    pub members: Vec<String>,
    /// The ratios the model computes from each window beside its features (`--derived` of
    /// `cloudformer train`, e.g. `cpu-share`); empty for most models.
    pub derived_inputs: Vec<String>,
}

impl ModelInfo {
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }
}

/// A loaded model that can predict batches of windows. Owned by the inference worker thread.
pub trait Engine: Send + 'static {
    fn info(&self) -> &ModelInfo;
    /// One prediction per window, in order. Windows may have different `t`.
    fn predict(&mut self, windows: &[&WindowData]) -> Result<Vec<Pred>, String>;
}

/// Loads an engine from a model directory. The default is [`load_predictor`].
pub type Loader = Arc<dyn Fn(&Path) -> Result<Box<dyn Engine>, String> + Send + Sync>;

/// The default loader: `model::Predictor::load(dir)` (16 MC-dropout passes for `std`).
pub fn default_loader() -> Loader {
    Arc::new(|dir: &Path| load_predictor(dir).map(|e| Box::new(e) as Box<dyn Engine>))
}

/// Like [`default_loader`] with `mc_samples` MC-dropout passes per window for the uncertainty
/// (`std`); 0 = one deterministic pass and `std` 0, the fastest.
pub fn loader_with_mc_samples(mc_samples: usize) -> Loader {
    Arc::new(move |dir: &Path| {
        load_predictor(dir).map(|mut e| {
            e.predictor.set_mc_samples(mc_samples);
            Box::new(e) as Box<dyn Engine>
        })
    })
}

/// `model::Predictor` as an [`Engine`].
pub struct PredictorEngine {
    predictor: model::Predictor,
    info: ModelInfo,
}

pub fn load_predictor(dir: &Path) -> Result<PredictorEngine, String> {
    let predictor = model::Predictor::load(dir).map_err(|e| e.to_string())?;
    let info = ModelInfo {
        model_id: predictor.model_id().to_string(),
        catalogue_hash: predictor.catalogue_hash().to_string(),
        feature_names: predictor.feature_names().to_vec(),
        dir: dir.display().to_string(),
        coverage: predictor.coverage_rule(),
        members: predictor
            .member_ids()
            .into_iter()
            .map(String::from)
            .collect(),
        derived_inputs: predictor
            .derived_inputs()
            .into_iter()
            .map(String::from)
            .collect(),
    };
    Ok(PredictorEngine { predictor, info })
}

impl Engine for PredictorEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn predict(&mut self, windows: &[&WindowData]) -> Result<Vec<Pred>, String> {
        let ws: Vec<model::Window<'_>> = windows
            .iter()
            .map(|w| model::Window {
                data: &w.data,
                t: w.t,
            })
            .collect();
        let out = self.predictor.predict(&ws).map_err(|e| e.to_string())?;
        Ok(out
            .into_iter()
            .map(|p| Pred {
                p: p.p,
                std: p.std,
                coverage: p.coverage,
                out_of_distribution: p.out_of_distribution,
            })
            .collect())
    }
}

/// Checks a freshly loaded engine before it is allowed to serve: it must have features and answer
/// a window of zeros with a finite P̂ in [0, 1].
pub fn validate(engine: &mut dyn Engine) -> Result<(), String> {
    let f = engine.info().n_features();
    if f == 0 {
        return Err("model has no feature names".into());
    }
    let w = WindowData {
        id: None,
        t: 10,
        data: vec![0.0; 10 * f],
    };
    let out = engine.predict(&[&w])?;
    match out.first() {
        Some(p) if p.p.is_finite() && (0.0..=1.0).contains(&p.p) && p.std.is_finite() => Ok(()),
        Some(p) => Err(format!(
            "model answered a zero window with P̂ = {} (std {}), expected a finite value in [0, 1]",
            p.p, p.std
        )),
        None => Err("model returned no prediction for a test window".into()),
    }
}
