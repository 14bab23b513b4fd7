//! Request parsing and validation, separate from HTTP so it can be fuzzed directly.
//!
//! Every function here returns `Ok` or an [`ApiError`] with a 4xx status and a message naming the
//! problem; none of them panics on any input.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::engine::WindowData;
use crate::error::ApiError;

mod infer;
pub use infer::{parse_infer, parse_infer_parts, InferRequest, V2_OUTPUTS};

/// Request-shape limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most windows in one request.
    pub max_windows: usize,
    /// Most seconds (rows) in one window.
    pub max_t: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_windows: 256,
            max_t: 600,
        }
    }
}

/// A window id: a string or a number in the request, a string in the answer.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdIn {
    Str(String),
    Num(serde_json::Number),
}

impl IdIn {
    fn into_string(self) -> String {
        match self {
            IdIn::Str(s) => s,
            IdIn::Num(n) => n.to_string(),
        }
    }
}

/// A `matrix` read straight into one row-major f32 buffer (null → NaN) while it is parsed:
/// no vector per row, no second copy. Shape problems are recorded and reported by the caller,
/// which knows the feature names.
#[derive(Default)]
struct FlatMatrix {
    data: Vec<f32>,
    rows: usize,
    /// Row 0's length.
    first_len: usize,
    /// The first row whose length differs from row 0's: (row, its length).
    ragged: Option<(usize, usize)>,
    /// The first value that is not a finite 32-bit float: (row, column, value).
    bad: Option<(usize, usize, f64)>,
}

impl<'de> Deserialize<'de> for FlatMatrix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(MatrixVisitor)
    }
}

struct MatrixVisitor;

impl<'de> Visitor<'de> for MatrixVisitor {
    type Value = FlatMatrix;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of rows, each an array of numbers (or null for missing)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FlatMatrix, A::Error> {
        let mut m = FlatMatrix::default();
        loop {
            let start = m.data.len();
            if seq.next_element_seed(RowSeed(&mut m))?.is_none() {
                return Ok(m);
            }
            let len = m.data.len() - start;
            if m.rows == 0 {
                m.first_len = len;
            } else if len != m.first_len && m.ragged.is_none() {
                m.ragged = Some((m.rows, len));
            }
            m.rows += 1;
        }
    }
}

/// One row of a [`FlatMatrix`], appended to its buffer.
struct RowSeed<'a>(&'a mut FlatMatrix);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a matrix row: an array of numbers (or null for missing)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let m = self.0;
        let start = m.data.len();
        while let Some(v) = seq.next_element::<Option<f64>>()? {
            let y = match v {
                None => f32::NAN,
                Some(x) => {
                    let y = x as f32;
                    if !y.is_finite() && m.bad.is_none() {
                        m.bad = Some((m.rows, m.data.len() - start, x));
                    }
                    y
                }
            };
            m.data.push(y);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowIn {
    #[serde(default)]
    id: Option<IdIn>,
    /// feature name → per-second values (null = missing).
    #[serde(default)]
    metrics: Option<HashMap<String, Vec<Option<f64>>>>,
    /// T rows × F columns in the model's feature order (null = missing).
    #[serde(default)]
    matrix: Option<FlatMatrix>,
}

/// The top level: `{"windows": [...]}` or one window's fields directly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictIn {
    #[serde(default)]
    windows: Option<Vec<WindowIn>>,
    #[serde(default)]
    id: Option<IdIn>,
    #[serde(default)]
    metrics: Option<HashMap<String, Vec<Option<f64>>>>,
    #[serde(default)]
    matrix: Option<FlatMatrix>,
    /// Answer windows whose coverage is below the model's floor (flagged) instead of a 422.
    #[serde(default)]
    partial: Option<bool>,
}

/// A parsed `POST /v1/predict` body.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictRequest {
    pub windows: Vec<WindowData>,
    /// `"partial": true`: thin windows are answered (and flagged) rather than refused.
    pub partial: bool,
}

/// serde_json error → 400 with "malformed JSON" for syntax errors, "invalid request" for shape errors.
pub(crate) fn json_error(e: serde_json::Error, what: &str) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(format!("malformed JSON: {e}"))
        }
        Category::Data => ApiError::bad_request(format!("invalid {what}: {e}")),
    }
}

/// serde accepts a struct written as a JSON array (positional fields); requests must be objects.
pub(crate) fn require_object(body: &[u8]) -> Result<(), ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) => Err(json_error(e, "request")),
            Ok(_) => Err(ApiError::bad_request(
                "invalid request: expected a JSON object {\"windows\": [...]}",
            )),
        },
        None => Err(ApiError::bad_request(
            "empty request body: expected a JSON object",
        )),
    }
}

/// `POST /v1/predict` body → validated windows (row-major `t × names.len()`, NaN = missing).
///
/// Accepted shapes: `{"windows": [W, ...]}` or a single window object `W`, where `W` is
/// `{"id"?: str|num, "metrics": {feature name: [values]}}` or `{"id"?, "matrix": [[F values] × T]}`.
pub fn parse_predict(
    body: &[u8],
    names: &[String],
    limits: &Limits,
) -> Result<Vec<WindowData>, ApiError> {
    parse_predict_request(body, names, limits).map(|r| r.windows)
}

