//! The live window a model is served with: the input length it was trained on
//! (`training.input_len_s` of its `config.json`), or [`DEFAULT_LIVE_WINDOW_S`] for a model that
//! records none. One place for `cloudformer serve`/`up` and the live tests.

use std::path::Path;

/// Seconds of history per live answer when the model records no input length.
pub const DEFAULT_LIVE_WINDOW_S: usize = 20;

/// The input length, in seconds, that the model in `model` was trained on, when its
/// `config.json` records one (a missing or unreadable file records none).
pub fn trained_input_len(model: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(model.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["training"]["input_len_s"]
        .as_u64()
        .filter(|&n| n > 0)
        .map(|n| n as usize)
}

/// The live window for the model in `model`: its trained input length, else the default.
pub fn live_window_s(model: &Path) -> usize {
    trained_input_len(model).unwrap_or(DEFAULT_LIVE_WINDOW_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_trained_input_length_else_the_default() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            live_window_s(d.path()),
            DEFAULT_LIVE_WINDOW_S,
            "no config.json"
        );
        let cfg = d.path().join("config.json");
        std::fs::write(&cfg, r#"{"training":{"input_len_s":30}}"#).unwrap();
        assert_eq!(live_window_s(d.path()), 30);
        std::fs::write(&cfg, r#"{"training":{"input_len_s":0}}"#).unwrap();
        assert_eq!(trained_input_len(d.path()), None, "0 records nothing");
        std::fs::write(&cfg, "not json").unwrap();
        assert_eq!(live_window_s(d.path()), DEFAULT_LIVE_WINDOW_S);
    }
}
