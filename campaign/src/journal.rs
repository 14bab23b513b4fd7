//! The campaign's journal is its runs table: rows are appended (atomically) after each finished
//! co-located run or baseline group, so a killed campaign resumes from what the table holds. A
//! run that is not in the table is (re)done from scratch.

use std::fs;
use std::path::{Path, PathBuf};

use dataset::runs::{self, Baseline, BaselineKey, RunKind, RunRecord};

use crate::error::{io_err, CampaignError};
use crate::plan::Plan;

/// The runs table of a campaign directory.
pub struct Journal {
    path: PathBuf,
    rows: Vec<RunRecord>,
}

impl Journal {
    /// Reads the table of campaign directory `out` (empty when there is none yet).
    pub fn open(out: &Path) -> Result<Journal, CampaignError> {
        let path = runs::runs_path(out);
        let rows = if path.exists() {
            runs::read_runs(&path)?
        } else {
            Vec::new()
        };
        Ok(Journal { path, rows })
    }

    pub fn rows(&self) -> &[RunRecord] {
        &self.rows
    }

    /// Whether run `run_id` is recorded.
    pub fn is_done(&self, run_id: &str) -> bool {
        self.rows.iter().any(|r| r.run_id == run_id)
    }

    /// Whether the baseline of `key` was taken (whatever its outcome).
    pub fn has_baseline(&self, key: &BaselineKey) -> bool {
        self.rows
            .iter()
            .any(|r| r.kind == RunKind::Baseline && r.baseline_key() == *key)
    }

    /// The baseline of `key`, `None` when none of its repeats ran.
    pub fn baseline(&self, key: &BaselineKey) -> Option<Baseline> {
        Baseline::of_key(&self.rows, key)
    }

    /// Appends rows to the table on disk, then here.
    pub fn append(&mut self, rows: Vec<RunRecord>) -> Result<(), CampaignError> {
        runs::append_runs(&self.path, &rows)?;
        self.rows.extend(rows);
        Ok(())
    }
}

/// Makes `out` the directory of `plan`'s campaign: a copy of the plan is kept there, and a
/// directory that holds another plan's campaign is refused.
pub fn claim_dir(out: &Path, plan: &Plan) -> Result<(), CampaignError> {
    fs::create_dir_all(out).map_err(io_err(out))?;
    let plan_copy = out.join("plan.toml");
    if !plan_copy.exists() {
        return fs::write(&plan_copy, &plan.text).map_err(io_err(&plan_copy));
    }
    let old = fs::read_to_string(&plan_copy).map_err(io_err(&plan_copy))?;
    if old != plan.text {
        return Err(CampaignError::Setup(format!(
            "{} holds a campaign of a different plan ({}); use a new --out directory",
            out.display(),
            plan_copy.display()
        )));
    }
    Ok(())
}

/// Progress of a campaign directory (for `campaign status`).
#[derive(Debug, Clone)]
pub struct Status {
    pub colocated_total: usize,
    pub colocated_done: usize,
    pub baseline_rows: usize,
    pub tenant_rows: usize,
    pub failed_rows: usize,
    pub labelled_rows: usize,
    /// Per host of the directory (0: its first): the machine it recorded and its tenant-rows.
    pub hosts: Vec<(u32, String, usize)>,
}

/// Reads a campaign directory's progress (needs its `plan.toml` copy).
pub fn status(out: &Path) -> Result<Status, CampaignError> {
    let plan = Plan::load(&out.join("plan.toml"))?;
    let journal = Journal::open(out)?;
    let rows = journal.rows();
    let work = crate::work_of(&plan);
    Ok(Status {
        colocated_total: work.len(),
        colocated_done: work.iter().filter(|w| journal.is_done(w.run_id())).count(),
        baseline_rows: rows.iter().filter(|r| r.kind == RunKind::Baseline).count(),
        tenant_rows: rows.len(),
        failed_rows: rows.iter().filter(|r| !r.is_ok()).count(),
        labelled_rows: rows.iter().filter(|r| r.p.is_finite()).count(),
        hosts: hosts(rows),
    })
}

/// Per host: the machine of its first row and its number of tenant-rows.
fn hosts(rows: &[RunRecord]) -> Vec<(u32, String, usize)> {
    let mut out: std::collections::BTreeMap<u32, (String, usize)> = Default::default();
    for r in rows {
        let e = out.entry(r.host).or_insert_with(|| (r.machine.clone(), 0));
        e.1 += 1;
    }
    out.into_iter().map(|(h, (m, n))| (h, m, n)).collect()
}
