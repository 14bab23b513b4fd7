//! The handlers of the probes, `/metrics`, `/openapi.json` and the v1 routes (`/v1/predict`,
//! the live tenants, `/v1/placement`), and the helpers the v2 routes ([`crate::oip`]) share with
//! them. The routes themselves are in [`crate::server`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::engine::{ModelInfo, WindowData};
use crate::error::ApiError;
use crate::live::LiveState;
use crate::parse::parse_predict_request;
use crate::server::AppState;

pub(crate) async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {} (see GET /openapi.json)",
        req.method(),
        req.uri().path()
    ))
}

pub(crate) async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} is not allowed on {} (see GET /openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

pub(crate) fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "request body is larger than the limit (--max-body-mb)",
            )
        } else {
            ApiError::new(
                status,
                format!("cannot read the request body: {}", r.body_text()),
            )
        }
    })
}

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

fn live_status(st: &AppState) -> Option<Value> {
    st.live.as_ref().map(|l| {
        let err = l.agent_error.read().ok().and_then(|e| e.clone());
        json!({
            "ticks": l.ticks.load(std::sync::atomic::Ordering::Relaxed),
            "tenants": l.summaries().len(),
            "agent_error": err,
        })
    })
}

pub(crate) fn is_ready(st: &AppState) -> bool {
    match &st.live {
        Some(l) => l.agent_error.read().map(|e| e.is_none()).unwrap_or(false),
        None => true,
    }
}

