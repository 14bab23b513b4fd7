//! `GET /v1/tenants/{id}/culprits` (live mode): who is hurting a tenant, and through what.
//!
//! For tenant i the server holds every tenant's own rows of the same seconds, so "i without
//! neighbour j" is a recomputation, not a guess: the neighbour columns (`nbr.*`,
//! `placement.neighbours`, `placement.contending_cpu_pct`) are rebuilt from the own halves of
//! the tenants present each second, with j left out, by the agent's own function
//! ([`collector::neighbours::rows_of_second`]). One request asks the model about:
//!
//! - i with every neighbour (the recomputed window; equals the served one while every
//!   neighbour's rows of the window are still held);
//! - i alone (no neighbour at all);
//! - i without each neighbour j — ΔP̂ = P̂ without j − P̂ with all, the ranking;
//! - i with one resource of the neighbour columns occluded (`nbr.cpu.*`, `nbr.mem.*`, …: set
//!   missing, as for a tenant with no neighbour) — which resource of the neighbours moves P̂.
//!   Occluding the neighbours' `cpu` also takes their CPU demand off the tenant's CPUs
//!   (`placement.contending_cpu_pct` 0) and moves its own waits with it, as "without j" does:
//!   hiding their CPU columns while the tenant still waits for its CPU beside them would ask
//!   about a window no host produces.
//!
//! "Without j" also moves the tenant's own CPU-wait columns, by the contending CPU demand left
//! ([`crate::rebuild`]).
//!
//! All windows go to the inference worker as one batch.

use dataset::catalogue::Catalogue;
use serde::Serialize;

use crate::batcher::Batcher;
use crate::engine::{ModelInfo, Pred, WindowData};
use crate::error::ApiError;
use crate::live::{LiveState, SecondOfHost};
use crate::rebuild::{rebuilt_window, WaitColumns};
use crate::resources::{resource_of, CPU};

/// What one window of a culprits request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// Every neighbour present.
    All,
    /// No neighbour at all.
    Alone,
    /// Neighbour `id` left out.
    Without(String),
    /// The neighbour columns of one resource (the metric-name prefix: `cpu`, `mem`, …) missing;
    /// `columns` of them had a value.
    Occluded { resource: String, columns: usize },
}

/// One neighbour's effect on the tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeighbourEffect {
    pub id: String,
    /// Seconds of the window the neighbour was present in.
    pub seconds_present: usize,
    /// P̂ of the tenant with this neighbour left out.
    pub p_without: f32,
    pub std_without: f32,
    /// `p_without − p`: how much higher the tenant's P̂ is without this neighbour (> 0: it hurts).
    pub delta_p: f32,
}

/// One resource's effect: the neighbours' columns of that resource set missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceEffect {
    /// The metric-name prefix (`cpu`, `mem`, `io`, `net`, `perf`, `proc`, `pids`, `placement`).
    pub resource: String,
    /// Neighbour columns of the resource with a value somewhere in the window (the ones occluded).
    pub columns: usize,
    pub p_occluded: f32,
    pub std_occluded: f32,
    /// `p_occluded − p`.
    pub delta_p: f32,
}

/// The answer of `GET /v1/tenants/{id}/culprits`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Culprits {
    pub id: String,
    /// Seconds in the window.
    pub t: usize,
    /// Timestamps of the window's first and last second (ns since the epoch).
    pub from_ts_ns: i64,
    pub to_ts_ns: i64,
    /// P̂ with every neighbour.
    pub with_all: Pred,
    /// P̂ with no neighbour.
    pub alone: Pred,
    /// Every neighbour of the window, the one whose absence raises P̂ most first.
    pub neighbours: Vec<NeighbourEffect>,
    /// Every resource with neighbour values in the window, the one whose occlusion raises P̂
    /// most first.
    pub resources: Vec<ResourceEffect>,
}

/// The windows of one request and what each asks, in batch order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub windows: Vec<WindowData>,
    pub variants: Vec<Variant>,
}

/// The neighbours of `id` in its window, in order of first appearance, with the seconds each
/// was present.
pub fn neighbours_of(id: &str, seconds: &[SecondOfHost]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for s in seconds {
        for r in s.rows.iter().filter(|r| r.tenant != id) {
            match out.iter_mut().find(|(t, _)| *t == r.tenant) {
                Some((_, n)) => *n += 1,
                None => out.push((r.tenant.clone(), 1)),
            }
        }
    }
    out
}

/// Every window a culprits request for `id` asks the model about.
pub fn plan(id: &str, seconds: &[SecondOfHost], cat: &Catalogue) -> Plan {
    let nm = cat.n_metrics();
    let all = rebuilt_window(id, seconds, cat, |_| true);
    let mut windows = vec![rebuilt_window(id, seconds, cat, |_| false)];
    let mut variants = vec![Variant::Alone];
    for (j, _) in neighbours_of(id, seconds) {
        windows.push(rebuilt_window(id, seconds, cat, |t| t != j));
        variants.push(Variant::Without(j));
    }
    let waits = WaitColumns::of(cat);
    for (resource, cols) in resources_present(&all, cat) {
        let mut w = all.clone();
        for s in 0..w.t {
            let row = &mut w.data[s * 2 * nm..(s + 1) * 2 * nm];
            for &k in &cols {
                row[nm + k] = f32::NAN;
            }
            if resource == CPU {
                without_contending_demand(row, &waits);
            }
        }
        windows.push(w);
        variants.push(Variant::Occluded {
            resource,
            columns: cols.len(),
        });
    }
    windows.insert(0, all);
    variants.insert(0, Variant::All);
    Plan { windows, variants }
}

