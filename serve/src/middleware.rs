//! The server's middleware, outermost first: `record` (request metrics), `limit_uri` (414),
//! `auth` (bearer token), `read_body` (body timeout and size limit).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::error_heads::MAX_URI_BYTES;
use crate::server::AppState;

/// Probes stay open without a token (kubelet / load balancers call them).
fn auth_exempt(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/v2/health/live" | "/v2/health/ready"
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(tok) = &st.token {
        if !auth_exempt(req.uri().path()) {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                });
            let ok = given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), tok.as_bytes()));
            if !ok {
                let msg = if given.is_some() {
                    "invalid bearer token"
                } else {
                    "missing bearer token: send the header `Authorization: Bearer <token>`"
                };
                let mut r = ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    }
    next.run(req).await
}

/// Request targets longer than [`MAX_URI_BYTES`] → 414 (JSON, like every error).
pub(crate) async fn limit_uri(req: Request, next: Next) -> Response {
    let n = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if n > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("request target is {n} bytes; the limit is {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Reads the whole body within `--body-timeout` (408 otherwise, and the connection is closed), so
/// a client stalled mid-body holds a connection for a bounded time. Runs after auth: bodies of
/// unauthenticated requests are never read.
pub(crate) async fn read_body(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let limit = st.max_body;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than the limit (--max-body-mb)",
        )
        .into_response()
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(); // without reading a byte of it
    }
    let bytes = match tokio::time::timeout(st.body_timeout, axum::body::to_bytes(body, limit)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if over {
                too_large()
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}")).into_response()
            };
        }
        Err(_) => {
            let mut r = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s (--body-timeout)",
                    st.body_timeout.as_secs_f64()
                ),
            )
            .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

pub(crate) async fn record(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    st.metrics.record_request(
        crate::metrics::method_label(&method),
        &route,
        resp.status().as_u16(),
        t0.elapsed(),
    );
    resp
}
