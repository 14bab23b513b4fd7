//! The Open Inference Protocol (KServe v2) REST routes: server and model metadata, readiness,
//! and `infer` (JSON tensors or the binary tensor extension, [`crate::v2_binary`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::engine::ModelInfo;
use crate::error::ApiError;
use crate::handlers::{body_or_error, is_ready, parse_off_executor, refuse_thin_windows};
use crate::parse::parse_infer_parts;
use crate::server::{AppState, MODEL_NAME};

fn check_model(
    st: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ModelInfo>, ApiError> {
    let info = st.batcher.info();
    if name != MODEL_NAME && name != info.model_id {
        return Err(ApiError::not_found(format!(
            "unknown model {name:?}; this server serves {MODEL_NAME:?} (model id {:?})",
            info.model_id
        )));
    }
    if let Some(v) = version {
        if v != info.model_id {
            return Err(ApiError::not_found(format!(
                "unknown version {v:?} of model {name:?}; the version serving now is {:?}",
                info.model_id
            )));
        }
    }
    Ok(info)
}

pub(crate) async fn v2_server() -> Json<Value> {
    Json(json!({
        "name": "cloudformer",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

pub(crate) async fn v2_live() -> Json<Value> {
    Json(json!({"live": true}))
}

pub(crate) async fn v2_ready(State(st): State<Arc<AppState>>) -> Response {
    let ready = is_ready(&st);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"ready": ready}))).into_response()
}

fn model_metadata(info: &ModelInfo) -> Value {
    json!({
        "name": MODEL_NAME,
        "versions": [info.model_id],
        "platform": "candle",
        "inputs": [
            {"name": "metrics", "datatype": "FP32", "shape": [-1, -1, info.n_features()]},
            {"name": "lengths", "datatype": "INT32", "shape": [-1]},
        ],
        "outputs": [
            {"name": "degradation", "datatype": "FP32", "shape": [-1]},
            {"name": "degradation_std", "datatype": "FP32", "shape": [-1]},
            {"name": "out_of_distribution", "datatype": "BOOL", "shape": [-1]},
        ],
        "parameters": {
            "model_id": info.model_id,
            "catalogue_hash": info.catalogue_hash,
            "feature_names": info.feature_names,
        },
    })
}

pub(crate) async fn v2_model(
    State(st): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(model_metadata(&*check_model(&st, &name, None)?)))
}

pub(crate) async fn v2_model_v(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(model_metadata(&*check_model(
        &st,
        &name,
        Some(&version),
    )?)))
}

pub(crate) async fn v2_model_ready(
    State(st): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_model(&st, &name, None)?;
    Ok(Json(json!({"name": name, "ready": true})))
}

pub(crate) async fn v2_model_ready_v(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_model(&st, &name, Some(&version))?;
    Ok(Json(json!({"name": name, "ready": true})))
}

async fn infer_common(
    st: Arc<AppState>,
    (name, version): (String, Option<String>),
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    use crate::v2_binary::Tensor;
    let info = check_model(&st, &name, version.as_deref())?;
    let body = body_or_error(body)?;
    let json_len = match headers.get(crate::v2_binary::HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::bad_request("header Inference-Header-Content-Length is not text")
                })?
                .to_string(),
        ),
    };
    let _guard = st.batcher.enter();
    let limits = st.limits;
    let names = info.clone();
    let req = parse_off_executor(body, move |b| {
        let (json, binary) = crate::v2_binary::split(b, json_len.as_deref())?;
        parse_infer_parts(json, binary, &names.feature_names, &limits)
    })
    .await?;
    if !req.partial {
        refuse_thin_windows(&req.windows, &info)?;
    }
    let answer = st.batcher.predict(req.windows, info.n_features()).await?;
    let (preds, info) = (answer.preds, answer.info);
    let outputs = req
        .outputs
        .iter()
        .zip(&req.binary)
        .map(|(o, binary)| {
            let t = match o.as_str() {
                "degradation" => Tensor::Fp32(preds.iter().map(|p| p.p).collect()),
                "degradation_std" => Tensor::Fp32(preds.iter().map(|p| p.std).collect()),
                _ => Tensor::Bool(preds.iter().map(|p| p.out_of_distribution).collect()),
            };
            (o.clone(), t, *binary)
        })
        .collect();
    let head = serde_json::Map::from_iter([
        ("model_name".to_string(), json!(MODEL_NAME)),
        ("model_version".to_string(), json!(info.model_id)),
        ("id".to_string(), json!(req.id.unwrap_or_default())),
        (
            "parameters".to_string(),
            json!({"catalogue_hash": info.catalogue_hash}),
        ),
    ]);
    Ok(crate::v2_binary::answer(head, outputs))
}

pub(crate) async fn v2_infer(
    State(st): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    infer_common(st, (name, None), &headers, body).await
}

pub(crate) async fn v2_infer_v(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    infer_common(st, (name, Some(version)), &headers, body).await
}
