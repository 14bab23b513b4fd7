//! The Open Inference Protocol (KServe v2) `infer` request: tensors in, windows out, with the
//! same limits and the same 4xx errors as `/v1/predict` ([`super`]).

use axum::http::StatusCode;
use serde::Deserialize;

use super::{check_t, check_value, json_error, json_kind, require_object, Limits};
use crate::engine::WindowData;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<serde_json::Value>,
    /// Absent when the tensor comes as binary data (`parameters.binary_data_size`).
    #[serde(default)]
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InferOutputReq {
    name: String,
    #[serde(default)]
    parameters: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InferIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<serde_json::Value>,
    inputs: Vec<InferInput>,
    #[serde(default)]
    outputs: Option<Vec<InferOutputReq>>,
}

/// The output tensors a v2 infer request may ask for.
pub const V2_OUTPUTS: [&str; 3] = ["degradation", "degradation_std", "out_of_distribution"];

/// A parsed v2 infer request.
#[derive(Debug)]
pub struct InferRequest {
    pub id: Option<String>,
    pub windows: Vec<WindowData>,
    /// Requested output names (all of [`V2_OUTPUTS`] when the request names none).
    pub outputs: Vec<String>,
    /// For each of `outputs`: answered as binary tensor data ([`crate::v2_binary`])?
    pub binary: Vec<bool>,
    /// `"parameters": {"partial": true}`: thin windows are answered (flagged out of distribution)
    /// rather than refused.
    pub partial: bool,
}

/// Flattens nested arrays of numbers / nulls row-major, with a depth limit and an element limit.
fn flatten(
    v: &serde_json::Value,
    out: &mut Vec<Option<f64>>,
    depth: usize,
    max: usize,
) -> Result<(), String> {
    match v {
        serde_json::Value::Array(a) => {
            if depth >= 4 {
                return Err("\"data\" is nested deeper than the tensor's shape".into());
            }
            for x in a {
                flatten(x, out, depth + 1, max)?;
            }
            Ok(())
        }
        serde_json::Value::Number(n) => {
            if out.len() >= max {
                return Err(format!("\"data\" has more than {max} elements"));
            }
            out.push(n.as_f64());
            Ok(())
        }
        serde_json::Value::Null => {
            out.push(None);
            Ok(())
        }
        other => Err(format!(
            "\"data\" holds {}, expected numbers (or null for missing)",
            json_kind(other)
        )),
    }
}

fn dim(shape: &[i64], i: usize, input: &str) -> Result<usize, ApiError> {
    let d = shape.get(i).copied().unwrap_or(0);
    if d <= 0 {
        return Err(ApiError::bad_request(format!(
            "input {input:?}: shape {shape:?} has a non-positive dimension"
        )));
    }
    usize::try_from(d)
        .map_err(|_| ApiError::bad_request(format!("input {input:?}: dimension {d} too large")))
}

/// `POST /v2/models/{name}/infer` body (JSON only) → windows; see [`parse_infer_parts`].
pub fn parse_infer(
    body: &[u8],
    names: &[String],
    limits: &Limits,
) -> Result<InferRequest, ApiError> {
    parse_infer_parts(body, &[], names, limits)
}

/// An input's values, row-major: from its binary tensor data when it has some, else from its
/// JSON `data` (at most `max` elements).
fn input_values(
    inp: &InferInput,
    binary: Option<&[u8]>,
    depth: usize,
    max: usize,
) -> Result<Vec<Option<f64>>, ApiError> {
    let name = &inp.name;
    match (binary, &inp.data) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(format!(
            "input {name:?} has both \"data\" and parameters.binary_data_size; send one"
        ))),
        (Some(bytes), None) => crate::v2_binary::decode(bytes, &inp.datatype, name),
        (None, Some(data)) => {
            let mut out = Vec::with_capacity(max.min(1 << 22));
            flatten(data, &mut out, depth, max)
                .map_err(|e| ApiError::bad_request(format!("input {name:?}: {e}")))?;
            Ok(out)
        }
        (None, None) => Err(ApiError::bad_request(format!(
            "input {name:?} has no \"data\" (nor parameters.binary_data_size with binary tensor data after the JSON)"
        ))),
    }
}

/// An input with its binary tensor data, if it came as such.
type Input<'a> = (&'a InferInput, Option<&'a [u8]>);