/// The neighbours' CPU occluded in one row of a window (own columns first) beyond their
/// columns: none of their CPU demand contends for the tenant's CPUs any more
/// (`placement.contending_cpu_pct` 0) and its own waits follow, as when a neighbour is left out
/// ([`WaitColumns::follow_demand`]). A row whose recorded demand is unknown keeps its waits.
fn without_contending_demand(row: &mut [f32], waits: &WaitColumns) {
    let Some(c) = waits.contending else {
        return;
    };
    let recorded = row[c];
    if recorded.is_finite() {
        row[c] = 0.0;
        waits.follow_demand(row, recorded, 0.0);
    }
}

/// The resources whose neighbour columns have a value somewhere in `w`, each with those
/// columns (metric indices), in catalogue order.
fn resources_present(w: &WindowData, cat: &Catalogue) -> Vec<(String, Vec<usize>)> {
    let nm = cat.n_metrics();
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (k, m) in cat.metrics().iter().enumerate() {
        let seen = (0..w.t).any(|s| w.data[s * 2 * nm + nm + k].is_finite());
        if !seen {
            continue;
        }
        let r = resource_of(&m.name);
        match out.iter_mut().find(|(name, _)| *name == r) {
            Some((_, cols)) => cols.push(k),
            None => out.push((r.to_string(), vec![k])),
        }
    }
    out
}

/// Puts the model's answers to a [`plan`]'s windows (`variants` says what each asked) together.
pub fn assemble(
    id: &str,
    seconds: &[SecondOfHost],
    variants: &[Variant],
    preds: &[Pred],
) -> Result<Culprits, String> {
    if preds.len() != variants.len() {
        return Err(format!(
            "the model answered {} of {} windows",
            preds.len(),
            variants.len()
        ));
    }
    let find = |v: &Variant| {
        variants
            .iter()
            .position(|x| x == v)
            .map(|i| preds[i])
            .ok_or_else(|| format!("no window for {v:?}"))
    };
    let with_all = find(&Variant::All)?;
    let alone = find(&Variant::Alone)?;
    let present = neighbours_of(id, seconds);
    let mut neighbours = Vec::new();
    let mut resources = Vec::new();
    for (v, p) in variants.iter().zip(preds) {
        match v {
            Variant::Without(j) => neighbours.push(NeighbourEffect {
                id: j.clone(),
                seconds_present: present.iter().find(|(t, _)| t == j).map_or(0, |(_, n)| *n),
                p_without: p.p,
                std_without: p.std,
                delta_p: p.p - with_all.p,
            }),
            Variant::Occluded { resource, columns } => resources.push(ResourceEffect {
                resource: resource.clone(),
                columns: *columns,
                p_occluded: p.p,
                std_occluded: p.std,
                delta_p: p.p - with_all.p,
            }),
            Variant::All | Variant::Alone => {}
        }
    }
    neighbours.sort_by(|a, b| b.delta_p.total_cmp(&a.delta_p).then(a.id.cmp(&b.id)));
    resources.sort_by(|a, b| {
        b.delta_p
            .total_cmp(&a.delta_p)
            .then(a.resource.cmp(&b.resource))
    });
    Ok(Culprits {
        id: id.to_string(),
        t: seconds.len(),
        from_ts_ns: seconds.first().map_or(0, |s| s.ts_ns),
        to_ts_ns: seconds.last().map_or(0, |s| s.ts_ns),
        with_all,
        alone,
        neighbours,
        resources,
    })
}

/// 500 unless the model reads the agent's catalogue (live mode checks it at start and reload;
/// a what-if rebuilds that catalogue's neighbour columns).
pub(crate) fn reads_the_catalogue(info: &ModelInfo, cat: &Catalogue) -> Result<(), ApiError> {
    if info.n_features() == cat.n_features() {
        return Ok(());
    }
    Err(ApiError::internal(format!(
        "the model reads {} features, the agent's catalogue has {}",
        info.n_features(),
        cat.n_features()
    )))
}

/// Answers `GET /v1/tenants/{id}/culprits` from the live state: 404 for an unknown tenant, 409
/// while it has fewer seconds than a live prediction needs.
pub async fn culprits(live: &LiveState, batcher: &Batcher, id: &str) -> Result<Culprits, ApiError> {
    let seconds = live.neighbourhood(id).ok_or_else(|| {
        ApiError::not_found(format!("no live tenant {id:?} (see GET /v1/tenants)"))
    })?;
    let need = live.sizes.min_window_s.max(1);
    if seconds.len() < need {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "tenant {id:?} has {} second(s) of rows; culprits need {need} (its first live prediction), retry shortly",
                seconds.len()
            ),
        ));
    }
    let cat = Catalogue::builtin();
    reads_the_catalogue(&batcher.info(), cat)?;
    let Plan { windows, variants } = plan(id, &seconds, cat);
    let answer = batcher.predict(windows, cat.n_features()).await?;
    assemble(id, &seconds, &variants, &answer.preds).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests;
