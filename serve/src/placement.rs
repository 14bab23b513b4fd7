//! Placement what-if (live mode): `GET /v1/tenants/{id}/profile` carries a tenant's own recent
//! rows to another host; `POST /v1/placement` answers what placing that profile here would do:
//! P̂ of the candidate beside the current tenants, and P̂ before → after for every current
//! tenant with the candidate added to its neighbours, plus one host score.
//!
//! The host's last `t` seconds (t = the profile's seconds, at most what the server holds) are
//! replayed with the candidate's rows added second by second (its last second beside the host's
//! last); every window's neighbour columns are recomputed by the agent's own function, as for
//! culprits ([`crate::culprits`]). All windows go to the inference worker as one batch.

use std::collections::BTreeMap;

use dataset::catalogue::Catalogue;
use serde::{Deserialize, Serialize};

use crate::batcher::Batcher;
use crate::culprits::reads_the_catalogue;
use crate::engine::{ModelInfo, Pred, WindowData};
use crate::error::ApiError;
use crate::live::{LiveState, SecondOfHost, TenantSecond};
use crate::parse::{check_t, check_value, json_error, suggest, Limits};
use crate::rebuild::rebuilt_window;

/// The candidate's id inside a plan (a cgroup path never holds a NUL, so no tenant has it).
const CANDIDATE: &str = "\0candidate";

/// The answer of `GET /v1/tenants/{id}/profile`: a tenant's own columns of its last seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub id: String,
    pub catalogue_hash: String,
    pub t: usize,
    pub ts_ns: Vec<i64>,
    /// The CPUs the tenant ran on (where it came from; the placement request says where it goes).
    pub cpus: Vec<usize>,
    /// Own metric name → per-second values (`null` = missing), catalogue order.
    pub metrics: BTreeMap<String, Vec<Option<f32>>>,
}

/// Tenant `id`'s profile over its last `seconds` seconds (all it has when fewer); `None` for an
/// unknown tenant.
pub fn profile(live: &LiveState, id: &str, seconds: usize, cat: &Catalogue) -> Option<Profile> {
    let mine: Vec<(i64, TenantSecond)> = live.own_seconds(id, seconds)?;
    let metrics: BTreeMap<String, Vec<Option<f32>>> = cat
        .metrics()
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let col: Vec<Option<f32>> = mine
                .iter()
                .map(|(_, r)| r.features.get(k).copied().filter(|v| v.is_finite()))
                .collect();
            (m.name.clone(), col)
        })
        .collect();
    Some(Profile {
        id: id.to_string(),
        catalogue_hash: cat.hash().to_string(),
        t: mine.len(),
        ts_ns: mine.iter().map(|(ts, _)| *ts).collect(),
        cpus: mine.last().map(|(_, r)| r.cpus.clone()).unwrap_or_default(),
        metrics,
    })
}

/// The `seconds` query parameter of the profile endpoint (`None` = everything held).
pub fn seconds_param(query: Option<&str>) -> Result<Option<usize>, ApiError> {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let mut seconds = None;
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "seconds" => match v.parse::<usize>() {
                Ok(n) if n > 0 => seconds = Some(n),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "seconds={v:?}: expected a whole number of seconds > 0"
                    )))
                }
            },
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {k:?}; the profile takes `seconds`"
                )))
            }
        }
    }
    Ok(seconds)
}

#[derive(Deserialize)]
struct ProfileIn {
    catalogue_hash: Option<String>,
    metrics: Option<BTreeMap<String, Vec<Option<f64>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacementIn {
    profile: ProfileIn,
    #[serde(default)]
    cpus: Option<Vec<usize>>,
    #[serde(default)]
    cpu_quota_cpus: Option<f64>,
}

/// A parsed `POST /v1/placement` body.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementRequest {
    /// The candidate's own columns, row-major `t × n_metrics`, NaN = missing.
    pub own: Vec<f32>,
    pub t: usize,
    /// The CPUs it would get here (`None`: every online CPU).
    pub cpus: Option<Vec<usize>>,
    pub cpu_quota_cpus: Option<f32>,
}