/// [`parse_predict`] plus the request's options (`"partial"`).
pub fn parse_predict_request(
    body: &[u8],
    names: &[String],
    limits: &Limits,
) -> Result<PredictRequest, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request(
            "empty request body: expected a JSON object {\"windows\": [...]}",
        ));
    }
    require_object(body)?;
    let top: PredictIn = serde_json::from_slice(body).map_err(|e| json_error(e, "request"))?;
    let partial = top.partial.unwrap_or(false);
    let windows: Vec<WindowIn> = match top.windows {
        Some(ws) => {
            if top.id.is_some() || top.metrics.is_some() || top.matrix.is_some() {
                return Err(ApiError::bad_request(
                    "request has \"windows\" and top-level window fields; put every window inside \"windows\"",
                ));
            }
            ws
        }
        None if top.metrics.is_some() || top.matrix.is_some() => vec![WindowIn {
            id: top.id,
            metrics: top.metrics,
            matrix: top.matrix,
        }],
        None => {
            return Err(ApiError::bad_request(
                "request has no \"windows\" (or single-window \"metrics\"/\"matrix\") field",
            ))
        }
    };
    if windows.is_empty() {
        return Err(ApiError::bad_request(
            "\"windows\" is empty: send at least one window",
        ));
    }
    if windows.len() > limits.max_windows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} windows in one request; the limit is {} (--max-windows)",
                windows.len(),
                limits.max_windows
            ),
        ));
    }
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let windows = windows
        .into_iter()
        .enumerate()
        .map(|(i, w)| window_from(i, w, names, &index, limits))
        .collect::<Result<_, _>>()?;
    Ok(PredictRequest { windows, partial })
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn label(i: usize, id: &Option<String>) -> String {
    match id {
        Some(id) => format!("window {i} (id {id:?})"),
        None => format!("window {i}"),
    }
}

pub(crate) fn check_value(v: Option<f64>, what: impl Fn() -> String) -> Result<f32, ApiError> {
    match v {
        None => Ok(f32::NAN),
        Some(x) => {
            let y = x as f32;
            if y.is_finite() {
                Ok(y)
            } else {
                Err(ApiError::bad_request(format!(
                    "{}: value {x} is not a finite 32-bit float",
                    what()
                )))
            }
        }
    }
}

pub(crate) fn check_t(t: usize, what: &str, limits: &Limits) -> Result<(), ApiError> {
    if t == 0 {
        return Err(ApiError::bad_request(format!(
            "{what} is empty: it needs at least one second of values"
        )));
    }
    if t > limits.max_t {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what} has {t} seconds; the limit is {} (--max-window-s)",
                limits.max_t
            ),
        ));
    }
    Ok(())
}

fn window_from(
    i: usize,
    w: WindowIn,
    names: &[String],
    index: &HashMap<&str, usize>,
    limits: &Limits,
) -> Result<WindowData, ApiError> {
    let id = w.id.map(IdIn::into_string);
    let what = label(i, &id);
    let f = names.len();
    match (w.metrics, w.matrix) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "{what} has both \"metrics\" and \"matrix\"; send one of them"
        ))),
        (None, None) => Err(ApiError::bad_request(format!(
            "{what} has neither \"metrics\" (name → values) nor \"matrix\" (T × {f} rows)"
        ))),
        (Some(metrics), None) => {
            if metrics.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "{what}: \"metrics\" is empty; give at least one metric's per-second values"
                )));
            }
            // Sorted for deterministic error messages.
            let mut entries: Vec<(String, Vec<Option<f64>>)> = metrics.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut t: Option<(usize, String)> = None;
            for (name, vals) in &entries {
                if !index.contains_key(name.as_str()) {
                    let hint = suggest(name, names);
                    return Err(ApiError::bad_request(format!(
                        "{what}: unknown metric name {name:?}{hint} (the model's {f} feature names are listed at GET /v2/models/cloudformer)"
                    )));
                }
                match &t {
                    None => t = Some((vals.len(), name.clone())),
                    Some((t0, first)) if *t0 != vals.len() => {
                        return Err(ApiError::bad_request(format!(
                            "{what}: metric {name:?} has {} values but {first:?} has {t0}; all metrics of a window need the same number of seconds",
                            vals.len()
                        )))
                    }
                    Some(_) => {}
                }
            }
            let t = t.map(|x| x.0).unwrap_or(0);
            check_t(t, &what, limits)?;
            let mut data = vec![f32::NAN; t * f];
            for (name, vals) in entries {
                let Some(&col) = index.get(name.as_str()) else {
                    continue;
                };
                for (row, v) in vals.into_iter().enumerate() {
                    data[row * f + col] =
                        check_value(v, || format!("{what}: metric {name:?} second {row}"))?;
                }
            }
            Ok(WindowData { id, t, data })
        }
        (None, Some(matrix)) => {
            let t = matrix.rows;
            check_t(t, &what, limits)?;
            // Every row has row 0's length unless `ragged` names the first one that does not.
            let bad_row = if matrix.first_len != f {
                Some((0, matrix.first_len))
            } else {
                matrix.ragged
            };
            if let Some((row, len)) = bad_row {
                return Err(ApiError::bad_request(format!(
                    "{what}: matrix row {row} has {len} values; the model expects {f} columns in its feature order"
                )));
            }
            if let Some((row, col, x)) = matrix.bad {
                return Err(ApiError::bad_request(format!(
                    "{what}: matrix row {row} column {col} ({}): value {x} is not a finite 32-bit float",
                    names[col]
                )));
            }
            Ok(WindowData {
                id,
                t,
                data: matrix.data,
            })
        }
    }
}

/// ", did you mean X?" for a near miss (same name modulo case / `nbr.` prefix / separators).
pub(crate) fn suggest(name: &str, names: &[String]) -> String {
    let norm = |s: &str| {
        s.to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
    };
    let n = norm(name);
    names
        .iter()
        .find(|c| norm(c) == n)
        .or_else(|| {
            names
                .iter()
                .find(|c| n.len() >= 4 && (norm(c).contains(&n) || n.contains(&norm(c))))
        })
        .map(|c| format!(", did you mean {c:?}?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
