//! What the agent produces each second: one [`Tick`] with every tenant's [`TenantRow`]. Its
//! consumers (segments, the `/metrics` endpoint, live predictions) depend on this module, not on
//! the agent.

/// One tick: every tenant's row.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Anchored wall clock (wall₀ + monotonic elapsed), ns since the epoch.
    pub ts_ns: i64,
    pub seq: u32,
    /// Measured interval since the previous tick (s).
    pub dt_s: f32,
    /// A tick was missed, or the interval is > 1.5 s.
    pub gap: bool,
    /// Time spent reading all sources (µs).
    pub collect_us: u32,
    /// How late the tick started vs. its grid instant (µs).
    pub lateness_us: u32,
    /// Host context columns (`Catalogue::host_column_names()` order, NaN = null).
    pub host: Vec<f32>,
    pub rows: Vec<TenantRow>,
}

/// One tenant at one tick.
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub tenant: String,
    /// `feature_names()` order, NaN = null.
    pub features: Vec<f32>,
    pub n_neighbours: u32,
    /// First row of the tenant, or a tick gap.
    pub gap: bool,
    /// This tenant's measured interval (s).
    pub dt_s: f32,
    /// The CPUs the tenant may run on (what `placement.contending_cpu_pct` was computed from;
    /// the server recomputes neighbour columns with it, `serve::culprits`).
    pub cpus: Vec<usize>,
}
