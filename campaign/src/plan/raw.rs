//! The plan file as TOML gives it, before validation, with its defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    pub seed: u64,
    pub run_seconds: u32,
    #[serde(default)]
    pub baseline_seconds: Option<u32>,
    #[serde(default = "d_repeats")]
    pub repeats: u32,
    #[serde(default)]
    pub warmup_seconds: u32,
    #[serde(default = "d_foreign")]
    pub foreign_cpu_max_pct: f64,
    #[serde(default = "d_retakes")]
    pub max_retakes: u32,
    #[serde(default = "d_sizes")]
    pub sizes: Vec<u32>,
    #[serde(default = "d_placements")]
    pub placements: Vec<String>,
    #[serde(default = "d_scenarios")]
    pub scenarios: Vec<String>,
    #[serde(default = "d_steps")]
    pub trace_steps: u32,
    #[serde(default = "d_random_traces")]
    pub random_traces: u32,
    pub colocated_runs: u32,
    #[serde(default)]
    pub apps: Vec<String>,
    #[serde(default)]
    pub work_dir: Option<PathBuf>,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub dynamic: Option<RawDynamic>,
    #[serde(rename = "shape", default)]
    pub shapes: Vec<RawShape>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(rename = "app", default)]
    pub app_defs: Vec<RawApp>,
}

fn d_repeats() -> u32 {
    3
}
fn d_foreign() -> f64 {
    30.0
}
fn d_retakes() -> u32 {
    2
}
pub(super) fn d_sizes() -> Vec<u32> {
    vec![2]
}
pub(super) fn d_placements() -> Vec<String> {
    vec!["same-core".into(), "cross-core".into()]
}
pub(super) fn d_scenarios() -> Vec<String> {
    vec!["static".into()]
}
fn d_steps() -> u32 {
    5
}
fn d_random_traces() -> u32 {
    3
}

/// `[[shape]]`: a VM shape tenants are drawn in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShape {
    pub name: String,
    pub cpu: f64,
    #[serde(default)]
    pub mem_mb: f64,
    #[serde(default)]
    pub weight: Option<u32>,
}

/// `[dynamic]`: runs whose neighbours arrive, leave and change level mid-run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDynamic {
    pub runs: u32,
    #[serde(default = "d_changes")]
    pub changes: u32,
    #[serde(default = "d_min_gap")]
    pub min_gap_seconds: u32,
}

fn d_changes() -> u32 {
    2
}
fn d_min_gap() -> u32 {
    10
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    /// vCPUs per tenant (CFS quota); 0 = none.
    #[serde(default)]
    pub cpu: f64,
    /// MiB per tenant; 0 = none.
    #[serde(default)]
    pub mem_mb: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub name: String,
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub ready: Option<String>,
    #[serde(default)]
    pub prepare: Option<String>,
    pub load: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub run_regex: String,
    #[serde(default)]
    pub second_regex: Option<String>,
    /// Run the load in 1-second slices (for tools that report only at their end).
    #[serde(default)]
    pub slices: bool,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub levels: Vec<BTreeMap<String, toml::Value>>,
    /// Allowed `[min, max]` of level keys (`{ load = [1, 100] }`).
    #[serde(default)]
    pub ranges: BTreeMap<String, [f64; 2]>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
}