/// `POST /v2/models/{name}/infer` body → windows; `json` is the JSON part and `binary` the
/// binary tensor data after it (empty without `Inference-Header-Content-Length`). Inputs:
/// `metrics` FP32 `[B, T, F]` (or `[T, F]` for one window), row-major, windows padded to T;
/// optional `lengths` INT32/INT64 `[B]` giving each window's real length (its first
/// `lengths[b]` rows are used).
pub fn parse_infer_parts(
    json: &[u8],
    binary: &[u8],
    names: &[String],
    limits: &Limits,
) -> Result<InferRequest, ApiError> {
    require_object(json)?;
    let req: InferIn =
        serde_json::from_slice(json).map_err(|e| json_error(e, "inference request"))?;
    let partial = partial_flag(req.parameters.as_ref())?;
    let f = names.len();
    let ((m, m_bytes), lengths) = named_inputs(&req.inputs, binary, f)?;
    let (b, t) = metrics_shape(m, f, limits)?;
    let expected = b * t * f;
    let flat = input_values(m, m_bytes, 0, expected)?;
    if flat.len() != expected {
        return Err(ApiError::bad_request(format!(
            "input \"metrics\" has {} values but its shape {:?} needs {expected}",
            flat.len(),
            m.shape
        )));
    }
    let lens = match lengths {
        None => vec![t; b],
        Some(l) => window_lengths(l, b, t)?,
    };
    let windows = windows_from(&flat, &lens, t, names)?;
    let (outputs, binary) = requested_outputs(req.outputs, req.parameters.as_ref())?;
    Ok(InferRequest {
        id: req.id,
        windows,
        outputs,
        binary,
        partial,
    })
}

/// `parameters.partial`: absent = false.
fn partial_flag(parameters: Option<&serde_json::Value>) -> Result<bool, ApiError> {
    match parameters.and_then(|p| p.get("partial")) {
        None => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "parameters.partial is {}, expected true or false",
            json_kind(other)
        ))),
    }
}

/// The `metrics` input (required) and the `lengths` input (optional), each with its slice of the
/// binary tensor data; any other input, or one given twice, is refused.
fn named_inputs<'a>(
    inputs: &'a [InferInput],
    binary: &'a [u8],
    f: usize,
) -> Result<(Input<'a>, Option<Input<'a>>), ApiError> {
    let mut section = crate::v2_binary::Section::new(binary);
    let mut metrics: Option<Input> = None;
    let mut lengths: Option<Input> = None;
    for inp in inputs {
        // Binary tensor data is laid out in the order the inputs are listed.
        let bytes = match crate::v2_binary::binary_size(inp.parameters.as_ref(), &inp.name)? {
            Some(n) => Some(section.take(n, &inp.name)?),
            None => None,
        };
        let slot = match inp.name.as_str() {
            "metrics" => &mut metrics,
            "lengths" => &mut lengths,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown input {other:?}: this model takes \"metrics\" (FP32 [B, T, {f}]) and optionally \"lengths\" (INT32 [B])"
                )))
            }
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(format!(
                "input {:?} given twice",
                inp.name
            )));
        }
        *slot = Some((inp, bytes));
    }
    section.finish()?;
    let metrics = metrics.ok_or_else(|| {
        ApiError::bad_request(format!(
            "missing input \"metrics\" (FP32 [B, T, {f}], row-major)"
        ))
    })?;
    Ok((metrics, lengths))
}

/// `metrics`' datatype and shape checked against the model's F features and the limits →
/// (windows B, seconds T).
fn metrics_shape(m: &InferInput, f: usize, limits: &Limits) -> Result<(usize, usize), ApiError> {
    if !matches!(m.datatype.as_str(), "FP32" | "FP64") {
        return Err(ApiError::bad_request(format!(
            "input \"metrics\" has datatype {:?}; expected \"FP32\" or \"FP64\"",
            m.datatype
        )));
    }
    let (b, t, fi) = match m.shape.len() {
        3 => (
            dim(&m.shape, 0, "metrics")?,
            dim(&m.shape, 1, "metrics")?,
            dim(&m.shape, 2, "metrics")?,
        ),
        2 => (
            1,
            dim(&m.shape, 0, "metrics")?,
            dim(&m.shape, 1, "metrics")?,
        ),
        _ => {
            return Err(ApiError::bad_request(format!(
                "input \"metrics\" has shape {:?}; expected [B, T, {f}] or [T, {f}]",
                m.shape
            )))
        }
    };
    if fi != f {
        return Err(ApiError::bad_request(format!(
            "input \"metrics\" has {fi} features in its last dimension; the model expects {f}"
        )));
    }
    if b > limits.max_windows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch of {b} windows; the limit is {} (--max-windows)",
                limits.max_windows
            ),
        ));
    }
    check_t(t, "input \"metrics\"", limits)?;
    Ok((b, t))
}

