//! The campaign's errors.

use std::path::{Path, PathBuf};

use crate::cgroup::CgroupError;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("tenant network: {0}")]
    Net(#[from] crate::netns::NetError),
    #[error(transparent)]
    Runs(#[from] dataset::runs::RunsError),
    #[error(transparent)]
    Collect(#[from] collector::CollectError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error(
        "the machine changed since this campaign's baselines: the sentinel baseline {} ran at {:.4} \
         against the stored {:.4} (label noise {:.1} %), a deviation of {:.1} % > {:.1} % (twice \
         the noise, floored). Labels measured before and after would not be comparable: find what \
         changed (another job, CPU frequency, kernel, host) or start a new --out directory; if this \
         machine is another host for good, rerun with --new-host to measure fresh baselines on it \
         (each run is then labelled against baselines of the host it ran on)",
        .0.key, .0.now, .0.stored, .0.noise * 100.0, .0.deviation * 100.0, .0.limit * 100.0
    )]
    Sentinel(Box<crate::sentinel::SentinelCheck>),
    #[error("interrupted (SIGINT/SIGTERM): the unfinished run was discarded; rerun the same command to resume")]
    Interrupted,
}

/// Maps an I/O error on `path` (for `map_err`).
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CampaignError + '_ {
    move |source| CampaignError::Io {
        path: path.to_path_buf(),
        source,
    }
}
