//! The Open Inference Protocol's binary tensor data extension — what NVIDIA's `tritonclient`
//! sends and asks for by default.
//!
//! A request may carry tensors after its JSON: the header `Inference-Header-Content-Length`
//! gives the JSON's length, and each input with `"parameters": {"binary_data_size": N}` takes
//! the next N bytes (little-endian, row-major) instead of `"data"`. Outputs are answered the
//! same way when the request asks (`"binary_data": true` on an output, or
//! `"binary_data_output": true` on the request, which an output's own flag overrides): the
//! answer is then the JSON followed by the outputs' bytes, with the same header. For FP32/FP64
//! inputs a NaN element is a missing value (JSON's `null`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;

/// The header giving the JSON part's length in bytes.
pub const HEADER: &str = "inference-header-content-length";

/// Splits a body into its JSON part and its binary tensor data, from the value of [`HEADER`].
pub fn split<'a>(body: &'a [u8], header: Option<&str>) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(h) = header else {
        return Ok((body, &[]));
    };
    let n: usize = h.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "header Inference-Header-Content-Length is {h:?}; expected the JSON part's length in bytes"
        ))
    })?;
    if n > body.len() {
        return Err(ApiError::bad_request(format!(
            "header Inference-Header-Content-Length is {n} but the body has only {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}

/// The binary tensor data of a request, handed out input by input in JSON order.
#[derive(Debug)]
pub struct Section<'a> {
    rest: &'a [u8],
}

impl<'a> Section<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Section { rest: bytes }
    }

    /// The next `n` bytes, for `input`.
    pub fn take(&mut self, n: usize, input: &str) -> Result<&'a [u8], ApiError> {
        if n > self.rest.len() {
            return Err(ApiError::bad_request(format!(
                "input {input:?} declares binary_data_size {n} but only {} bytes of binary tensor data are left",
                self.rest.len()
            )));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Every byte was claimed by an input.
    pub fn finish(&self) -> Result<(), ApiError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(format!(
                "{} bytes of binary tensor data after the JSON belong to no input (binary_data_size too small, or Inference-Header-Content-Length wrong)",
                self.rest.len()
            )))
        }
    }
}

/// `"parameters": {"binary_data_size": N}` of an input, if it has one.
pub fn binary_size(params: Option<&Value>, input: &str) -> Result<Option<usize>, ApiError> {
    match params.and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input {input:?}: parameters.binary_data_size is {v}, expected a byte count"
                ))
            }),
    }
}

/// Little-endian tensor bytes of `datatype` → values (a NaN float is missing: `None`).
pub fn decode(bytes: &[u8], datatype: &str, input: &str) -> Result<Vec<Option<f64>>, ApiError> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<Option<f64>> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                let v = f(a);
                (!v.is_nan()).then_some(v)
            })
            .collect()
    }
    let size = match datatype {
        "FP32" | "INT32" | "UINT32" => 4,
        "FP64" | "INT64" | "UINT64" => 8,
        other => {
            return Err(ApiError::bad_request(format!(
                "input {input:?}: binary data of datatype {other:?} is not supported (FP32, FP64, INT32, INT64, UINT32, UINT64)"
            )))
        }
    };
    if !bytes.len().is_multiple_of(size) {
        return Err(ApiError::bad_request(format!(
            "input {input:?}: {} bytes of {datatype} binary data is not a whole number of {size}-byte elements",
            bytes.len()
        )));
    }
    Ok(match datatype {
        "FP32" => each::<4>(bytes, |a| f64::from(f32::from_le_bytes(a))),
        "INT32" => each::<4>(bytes, |a| f64::from(i32::from_le_bytes(a))),
        "UINT32" => each::<4>(bytes, |a| f64::from(u32::from_le_bytes(a))),
        "FP64" => each::<8>(bytes, f64::from_le_bytes),
        "INT64" => each::<8>(bytes, |a| i64::from_le_bytes(a) as f64),
        _ => each::<8>(bytes, |a| u64::from_le_bytes(a) as f64),
    })
}

/// Whether an output is answered as binary data: its own `binary_data` flag, else the request's
/// `binary_data_output`, else JSON.
pub fn output_is_binary(request: Option<&Value>, output: Option<&Value>) -> bool {
    let flag = |p: Option<&Value>, key: &str| p.and_then(|p| p.get(key)).and_then(Value::as_bool);
    flag(output, "binary_data")
        .or_else(|| flag(request, "binary_data_output"))
        .unwrap_or(false)
}

/// One output tensor of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    Fp32(Vec<f32>),
    Bool(Vec<bool>),
}

impl Tensor {
    fn datatype(&self) -> &'static str {
        match self {
            Tensor::Fp32(_) => "FP32",
            Tensor::Bool(_) => "BOOL",
        }
    }
    fn len(&self) -> usize {
        match self {
            Tensor::Fp32(v) => v.len(),
            Tensor::Bool(v) => v.len(),
        }
    }
    fn json(&self) -> Value {
        match self {
            Tensor::Fp32(v) => serde_json::json!(v),
            Tensor::Bool(v) => serde_json::json!(v),
        }
    }
    fn bytes(&self) -> Vec<u8> {
        match self {
            Tensor::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Tensor::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
        }
    }
}

