//! Live mode: per-tenant ring buffers of the last N seconds from the in-process agent, one
//! prediction per tenant per tick, and a bounded P̂ history.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;

use serde::Serialize;

use crate::batcher::Batcher;
use crate::engine::{Pred, WindowData};
use crate::metrics::escape_label;

/// Live mode: run the collector's agent in-process on these tenants.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub cgroup_root: PathBuf,
    pub tenant_globs: Vec<String>,
    pub sizes: LiveSizes,
}

/// Live-mode sizes.
#[derive(Debug, Clone, Copy)]
pub struct LiveSizes {
    /// Seconds of rows kept per tenant = the window each prediction is computed on.
    pub window_s: usize,
    /// Fewest seconds before a tenant's first prediction.
    pub min_window_s: usize,
    /// P̂ points kept per tenant.
    pub history: usize,
    /// Ticks a tenant may be absent before it is forgotten.
    pub forget_after_ticks: u64,
}

impl Default for LiveSizes {
    fn default() -> Self {
        LiveSizes {
            window_s: 60,
            min_window_s: 3,
            history: 600,
            forget_after_ticks: 10,
        }
    }
}

/// One P̂ point in a tenant's history.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct HistPoint {
    pub ts_ns: i64,
    pub p: f32,
    pub std: f32,
    /// Share of the features the model uses that the window observed.
    pub coverage: f32,
    pub out_of_distribution: bool,
    /// Seconds in the window this point was computed on.
    pub t: usize,
}

/// One second of one tenant in the ring buffer.
#[derive(Debug, Clone)]
struct LiveRow {
    ts_ns: i64,
    /// The model's feature order (own metrics, then `nbr.`).
    features: Vec<f32>,
    /// The CPUs the tenant may run on (the neighbour columns are recomputed with them).
    cpus: Vec<usize>,
}

/// One tenant's row as the agent hands it to [`LiveState::ingest`].
#[derive(Debug, Clone, Copy)]
pub struct RowIn<'a> {
    pub tenant: &'a str,
    pub features: &'a [f32],
    pub cpus: &'a [usize],
}

/// Every tenant present in one second of a tenant's window (see [`LiveState::neighbourhood`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SecondOfHost {
    pub ts_ns: i64,
    /// Every tenant with a row at `ts_ns`, the asked tenant included.
    pub rows: Vec<TenantSecond>,
}

/// One tenant's row at one second.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSecond {
    pub tenant: String,
    pub features: Vec<f32>,
    pub cpus: Vec<usize>,
}

#[derive(Debug, Default)]
struct TenantState {
    rows: VecDeque<LiveRow>,
    history: VecDeque<HistPoint>,
    last_seen_tick: u64,
}

/// Shared live state (read by the HTTP handlers, written by the tick loop).
#[derive(Debug)]
pub struct LiveState {
    pub sizes: LiveSizes,
    tenants: RwLock<BTreeMap<String, TenantState>>,
    pub ticks: AtomicU64,
    pub rows_dropped: AtomicU64,
    /// Agent ticks skipped because a prediction round was still running.
    pub ticks_skipped: AtomicU64,
    pub predict_errors: AtomicU64,
    pub last_tick_ts_ns: AtomicI64,
    pub agent_error: RwLock<Option<String>>,
}

/// Summary row for `GET /v1/tenants`.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub id: String,
    pub seconds: usize,
    pub latest: Option<HistPoint>,
}

/// `GET /v1/tenants/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDetail {
    pub id: String,
    pub history: Vec<HistPoint>,
    /// The window the latest P̂ was computed on: timestamps and feature name → values (null = missing).
    pub window: WindowView,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    pub t: usize,
    pub ts_ns: Vec<i64>,
    pub metrics: BTreeMap<String, Vec<Option<f32>>>,
}

impl LiveState {
    pub fn new(sizes: LiveSizes) -> Self {
        LiveState {
            sizes,
            tenants: RwLock::new(BTreeMap::new()),
            ticks: AtomicU64::new(0),
            rows_dropped: AtomicU64::new(0),
            ticks_skipped: AtomicU64::new(0),
            predict_errors: AtomicU64::new(0),
            last_tick_ts_ns: AtomicI64::new(0),
            agent_error: RwLock::new(None),
        }
    }

