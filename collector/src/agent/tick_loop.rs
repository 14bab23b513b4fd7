//! The agent's loop, once a second on the wall clock's second: discover tenants, read the host
//! and every tenant back to back, compute each tenant's features and its neighbours' means, then
//! publish the tick (`/metrics`, live consumers, the segment writer). On shutdown the open
//! segment is closed and the summary's percentiles computed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::writer::{self, Writer};
use super::{Agent, AgentSummary, CollectError};
use crate::host::{self, HostRaw};
use crate::neighbours::OwnRow;
use crate::perf::TenantPerf;
use crate::specs::{self, raw::N_RAW};
use crate::taskstats::TaskCounters;
use crate::tenant::TenantReader;
use crate::tick::Tick;

/// One tenant's reader and its last two raw readings (rates come from their measured Δt).
struct TenantState {
    reader: TenantReader,
    cur: Vec<f64>,
    prev: Vec<f64>,
    prev_t: Option<Instant>,
}

/// The tenants being sampled, by name (rows come out in name order without sorting each tick),
/// and the buffers of the taskstats query that covers all their processes.
#[derive(Default)]
struct Tenants {
    states: BTreeMap<String, TenantState>,
    all_pids: Vec<u32>,
    task_table: HashMap<u32, TaskCounters>,
}

/// When the previous tick was scheduled and when it ran.
#[derive(Default)]
struct TickClock {
    last_sched: Option<Instant>,
    last_t: Option<Instant>,
}

/// What [`TickClock::advance`] saw of one tick.
struct TickTiming {
    /// Ticks skipped since the previous one (it ran late).
    missed: u64,
    /// Seconds since the previous tick ran; `None` on the first.
    dt_s: Option<f64>,
    /// The first tick, a missed tick or more than 1.5 s since the previous one: rates over this
    /// tick are not per-second rates of consecutive seconds.
    gap: bool,
}

impl TickClock {
    fn advance(&mut self, sched: Instant, t0: Instant) -> TickTiming {
        let missed = self.last_sched.map_or(0, |l| {
            let d = sched.saturating_duration_since(l).as_millis() as u64;
            d.saturating_sub(500) / 1000
        });
        self.last_sched = Some(sched);
        let dt_s = self
            .last_t
            .map(|l| t0.saturating_duration_since(l).as_secs_f64());
        self.last_t = Some(t0);
        TickTiming {
            missed,
            dt_s,
            gap: missed > 0 || dt_s.is_none_or(|d| d > 1.5),
        }
    }
}

/// The last hour of collection times and tick lateness (µs), for the summary's percentiles.
#[derive(Default)]
struct TickTimes {
    collect: VecDeque<u32>,
    late: VecDeque<u32>,
}

impl TickTimes {
    /// Ticks kept (one hour).
    const KEEP: usize = 3600;

    fn push(&mut self, collect_us: u32, lateness_us: u32) {
        for (h, v) in [
            (&mut self.collect, collect_us),
            (&mut self.late, lateness_us),
        ] {
            if h.len() == Self::KEEP {
                h.pop_front();
            }
            h.push_back(v);
        }
    }

    fn fill(&self, summary: &mut AgentSummary) {
        summary.collect_us_p50 = percentile(&self.collect, 0.5);
        summary.collect_us_p99 = percentile(&self.collect, 0.99);
        summary.lateness_us_p99 = percentile(&self.late, 0.99);
    }
}