/// The answer of an infer request: `head` (model name, version, id, parameters) plus `outputs`
/// (name, tensor, as binary?) — plain JSON when no output is binary, otherwise JSON followed by
/// the binary outputs' bytes with [`HEADER`].
pub fn answer(
    mut head: serde_json::Map<String, Value>,
    outputs: Vec<(String, Tensor, bool)>,
) -> Response {
    let mut blobs = Vec::new();
    let mut list = Vec::with_capacity(outputs.len());
    for (name, t, binary) in &outputs {
        let mut o = serde_json::json!({"name": name, "datatype": t.datatype(), "shape": [t.len()]});
        if *binary {
            let b = t.bytes();
            o["parameters"] = serde_json::json!({"binary_data_size": b.len()});
            blobs.extend_from_slice(&b);
        } else {
            o["data"] = t.json();
        }
        list.push(o);
    }
    head.insert("outputs".into(), Value::Array(list));
    let json = Value::Object(head).to_string().into_bytes();
    if !outputs.iter().any(|(_, _, b)| *b) {
        return (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response();
    }
    let json_len = json.len();
    let mut body = json;
    body.extend_from_slice(&blobs);
    let mut r = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        body,
    )
        .into_response();
    r.headers_mut()
        .insert(HEADER, HeaderValue::from(json_len as u64));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_by_the_header_and_hand_out_sections_in_order() {
        let body = b"{\"a\":1}\x01\x02\x03\x04\x05";
        let (j, b) = split(body, Some("7")).unwrap();
        assert_eq!(j, b"{\"a\":1}");
        let mut s = Section::new(b);
        assert_eq!(s.take(2, "x").unwrap(), b"\x01\x02");
        assert!(s.finish().unwrap_err().message.contains("3 bytes"));
        assert_eq!(s.take(3, "y").unwrap(), b"\x03\x04\x05");
        s.finish().unwrap();
        assert!(s.take(1, "z").unwrap_err().message.contains("\"z\""));
        assert_eq!(split(body, None).unwrap(), (&body[..], &b""[..]));
        for bad in ["x", "-1", "99"] {
            let e = split(body, Some(bad)).unwrap_err();
            assert!(
                e.message.contains("Inference-Header-Content-Length"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn decodes_little_endian_and_nan_is_missing() {
        let mut b = Vec::new();
        for x in [1.5f32, f32::NAN, -2.0] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(
            decode(&b, "FP32", "m").unwrap(),
            vec![Some(1.5), None, Some(-2.0)]
        );
        let ints: Vec<u8> = [20i64, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            decode(&ints, "INT64", "l").unwrap(),
            vec![Some(20.0), Some(7.0)]
        );
        assert!(decode(&b[..5], "FP32", "m")
            .unwrap_err()
            .message
            .contains("whole number"));
        assert!(decode(&b, "BYTES", "m")
            .unwrap_err()
            .message
            .contains("BYTES"));
    }

    #[test]
    fn output_flags_override_the_request_default() {
        let on = serde_json::json!({"binary_data_output": true});
        let off = serde_json::json!({"binary_data": false});
        assert!(output_is_binary(Some(&on), None));
        assert!(!output_is_binary(Some(&on), Some(&off)));
        assert!(output_is_binary(
            None,
            Some(&serde_json::json!({"binary_data": true}))
        ));
        assert!(!output_is_binary(None, None));
    }

    #[tokio::test]
    async fn binary_answers_carry_the_json_length_and_the_bytes_in_output_order() {
        let head = serde_json::Map::from_iter([("model_name".to_string(), Value::from("m"))]);
        let r = answer(
            head,
            vec![
                ("p".into(), Tensor::Fp32(vec![0.5, 0.25]), true),
                ("std".into(), Tensor::Fp32(vec![0.1, 0.2]), false),
                ("ood".into(), Tensor::Bool(vec![true, false]), true),
            ],
        );
        let n: usize = r.headers()[HEADER].to_str().unwrap().parse().unwrap();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let (j, bin) = body.split_at(n);
        let v: Value = serde_json::from_slice(j).unwrap();
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(v["outputs"][0].get("data").is_none());
        assert_eq!(v["outputs"][1]["data"][1].as_f64(), Some(0.2f32 as f64));
        assert_eq!(v["outputs"][2]["parameters"]["binary_data_size"], 2);
        let mut want = Vec::new();
        want.extend_from_slice(&0.5f32.to_le_bytes());
        want.extend_from_slice(&0.25f32.to_le_bytes());
        want.extend_from_slice(&[1, 0]);
        assert_eq!(bin, &want[..]);
    }
}
