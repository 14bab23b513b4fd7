//! The cloudformer prediction server for VM schedulers.
//!
//! - `POST /v1/predict`: windows of per-second metrics → P̂ (+ std, out-of-distribution flag).
//! - Open Inference Protocol (KServe v2) REST: `/v2`, `/v2/health/*`, `/v2/models/{name}[/ready|/infer]`.
//! - Live mode: the collector's agent in-process, `GET /v1/tenants[/{id}]`, and
//!   `GET /v1/tenants/{id}/culprits` (which neighbour and which resource hurt a tenant),
//!   `GET /v1/tenants/{id}/profile` and `POST /v1/placement` (what placing a tenant here would do).
//! - `/healthz`, `/readyz`, `/metrics` (Prometheus text), `/openapi.json`.
//!
//! Inference runs on one dedicated thread that micro-batches concurrent requests
//! ([`batcher::Batcher`]). The model reloads on SIGHUP or when its directory changes; a bad new
//! model is rejected and the old one keeps serving ([`reload`]).

pub mod batcher;
pub mod conn;
pub mod culprits;
pub mod engine;
pub mod error;
pub mod error_heads;
pub mod handlers;
pub mod live;
pub mod metrics;
pub mod middleware;
pub mod oip;
pub mod openapi;
pub mod parse;
pub mod placement;
pub mod rebuild;
pub mod reload;
pub mod resources;
pub mod server;
pub mod top_culprits;
pub mod v2_binary;
pub mod whatif;
pub mod window;

pub use batcher::BatchConfig;
pub use conn::ConnLimits;
pub use engine::{Engine, Loader, ModelInfo, Pred, WindowData};
pub use error::{ApiError, ServeError};
pub use live::LiveConfig;
pub use live::LiveSizes;
pub use parse::Limits;
pub use server::{raise_nofile, read_token_file, run, ServeConfig, Server};
