//! `cloudformer serve`: the HTTP prediction server (posted windows, or live from the in-process
//! agent with `--live`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Model directory (a checkpoint: model.safetensors + config.json).
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    #[command(flatten)]
    pub net: NetArgs,
    /// Live mode: run the collector's agent in-process and predict every tenant each second.
    #[arg(long)]
    pub live: bool,
    /// Live mode: tenant cgroup globs, relative to --cgroup-root (e.g. 'machine.slice/machine-qemu*').
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    pub tenants: Vec<String>,
    #[command(flatten)]
    pub live_opts: LiveArgs,
}

/// Listening, auth, limits, batching and reload options (shared with `up`).
#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// Address to listen on. Non-loopback addresses need --token-file (or --insecure).
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// File holding the bearer token clients must send (`Authorization: Bearer <token>`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Allow a non-loopback listen address without a token.
    #[arg(long)]
    pub insecure: bool,
    /// Largest accepted request body, MiB.
    #[arg(long, default_value_t = 8)]
    pub max_body_mb: usize,
    /// Most windows in one request.
    #[arg(long, default_value_t = 256)]
    pub max_windows: usize,
    /// Most seconds in one window.
    #[arg(long, default_value_t = 600)]
    pub max_window_s: usize,
    /// Most windows in one forward pass (micro-batching).
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// Longest a request waits for others to batch with, ms.
    #[arg(long, default_value_t = 2)]
    pub max_wait_ms: u64,
    /// Requests that may wait for the inference worker before new ones get 503.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// MC-dropout passes per window for the uncertainty `std` (0 = deterministic only, `std` 0;
    /// each pass costs about one more forward pass).
    #[arg(long, default_value_t = 16)]
    pub mc_samples: usize,
    /// Check the model directory for changes every this many seconds (0 = only on SIGHUP).
    #[arg(long, default_value_t = 2)]
    pub reload_poll_s: u64,
    /// At SIGTERM/Ctrl-C, how long open connections may finish before they are closed (a
    /// client stalled mid-request cannot hold the server up longer).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::collect::parse_duration)]
    pub drain_timeout: Duration,
    /// Most open client connections (lowered to fit the open-files limit). At the cap a new
    /// connection closes the oldest idle one; when every connection is busy it gets 503.
    #[arg(long, default_value_t = serve::ConnLimits::default().max_connections)]
    pub max_connections: usize,
    /// Time a client has to send a whole request head, counted from when the server starts
    /// waiting for it: also how long a kept-alive connection may sit idle (slowloris senders
    /// and idle sockets are closed after it).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::collect::parse_duration)]
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body (408 after it).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::collect::parse_duration)]
    pub body_timeout: Duration,
}

/// Live-mode sizes (shared with `up`).
#[derive(clap::Args, Debug, Clone)]
pub struct LiveArgs {
    /// cgroup v2 mount point the tenant globs are relative to.
    #[arg(long, default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// Seconds kept per tenant: the window each live prediction is computed on. Default: the
    /// input length the model was trained on (`training.input_len_s` in its config.json: the
    /// median length of its training runs or windows), else 20 (models trained before that was
    /// recorded: the 17-19 s runs of dataset v1).
    #[arg(long)]
    pub window_s: Option<usize>,
    /// Seconds of data before a tenant's first prediction.
    #[arg(long, default_value_t = 3)]
    pub min_window_s: usize,
    /// P̂ points kept per tenant.
    #[arg(long, default_value_t = 600)]
    pub history: usize,
}