/// Validates a `POST /v1/placement` body against the agent's catalogue.
pub fn parse_placement(
    body: &[u8],
    cat: &Catalogue,
    limits: &Limits,
) -> Result<PlacementRequest, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "expected a JSON object {\"profile\": {...}, \"cpus\"?: [...], \"cpu_quota_cpus\"?: n}",
        ));
    }
    let req: PlacementIn =
        serde_json::from_slice(body).map_err(|e| json_error(e, "placement request"))?;
    let hash = req.profile.catalogue_hash.ok_or_else(|| {
        ApiError::bad_request(
            "profile has no \"catalogue_hash\": send GET /v1/tenants/{id}/profile's answer as it is",
        )
    })?;
    if hash != cat.hash() {
        return Err(ApiError::unprocessable(format!(
            "profile catalogue_hash {hash:?} is not this host's agent catalogue {:?}: its columns mean something else here; take the profile on a host running the same cloudformer",
            cat.hash()
        )));
    }
    let metrics = req
        .profile
        .metrics
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "profile has no \"metrics\" (own metric name → per-second values)",
            )
        })?;
    let names: Vec<String> = cat.metrics().iter().map(|m| m.name.clone()).collect();
    let nm = names.len();
    let mut t: Option<(usize, &str)> = None;
    for (name, vals) in &metrics {
        if !names.contains(name) {
            let hint = suggest(name, &names);
            let why = if name.starts_with(dataset::catalogue::NBR_PREFIX) {
                " (a profile holds the tenant's own metrics; its neighbours are this host's)"
            } else {
                ""
            };
            return Err(ApiError::bad_request(format!(
                "profile: unknown metric {name:?}{hint}{why}"
            )));
        }
        match t {
            None => t = Some((vals.len(), name.as_str())),
            Some((t0, first)) if t0 != vals.len() => {
                return Err(ApiError::bad_request(format!(
                    "profile: metric {name:?} has {} values but {first:?} has {t0}; every metric needs the same seconds",
                    vals.len()
                )))
            }
            Some(_) => {}
        }
    }
    let t = t.map_or(0, |x| x.0);
    check_t(t, "profile", limits)?;
    let mut own = vec![f32::NAN; t * nm];
    for (name, vals) in &metrics {
        let Some(k) = names.iter().position(|n| n == name) else {
            continue;
        };
        for (s, v) in vals.iter().enumerate() {
            own[s * nm + k] = check_value(*v, || format!("profile: metric {name:?} second {s}"))?;
        }
    }
    let cpu_quota_cpus = match req.cpu_quota_cpus {
        None => None,
        Some(q) if q.is_finite() && q > 0.0 => Some(q as f32),
        Some(q) => {
            return Err(ApiError::bad_request(format!(
                "cpu_quota_cpus {q}: expected a positive number of CPUs (leave it out for no quota)"
            )))
        }
    };
    if req.cpus.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(ApiError::bad_request(
            "\"cpus\" is empty: give the CPUs the candidate would run on, or leave it out for every CPU",
        ));
    }
    Ok(PlacementRequest {
        own,
        t,
        cpus: req.cpus,
        cpu_quota_cpus,
    })
}

/// What one window of a placement plan asks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ask {
    Candidate,
    Before(String),
    After(String),
}

/// The windows of one placement request and what each asks, in batch order.
struct Plan {
    windows: Vec<WindowData>,
    asks: Vec<Ask>,
    /// Seconds each current tenant was present.
    seconds: BTreeMap<String, usize>,
}

/// The host's seconds with the candidate's rows added: its last `host.len()` seconds beside the
/// host's (a host with no tenant: the candidate's seconds alone).
fn with_candidate(
    host: &[SecondOfHost],
    req: &PlacementRequest,
    cpus: &[usize],
    cat: &Catalogue,
) -> Vec<SecondOfHost> {
    let nm = cat.n_metrics();
    let placement = dataset::placement::PlacementColumns::of(cat);
    let own_row = |s: usize| {
        let mut features = vec![f32::NAN; 2 * nm];
        features[..nm].copy_from_slice(&req.own[s * nm..(s + 1) * nm]);
        if let Some(c) = &placement {
            features[c.cpuset_cpus] = cpus.len() as f32;
            features[c.cpu_quota_cpus] = req.cpu_quota_cpus.unwrap_or(f32::NAN);
        }
        TenantSecond {
            tenant: CANDIDATE.to_string(),
            features,
            cpus: cpus.to_vec(),
        }
    };
    if host.is_empty() {
        return (0..req.t)
            .map(|s| SecondOfHost {
                ts_ns: s as i64,
                rows: vec![own_row(s)],
            })
            .collect();
    }
    let offset = req.t - host.len();
    host.iter()
        .enumerate()
        .map(|(s, sec)| {
            let mut rows = sec.rows.clone();
            rows.push(own_row(offset + s));
            SecondOfHost {
                ts_ns: sec.ts_ns,
                rows,
            }
        })
        .collect()
}

fn plan(seconds: &[SecondOfHost], cat: &Catalogue) -> Plan {
    let mut windows = vec![rebuilt_window(CANDIDATE, seconds, cat, |_| true)];
    let mut asks = vec![Ask::Candidate];
    let mut present: BTreeMap<String, usize> = BTreeMap::new();
    for s in seconds {
        for r in s.rows.iter().filter(|r| r.tenant != CANDIDATE) {
            *present.entry(r.tenant.clone()).or_default() += 1;
        }
    }
    for tenant in present.keys() {
        let mine: Vec<SecondOfHost> = seconds
            .iter()
            .filter(|s| s.rows.iter().any(|r| r.tenant == *tenant))
            .cloned()
            .collect();
        windows.push(rebuilt_window(tenant, &mine, cat, |t| t != CANDIDATE));
        asks.push(Ask::Before(tenant.clone()));
        windows.push(rebuilt_window(tenant, &mine, cat, |_| true));
        asks.push(Ask::After(tenant.clone()));
    }
    Plan {
        windows,
        asks,
        seconds: present,
    }
}