    /// Adds one tick's rows (feature vectors in the model's order); returns the windows that are
    /// ready for prediction (tenant id in `id`). Rows of the wrong length are dropped.
    pub fn ingest(&self, ts_ns: i64, rows: &[RowIn<'_>], n_features: usize) -> Vec<WindowData> {
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        self.last_tick_ts_ns.store(ts_ns, Ordering::Relaxed);
        let mut out = Vec::new();
        let Ok(mut map) = self.tenants.write() else {
            return out;
        };
        for r in rows {
            if r.features.len() != n_features {
                self.rows_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let st = map.entry(r.tenant.to_string()).or_default();
            st.last_seen_tick = tick;
            st.rows.push_back(LiveRow {
                ts_ns,
                features: r.features.to_vec(),
                cpus: r.cpus.to_vec(),
            });
            while st.rows.len() > self.sizes.window_s.max(1) {
                st.rows.pop_front();
            }
        }
        let forget = self.sizes.forget_after_ticks;
        map.retain(|_, st| tick.saturating_sub(st.last_seen_tick) <= forget);
        for (tenant, st) in map.iter() {
            if st.last_seen_tick != tick || st.rows.len() < self.sizes.min_window_s.max(1) {
                continue;
            }
            let t = st.rows.len();
            let mut data = Vec::with_capacity(t * n_features);
            for r in &st.rows {
                data.extend_from_slice(&r.features);
            }
            out.push(WindowData {
                id: Some(tenant.clone()),
                t,
                data,
            });
        }
        out
    }

    /// Stores predictions for the windows `ingest` returned.
    pub fn record(&self, ts_ns: i64, windows: &[(String, usize)], preds: &[Pred]) {
        let Ok(mut map) = self.tenants.write() else {
            return;
        };
        for ((tenant, t), p) in windows.iter().zip(preds) {
            if let Some(st) = map.get_mut(tenant) {
                st.history.push_back(HistPoint {
                    ts_ns,
                    p: p.p,
                    std: p.std,
                    coverage: p.coverage,
                    out_of_distribution: p.out_of_distribution,
                    t: *t,
                });
                while st.history.len() > self.sizes.history.max(1) {
                    st.history.pop_front();
                }
            }
        }
    }

    pub fn summaries(&self) -> Vec<TenantSummary> {
        let Ok(map) = self.tenants.read() else {
            return Vec::new();
        };
        map.iter()
            .map(|(id, st)| TenantSummary {
                id: id.clone(),
                seconds: st.rows.len(),
                latest: st.history.back().copied(),
            })
            .collect()
    }

    pub fn detail(&self, id: &str, names: &[String]) -> Option<TenantDetail> {
        let map = self.tenants.read().ok()?;
        let st = map.get(id)?;
        // The window of the latest prediction: the rows up to its timestamp.
        let upto = st.history.back().map(|h| h.ts_ns).unwrap_or(i64::MAX);
        let rows: Vec<&LiveRow> = st.rows.iter().filter(|r| r.ts_ns <= upto).collect();
        let mut metrics = BTreeMap::new();
        for (j, name) in names.iter().enumerate() {
            let col: Vec<Option<f32>> = rows
                .iter()
                .map(|r| r.features.get(j).copied().filter(|v| v.is_finite()))
                .collect();
            metrics.insert(name.clone(), col);
        }
        Some(TenantDetail {
            id: id.to_string(),
            history: st.history.iter().copied().collect(),
            window: WindowView {
                t: rows.len(),
                ts_ns: rows.iter().map(|r| r.ts_ns).collect(),
                metrics,
            },
        })
    }

    /// Whether tenant `id` has rows in the ring buffer.
    pub fn has(&self, id: &str) -> bool {
        self.tenants
            .read()
            .map(|m| m.contains_key(id))
            .unwrap_or(false)
    }

    /// Tenant `id`'s own last `n` seconds (oldest first; all it holds when fewer), each with its
    /// tick timestamp: what a profile needs, without copying the neighbours' rows. `None` for an
    /// unknown tenant.
    pub fn own_seconds(&self, id: &str, n: usize) -> Option<Vec<(i64, TenantSecond)>> {
        let map = self.tenants.read().ok()?;
        let me = map.get(id)?;
        let skip = me.rows.len().saturating_sub(n);
        Some(
            me.rows
                .iter()
                .skip(skip)
                .map(|r| {
                    let row = TenantSecond {
                        tenant: id.to_string(),
                        features: r.features.clone(),
                        cpus: r.cpus.clone(),
                    };
                    (r.ts_ns, row)
                })
                .collect(),
        )
    }

    /// For each second in tenant `id`'s ring buffer (oldest first), the rows of every tenant
    /// present in that second (the agent's tick timestamp is shared by all rows of one tick).
    /// `None` for an unknown tenant. A neighbour that left more than `window_s` seconds ago
    /// or was forgotten is no longer here.
    pub fn neighbourhood(&self, id: &str) -> Option<Vec<SecondOfHost>> {
        let map = self.tenants.read().ok()?;
        let me = map.get(id)?;
        Some(
            me.rows
                .iter()
                .map(|r| second_of_host(&map, r.ts_ns))
                .collect(),
        )
    }

    /// The host's last `n` seconds (agent ticks with a row of any tenant held), oldest first,
    /// each with every tenant's row of that second.
    pub fn last_seconds(&self, n: usize) -> Vec<SecondOfHost> {
        let Ok(map) = self.tenants.read() else {
            return Vec::new();
        };
        let all: std::collections::BTreeSet<i64> = map
            .values()
            .flat_map(|st| st.rows.iter().map(|r| r.ts_ns))
            .collect();
        let skip = all.len().saturating_sub(n);
        all.into_iter()
            .skip(skip)
            .map(|ts| second_of_host(&map, ts))
            .collect()
    }

    /// Prometheus series: per-tenant P̂ gauges and the agent's self-metrics.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let summaries = self.summaries();
        // Per-tenant gauges of the latest point: (name, help, value).
        type Gauge = (&'static str, &'static str, fn(&HistPoint) -> f32);
        let gauges: [Gauge; 4] = [
            (
                "cloudformer_tenant_p",
                "Latest predicted degradation P̂ per tenant (1 = no degradation).",
                |h| h.p,
            ),
            (
                "cloudformer_tenant_p_std",
                "Uncertainty (std) of the latest P̂ per tenant.",
                |h| h.std,
            ),
            (
                "cloudformer_tenant_coverage",
                "Share of the model's features the tenant's latest window observed.",
                |h| h.coverage,
            ),
            (
                "cloudformer_tenant_out_of_distribution",
                "1 when the tenant's latest window lies outside the training data's ranges.",
                |h| f32::from(u8::from(h.out_of_distribution)),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
            for s in &summaries {
                if let Some(h) = &s.latest {
                    let _ = writeln!(
                        out,
                        "{name}{{tenant=\"{}\"}} {}",
                        escape_label(&s.id),
                        value(h)
                    );
                }
            }
        }
        let last = self.last_tick_ts_ns.load(Ordering::Relaxed);
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let _ = write!(
            out,
            "# HELP cloudformer_agent_ticks_total Agent ticks received by the server.\n# TYPE cloudformer_agent_ticks_total counter\ncloudformer_agent_ticks_total {}\n\
             # HELP cloudformer_agent_tenants Tenants with rows in the ring buffer.\n# TYPE cloudformer_agent_tenants gauge\ncloudformer_agent_tenants {}\n\
             # HELP cloudformer_agent_rows_dropped_total Agent rows dropped (feature count differs from the model's).\n# TYPE cloudformer_agent_rows_dropped_total counter\ncloudformer_agent_rows_dropped_total {}\n\
             # HELP cloudformer_live_ticks_skipped_total Agent ticks skipped while a live prediction round was still running.\n# TYPE cloudformer_live_ticks_skipped_total counter\ncloudformer_live_ticks_skipped_total {}\n\
             # HELP cloudformer_live_predict_errors_total Live prediction rounds that failed.\n# TYPE cloudformer_live_predict_errors_total counter\ncloudformer_live_predict_errors_total {}\n\
             # HELP cloudformer_agent_last_tick_age_seconds Seconds since the last agent tick.\n# TYPE cloudformer_agent_last_tick_age_seconds gauge\ncloudformer_agent_last_tick_age_seconds {}\n",
            self.ticks.load(Ordering::Relaxed),
            summaries.len(),
            self.rows_dropped.load(Ordering::Relaxed),
            self.ticks_skipped.load(Ordering::Relaxed),
            self.predict_errors.load(Ordering::Relaxed),
            if last > 0 { (now_ns - last) as f64 / 1e9 } else { f64::NAN },
        );
        out
    }
}

/// Every tenant's row at tick `ts_ns`.
fn second_of_host(map: &BTreeMap<String, TenantState>, ts_ns: i64) -> SecondOfHost {
    let rows = map
        .iter()
        .filter_map(|(tenant, st)| {
            let i = st.rows.binary_search_by_key(&ts_ns, |r| r.ts_ns).ok()?;
            let r = &st.rows[i];
            Some(TenantSecond {
                tenant: tenant.clone(),
                features: r.features.clone(),
                cpus: r.cpus.clone(),
            })
        })
        .collect();
    SecondOfHost { ts_ns, rows }
}

/// One live round: ingest a tick, predict every ready tenant through the batcher, record.
pub async fn live_round(live: &LiveState, batcher: &Batcher, ts_ns: i64, rows: &[RowIn<'_>]) {
    let info = batcher.info();
    let f = info.n_features();
    let windows = live.ingest(ts_ns, rows, f);
    if windows.is_empty() {
        return;
    }
    let keys: Vec<(String, usize)> = windows
        .iter()
        .map(|w| (w.id.clone().unwrap_or_default(), w.t))
        .collect();
    match batcher.predict(windows, f).await {
        Ok(answer) => live.record(ts_ns, &keys, &answer.preds),
        Err(e) => {
            live.predict_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e.message, "live prediction round failed");
        }
    }
}

/// The feature order of the agent's rows (the catalogue's `feature_names()`).
pub fn agent_feature_names() -> Vec<String> {
    dataset::catalogue::Catalogue::builtin().feature_names()
}

/// The catalogue hash of the agent's rows.
pub fn agent_catalogue_hash() -> String {
    dataset::catalogue::Catalogue::builtin().hash().to_string()
}

/// Starts the collector's agent in-process (its own thread and single-threaded runtime, as the
/// `collect` command runs it) and feeds every tick to [`live_round`] on the server's runtime.
/// The agent writes no files here; it stops when `shutdown` turns true. An agent that fails
/// later (e.g. the cgroup root vanished) leaves its error in `LiveState::agent_error` (shown on
/// `/readyz` and `/v1/tenants`).
pub fn spawn_agent(
    cfg: &LiveConfig,
    live: std::sync::Arc<LiveState>,
    batcher: Batcher,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), crate::error::ServeError> {
    use collector::agent::{Agent, AgentConfig};
    let acfg = AgentConfig {
        cgroup_root: cfg.cgroup_root.clone(),
        tenant_globs: cfg.tenant_globs.clone(),
        out_dir: None,
        listen: None,
        duration: None,
        ..AgentConfig::default()
    };
    let agent = Agent::new(acfg).map_err(|e| {
        crate::error::ServeError::Live(format!("cannot start the collector's agent: {e}"))
    })?;
    let mut ticks = agent.subscribe();
    let mut agent_shutdown = shutdown.clone();
    let live_for_agent = live.clone();
    std::thread::Builder::new()
        .name("cloudformer-agent".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    set_agent_error(&live_for_agent, format!("agent runtime: {e}"));
                    return;
                }
            };
            let stop = async move {
                while !*agent_shutdown.borrow() {
                    if agent_shutdown.changed().await.is_err() {
                        break;
                    }
                }
            };
            match rt.block_on(agent.run(stop)) {
                Ok(summary) => tracing::info!(ticks = summary.ticks, "live agent stopped"),
                Err(e) => {
                    tracing::error!(error = %e, "live agent failed");
                    set_agent_error(&live_for_agent, e.to_string());
                }
            }
        })
        .map_err(|e| {
            crate::error::ServeError::Live(format!("cannot start the agent thread: {e}"))
        })?;
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let tick = tokio::select! {
                t = ticks.recv() => t,
                _ = shutdown.changed() => break,
            };
            match tick {
                Ok(tick) => {
                    // Borrowed from the tick: the ring buffer copies each row once.
                    let rows: Vec<RowIn<'_>> = tick
                        .rows
                        .iter()
                        .map(|r| RowIn {
                            tenant: &r.tenant,
                            features: &r.features,
                            cpus: &r.cpus,
                        })
                        .collect();
                    live_round(&live, &batcher, tick.ts_ns, &rows).await;
                }
                // A slow prediction round: skip the ticks we missed, keep going.
                Err(RecvError::Lagged(n)) => {
                    live.ticks_skipped.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(missed = n, "live predictions fell behind the agent");
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
    Ok(())
}

fn set_agent_error(live: &LiveState, msg: String) {
    if let Ok(mut e) = live.agent_error.write() {
        *e = Some(msg);
    }
}

#[cfg(test)]
mod tests;