pub fn config(
    model: &Path,
    net: &NetArgs,
    live: Option<(&[String], &LiveArgs)>,
) -> anyhow::Result<serve::ServeConfig> {
    let mut cfg = serve::ServeConfig::new(model);
    cfg.listen = net.listen;
    cfg.token = match &net.token_file {
        Some(p) => Some(serve::read_token_file(p)?),
        None => None,
    };
    cfg.insecure = net.insecure;
    cfg.loader = serve::engine::loader_with_mc_samples(net.mc_samples);
    cfg.max_body_bytes = net.max_body_mb.saturating_mul(1 << 20);
    cfg.limits = serve::Limits {
        max_windows: net.max_windows,
        max_t: net.max_window_s,
    };
    cfg.batch = serve::BatchConfig {
        max_batch: net.max_batch,
        max_wait: Duration::from_millis(net.max_wait_ms),
        queue: net.queue,
    };
    cfg.reload_poll = (net.reload_poll_s > 0).then(|| Duration::from_secs(net.reload_poll_s));
    cfg.drain_timeout = net.drain_timeout;
    cfg.conn = serve::ConnLimits {
        max_connections: net.max_connections,
        header_timeout: net.header_timeout,
        body_timeout: net.body_timeout,
    };
    if let Some((globs, l)) = live {
        if globs.is_empty() {
            anyhow::bail!(
                "live mode needs at least one --tenants GLOB (e.g. 'machine.slice/machine-qemu*')"
            );
        }
        let window_s = l
            .window_s
            .unwrap_or_else(|| serve::window::live_window_s(model));
        if window_s == 0 || l.min_window_s == 0 || l.min_window_s > window_s {
            anyhow::bail!(
                "--min-window-s ({}) must be between 1 and --window-s ({window_s}{})",
                l.min_window_s,
                if l.window_s.is_some() {
                    ""
                } else {
                    ", the model's input length"
                }
            );
        }
        tracing::info!(window_s, "live window");
        cfg.live = Some(serve::LiveConfig {
            cgroup_root: l.cgroup_root.clone(),
            tenant_globs: globs.to_vec(),
            sizes: serve::LiveSizes {
                window_s,
                min_window_s: l.min_window_s,
                history: l.history.max(1),
                forget_after_ticks: 10,
            },
        });
    }
    Ok(cfg)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Builds the runtime, binds, prints the URL (and, for `up`, a curl line), serves until a signal.
pub fn serve_blocking(
    cfg: serve::ServeConfig,
    banner: impl FnOnce(SocketAddr, &serve::ModelInfo, Option<&str>),
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cloudformer-http")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let token = cfg.token.clone();
        let server = serve::Server::bind(cfg).await?;
        let addr = server.local_addr()?;
        banner(addr, &server.model_info(), token.as_deref());
        server.run(shutdown_signal()).await?;
        Ok(())
    })
}

pub fn run(args: ServeArgs, _ctx: &super::Ctx) -> anyhow::Result<()> {
    if !args.live && !args.tenants.is_empty() {
        anyhow::bail!("--tenants only applies with --live");
    }
    let live = args
        .live
        .then_some((args.tenants.as_slice(), &args.live_opts));
    let cfg = config(&args.model, &args.net, live)?;
    serve_blocking(cfg, |addr, info, _| {
        // Always printed (tests and scripts read this line): the bound address, even with port 0.
        println!(
            "cloudformer serve: listening on http://{addr} (model {} from {})",
            info.model_id, info.dir
        );
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Probe {
        #[command(flatten)]
        net: super::NetArgs,
    }

    #[test]
    fn connection_flag_defaults_are_the_servers() {
        let p = Probe::try_parse_from(["probe"]).unwrap();
        let d = serve::ConnLimits::default();
        assert_eq!(p.net.max_connections, d.max_connections);
        assert_eq!(p.net.header_timeout, d.header_timeout);
        assert_eq!(p.net.body_timeout, d.body_timeout);
        assert_eq!(
            p.net.drain_timeout,
            serve::ServeConfig::new("m").drain_timeout
        );
        let p =
            Probe::try_parse_from(["probe", "--header-timeout", "2s", "--max-connections", "5"])
                .unwrap();
        assert_eq!(p.net.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(p.net.max_connections, 5);
    }

    #[derive(clap::Parser)]
    struct LiveProbe {
        #[command(flatten)]
        net: super::NetArgs,
        #[command(flatten)]
        live: super::LiveArgs,
    }

    /// The live window: --window-s when given, else the input length the model records, else 20.
    #[test]
    fn the_live_window_follows_the_model_unless_given() {
        let window = |model: &std::path::Path, args: &[&str]| {
            let p = LiveProbe::try_parse_from(std::iter::once("probe").chain(args.iter().copied()))
                .unwrap();
            let globs = vec!["t/*".to_string()];
            super::config(model, &p.net, Some((&globs, &p.live)))
                .map(|c| c.live.unwrap().sizes.window_s)
        };
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path();
        // No config.json, or one without the field (the bundled v1 model): 20.
        assert_eq!(
            window(m, &[]).unwrap(),
            serve::window::DEFAULT_LIVE_WINDOW_S
        );
        std::fs::write(m.join("config.json"), r#"{"training":{"options":{}}}"#).unwrap();
        assert_eq!(
            window(m, &[]).unwrap(),
            serve::window::DEFAULT_LIVE_WINDOW_S
        );
        std::fs::write(m.join("config.json"), r#"{"training":{"input_len_s":60}}"#).unwrap();
        assert_eq!(window(m, &[]).unwrap(), 60);
        assert_eq!(window(m, &["--window-s", "30"]).unwrap(), 30);
        let e = window(m, &["--min-window-s", "61"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--window-s (60, the model's input length)"),
            "{e}"
        );
    }
}