/// One current tenant before and after the placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantEffect {
    pub id: String,
    /// Seconds of the replayed window the tenant was present in.
    pub seconds: usize,
    pub before: Pred,
    pub after: Pred,
    /// `after.p − before.p` (< 0: the candidate would hurt it).
    pub delta_p: f32,
}

/// The host score: the worst P̂ after placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostScore {
    /// min over the candidate and every current tenant of P̂ after placement.
    pub worst_p: f32,
    pub worst_std: f32,
    /// Whose P̂ it is (`null` = the candidate's).
    pub worst_tenant: Option<String>,
    pub rule: &'static str,
}

/// The answer of `POST /v1/placement`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementAnswer {
    /// Seconds replayed.
    pub t: usize,
    /// The CPUs the candidate was placed on.
    pub cpus: Vec<usize>,
    /// P̂ of the candidate beside the current tenants.
    pub candidate: Pred,
    /// Every current tenant, the one the candidate would hurt most first.
    pub tenants: Vec<TenantEffect>,
    pub score: HostScore,
}

const SCORE_RULE: &str = "worst P̂ after placement over the candidate and every current tenant";

fn assemble(
    plan: &Plan,
    preds: &[Pred],
    cpus: Vec<usize>,
    t: usize,
) -> Result<PlacementAnswer, String> {
    if preds.len() != plan.asks.len() {
        return Err(format!(
            "the model answered {} of {} windows",
            preds.len(),
            plan.asks.len()
        ));
    }
    let of = |a: &Ask| {
        plan.asks
            .iter()
            .position(|x| x == a)
            .map(|i| preds[i])
            .ok_or_else(|| format!("no window for {a:?}"))
    };
    let candidate = of(&Ask::Candidate)?;
    let mut tenants = Vec::new();
    for (id, &seconds) in &plan.seconds {
        let before = of(&Ask::Before(id.clone()))?;
        let after = of(&Ask::After(id.clone()))?;
        tenants.push(TenantEffect {
            id: id.clone(),
            seconds,
            before,
            after,
            delta_p: after.p - before.p,
        });
    }
    tenants.sort_by(|a, b| a.delta_p.total_cmp(&b.delta_p).then(a.id.cmp(&b.id)));
    let mut score = HostScore {
        worst_p: candidate.p,
        worst_std: candidate.std,
        worst_tenant: None,
        rule: SCORE_RULE,
    };
    for e in &tenants {
        if e.after.p < score.worst_p {
            score.worst_p = e.after.p;
            score.worst_std = e.after.std;
            score.worst_tenant = Some(e.id.clone());
        }
    }
    Ok(PlacementAnswer {
        t,
        cpus,
        candidate,
        tenants,
        score,
    })
}

/// 422 when the profile's own columns cover too little of what the model reads (the model's
/// coverage floor over its own features), naming what is missing.
fn refuse_thin_profile(
    req: &PlacementRequest,
    info: &ModelInfo,
    cat: &Catalogue,
) -> Result<(), ApiError> {
    let nm = cat.n_metrics();
    let rule = &info.coverage;
    if rule.used.len() < nm || rule.floor <= 0.0 {
        return Ok(());
    }
    let used = &rule.used[..nm];
    let coverage = model::masked::coverage_of(&req.own, used);
    if coverage >= rule.floor {
        return Ok(());
    }
    let missing: Vec<&str> = (0..nm)
        .filter(|&k| used[k] && !req.own.chunks_exact(nm).any(|row| row[k].is_finite()))
        .map(|k| cat.metrics()[k].name.as_str())
        .collect();
    Err(ApiError::unprocessable(format!(
        "profile coverage {coverage:.3} is below the model's floor {:.3}: {} of the own metrics it reads have no value ({}{})",
        rule.floor,
        missing.len(),
        missing[..missing.len().min(20)].join(", "),
        if missing.len() > 20 { ", …" } else { "" }
    )))
}

/// Answers `POST /v1/placement` from the live state.
pub async fn placement(
    live: &LiveState,
    batcher: &Batcher,
    body: &[u8],
    limits: &Limits,
) -> Result<PlacementAnswer, ApiError> {
    let cat = Catalogue::builtin();
    let req = parse_placement(body, cat, limits)?;
    let need = live.sizes.min_window_s.max(1);
    if req.t < need {
        return Err(ApiError::unprocessable(format!(
            "profile has {} second(s); a prediction needs at least {need} (--min-window-s)",
            req.t
        )));
    }
    let info = batcher.info();
    reads_the_catalogue(&info, cat)?;
    refuse_thin_profile(&req, &info, cat)?;
    let cpus = req
        .cpus
        .clone()
        .unwrap_or_else(collector::perf::online_cpus);
    let host = live.last_seconds(req.t.min(live.sizes.window_s.max(1)));
    let seconds = with_candidate(&host, &req, &cpus, cat);
    let mut plan = plan(&seconds, cat);
    let windows = std::mem::take(&mut plan.windows);
    let answer = batcher.predict(windows, cat.n_features()).await?;
    assemble(&plan, &answer.preds, cpus, seconds.len()).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests;
