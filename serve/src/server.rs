//! The HTTP server: configuration, routes, lifecycle (the handlers are in [`crate::handlers`],
//! auth and metrics in [`crate::middleware`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::batcher::{BatchConfig, Batcher};
use crate::conn::ConnLimits;
use crate::engine::{validate, Loader, ModelInfo};
use crate::error::ServeError;
use crate::handlers::{
    healthz, method_not_allowed, metrics_text, not_found, openapi, placement, predict, readyz,
    tenant, tenants,
};
use crate::live::{LiveConfig, LiveState};
use crate::metrics::Metrics;
use crate::parse::Limits;
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