/// The `lengths` input: B whole numbers in 1..=T.
fn window_lengths((l, l_bytes): Input, b: usize, t: usize) -> Result<Vec<usize>, ApiError> {
    if !matches!(l.datatype.as_str(), "INT32" | "INT64" | "UINT32" | "UINT64") {
        return Err(ApiError::bad_request(format!(
            "input \"lengths\" has datatype {:?}; expected an integer type (\"INT32\", \"INT64\", \"UINT32\" or \"UINT64\")",
            l.datatype
        )));
    }
    if l.shape.len() != 1 || l.shape[0] != b as i64 {
        return Err(ApiError::bad_request(format!(
            "input \"lengths\" has shape {:?}; expected [{b}]",
            l.shape
        )));
    }
    let raw = input_values(l, l_bytes, 1, b)?;
    if raw.len() != b {
        return Err(ApiError::bad_request(format!(
            "input \"lengths\" has {} values; expected {b}",
            raw.len()
        )));
    }
    raw.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(x) if x.fract() == 0.0 && *x >= 1.0 && *x <= t as f64 => Ok(*x as usize),
            _ => Err(ApiError::bad_request(format!(
                "input \"lengths\"[{i}] = {v:?}; expected an integer in 1..={t}"
            ))),
        })
        .collect()
}

/// The first `lens[w]` rows of each window of the padded `[B, T, F]` values, every value checked.
fn windows_from(
    flat: &[Option<f64>],
    lens: &[usize],
    t: usize,
    names: &[String],
) -> Result<Vec<WindowData>, ApiError> {
    let f = names.len();
    let mut windows = Vec::with_capacity(lens.len());
    for (wi, &len) in lens.iter().enumerate() {
        let base = wi * t * f;
        let mut data = Vec::with_capacity(len * f);
        for (k, v) in flat[base..base + len * f].iter().enumerate() {
            let (row, col) = (k / f, k % f);
            data.push(check_value(*v, || {
                format!(
                    "input \"metrics\" window {wi} second {row} feature {col} ({})",
                    names[col]
                )
            })?);
        }
        windows.push(WindowData {
            id: None,
            t: len,
            data,
        });
    }
    Ok(windows)
}

/// The outputs asked for (all of [`V2_OUTPUTS`] when none is named), each with whether it is
/// answered as binary tensor data.
fn requested_outputs(
    outputs: Option<Vec<InferOutputReq>>,
    req_params: Option<&serde_json::Value>,
) -> Result<(Vec<String>, Vec<bool>), ApiError> {
    let binary_of =
        |p: Option<&serde_json::Value>| crate::v2_binary::output_is_binary(req_params, p);
    match outputs {
        Some(o) if !o.is_empty() => {
            let mut names_out = Vec::new();
            let mut binary = Vec::new();
            for r in o {
                if !V2_OUTPUTS.contains(&r.name.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "unknown output {:?}; this model produces {V2_OUTPUTS:?}",
                        r.name
                    )));
                }
                binary.push(binary_of(r.parameters.as_ref()));
                names_out.push(r.name);
            }
            Ok((names_out, binary))
        }
        _ => Ok((
            V2_OUTPUTS.iter().map(|s| s.to_string()).collect(),
            vec![binary_of(None); V2_OUTPUTS.len()],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::tests::names;

    #[test]
    fn infer_shapes_and_lengths() {
        let body = br#"{"id":"r1","inputs":[{"name":"metrics","shape":[2,2,3],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0,0,0]},{"name":"lengths","shape":[2],"datatype":"INT32","data":[2,1]}]}"#;
        let r = parse_infer(body, &names(), &Limits::default()).unwrap();
        assert_eq!(r.id.as_deref(), Some("r1"));
        assert_eq!(r.windows.len(), 2);
        assert_eq!(r.windows[0].t, 2);
        assert_eq!(r.windows[1].t, 1);
        assert_eq!(r.windows[1].data, vec![7.0, 8.0, 9.0]);
        assert_eq!(r.outputs.len(), 3);
        // nested data is accepted too
        let body =
            br#"{"inputs":[{"name":"metrics","shape":[1,3],"datatype":"FP32","data":[[1,2,3]]}]}"#;
        let r = parse_infer(body, &names(), &Limits::default()).unwrap();
        assert_eq!(r.windows[0].data, vec![1.0, 2.0, 3.0]);
        let bad = br#"{"inputs":[{"name":"metrics","shape":[1,1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#;
        let e = parse_infer(bad, &names(), &Limits::default()).unwrap_err();
        assert!(e.message.contains("expects 3"), "{e}");
        let bad =
            br#"{"inputs":[{"name":"metrics","shape":[1,1,3],"datatype":"FP32","data":[1,2]}]}"#;
        let e = parse_infer(bad, &names(), &Limits::default()).unwrap_err();
        assert!(e.message.contains("needs 3"), "{e}");
    }
}
