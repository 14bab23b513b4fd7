//! Prometheus text exposition, hand-rolled: counters, gauges and fixed-bucket histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets in seconds (0.25 ms … 5 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Batch-size buckets (windows per forward pass).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in micro-units (µs for seconds histograms, ×1e6 for counts) to stay lock-free.
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
    pub fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {n}");
        let wrap = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            wrap(labels),
            self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{} {n}", wrap(labels));
    }
}

/// Escapes a Prometheus label value.
pub fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    pub batch_windows: Histogram,
    pub forward_seconds: Histogram,
    pub queue_wait_seconds: Histogram,
    pub queue_depth: AtomicI64,
    pub windows_predicted: AtomicU64,
    pub queue_full: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Open client connections.
    pub conn_open: AtomicI64,
    /// Idle connections closed to make room at the connection cap.
    pub conn_evicted: AtomicU64,
    /// Connections answered 503 and closed: at the cap with every connection busy.
    pub conn_refused: AtomicU64,
    /// Connections closed because no whole request head came within the header timeout.
    pub conn_header_timeouts: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
            batch_windows: Histogram::new(BATCH_BUCKETS),
            forward_seconds: Histogram::new(LATENCY_BUCKETS),
            queue_wait_seconds: Histogram::new(LATENCY_BUCKETS),
            queue_depth: AtomicI64::new(0),
            windows_predicted: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            conn_open: AtomicI64::new(0),
            conn_evicted: AtomicU64::new(0),
            conn_refused: AtomicU64::new(0),
            conn_header_timeouts: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Records one finished HTTP request. `method` comes from [`method_label`] and `route` is
    /// the matched route template: both from closed sets, so no client can grow the metrics.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status))
                .or_insert(0) += 1;
        }
        let h = match self.latency.lock() {
            Ok(mut m) => m
                .entry(route.to_string())
                .or_insert_with(|| std::sync::Arc::new(Histogram::new(LATENCY_BUCKETS)))
                .clone(),
            Err(_) => return,
        };
        h.observe_duration(elapsed);
    }

    /// Total requests recorded for a route (all statuses).
    pub fn requests_for(&self, route: &str) -> u64 {
        self.requests
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((_, r, _), _)| r == route)
                    .map(|(_, v)| *v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Renders the server's own series; `extra` (live-mode series) is appended.
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP cloudformer_http_requests_total HTTP requests by method, route and status.\n# TYPE cloudformer_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "cloudformer_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape_label(method),
                    escape_label(route)
                );
            }
        }
        out.push_str("# HELP cloudformer_http_request_duration_seconds HTTP request latency by route.\n# TYPE cloudformer_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                h.render(
                    &mut out,
                    "cloudformer_http_request_duration_seconds",
                    &format!("route=\"{}\"", escape_label(route)),
                );
            }
        }
        out.push_str("# HELP cloudformer_batch_windows Windows per forward pass (micro-batching).\n# TYPE cloudformer_batch_windows histogram\n");
        self.batch_windows
            .render(&mut out, "cloudformer_batch_windows", "");
        out.push_str("# HELP cloudformer_forward_seconds Model forward-pass time per batch.\n# TYPE cloudformer_forward_seconds histogram\n");
        self.forward_seconds
            .render(&mut out, "cloudformer_forward_seconds", "");
        out.push_str("# HELP cloudformer_queue_wait_seconds Time a job waited in the inference queue.\n# TYPE cloudformer_queue_wait_seconds histogram\n");
        self.queue_wait_seconds
            .render(&mut out, "cloudformer_queue_wait_seconds", "");
        let _ = writeln!(
            out,
            "# HELP cloudformer_queue_depth Jobs waiting for the inference worker.\n# TYPE cloudformer_queue_depth gauge\ncloudformer_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed).max(0)
        );
        let _ = writeln!(
            out,
            "# HELP cloudformer_windows_predicted_total Windows predicted.\n# TYPE cloudformer_windows_predicted_total counter\ncloudformer_windows_predicted_total {}",
            self.windows_predicted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cloudformer_queue_full_total Requests refused with 503 because the inference queue was full.\n# TYPE cloudformer_queue_full_total counter\ncloudformer_queue_full_total {}",
            self.queue_full.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cloudformer_model_reloads_total Model reload attempts by result.\n# TYPE cloudformer_model_reloads_total counter\ncloudformer_model_reloads_total{{result=\"ok\"}} {}\ncloudformer_model_reloads_total{{result=\"failed\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cloudformer_http_connections Open client connections.\n# TYPE cloudformer_http_connections gauge\ncloudformer_http_connections {}",
            self.conn_open.load(Ordering::Relaxed).max(0)
        );
        let _ = writeln!(
            out,
            "# HELP cloudformer_http_connections_closed_total Connections the server closed early, by reason (evicted: idle at the connection cap; refused: at the cap with every connection busy; header_timeout: no whole request head within the header timeout).\n# TYPE cloudformer_http_connections_closed_total counter\ncloudformer_http_connections_closed_total{{reason=\"evicted\"}} {}\ncloudformer_http_connections_closed_total{{reason=\"refused\"}} {}\ncloudformer_http_connections_closed_total{{reason=\"header_timeout\"}} {}",
            self.conn_evicted.load(Ordering::Relaxed),
            self.conn_refused.load(Ordering::Relaxed),
            self.conn_header_timeouts.load(Ordering::Relaxed)
        );
        out.push_str(extra);
        out
    }
}

/// The method as a metrics label: one of the nine standard methods, `other` for anything a
/// client made up (labels come from a closed set, before and after authentication).
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(k, _)| k == m)
        .map_or("other", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_renders() {
        let m = Metrics::default();
        m.record_request("POST", "/v1/predict", 200, Duration::from_micros(700));
        m.record_request("POST", "/v1/predict", 400, Duration::from_millis(30));
        let text = m.render("");
        assert!(text.contains(
            "cloudformer_http_requests_total{method=\"POST\",route=\"/v1/predict\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "cloudformer_http_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "cloudformer_http_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.05\"} 2"
        ));
        assert!(text
            .contains("cloudformer_http_request_duration_seconds_count{route=\"/v1/predict\"} 2"));
        assert_eq!(m.requests_for("/v1/predict"), 2);
    }
}
