//! Shared test helpers: the HTTP/1.1 test client (`client.rs`), and a small deterministic
//! engine used to exercise the HTTP layer independently of the neural model.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serve::{Engine, Loader, ModelInfo, Pred, WindowData};

mod client;
pub use client::*;

// ---------------------------------------------------------------------------------------------

/// A small deterministic engine for HTTP-layer tests: P̂ = 1 / (1 + mean(col 0) · scale), std =
/// 0.01 · t⁻¹ᐟ², OOD when any |value| > 1e6. Loaded from `DIR/engine.json`
/// `{"model_id": .., "n_features": .., "scale": ..}`; a missing/invalid file fails to load, and
/// `"broken": true` loads but answers NaN (so validation rejects it); `"nan_above": x` passes
/// the self-test but answers NaN when mean(col 0) > x (weights corrupt in a way the zero window
/// does not show).
pub struct LinearEngine {
    info: ModelInfo,
    scale: f32,
    broken: bool,
    nan_above: f32,
    delay: Duration,
}

impl Engine for LinearEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn predict(&mut self, windows: &[&WindowData]) -> Result<Vec<Pred>, String> {
        let f = self.info.n_features();
        std::thread::sleep(self.delay);
        Ok(windows
            .iter()
            .map(|w| {
                let col: Vec<f32> = (0..w.t)
                    .map(|r| w.data[r * f])
                    .filter(|v| v.is_finite())
                    .collect();
                let mean = if col.is_empty() {
                    0.0
                } else {
                    col.iter().sum::<f32>() / col.len() as f32
                };
                let p = if self.broken || mean > self.nan_above {
                    f32::NAN
                } else {
                    1.0 / (1.0 + mean.abs() * self.scale)
                };
                Pred {
                    p,
                    std: 0.01 / (w.t as f32).sqrt(),
                    coverage: w.data.iter().filter(|v| v.is_finite()).count() as f32
                        / w.data.len().max(1) as f32,
                    out_of_distribution: w.data.iter().any(|v| v.abs() > 1e6),
                }
            })
            .collect())
    }
}

pub fn feature_names(n: usize) -> Vec<String> {
    let half: Vec<String> = (0..n / 2).map(|i| format!("m{i}.value")).collect();
    let mut v = half.clone();
    v.extend(half.iter().map(|h| format!("nbr.{h}")));
    v
}

pub fn write_engine_dir(dir: &Path, model_id: &str, n_features: usize, scale: f32, broken: bool) {
    write_engine_dir_delay(dir, model_id, n_features, scale, broken, 0)
}

pub fn write_engine_dir_delay(
    dir: &Path,
    model_id: &str,
    n_features: usize,
    scale: f32,
    broken: bool,
    delay_ms: u64,
) {
    std::fs::create_dir_all(dir).unwrap();
    let j = serde_json::json!({"model_id": model_id, "n_features": n_features, "scale": scale, "broken": broken, "delay_ms": delay_ms});
    std::fs::write(dir.join("engine.json"), j.to_string()).unwrap();
}

/// A linear engine directory whose model passes the self-test but answers NaN for windows whose
/// mean of column 0 exceeds `above`.
pub fn write_engine_dir_nan_above(dir: &Path, model_id: &str, n_features: usize, above: f32) {
    std::fs::create_dir_all(dir).unwrap();
    let j = serde_json::json!({"model_id": model_id, "n_features": n_features, "scale": 1.0, "nan_above": above});
    std::fs::write(dir.join("engine.json"), j.to_string()).unwrap();
}

/// A linear engine directory whose model reads every feature and refuses windows with coverage
/// below `floor`.
pub fn write_engine_dir_floor(dir: &Path, model_id: &str, n_features: usize, floor: f32) {
    std::fs::create_dir_all(dir).unwrap();
    let j = serde_json::json!({"model_id": model_id, "n_features": n_features, "scale": 1.0, "coverage_floor": floor});
    std::fs::write(dir.join("engine.json"), j.to_string()).unwrap();
}

pub fn linear_loader() -> Loader {
    Arc::new(|dir: &Path| {
        let text = std::fs::read_to_string(dir.join("engine.json"))
            .map_err(|e| format!("engine.json: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("engine.json: {e}"))?;
        let n = v["n_features"]
            .as_u64()
            .ok_or("engine.json: no n_features")? as usize;
        let engine = LinearEngine {
            info: ModelInfo {
                model_id: v["model_id"]
                    .as_str()
                    .ok_or("engine.json: no model_id")?
                    .to_string(),
                catalogue_hash: "testhash".into(),
                feature_names: feature_names(n),
                dir: dir.display().to_string(),
                // `"coverage_floor": x` makes every feature used, with that floor.
                coverage: match v["coverage_floor"].as_f64() {
                    Some(floor) => model::CoverageRule {
                        used: vec![true; n],
                        floor: floor as f32,
                    },
                    None => Default::default(),
                },
                members: vec![v["model_id"].as_str().unwrap_or_default().to_string()],
                derived_inputs: Vec::new(),
            },
            scale: v["scale"].as_f64().unwrap_or(1.0) as f32,
            broken: v["broken"].as_bool().unwrap_or(false),
            nan_above: v["nan_above"].as_f64().unwrap_or(f64::INFINITY) as f32,
            delay: Duration::from_millis(v["delay_ms"].as_u64().unwrap_or(0)),
        };
        Ok(Box::new(engine) as Box<dyn Engine>)
    })
}

/// Starts an in-process server on a free loopback port; returns its address and a shutdown handle.
pub fn start(
    cfg: serve::ServeConfig,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = match serve::Server::bind(cfg).await {
                Ok(s) => s,
                Err(e) => {
                    addr_tx.send(Err(e.to_string())).unwrap();
                    return;
                }
            };
            addr_tx.send(Ok(server.local_addr().unwrap())).unwrap();
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx
        .recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("server failed to start: {e}"));
    (addr, stop_tx, h)
}

pub fn test_config(dir: &Path) -> serve::ServeConfig {
    let mut cfg = serve::ServeConfig::new(dir);
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.loader = linear_loader();
    cfg.reload_on_sighup = false;
    cfg
}
