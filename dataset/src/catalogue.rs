//! The metric catalogue: one table (`dataset/metrics.toml`) naming every per-tenant metric
//! (name, family, source, counter|gauge, unit, transform) and the host-wide context columns.
//! It is versioned by a hash of its text, written into every sample file.
//!
//! Feature layout (the paper's): the tenant's own metrics in catalogue order, then the mean of
//! the same metrics over the other tenants present that second, prefixed `nbr.`.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The catalogue shipped with this build.
pub const BUILTIN_TOML: &str = include_str!("../metrics.toml");

/// Earlier catalogues that wrote data (`dataset/catalogues/<hash>.toml`, named by their hash).
const EARLIER_TOML: &[&str] = &[
    include_str!("../catalogues/7bcd372d41881478.toml"),
    include_str!("../catalogues/25b0154923ed932b.toml"),
];

/// The family of the metrics the agent computes from the placement (`placement.*`): files
/// written before they existed read them as derived from the runs table (see
/// `dataset::placement`), not as an absent source.
pub const PLACEMENT_FAMILY: &str = "placement";

/// Prefix of the neighbour-mean features.
pub const NBR_PREFIX: &str = "nbr.";

/// Whether a metric is derived from a monotonically increasing kernel counter or read as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
}

/// How a metric's value is derived from its readings (see the header of `metrics.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// The value as read (gauges).
    None,
    /// Δ / Δt.
    Rate,
    /// 100 × Δtime / Δt, the time in the source's unit converted.
    DeltaTimePct,
    /// 100 × Δfield / Δ(total jiffies) (host CPU modes).
    JiffiesPct,
    /// Ratio of two deltas over the same second.
    DeltaRatio,
    /// Computed by the agent from every tenant's row of the same second.
    CrossTenant,
}

impl Transform {
    /// Every transform, in the order `metrics.toml` documents them.
    pub const ALL: [Transform; 6] = [
        Transform::None,
        Transform::Rate,
        Transform::DeltaTimePct,
        Transform::JiffiesPct,
        Transform::DeltaRatio,
        Transform::CrossTenant,
    ];

    /// The name used in `metrics.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Rate => "rate",
            Transform::DeltaTimePct => "delta_time_pct",
            Transform::JiffiesPct => "jiffies_pct",
            Transform::DeltaRatio => "delta_ratio",
            Transform::CrossTenant => "cross_tenant",
        }
    }

    /// The transform named `s` in `metrics.toml`.
    pub fn from_name(s: &str) -> Option<Transform> {
        Transform::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub family: String,
    pub source: String,
    pub kind: Kind,
    pub unit: String,
    pub transform: Transform,
}

impl Metric {
    /// Units whose values span orders of magnitude (bytes, counts, rates).
    pub const LOG_SCALED_UNITS: [&'static str; 5] = ["bytes", "bytes/s", "count", "1/s", "pages/s"];

    /// Whether the metric's unit is one of [`Self::LOG_SCALED_UNITS`].
    pub fn is_log_scaled(&self) -> bool {
        Self::LOG_SCALED_UNITS.contains(&self.unit.as_str())
    }
}

/// A catalogue entry as written in the TOML, before its transform is checked.
#[derive(Deserialize)]
struct RawMetric {
    name: String,
    family: String,
    source: String,
    kind: Kind,
    unit: String,
    transform: String,
}

impl RawMetric {
    fn checked(self) -> Result<Metric, CatalogueError> {
        let Some(transform) = Transform::from_name(&self.transform) else {
            return Err(CatalogueError::Transform {
                known: Transform::ALL.map(Transform::as_str).join(", "),
                name: self.name,
                transform: self.transform,
            });
        };
        Ok(Metric {
            name: self.name,
            family: self.family,
            source: self.source,
            kind: self.kind,
            unit: self.unit,
            transform,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("metric catalogue is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("metric catalogue: duplicate name `{0}`")]
    Duplicate(String),
    #[error("metric catalogue: `{name}` has unknown transform `{transform}` (known: {known})")]
    Transform {
        name: String,
        transform: String,
        known: String,
    },
    #[error("metric catalogue: `{0}` is not a valid metric name (lowercase, dots, underscores, digits; no `nbr.` prefix)")]
    BadName(String),
    #[error("metric catalogue: no `metric` entries")]
    Empty,
    #[error("metric catalogue: host column `{0}` must start with `host.`")]
    HostPrefix(String),
}

#[derive(Deserialize)]
struct Raw {
    version: u32,
    metric: Vec<RawMetric>,
    #[serde(default)]
    host: Vec<RawMetric>,
}

/// The parsed catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    version: u32,
    metrics: Vec<Metric>,
    host: Vec<Metric>,
    hash: String,
    index: HashMap<String, usize>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(NBR_PREFIX)
        && !n.starts_with('.')
        && !n.ends_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
}

impl Catalogue {
    /// The catalogue compiled into this build (`dataset/metrics.toml`).
    pub fn builtin() -> &'static Catalogue {
        static C: OnceLock<Catalogue> = OnceLock::new();
        C.get_or_init(|| {
            // The builtin text is checked by this crate's tests; failing here is a build bug.
            Catalogue::parse(BUILTIN_TOML).expect("builtin dataset/metrics.toml is valid")
        })
    }

    /// Parse a catalogue from TOML text (same format as `metrics.toml`).
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: Raw = toml::from_str(text)?;
        if raw.metric.is_empty() {
            return Err(CatalogueError::Empty);
        }
        let checked = |v: Vec<RawMetric>| -> Result<Vec<Metric>, CatalogueError> {
            v.into_iter().map(RawMetric::checked).collect()
        };
        let version = raw.version;
        let (metric, host) = (checked(raw.metric)?, checked(raw.host)?);
        let mut index = HashMap::new();
        for (i, m) in metric.iter().chain(host.iter()).enumerate() {
            if !valid_name(&m.name) {
                return Err(CatalogueError::BadName(m.name.clone()));
            }
            if index.insert(m.name.clone(), i).is_some() {
                return Err(CatalogueError::Duplicate(m.name.clone()));
            }
        }
        for h in &host {
            if !h.name.starts_with("host.") {
                return Err(CatalogueError::HostPrefix(h.name.clone()));
            }
        }
        for m in &metric {
            if m.name.starts_with("host.") {
                return Err(CatalogueError::BadName(m.name.clone()));
            }
        }
        index.retain(|_, i| *i < metric.len());
        let digest = Sha256::digest(text.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Catalogue {
            version,
            metrics: metric,
            host,
            hash,
            index,
        })
    }

    /// Catalogue format version (`version =` in the TOML).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The per-tenant metrics, in column order.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// Host-wide context columns (`host.*`), recorded after the features.
    pub fn host_metrics(&self) -> &[Metric] {
        &self.host
    }

    /// Names of the host context columns, in column order.
    pub fn host_column_names(&self) -> Vec<String> {
        self.host.iter().map(|m| m.name.clone()).collect()
    }

    /// Short hex hash (16 hex digits, sha256 prefix) of the catalogue text.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Position of a per-tenant metric (in `metrics()` and in the first half of the features).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Number of per-tenant metrics (half of the features).
    pub fn n_metrics(&self) -> usize {
        self.metrics.len()
    }

    /// `"<name>"` for every metric, then `"nbr.<name>"` for every metric.
    pub fn feature_names(&self) -> Vec<String> {
        let own = self.metrics.iter().map(|m| m.name.clone());
        let nbr = self
            .metrics
            .iter()
            .map(|m| format!("{NBR_PREFIX}{}", m.name));
        own.chain(nbr).collect()
    }

    /// `feature_names().len()`: 2 × metrics.
    pub fn n_features(&self) -> usize {
        2 * self.metrics.len()
    }

    /// The metric behind feature `i` (own or neighbour mean); `None` if out of range.
    pub fn feature_metric(&self, i: usize) -> Option<&Metric> {
        self.metrics
            .get(i % self.metrics.len().max(1))
            .filter(|_| i < self.n_features())
    }

    /// An earlier catalogue this build knows (see `dataset/catalogues/`), by hash.
    pub fn earlier(hash: &str) -> Option<&'static Catalogue> {
        static C: OnceLock<Vec<Catalogue>> = OnceLock::new();
        C.get_or_init(|| {
            EARLIER_TOML
                .iter()
                // Checked by this crate's tests, like the builtin text.
                .filter_map(|t| Catalogue::parse(t).ok())
                .collect()
        })
        .iter()
        .find(|c| c.hash == hash)
    }

