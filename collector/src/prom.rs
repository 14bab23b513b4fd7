//! A tiny HTTP responder for Prometheus text exposition at `/metrics` (the latest tick). A
//! client has [`HEAD_TIMEOUT`] to send its request head, then the connection is closed (an idle
//! or slowloris client cannot pile up tasks and sockets in the agent).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::tick::Tick;
use dataset::catalogue::Catalogue;

/// Time a scraper has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders a tick as Prometheus text (nulls are left out).
pub fn render(tick: Option<&Tick>) -> String {
    let cat = Catalogue::builtin();
    let mut s = String::new();
    let Some(t) = tick else {
        s.push_str("# no tick yet\n");
        return s;
    };
    let names = cat.feature_names();
    let _ = writeln!(
        s,
        "# HELP cloudformer_tick_seq Sequence number of the latest tick."
    );
    let _ = writeln!(
        s,
        "# TYPE cloudformer_tick_seq gauge\ncloudformer_tick_seq {}",
        t.seq
    );
    let _ = writeln!(
        s,
        "# HELP cloudformer_tick_collect_seconds Time the latest tick took to sample every source.\n# TYPE cloudformer_tick_collect_seconds gauge\ncloudformer_tick_collect_seconds {}",
        t.collect_us as f64 / 1e6
    );
    let _ = writeln!(
        s,
        "# HELP cloudformer_tick_lateness_seconds How late the latest tick woke after its due time.\n# TYPE cloudformer_tick_lateness_seconds gauge\ncloudformer_tick_lateness_seconds {}",
        t.lateness_us as f64 / 1e6
    );
    let _ = writeln!(
        s,
        "# HELP cloudformer_tenants Tenants in the latest tick.\n# TYPE cloudformer_tenants gauge\ncloudformer_tenants {}",
        t.rows.len()
    );
    let _ = writeln!(
        s,
        "# HELP cloudformer_tenant_feature Per-tenant feature (catalogue name in `feature`).\n# TYPE cloudformer_tenant_feature gauge"
    );
    for r in &t.rows {
        let tenant = esc(&r.tenant);
        for (n, v) in names.iter().zip(&r.features) {
            if v.is_finite() {
                let _ = writeln!(
                    s,
                    "cloudformer_tenant_feature{{tenant=\"{tenant}\",feature=\"{n}\"}} {v}"
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "# HELP cloudformer_host Host-wide metric (catalogue name in `metric`).\n# TYPE cloudformer_host gauge"
    );
    for (m, v) in cat.host_metrics().iter().zip(&t.host) {
        if v.is_finite() {
            let _ = writeln!(s, "cloudformer_host{{metric=\"{}\"}} {v}", m.name);
        }
    }
    s
}

/// Serves `GET /metrics` until the runtime stops.
pub async fn serve(listener: TcpListener, latest: Arc<Mutex<Option<Arc<Tick>>>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let latest = latest.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let read_head = async {
                let mut n = 0;
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                n
            };
            let Ok(n) = tokio::time::timeout(HEAD_TIMEOUT, read_head).await else {
                return; // dropping the socket closes it
            };
            let req = &buf[..n];
            let (status, body) =
                if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET /metrics?") {
                    let tick = latest.lock().ok().and_then(|l| l.clone());
                    ("200 OK", render(tick.as_deref()))
                } else {
                    ("404 Not Found", "only /metrics is served\n".to_string())
                };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
