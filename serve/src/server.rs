//! The HTTP server: configuration, routes, auth and metrics middleware, lifecycle.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::batcher::{BatchConfig, Batcher};
use crate::conn::ConnLimits;
use crate::engine::{validate, Loader, ModelInfo, WindowData};
use crate::error::{ApiError, ServeError};
use crate::live::{LiveConfig, LiveState};
use crate::metrics::Metrics;
use crate::parse::{parse_predict_request, Limits};
use crate::reload::{fingerprint, reload, ReloadStatus};

/// The name the model is served under on the Open Inference Protocol routes (its model id is
/// accepted too).
pub const MODEL_NAME: &str = "cloudformer";

/// Everything `serve` needs.
#[derive(Clone)]
pub struct ServeConfig {
    pub model_dir: PathBuf,
    pub listen: SocketAddr,
    /// Bearer token (already read from `--token-file`); `None` = no auth.
    pub token: Option<String>,
    /// Allow a non-loopback bind without a token.
    pub insecure: bool,
    pub max_body_bytes: usize,
    pub limits: Limits,
    pub batch: BatchConfig,
    /// Poll the model directory for changes this often (`None` = only SIGHUP).
    pub reload_poll: Option<Duration>,
    /// Install a SIGHUP handler that reloads the model.
    pub reload_on_sighup: bool,
    pub live: Option<LiveConfig>,
    pub loader: Loader,
    /// After shutdown is asked, how long connections still open may finish (a client stalled
    /// mid-request is cut off then, so it cannot hold the server up).
    pub drain_timeout: Duration,
    /// Connection cap, header and body timeouts.
    pub conn: ConnLimits,
}

impl ServeConfig {
    /// Defaults: 127.0.0.1:8787, 8 MiB bodies, 256 windows × 600 s per request, batches of 64
    /// windows with ≤ 2 ms wait, reload poll every 2 s and on SIGHUP, no live mode, 10 s to
    /// drain at shutdown, the [`ConnLimits`] defaults.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            model_dir: model_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            token: None,
            insecure: false,
            max_body_bytes: 8 << 20,
            limits: Limits::default(),
            batch: BatchConfig::default(),
            reload_poll: Some(Duration::from_secs(2)),
            reload_on_sighup: true,
            live: None,
            loader: crate::engine::default_loader(),
            drain_timeout: Duration::from_secs(10),
            conn: ConnLimits::default(),
        }
    }
}

