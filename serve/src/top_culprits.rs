//! Live mode: every tenant's top culprit on `/metrics`, for alerts that say who is hurting a VM.
//!
//! `cloudformer_tenant_top_culprit_info{tenant, neighbour, resource} 1` names the neighbour whose
//! absence raises the tenant's P̂ most and the neighbours' resource whose occlusion raises it most
//! ([`crate::culprits`]); `cloudformer_tenant_top_culprit_delta_p{tenant}` is that neighbour's
//! ΔP̂. Label values are tenants of this host only (bounded), a tenant that left disappears at
//! once, and the culprits are recomputed at most every [`REFRESH`] (a scrape costs one batched
//! forward pass per tenant then, nothing in between).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::batcher::Batcher;
use crate::live::LiveState;
use crate::metrics::escape_label;

/// How long computed culprits are reused by later scrapes.
pub const REFRESH: Duration = Duration::from_secs(15);

/// One tenant's top culprit.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub tenant: String,
    pub neighbour: String,
    /// The neighbours' resource whose occlusion raises P̂ most (`none` when no neighbour column
    /// had a value).
    pub resource: String,
    pub delta_p: f32,
}

/// The culprits last computed for `/metrics`, and when.
#[derive(Debug, Default)]
pub struct TopCulprits {
    cache: tokio::sync::Mutex<Option<(Instant, Vec<Top>)>>,
}

impl TopCulprits {
    /// The two series for the tenants live now (recomputed when older than [`REFRESH`]).
    pub async fn render(&self, live: &LiveState, batcher: &Batcher) -> String {
        let mut cache = self.cache.lock().await;
        let fresh = cache.as_ref().is_some_and(|(t, _)| t.elapsed() < REFRESH);
        if !fresh {
            *cache = Some((Instant::now(), compute(live, batcher).await));
        }
        let tops: Vec<&Top> = cache
            .as_ref()
            .map(|(_, t)| t.iter().filter(|t| live.has(&t.tenant)).collect())
            .unwrap_or_default();
        render(&tops)
    }
}

async fn compute(live: &LiveState, batcher: &Batcher) -> Vec<Top> {
    let mut tops = Vec::new();
    for s in live.summaries() {
        if s.latest.is_none() {
            continue;
        }
        match crate::culprits::culprits(live, batcher, &s.id).await {
            Ok(c) => {
                if let Some(n) = c.neighbours.first() {
                    tops.push(Top {
                        tenant: s.id.clone(),
                        neighbour: n.id.clone(),
                        resource: c
                            .resources
                            .first()
                            .map_or_else(|| "none".to_string(), |r| r.resource.clone()),
                        delta_p: n.delta_p,
                    });
                }
            }
            Err(e) => tracing::debug!(tenant = %s.id, error = %e, "no culprits for /metrics"),
        }
    }
    tops
}

/// Prometheus text of the two series.
pub fn render(tops: &[&Top]) -> String {
    let mut out = String::from(
        "# HELP cloudformer_tenant_top_culprit_info The neighbour whose absence raises the tenant's P̂ most, and the neighbours' resource whose occlusion raises it most.\n# TYPE cloudformer_tenant_top_culprit_info gauge\n",
    );
    for t in tops {
        let _ = writeln!(
            out,
            "cloudformer_tenant_top_culprit_info{{tenant=\"{}\",neighbour=\"{}\",resource=\"{}\"}} 1",
            escape_label(&t.tenant),
            escape_label(&t.neighbour),
            escape_label(&t.resource)
        );
    }
    out.push_str("# HELP cloudformer_tenant_top_culprit_delta_p How much higher the tenant's P̂ is without its top culprit.\n# TYPE cloudformer_tenant_top_culprit_delta_p gauge\n");
    for t in tops {
        let _ = writeln!(
            out,
            "cloudformer_tenant_top_culprit_delta_p{{tenant=\"{}\"}} {}",
            escape_label(&t.tenant),
            t.delta_p
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_info_and_one_delta_sample_per_tenant_with_escaped_labels() {
        let a = Top {
            tenant: "machine.slice/vm\"a".into(),
            neighbour: "hog".into(),
            resource: "cpu".into(),
            delta_p: 0.25,
        };
        let text = render(&[&a]);
        assert!(text.contains(
            "cloudformer_tenant_top_culprit_info{tenant=\"machine.slice/vm\\\"a\",neighbour=\"hog\",resource=\"cpu\"} 1\n"
        ), "{text}");
        assert!(
            text.contains(
                "cloudformer_tenant_top_culprit_delta_p{tenant=\"machine.slice/vm\\\"a\"} 0.25\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 2);
        assert_eq!(render(&[]).lines().count(), 4, "headers only, no samples");
    }
}
