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

/// Where a campaign directory keeps the copies of the extensions that added runs to it.
pub const EXTENSIONS_DIR: &str = "plans";

/// Makes `out` the directory of `plan`'s campaign: a copy of the plan is kept there (`plan.toml`;
/// an extension's beside it, `plans/<name>.toml`), and a directory that holds another plan's
/// campaign, or another text of the same extension, is refused.
pub fn claim_dir(out: &Path, plan: &Plan) -> Result<(), CampaignError> {
    fs::create_dir_all(out).map_err(io_err(out))?;
    keep_copy(
        &out.join("plan.toml"),
        &plan.text,
        "a campaign of a different plan",
    )?;
    if let Some(e) = &plan.extension {
        let dir = out.join(EXTENSIONS_DIR);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let what = format!("another text of the extension `{}`", e.name);
        keep_copy(&dir.join(format!("{}.toml", e.name)), &e.text, &what)?;
    }
    Ok(())
}

/// Writes `text` to `copy`, or checks that `copy` already holds it (`what` names a mismatch).
fn keep_copy(copy: &Path, text: &str, what: &str) -> Result<(), CampaignError> {
    if !copy.exists() {
        return fs::write(copy, text).map_err(io_err(copy));
    }
    let old = fs::read_to_string(copy).map_err(io_err(copy))?;
    if old != text {
        return Err(CampaignError::Setup(format!(
            "{} holds {what} ({}); use a new --out directory, or a new extension file name",
            copy.parent().unwrap_or(copy).display(),
            copy.display()
        )));
    }
    Ok(())
}

/// The plan of campaign directory `out` and every extension that added runs to it (from its
/// copies: `plan.toml`, then `plans/*.toml` by name).
pub fn plans_of(out: &Path) -> Result<Vec<Plan>, CampaignError> {
    let base = Plan::load(&out.join("plan.toml"))?;
    let dir = out.join(EXTENSIONS_DIR);
    let mut copies: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    copies.sort();
    let mut plans = vec![base.clone()];
    for copy in copies {
        let text = fs::read_to_string(&copy).map_err(io_err(&copy))?;
        plans.push(Plan::extended(base.clone(), &text, &copy)?);
    }
    Ok(plans)
}

/// Progress of a campaign directory (for `campaign status`).
#[derive(Debug, Clone)]
pub struct Status {
    /// Co-located runs of the plan and all its extensions.
    pub colocated_total: usize,
    pub colocated_done: usize,
    /// Per plan (the base first, then each extension by name): its name, runs done and runs.
    pub plans: Vec<(String, usize, usize)>,
    pub baseline_rows: usize,
    pub tenant_rows: usize,
    pub failed_rows: usize,
    pub labelled_rows: usize,
    /// Per host of the directory (0: its first): the machine it recorded and its tenant-rows.
    pub hosts: Vec<(u32, String, usize)>,
}

/// Reads a campaign directory's progress (needs its `plan.toml` copy).
pub fn status(out: &Path) -> Result<Status, CampaignError> {
    let journal = Journal::open(out)?;
    let rows = journal.rows();
    let mut plans = Vec::new();
    for plan in plans_of(out)? {
        let work = crate::work_of(&plan);
        let done = work.iter().filter(|w| journal.is_done(w.run_id())).count();
        let name = plan
            .extension
            .map_or_else(|| "plan".to_string(), |e| e.name);
        plans.push((name, done, work.len()));
    }
    Ok(Status {
        colocated_total: plans.iter().map(|p| p.2).sum(),
        colocated_done: plans.iter().map(|p| p.1).sum(),
        plans,
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