/// Reads a bearer token file: trimmed, non-empty, one line.
pub fn read_token_file(path: &Path) -> Result<String, ServeError> {
    let err = |msg: String| ServeError::Token {
        path: path.display().to_string(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let tok = text.trim();
    if tok.is_empty() {
        return Err(err("the file is empty".into()));
    }
    if tok.contains(char::is_whitespace) {
        return Err(err("the token must be one word without whitespace".into()));
    }
    Ok(tok.to_string())
}

pub(crate) struct AppState {
    pub(crate) batcher: Batcher,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limits: Limits,
    pub(crate) token: Option<String>,
    pub(crate) reload_status: RwLock<ReloadStatus>,
    pub(crate) live: Option<Arc<LiveState>>,
    pub(crate) model_dir: PathBuf,
    pub(crate) loader: Loader,
    /// Live mode: the feature order the agent's rows come in (a reloaded model must match).
    pub(crate) live_features: Option<Vec<String>>,
    pub(crate) max_body: usize,
    pub(crate) body_timeout: Duration,
    /// Live mode: the top culprits `/metrics` shows.
    pub(crate) top_culprits: crate::top_culprits::TopCulprits,
}

/// A bound, not yet serving, server.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    cfg: ServeConfig,
    /// The connection cap in force ([`ConnLimits::effective_cap`]).
    conn_cap: usize,
}

impl Server {
    /// Checks the configuration, loads and validates the model, starts the inference worker and
    /// binds the listener.
    pub async fn bind(cfg: ServeConfig) -> Result<Server, ServeError> {
        if !cfg.listen.ip().is_loopback() && cfg.token.is_none() && !cfg.insecure {
            return Err(ServeError::InsecureBind(cfg.listen.to_string()));
        }
        if cfg.max_body_bytes == 0 || cfg.limits.max_windows == 0 || cfg.limits.max_t == 0 {
            return Err(ServeError::Config(
                "body size, max windows and max window seconds must be positive".into(),
            ));
        }
        if cfg.conn.max_connections == 0
            || cfg.conn.header_timeout.is_zero()
            || cfg.conn.body_timeout.is_zero()
        {
            return Err(ServeError::Config(
                "max connections, header timeout and body timeout must be positive".into(),
            ));
        }
        if cfg.batch.max_batch == 0 || cfg.batch.queue == 0 {
            return Err(ServeError::Config(
                "max batch and queue length must be positive".into(),
            ));
        }
        let model_err = |msg: String| ServeError::Model {
            path: cfg.model_dir.display().to_string(),
            msg,
        };
        if !cfg.model_dir.is_dir() {
            return Err(model_err(
                "no such directory (expected a checkpoint: model.safetensors + config.json)".into(),
            ));
        }
        let loader = cfg.loader.clone();
        let dir = cfg.model_dir.clone();
        let engine = tokio::task::spawn_blocking(move || {
            let mut e = loader(&dir)?;
            validate(e.as_mut())?;
            Ok::<_, String>(e)
        })
        .await
        .map_err(|e| model_err(format!("loader task failed: {e}")))?
        .map_err(model_err)?;
        let live_features = match &cfg.live {
            Some(_) => {
                let names = crate::live::agent_feature_names();
                if engine.info().feature_names != names {
                    return Err(ServeError::Live(format!(
                        "the model's {} features are not the agent's {} catalogue features (catalogue {}); live mode needs a model trained on this catalogue",
                        engine.info().n_features(),
                        names.len(),
                        crate::live::agent_catalogue_hash()
                    )));
                }
                Some(names)
            }
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let batcher = Batcher::spawn(engine, cfg.batch, metrics.clone())?;
        let conn_cap = cfg.conn.effective_cap(raise_nofile());
        if conn_cap < cfg.conn.max_connections {
            tracing::warn!(
                max_connections = cfg.conn.max_connections,
                cap = conn_cap,
                "the open-files limit lowers the connection cap"
            );
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: cfg.listen.to_string(),
                source,
            })?;
        let live = cfg.live.as_ref().map(|l| Arc::new(LiveState::new(l.sizes)));
        let state = Arc::new(AppState {
            batcher,
            metrics,
            limits: cfg.limits,
            token: cfg.token.clone(),
            reload_status: RwLock::new(ReloadStatus::default()),
            live,
            model_dir: cfg.model_dir.clone(),
            loader: cfg.loader.clone(),
            live_features,
            max_body: cfg.max_body_bytes,
            body_timeout: cfg.conn.body_timeout,
            top_culprits: Default::default(),
        });
        Ok(Server {
            listener,
            state,
            cfg,
            conn_cap,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }

    /// The loaded model.
    pub fn model_info(&self) -> Arc<ModelInfo> {
        self.state.batcher.info()
    }

    /// Serves until `shutdown` resolves (then drains in-flight requests).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        let state = self.state.clone();
        tokio::spawn(watch_model(
            state.clone(),
            self.cfg.reload_poll,
            self.cfg.reload_on_sighup,
            rx.clone(),
        ));
        if let (Some(live_cfg), Some(live)) = (&self.cfg.live, &state.live) {
            crate::live::spawn_agent(live_cfg, live.clone(), state.batcher.clone(), rx.clone())?;
        }
        let app = router(state.clone(), self.cfg.max_body_bytes);
        crate::conn::serve(
            self.listener,
            app,
            (self.cfg.conn, self.conn_cap),
            state.metrics.clone(),
            rx,
            self.cfg.drain_timeout,
        )
        .await;
        Ok(())
    }
}

/// Raises the soft limit of open files to the hard one (systemd's default soft limit, 1024, is
/// reached by ~1,000 idle clients, after which nobody is answered and a model reload fails).
/// Returns the limit now in force.
pub fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let before = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!(soft = before, "cannot raise the open-files limit");
                return Some(before);
            }
            tracing::info!(
                from = before,
                to = lim.rlim_max,
                "raised the open-files limit"
            );
        }
    }
    Some(lim.rlim_cur)
}

/// Binds and serves until `shutdown` resolves.
pub async fn run(
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(cfg).await?.run(shutdown).await
}

async fn watch_model(
    state: Arc<AppState>,
    poll: Option<Duration>,
    sighup: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    let mut hup = if sighup {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload on SIGHUP is off");
                None
            }
        }
    } else {
        None
    };
    let mut last = fingerprint(&state.model_dir);
    let period = poll.unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        #[cfg(unix)]
        let hup_fut = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup_fut = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = shutdown.wait_for(|v| *v) => return,
            _ = hup_fut => { tracing::info!("SIGHUP: reloading the model"); true }
            _ = tick.tick(), if poll.is_some() => false,
        };
        let now = fingerprint(&state.model_dir);
        if !forced && now == last {
            continue;
        }
        if !forced {
            tracing::info!(dir = %state.model_dir.display(), "model directory changed: reloading");
        }
        last = now;
        let _ = reload(
            &state.model_dir,
            &state.loader,
            &state.batcher,
            &state.reload_status,
            &state.metrics,
            state.live_features.as_deref(),
        )
        .await;
    }
}

fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .route("/v1/predict", post(predict))
        .route("/v1/tenants", get(tenants))
        .route("/v1/tenants/{*id}", get(tenant))
        .route("/v1/placement", post(placement))
        .route("/v2", get(crate::oip::v2_server))
        .route("/v2/health/live", get(crate::oip::v2_live))
        .route("/v2/health/ready", get(crate::oip::v2_ready))
        .route("/v2/models/{name}", get(crate::oip::v2_model))
        .route("/v2/models/{name}/ready", get(crate::oip::v2_model_ready))
        .route("/v2/models/{name}/infer", post(crate::oip::v2_infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(crate::oip::v2_model_v),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(crate::oip::v2_model_ready_v),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(crate::oip::v2_infer_v),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::read_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::auth,
        ))
        .layer(middleware::from_fn(crate::middleware::limit_uri))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::record,
        ))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {} (see GET /openapi.json)",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
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

async fn healthz() -> Json<Value> {
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

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
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

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
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

async fn openapi(State(st): State<Arc<AppState>>) -> Json<Value> {
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

async fn predict(
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

async fn tenants(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
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
async fn tenant(
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
async fn placement(
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
