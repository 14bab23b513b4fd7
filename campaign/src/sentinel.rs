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
//!
//! A directory may hold runs of several hosts ([`dataset::runs::RunRecord::host`]): a resume
//! replays each host's sentinel, newest first, and goes on as the first host whose sentinel
//! agrees. When none does it refuses, unless told that this machine is another host for good
//! (`campaign run --new-host`): then it starts the next host, whose baselines are measured
//! afresh, so that every run is still labelled against baselines of the machine it ran on.

use std::collections::BTreeSet;
use std::fs;

use dataset::runs::{Baseline, RunKind, RunRecord};

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
    /// The baseline key replayed (`app|level|trace|cpuset[|shape][|hostN]`).
    pub key: String,
    /// The host whose sentinel it is (0: the directory's first).
    pub host: u32,
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
            host: 0,
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

/// Which host a part runs as, and the sentinel replays that decided it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostChoice {
    /// The host this part runs as (0: the directory's first).
    pub host: u32,
    /// The replay that agreed; `None` on a new host or with nothing to compare.
    pub agreed: Option<SentinelCheck>,
    /// The replays that did not agree (other hosts', newest first).
    pub refused: Vec<SentinelCheck>,
    /// This part starts a new host (`--new-host`): its baselines are measured afresh.
    pub new_host: bool,
}

/// The hosts that hold baselines in a runs table.
pub fn hosts_of(rows: &[RunRecord]) -> BTreeSet<u32> {
    (rows.iter())
        .filter(|r| r.kind == RunKind::Baseline)
        .map(|r| r.host)
        .collect()
}

/// Replays each host's sentinel, newest first, and sets `runner.host` to the first that
/// agrees; when none does, refuses ([`CampaignError::Sentinel`], the newest host's replay) or,
/// with `new_host`, starts the next host. A directory without baselines stays on host 0.
pub fn choose_host(
    runner: &mut Runner,
    journal: &Journal,
    new_host: bool,
) -> Result<HostChoice, CampaignError> {
    let hosts = hosts_of(journal.rows());
    let choice = pick_host(&hosts, new_host, |h| {
        runner.host = h;
        replay(runner, journal)
    })?;
    runner.host = choice.host;
    Ok(choice)
}

/// [`choose_host`]'s decision, with `replay_on(host)` replaying that host's sentinel.
fn pick_host(
    hosts: &BTreeSet<u32>,
    new_host: bool,
    mut replay_on: impl FnMut(u32) -> Result<Option<SentinelCheck>, CampaignError>,
) -> Result<HostChoice, CampaignError> {
    let mut choice = HostChoice::default();
    for &h in hosts.iter().rev() {
        match replay_on(h)? {
            Some(c) if c.passed() => {
                tracing::info!(host = h, key = %c.key, deviation = c.deviation, limit = c.limit, "sentinel baseline agrees");
                choice.host = h;
                choice.agreed = Some(c);
                return Ok(choice);
            }
            Some(c) => {
                tracing::warn!(host = h, key = %c.key, deviation = c.deviation, limit = c.limit, "sentinel baseline differs");
                choice.refused.push(c);
            }
            None => {}
        }
    }
    let newest = hosts.last().copied().unwrap_or(0);
    choice.host = newest;
    if choice.refused.is_empty() {
        return Ok(choice);
    }
    if !new_host {
        return Err(CampaignError::Sentinel(Box::new(choice.refused.remove(0))));
    }
    choice.host = newest + 1;
    choice.new_host = true;
    tracing::warn!(
        host = choice.host,
        "no stored host's sentinel agrees: this machine becomes a new host (--new-host), whose \
         baselines are measured afresh"
    );
    Ok(choice)
}

/// Replays the first stored baseline and judges it, without refusing anything; `None` when
/// there is nothing to compare.
pub fn replay(runner: &Runner, journal: &Journal) -> Result<Option<SentinelCheck>, CampaignError> {
    let first = journal.rows().iter().find(|r| {
        r.kind == RunKind::Baseline
            && r.host == runner.host
            && r.is_ok()
            && r.perf_actual.is_finite()
    });
    let Some(first) = first else {
        return Ok(None);
    };
    let key = first.baseline_key();
    let Some(stored) = journal.baseline(&key) else {
        return Ok(None);
    };
    // An extension's sentinel may be a load only its base plan schedules.
    let mut work = crate::work_of(runner.plan);
    if let Some(e) = &runner.plan.extension {
        work.extend(crate::work_of(&e.base));
    }
    let spec = work
        .iter()
        .flat_map(crate::Work::labelled)
        .find(|t| runner.baseline_key(t) == key);
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
    let mut c = SentinelCheck::judge(key.to_string(), &stored, o.perf);
    c.host = runner.host;
    Ok(Some(c))
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

    /// A fake replay of host `h` that measured `now` against a stored 100 ± 1 %.
    fn replayed(h: u32, now: f64) -> Option<SentinelCheck> {
        let mut c = SentinelCheck::judge(format!("k|host{h}"), &stored(100.0, 0.01), now);
        c.host = h;
        Some(c)
    }

    #[test]
    fn the_newest_host_that_agrees_is_chosen() {
        let hosts: BTreeSet<u32> = [0, 1, 2].into();
        let mut asked = Vec::new();
        // Host 2 is off by 40 %, host 1 agrees: host 0 is never replayed.
        let c = pick_host(&hosts, false, |h| {
            asked.push(h);
            Ok(replayed(h, if h == 1 { 103.0 } else { 60.0 }))
        })
        .unwrap();
        assert_eq!(asked, [2, 1]);
        assert_eq!((c.host, c.new_host), (1, false));
        assert_eq!(c.agreed.unwrap().host, 1);
        assert_eq!(c.refused.len(), 1);
        assert_eq!(c.refused[0].host, 2);
        // Nothing stored yet: the first host, nothing replayed.
        let c = pick_host(&BTreeSet::new(), false, |_| panic!("nothing to replay")).unwrap();
        assert_eq!(c, HostChoice::default());
    }

    #[test]
    fn no_host_agreeing_refuses_unless_told_it_is_a_new_host() {
        let hosts: BTreeSet<u32> = [0, 1].into();
        let err = pick_host(&hosts, false, |h| Ok(replayed(h, 50.0))).unwrap_err();
        match err {
            CampaignError::Sentinel(c) => assert_eq!(c.host, 1, "the newest host's replay"),
            e => panic!("{e}"),
        }
        let c = pick_host(&hosts, true, |h| Ok(replayed(h, 50.0))).unwrap();
        assert_eq!((c.host, c.new_host, c.refused.len()), (2, true, 2));
        assert!(c.agreed.is_none());
        // A replay's own failure (e.g. its load failed) is an error, whatever the flag.
        let err = pick_host(&hosts, true, |_| Err(CampaignError::Setup("boom".into())));
        assert!(err.is_err());
    }

    #[test]
    fn a_replay_that_measured_nothing_fails() {
        let c = SentinelCheck::judge("k".into(), &stored(100.0, 0.05), f64::NAN);
        assert!(!c.passed());
        let c = SentinelCheck::judge("k".into(), &stored(0.0, 0.05), 1.0);
        assert!(!c.passed());
    }
}
