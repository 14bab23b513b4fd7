//! Errors: `ServeError` for the library's fallible setup calls, `ApiError` for HTTP answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Setup / lifecycle errors (bind, model load, agent start).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("model at {path}: {msg}")]
    Model { path: String, msg: String },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to listen on non-loopback address {0} without a bearer token: pass --token-file FILE (or --insecure to accept unauthenticated requests from the network)")]
    InsecureBind(String),
    #[error("token file {path}: {msg}")]
    Token { path: String, msg: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("live mode: {0}")]
    Live(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// An HTTP error answer: status + `{"error": "...", ...details}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra fields of the JSON body beside `"error"` (an object), for clients that act on them.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }
    /// Adds fields to the JSON body beside `"error"`.
    pub fn with_details(mut self, details: serde_json::Map<String, serde_json::Value>) -> Self {
        self.details = Some(details);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details.unwrap_or_default();
        body.insert("error".into(), serde_json::Value::String(self.message));
        let body = serde_json::Value::Object(body);
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}
