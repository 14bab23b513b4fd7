//! `cloudformer collect`: the host agent in the foreground (also what the systemd unit runs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use collector::{Agent, AgentConfig};

#[derive(clap::Args)]
pub struct CollectArgs {
    /// Output directory; segments go to DIR/host=<h>/date=<YYYY-MM-DD>/seg-<start>-<pid>.parquet
    #[arg(long)]
    pub out: PathBuf,
    /// Tenant cgroups: a glob relative to each cgroup hierarchy (repeatable)
    #[arg(long = "tenants", value_name = "GLOB")]
    pub tenants: Vec<String>,
    /// Stop after this long (e.g. 10s, 5m, 1h); default: run until Ctrl-C / SIGTERM
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Segment length: a new Parquet file every SEGMENT (e.g. 10m, 3s)
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub segment: Duration,
    /// Serve Prometheus text at http://ADDR/metrics (e.g. 127.0.0.1:9464); a non-loopback
    /// address needs --insecure (the endpoint has no authentication)
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Allow --listen on a non-loopback address
    #[arg(long)]
    pub insecure: bool,
    /// Where the cgroup hierarchies are mounted
    #[arg(long, default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,
    /// Do not open perf-event counters
    #[arg(long)]
    pub no_perf: bool,
    /// Nice value of the sampling thread (-20..=19), so that ticks wake on time on a busy host;
    /// the Parquet writer thread keeps the process's. Below the process's own value needs root
    /// or CAP_SYS_NICE (otherwise a warning, and the thread stays as it is)
    #[arg(long, default_value_t = collector::agent::DEFAULT_SAMPLER_NICE,
          allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: i32,
}

/// Parses `500ms`, `10s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 500ms, 10s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{s}` is longer than this build can count"))
}

pub fn run(args: CollectArgs, ctx: &super::Ctx) -> anyhow::Result<()> {
    let tenant_globs = if args.tenants.is_empty() {
        vec![
            "machine.slice/machine-qemu*.scope".to_string(),
            "cloudformer/*".to_string(),
        ]
    } else {
        args.tenants.clone()
    };
    let cfg = AgentConfig {
        cgroup_root: args.cgroup_root.clone(),
        tenant_globs,
        out_dir: Some(args.out.clone()),
        partition: Vec::new(),
        segment: args.segment,
        duration: args.duration,
        listen: args.listen,
        insecure_listen: args.insecure,
        perf: !args.no_perf,
        sampler_nice: Some(args.nice),
        ..AgentConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let quiet = ctx.quiet;
    let globs = cfg.tenant_globs.clone();
    let summary = rt.block_on(async move {
        let agent = Agent::new(cfg).context("starting the collector")?;
        let mut rx = agent.subscribe();
        if !quiet {
            tokio::spawn(async move {
                use std::io::Write as _;
                let mut rows = 0u64;
                while let Ok(t) = rx.recv().await {
                    rows += t.rows.len() as u64;
                    let mut e = std::io::stderr().lock();
                    let _ = write!(
                        e,
                        "\rtick {:>6}  tenants {:>3}  rows {:>8}  collect {:>6} us  late {:>6} us{}   ",
                        t.seq,
                        t.rows.len(),
                        rows,
                        t.collect_us,
                        t.lateness_us,
                        if t.gap { "  gap" } else { "" }
                    );
                    let _ = e.flush();
                }
            });
        }
        let shutdown = async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {},
                            _ = term.recv() => {},
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        };
        agent.run(shutdown).await.context("collecting")
    })?;
    if summary.ticks > 0 && summary.max_tenants == 0 {
        let hier = collector::discover::hierarchies(&args.cgroup_root);
        anyhow::bail!(
            "no cgroup matched --tenants {} during the whole run ({} ticks, nothing written); under {}: {}",
            globs.join(" "),
            summary.ticks,
            args.cgroup_root.display(),
            collector::settings::what_exists(&hier, 12)
        );
    }
    if !quiet {
        eprintln!();
        eprintln!(
            "collected {} ticks, {} rows, {} segment(s) in {}; collect p50 {} us p99 {} us, lateness p99 {} us, missed {} tick(s){}",
            summary.ticks,
            summary.rows,
            summary.segments.len(),
            args.out.display(),
            summary.collect_us_p50,
            summary.collect_us_p99,
            summary.lateness_us_p99,
            summary.missed_ticks,
            summary
                .sampler_nice
                .map(|n| format!(", sampling at nice {n}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("0s").is_err());
        let e = parse_duration("99999999999999999999h").unwrap_err();
        assert!(e.contains("longer than"), "{e}");
    }
}