fn percentile(values: &VecDeque<u32>, q: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    let mut v: Vec<u32> = values.iter().copied().collect();
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn now_wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

impl Agent {
    /// Runs until `shutdown` resolves or `duration` has elapsed; closes the open segment.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<AgentSummary, CollectError> {
        if let Some(addr) = self.cfg.listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CollectError::Listen { addr, source })?;
            tokio::spawn(crate::prom::serve(l, self.latest.clone()));
        }
        let writer = writer::start(&self.cfg, self.cat, &self.availability)?;
        // After the writer thread exists (it keeps the process's priority): the sampling thread's.
        let nice_guard = self.raise_sampler_priority();

        // Clock anchor: wall₀ + monotonic elapsed gives strictly increasing stamps.
        let mono0 = Instant::now();
        let wall0 = now_wall_ns();
        let to_next = 1_000_000_000 - wall0.rem_euclid(1_000_000_000);
        let start = mono0 + Duration::from_nanos(to_next as u64);
        let mut iv = interval_at(start, Duration::from_secs(1));
        iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let deadline = self.cfg.duration.map(|d| start + d);

        let mut tenants = Tenants::default();
        let mut host_prev: Option<(HostRaw, Instant)> = None;
        let mut summary = AgentSummary {
            availability: self.availability.clone(),
            sampler_nice: nice_guard
                .as_ref()
                .and_then(|_| crate::priority::nice_of(0).ok()),
            ..Default::default()
        };
        let mut clock = TickClock::default();
        let mut times = TickTimes::default();
        let mut seq: u32 = 0;
        let nm = self.cat.n_metrics();
        tokio::pin!(shutdown);

        loop {
            let sched = tokio::select! {
                _ = &mut shutdown => break,
                t = iv.tick() => t,
            };
            if deadline.is_some_and(|d| sched >= d) {
                break;
            }
            let t0 = Instant::now();
            let lateness_us = micros(t0.saturating_duration_since(sched));
            let timing = clock.advance(sched, t0);
            summary.missed_ticks += timing.missed;

            self.discover_tenants(&mut tenants.states);
            // Read phase: host, then every tenant, back to back.
            let hraw = self.host.read();
            let own = self.read_tenants(&mut tenants, t0, timing.gap);
            let host_dt = host_prev
                .as_ref()
                .map_or(0.0, |(_, t)| t0.saturating_duration_since(*t).as_secs_f64());
            let host_vals = host::host_values(
                &self.host_specs,
                host_prev.as_ref().map(|(h, _)| h),
                &hraw,
                host_dt,
            );
            host_prev = Some((hraw, t0));
            let collect_us = micros(t0.elapsed());

            let rows = crate::neighbours::rows_of_second(own, nm, self.placement.as_ref());
            if collect_us > 100_000 {
                tracing::warn!(collect_us, "slow collection");
            }
            summary.ticks += 1;
            summary.rows += rows.len() as u64;
            summary.max_tenants = summary.max_tenants.max(rows.len());
            times.push(collect_us, lateness_us);
            let tick = Arc::new(Tick {
                ts_ns: wall0 + t0.saturating_duration_since(mono0).as_nanos() as i64,
                seq,
                dt_s: timing.dt_s.unwrap_or(0.0) as f32,
                gap: timing.gap,
                collect_us,
                lateness_us,
                host: host_vals,
                rows,
            });
            seq = seq.wrapping_add(1);
            if !self.publish(tick, writer.as_ref(), &mut summary) {
                break;
            }
        }

        times.fill(&mut summary);
        if let Some(w) = writer {
            summary.segments = w.finish().await?;
        }
        Ok(summary)
    }

    /// Discovery: tenants may appear or vanish at any second (nothing to do when the cgroup
    /// directories did not change).
    fn discover_tenants(&mut self, states: &mut BTreeMap<String, TenantState>) {
        let Some(found) = self.discovery.poll() else {
            return;
        };
        states.retain(|name, _| found.contains_key(name));
        for (name, dirs) in found {
            if states.contains_key(name) {
                continue;
            }
            // Counted on its perf_event cgroup (v2, or a v1 perf_event mount); a tenant that
            // has none (on hybrid hosts perf_event is usually bound to v2, and a v1-only tenant
            // is not there) is counted thread by thread.
            let perf = match dirs.get("v2").or_else(|| dirs.get("perf_event")) {
                Some(d) => TenantPerf::open(d, self.probe, &self.cpus),
                None => TenantPerf::per_thread(self.probe),
            };
            let perf_mode = match &perf {
                None => "none",
                Some(p) if p.is_per_thread() => "per-thread",
                Some(_) => "cgroup",
            };
            tracing::info!(tenant = %name, hierarchies = ?dirs.keys().collect::<Vec<_>>(), perf = perf_mode, "tenant appeared");
            states.insert(
                name.clone(),
                TenantState {
                    reader: TenantReader::open(name, dirs.clone(), perf),
                    cur: vec![f64::NAN; N_RAW],
                    prev: vec![f64::NAN; N_RAW],
                    prev_t: None,
                },
            );
        }
    }

    /// Reads every tenant (the context switches and schedstat of all their processes asked of
    /// taskstats together first) into its own features; a tenant whose cgroup is gone is
    /// dropped and discovery lists again next tick.
    fn read_tenants(&mut self, tenants: &mut Tenants, t0: Instant, tick_gap: bool) -> Vec<OwnRow> {
        let nm = self.cat.n_metrics();
        let tasks = match self.taskstats.as_mut() {
            Some(ts) => {
                tenants.all_pids.clear();
                for st in tenants.states.values_mut() {
                    tenants.all_pids.extend_from_slice(st.reader.list_pids());
                }
                match ts.query_many(&tenants.all_pids, &mut tenants.task_table) {
                    Ok(()) => Some(&tenants.task_table),
                    Err(e) => {
                        tracing::warn!("{e}: per-process context switches from /proc/PID/status and schedstat from now on");
                        self.taskstats = None;
                        None
                    }
                }
            }
            None => None,
        };
        let mut own: Vec<OwnRow> = Vec::with_capacity(tenants.states.len());
        let mut vanished = Vec::new();
        for (name, st) in tenants.states.iter_mut() {
            st.reader.read(&mut st.cur, tasks);
            if !st.reader.alive {
                vanished.push(name.clone());
                continue;
            }
            let dt = st
                .prev_t
                .map_or(0.0, |p| t0.saturating_duration_since(p).as_secs_f64());
            let prev = st.prev_t.map(|_| st.prev.as_slice());
            let mut f = vec![f32::NAN; 2 * nm];
            for (j, &s) in self.specs.iter().enumerate() {
                f[j] = specs::eval(s, prev, &st.cur, dt);
            }
            let gap = tick_gap || st.prev_t.is_none() || dt > 1.5;
            own.push(OwnRow {
                tenant: name.clone(),
                features: f,
                gap,
                dt_s: dt as f32,
                cpus: st.reader.cpus.clone(),
            });
            std::mem::swap(&mut st.cur, &mut st.prev);
            st.prev_t = Some(t0);
        }
        for v in vanished {
            tracing::info!(tenant = %v, "tenant vanished");
            tenants.states.remove(&v);
            // Its directory may still be there (listed again next tick to be sure).
            self.discovery.invalidate();
        }
        own
    }

    /// Hands a tick to `/metrics` (the latest tick), to live consumers (broadcast) and, when it
    /// has rows, to the segment writer; `false` when the writer has stopped (the agent stops).
    fn publish(
        &self,
        tick: Arc<Tick>,
        writer: Option<&Writer>,
        summary: &mut AgentSummary,
    ) -> bool {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(tick.clone());
        }
        let _ = self.tx.send(tick.clone());
        let Some(w) = writer.filter(|_| !tick.rows.is_empty()) else {
            return true;
        };
        match w.tx.try_send(tick) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(_)) => {
                summary.dropped_ticks += 1;
                tracing::warn!("segment writer is behind: tick dropped");
                true
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                tracing::error!("segment writer stopped");
                false
            }
        }
    }
}