    /// The columns (features `name` and `nbr.name`, and host columns) a file written under the
    /// catalogue `hash` lacks and that this build reads as null — empty for this catalogue.
    /// Data written under an earlier catalogue stays readable when that catalogue's metrics
    /// are all here unchanged (same family, source, kind, unit and transform) and every metric
    /// added since belongs to a family the file's footer `availability` records as absent
    /// (`perf.topdown`: false), so that null is what the collector would have written then —
    /// or to [`PLACEMENT_FAMILY`], whose columns the reader derives where it can.
    pub fn columns_to_fill(
        &self,
        hash: &str,
        availability: &BTreeMap<String, bool>,
    ) -> Result<Vec<String>, String> {
        if hash == self.hash {
            return Ok(Vec::new());
        }
        let Some(old) = Catalogue::earlier(hash) else {
            return Err(format!(
                "written under catalogue {hash:?}, which this build ({}) does not know",
                self.hash
            ));
        };
        let mut fill = Vec::new();
        for (now, then) in [(&self.metrics, &old.metrics), (&self.host, &old.host)] {
            for m in then {
                if !now.contains(m) {
                    return Err(format!(
                        "written under catalogue {hash}, whose `{}` this build ({}) no longer has \
                         or defines differently",
                        m.name, self.hash
                    ));
                }
            }
            for m in now
                .iter()
                .filter(|m| !then.iter().any(|o| o.name == m.name))
            {
                let derived = m.family == PLACEMENT_FAMILY;
                if !derived && availability.get(&m.family) != Some(&false) {
                    return Err(format!(
                        "written under catalogue {hash}, before `{}` existed, and its footer does \
                         not record its source `{}` as absent: its values are unknown, not null",
                        m.name, m.family
                    ));
                }
                fill.push(m.name.clone());
                if !m.name.starts_with("host.") {
                    fill.push(format!("{NBR_PREFIX}{}", m.name));
                }
            }
        }
        Ok(fill)
    }

    /// Whether feature `i` is derived from a counter (heavy-tailed rate: log1p before z-score).
    /// Out-of-range indices are `false`.
    /// Whether feature `i` is best seen on a log scale: its metric's unit is bytes, a count or a
    /// rate (`bytes`, `bytes/s`, `count`, `1/s`, `pages/s`), not a share or a time.
    pub fn is_log_scaled_feature(&self, i: usize) -> bool {
        self.feature_metric(i).is_some_and(Metric::is_log_scaled)
    }

    pub fn is_counter_feature(&self, i: usize) -> bool {
        self.feature_metric(i)
            .is_some_and(|m| m.kind == Kind::Counter)
    }
}

#[cfg(test)]
mod tests;
