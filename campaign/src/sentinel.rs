//! The sentinel baseline: a resumed campaign first replays one isolated run of the first
//! baseline it stored and compares it with that baseline, so that a machine that changed between
//! parts (another job, CPU frequency, a kernel update, a different host) is caught before labels
//! measured before and after are mixed. A part that `--stop-after` ends replays it once more
//! ([`replay`], recorded, never refused: its labels are measured already), so each part's log
//! shows how far the machine drifted while it ran.
//!
//! Refused when the replay's performance differs from the stored mean by more than twice the
//! stored label noise (the repeats' coefficient of variation), with a floor of [`NOISE_FLOOR`]
//! for the noise: three back-to-back repeats agree more closely than a run minutes later matches
//! their mean (measured here: sysbench repeats with a CV of 0.3 %, replayed a minute later, 5.7 %
//! off), while what the sentinel is for — another host type, a busy or throttled machine — moves
//! CPU-bound performance by well over 10 %. The replay is not recorded: its samples are deleted, its
//! log is kept in `logs/sentinel-N/`, a new `N` for every replay (a refused resume keeps the
//! logs of the parts before it).

use std::fs;

use dataset::runs::{Baseline, RunKind};

use crate::error::{io_err, CampaignError};
use crate::journal::Journal;
use crate::runner::Runner;

/// The smallest label noise a sentinel is judged with (coefficient of variation).
pub const NOISE_FLOOR: f64 = 0.05;
/// The run ids of the replays: `sentinel-1`, `sentinel-2`, … (logs under `logs/<run id>/`).
const SENTINEL_RUN: &str = "sentinel";

/// The run id of the next replay into `out`: one past the replays whose logs are there
/// (directories written before the numbering, `logs/sentinel/`, count as one).
pub fn next_run_id(out: &std::path::Path) -> String {
    let done = fs::read_dir(out.join("logs"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name == SENTINEL_RUN
                        || name
                            .strip_prefix(SENTINEL_RUN)
                            .and_then(|n| n.strip_prefix('-'))
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);
    format!("{SENTINEL_RUN}-{}", done + 1)
}

/// What a sentinel replay measured against the stored baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelCheck {
    /// The baseline key replayed (`app|level|trace|cpuset`).
    pub key: String,
    /// The stored baseline's mean performance and label noise.
    pub stored: f64,
    pub noise: f64,
    /// The replay's performance.
    pub now: f64,
    /// |now / stored − 1|.
    pub deviation: f64,
    /// 2 × max(noise, [`NOISE_FLOOR`]).
    pub limit: f64,
}

impl SentinelCheck {
    /// Judges a replay `now` against a stored baseline.
    pub fn judge(key: String, stored: &Baseline, now: f64) -> SentinelCheck {
        let deviation = (now / stored.perf_ideal - 1.0).abs();
        SentinelCheck {
            key,
            stored: stored.perf_ideal,
            noise: stored.noise,
            now,
            deviation: if deviation.is_finite() {
                deviation
            } else {
                f64::INFINITY
            },
            limit: 2.0 * stored.noise.max(NOISE_FLOOR),
        }
    }

    pub fn passed(&self) -> bool {
        self.deviation <= self.limit
    }
}

/// Replays the first stored baseline (when the journal holds one whose key the plan still
/// schedules) and refuses to go on when it differs; `None` when there is nothing to compare.
pub fn check(runner: &Runner, journal: &Journal) -> Result<Option<SentinelCheck>, CampaignError> {
    let Some(c) = replay(runner, journal)? else {
        return Ok(None);
    };
    if !c.passed() {
        return Err(CampaignError::Sentinel(Box::new(c)));
    }
    tracing::info!(key = %c.key, deviation = c.deviation, limit = c.limit, "sentinel baseline agrees");
    Ok(Some(c))
}

/// Replays the first stored baseline and judges it, without refusing anything; `None` when
/// there is nothing to compare.
pub fn replay(runner: &Runner, journal: &Journal) -> Result<Option<SentinelCheck>, CampaignError> {
    let first = journal
        .rows()
        .iter()
        .find(|r| r.kind == RunKind::Baseline && r.is_ok() && r.perf_actual.is_finite());
    let Some(first) = first else {
        return Ok(None);
    };
    let key = first.baseline_key();
    let Some(stored) = journal.baseline(&key) else {
        return Ok(None);
    };
    let work = crate::work_of(runner.plan);
    let spec = work
        .iter()
        .flat_map(crate::Work::labelled)
        .find(|t| t.baseline_key() == key);
    let Some(spec) = spec else {
        tracing::warn!(%key, "the plan no longer schedules the first stored baseline: no sentinel");
        return Ok(None);
    };
    tracing::info!(%key, "replaying the sentinel baseline");
    let mut ex = runner.execute_alone(&next_run_id(runner.out), spec)?;
    let o = ex.tenants.remove(0);
    let samples = runner.out.join(&ex.samples_dir);
    if samples.exists() {
        fs::remove_dir_all(&samples).map_err(io_err(&samples))?;
    }
    if !o.ok {
        return Err(CampaignError::Setup(format!(
            "the sentinel baseline {key} failed: {}",
            o.error.unwrap_or_default()
        )));
    }
    Ok(Some(SentinelCheck::judge(key.to_string(), &stored, o.perf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(perf: f64, noise: f64) -> Baseline {
        Baseline {
            perf_ideal: perf,
            noise,
            per_second: None,
        }
    }

    #[test]
    fn a_replay_within_twice_the_noise_passes() {
        let c = SentinelCheck::judge("k".into(), &stored(100.0, 0.08), 115.0);
        assert!((c.deviation - 0.15).abs() < 1e-9 && c.limit == 0.16 && c.passed());
        let c = SentinelCheck::judge("k".into(), &stored(100.0, 0.08), 83.0);
        assert!(!c.passed(), "{c:?}");
    }

    #[test]
    fn tiny_stored_noise_is_floored() {
        let c = SentinelCheck::judge("k".into(), &stored(100.0, 0.001), 106.0);
        assert_eq!(c.limit, 2.0 * NOISE_FLOOR);
        assert!(c.passed());
        let c = SentinelCheck::judge("k".into(), &stored(100.0, 0.001), 150.0);
        assert!(!c.passed());
    }

    #[test]
    fn every_replay_gets_a_log_directory_of_its_own() {
        let dir = std::env::temp_dir().join(format!("cf-sentinel-ids-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(next_run_id(&dir), "sentinel-1", "no logs yet");
        let logs = dir.join("logs");
        for d in ["sentinel", "b-stress-cpu-l60-r0", "sentinel-x"] {
            fs::create_dir_all(logs.join(d)).unwrap();
        }
        assert_eq!(next_run_id(&dir), "sentinel-2", "the unnumbered one counts");
        fs::create_dir_all(logs.join("sentinel-2")).unwrap();
        assert_eq!(next_run_id(&dir), "sentinel-3");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_replay_that_measured_nothing_fails() {
        let c = SentinelCheck::judge("k".into(), &stored(100.0, 0.05), f64::NAN);
        assert!(!c.passed());
        let c = SentinelCheck::judge("k".into(), &stored(0.0, 0.05), 1.0);
        assert!(!c.passed());
    }
}