pub(crate) async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let info = st.batcher.info();
    let reload = st
        .reload_status
        .read()
        .map(|r| r.clone())
        .unwrap_or_default();
    let ready = is_ready(&st);
    let body = json!({
        "ready": ready,
        "model_id": info.model_id,
        "catalogue_hash": info.catalogue_hash,
        "model_dir": info.dir,
        "model_members": info.members,
        "model_derived_inputs": info.derived_inputs,
        "n_features": info.n_features(),
        "reload_error": reload.last_error,
        "reload_error_unix_s": reload.last_error_unix_s,
        "reloads_ok": reload.reloads_ok,
        "reloads_failed": reload.reloads_failed,
        "live": live_status(&st),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    let extra = match &st.live {
        Some(l) => l.render_metrics() + &st.top_culprits.render(l, &st.batcher).await,
        None => String::new(),
    };
    let info = st.batcher.info();
    let model = format!(
        "# HELP cloudformer_model_info The model serving now.\n# TYPE cloudformer_model_info gauge\ncloudformer_model_info{{model_id=\"{}\",catalogue_hash=\"{}\"}} 1\n",
        crate::metrics::escape_label(&info.model_id),
        crate::metrics::escape_label(&info.catalogue_hash)
    );
    let text = st.metrics.render(&(model + &extra));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

pub(crate) async fn openapi(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(crate::openapi::document(&st.batcher.info()))
}

/// Parses on a blocking thread when the body is big (keeps the executor responsive).
pub(crate) async fn parse_off_executor<T: Send + 'static>(
    body: Bytes,
    f: impl FnOnce(&[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if body.len() < 256 * 1024 {
        f(&body)
    } else {
        tokio::task::spawn_blocking(move || f(&body))
            .await
            .map_err(|e| ApiError::internal(format!("parser task failed: {e}")))?
    }
}

pub(crate) async fn predict(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_or_error(body)?;
    let _guard = st.batcher.enter();
    let info = st.batcher.info();
    let limits = st.limits;
    let names = info.clone();
    let request = parse_off_executor(body, move |b| {
        parse_predict_request(b, &names.feature_names, &limits)
    })
    .await?;
    if !request.partial {
        refuse_thin_windows(&request.windows, &info)?;
    }
    let windows = request.windows;
    let keys: Vec<(Option<String>, usize)> = windows.iter().map(|w| (w.id.clone(), w.t)).collect();
    let answer = st.batcher.predict(windows, info.n_features()).await?;
    let (preds, info) = (answer.preds, answer.info);
    let predictions: Vec<Value> = keys
        .into_iter()
        .zip(preds)
        .map(|((id, t), p)| {
            json!({
                "id": id,
                "p": p.p,
                "std": p.std,
                "coverage": p.coverage,
                "out_of_distribution": p.out_of_distribution,
                "partial": p.coverage < info.coverage.floor,
                "t": t,
            })
        })
        .collect();
    Ok(Json(json!({
        "model_id": info.model_id,
        "catalogue_hash": info.catalogue_hash,
        "predictions": predictions,
    })))
}

/// Most missing feature names one refusal lists (the rest are counted).
const MISSING_NAMED: usize = 20;

/// 422 for the first window whose coverage is below the model's floor, naming the features the
/// model reads that the window never observed (`docs/api.md`, "Coverage").
pub(crate) fn refuse_thin_windows(
    windows: &[WindowData],
    info: &ModelInfo,
) -> Result<(), ApiError> {
    let rule = &info.coverage;
    let Some((i, w)) = windows
        .iter()
        .enumerate()
        .find(|(_, w)| rule.is_thin(&w.data))
    else {
        return Ok(());
    };
    let coverage = rule.coverage(&w.data);
    let missing: Vec<&str> = rule
        .unobserved(&w.data)
        .into_iter()
        .map(|j| info.feature_names[j].as_str())
        .collect();
    let used = rule.used.iter().filter(|&&u| u).count();
    let shown = missing[..missing.len().min(MISSING_NAMED)].join(", ");
    let more = missing.len().saturating_sub(MISSING_NAMED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let label =
        w.id.as_deref()
            .map(|id| format!(" (id {id:?})"))
            .unwrap_or_default();
    let message = format!(
        "window {i}{label}: coverage {coverage:.3} is below the model's floor {:.3}; {} of the {used} features it reads have no value: {shown}{more}. Send them, or add \"partial\": true to the request for a flagged answer",
        rule.floor,
        missing.len()
    );
    let mut details = serde_json::Map::new();
    details.insert("window".into(), json!(i));
    details.insert("coverage".into(), json!(coverage));
    details.insert("coverage_floor".into(), json!(rule.floor));
    details.insert("missing_features".into(), json!(missing));
    Err(ApiError::unprocessable(message).with_details(details))
}

fn live_or_404(st: &AppState) -> Result<&Arc<LiveState>, ApiError> {
    st.live.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "live mode is off: start the server with `cloudformer serve --live --tenants GLOB` (or `cloudformer up`)",
        )
    })
}

pub(crate) async fn tenants(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let live = live_or_404(&st)?;
    let info = st.batcher.info();
    Ok(Json(json!({
        "model_id": info.model_id,
        "catalogue_hash": info.catalogue_hash,
        "window_s": live.sizes.window_s,
        "agent_error": live.agent_error.read().ok().and_then(|e| e.clone()),
        "tenants": live.summaries(),
    })))
}

/// `GET /v1/tenants/{id}`, `…/{id}/culprits`, `…/{id}/profile`. Tenant ids hold slashes
/// (`machine.slice/machine-qemu-1.scope`): a live tenant's own id wins over a suffix.
pub(crate) async fn tenant(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let live = live_or_404(&st)?;
    let info = st.batcher.info();
    let id = id.trim_start_matches('/');
    let sub = |suffix: &str| id.strip_suffix(suffix).filter(|v| live.has(v));
    let v = if live.has(id) {
        let detail = live.detail(id, &info.feature_names).ok_or_else(|| {
            ApiError::not_found(format!("no live tenant {id:?} (see GET /v1/tenants)"))
        })?;
        to_json(detail)?
    } else if let Some(victim) = sub("/culprits") {
        let _guard = st.batcher.enter();
        to_json(crate::culprits::culprits(live, &st.batcher, victim).await?)?
    } else if let Some(tenant) = sub("/profile") {
        let seconds = crate::placement::seconds_param(query.as_deref())?;
        let cat = dataset::catalogue::Catalogue::builtin();
        let p = crate::placement::profile(live, tenant, seconds.unwrap_or(usize::MAX), cat)
            .ok_or_else(|| ApiError::not_found(format!("no live tenant {tenant:?}")))?;
        to_json(p)?
    } else {
        return Err(ApiError::not_found(format!(
            "no live tenant {id:?} (see GET /v1/tenants)"
        )));
    };
    Ok(Json(with_model(v, &info)))
}

/// `POST /v1/placement`: what placing a profiled tenant on this host would do.
pub(crate) async fn placement(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_or_error(body)?;
    let live = live_or_404(&st)?;
    let _guard = st.batcher.enter();
    let info = st.batcher.info();
    let answer = crate::placement::placement(live, &st.batcher, &body, &st.limits).await?;
    Ok(Json(with_model(to_json(answer)?, &info)))
}

fn to_json(x: impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(x)
        .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))
}

/// Adds the model's id, and its catalogue hash unless the answer has one (a profile carries
/// the agent's), to an answer object.
fn with_model(mut v: Value, info: &ModelInfo) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("model_id".into(), json!(info.model_id));
        o.entry("catalogue_hash")
            .or_insert_with(|| json!(info.catalogue_hash));
    }
    v
}
