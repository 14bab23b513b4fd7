//! Model reload: on SIGHUP or when the model directory's files change (polled). A new model is
//! loaded and validated off the async executor; if anything fails the old one keeps serving and the
//! error is kept for `/readyz`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::batcher::Batcher;
use crate::engine::{validate, Loader, ModelInfo};
use crate::metrics::Metrics;

/// What `/readyz` reports about reloads.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReloadStatus {
    /// The last reload's error, cleared by the next successful reload.
    pub last_error: Option<String>,
    pub last_error_unix_s: Option<u64>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

/// A cheap fingerprint of a model directory: (name, size, mtime) of its model files, one level
/// deep: `*.json` and `*.safetensors` (symlinks followed), except `train.json`; and those of
/// every ensemble member under `members/` (named `members/<member>/<file>`). Other files a
/// training run writes there (`curve.csv`, `train.json`, `last/`) do not trigger a reload.
pub fn fingerprint(dir: &Path) -> Option<Vec<(String, u64, SystemTime)>> {
    let mut v = Vec::new();
    model_files(dir, "", &mut v)?;
    if let Ok(members) = std::fs::read_dir(dir.join(model::MEMBERS_DIR)) {
        // An added or removed member changes the fingerprint through its files' names.
        v.push((
            format!("{}/", model::MEMBERS_DIR),
            0,
            SystemTime::UNIX_EPOCH,
        ));
        for e in members.flatten() {
            if e.path().is_dir() {
                let prefix = format!(
                    "{}/{}/",
                    model::MEMBERS_DIR,
                    e.file_name().to_string_lossy()
                );
                model_files(&e.path(), &prefix, &mut v);
            }
        }
    }
    v.sort();
    Some(v)
}

/// Appends `(prefix + name, size, mtime)` of the model files directly in `dir`.
fn model_files(dir: &Path, prefix: &str, v: &mut Vec<(String, u64, SystemTime)>) -> Option<()> {
    for e in std::fs::read_dir(dir).ok()? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        let model_file =
            (name.ends_with(".json") || name.ends_with(".safetensors")) && name != "train.json";
        if !model_file {
            continue;
        }
        // std::fs::metadata follows symlinks (a model linked into place is watched too).
        if let Ok(md) = std::fs::metadata(e.path()) {
            if md.is_file() {
                v.push((
                    format!("{prefix}{name}"),
                    md.len(),
                    md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                ));
            }
        }
    }
    Some(())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Loads + validates the model in `dir` and swaps it in. `required_features`, when given, must
/// equal the new model's feature names (live mode feeds the agent's rows in that order).
pub async fn reload(
    dir: &Path,
    loader: &Loader,
    batcher: &Batcher,
    status: &RwLock<ReloadStatus>,
    metrics: &Metrics,
    required_features: Option<&[String]>,
) -> Result<Arc<ModelInfo>, String> {
    let loader = loader.clone();
    let dir_owned = dir.to_path_buf();
    let required: Option<Vec<String>> = required_features.map(|f| f.to_vec());
    let result = tokio::task::spawn_blocking(move || {
        let mut engine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loader(&dir_owned)))
            .map_err(|_| "model loader panicked".to_string())??;
        if let Some(req) = &required {
            if engine.info().feature_names != *req {
                return Err(format!(
                    "the new model's {} features differ from the live agent's {} catalogue features",
                    engine.info().n_features(),
                    req.len()
                ));
            }
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| validate(engine.as_mut())))
            .map_err(|_| "model panicked on a test window".to_string())??;
        Ok(engine)
    })
    .await
    .map_err(|e| format!("reload task failed: {e}"))
    .and_then(|r| r);
    match result {
        Ok(engine) => {
            let old = batcher.info();
            let info = batcher
                .swap(engine)
                .await
                .map_err(|_| "the inference worker stopped before switching models".to_string())?;
            metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut s) = status.write() {
                s.last_error = None;
                s.last_error_unix_s = None;
                s.reloads_ok += 1;
            }
            tracing::info!(old = %old.model_id, new = %info.model_id, dir = %dir.display(), "model reloaded");
            Ok(info)
        }
        Err(e) => {
            let msg = format!(
                "reload of {} rejected, still serving the previous model: {e}",
                dir.display()
            );
            tracing::error!("{msg}");
            metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut s) = status.write() {
                s.last_error = Some(msg.clone());
                s.last_error_unix_s = Some(now_unix());
                s.reloads_failed += 1;
            }
            Err(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_ensemble_members_and_ignores_training_by_products() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("curve.csv"), "epoch").unwrap();
        let single = fingerprint(dir.path()).unwrap();
        assert_eq!(single.len(), 1, "{single:?}");

        let member = dir.path().join(model::MEMBERS_DIR).join("seed-43");
        std::fs::create_dir_all(&member).unwrap();
        let empty = fingerprint(dir.path()).unwrap();
        assert_ne!(empty, single, "a members/ directory appearing is a change");
        std::fs::write(member.join("config.json"), "{}").unwrap();
        std::fs::write(member.join("model.safetensors"), "w").unwrap();
        let with = fingerprint(dir.path()).unwrap();
        assert!(
            with.iter()
                .any(|f| f.0 == "members/seed-43/model.safetensors"),
            "{with:?}"
        );
        std::fs::write(member.join("curve.csv"), "epoch").unwrap();
        std::fs::write(member.join("train.json"), "{}").unwrap();
        assert_eq!(fingerprint(dir.path()).unwrap(), with);
        std::fs::write(member.join("model.safetensors"), "other weights").unwrap();
        assert_ne!(fingerprint(dir.path()).unwrap(), with);
    }
}
