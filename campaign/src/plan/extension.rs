//! Plan extensions: a plan file with a top-level `extends = "<base plan>"` adds co-located runs
//! to the base plan's campaign directory without changing the base plan (whose text the
//! directory's resume check compares).
//!
//! An extension inherits everything a baseline depends on — the applications, VM shapes, limits,
//! run and baseline lengths, repeats, warm-up, network — and sets only its own schedule: `seed`,
//! `colocated_runs`, `sizes`, `placements`, `scenarios`, `apps` (a subset of the base's) and
//! `[dynamic]`. Its runs are therefore labelled against the same baselines as the base plan's,
//! and its run ids carry its name (`<name>-c00000`), the file's stem, so the two never collide.
//! Any other key is refused, naming its line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::raw::{d_placements, d_scenarios, d_sizes, RawDynamic};
use super::validate::Checker;
use super::{Plan, PlanError};

/// The extension of a plan: its name (the file's stem, the prefix of its run ids), file and
/// text (kept beside the base plan's copy in a campaign directory, `plans/<name>.toml`).
#[derive(Debug, Clone)]
pub struct Extension {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    /// The base plan: its applications and schedule (a resume's sentinel may replay a baseline
    /// only the base schedules).
    pub base: Box<Plan>,
}

/// The keys an extension may set (everything else comes from the base plan).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    #[allow(dead_code)] // read before parsing, by `extends_of`
    extends: String,
    seed: u64,
    colocated_runs: u32,
    #[serde(default = "d_sizes")]
    sizes: Vec<u32>,
    #[serde(default = "d_placements")]
    placements: Vec<String>,
    #[serde(default = "d_scenarios")]
    scenarios: Vec<String>,
    #[serde(default)]
    apps: Vec<String>,
    #[serde(default)]
    dynamic: Option<RawDynamic>,
}

/// The base plan a plan's text extends (`extends = "..."`), if it is an extension. Text that is
/// not valid TOML is no extension (the plan's own parse names the error's line).
pub(super) fn extends_of(text: &str) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    table.get("extends")?.as_str().map(str::to_string)
}

/// The name of the extension in `path`: its stem, which must make a run id.
fn name_of(path: &Path, check: &Checker) -> Result<String, PlanError> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let ok = !stem.is_empty()
        && stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(check.err(
            check.key("extends"),
            format!(
                "an extension's file name is the prefix of its run ids: `{}` must be letters, \
                 digits, `-` or `_` before `.toml`",
                path.display()
            ),
        ));
    }
    Ok(stem.to_string())
}

impl Plan {
    /// `base` with the schedule of the extension `text` (file `path`), validated; every error
    /// names the extension's line.
    pub fn extended(base: Plan, text: &str, path: &Path) -> Result<Plan, PlanError> {
        let check = Checker {
            text,
            file: path.display().to_string(),
            ncpu: crate::machine::online_cpus(),
            mem_mb: crate::machine::mem_total_mb(),
        };
        if base.extension.is_some() {
            return Err(check.err(
                check.key("extends"),
                format!(
                    "`{}` is itself an extension: extend the base plan",
                    base.path.display()
                ),
            ));
        }
        let raw: RawExtension = check.toml().map_err(|e| match e {
            PlanError::At { file, line, msg } if msg.contains("unknown field") => PlanError::At {
                file,
                line,
                msg: format!("{msg}: an extension inherits everything else from its base plan"),
            },
            other => other,
        })?;
        let name = name_of(path, &check)?;
        check.sizes(&raw.sizes)?;
        let placements = check.placements(&raw.placements)?;
        let scenarios = check.scenarios(&raw.scenarios)?;
        let apps = check.select(base.apps.clone(), &raw.apps)?;
        check.memory(&apps, &raw.sizes)?;
        let dynamic = check.dynamic(raw.dynamic.as_ref(), base.run_seconds, &apps)?;
        Ok(Plan {
            seed: raw.seed,
            colocated_runs: raw.colocated_runs,
            sizes: raw.sizes,
            placements,
            scenarios,
            apps,
            dynamic,
            extension: Some(Extension {
                name,
                path: path.to_path_buf(),
                text: text.to_string(),
                base: Box::new(base.clone()),
            }),
            ..base
        })
    }

    /// What this plan's run ids start with: nothing for a plan, `<name>-` for an extension.
    pub fn run_prefix(&self) -> String {
        self.extension
            .as_ref()
            .map(|e| format!("{}-", e.name))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::GOOD;
    use super::*;

    fn base() -> Plan {
        Plan::parse_with(GOOD, Path::new("base.toml"), &|_| true).unwrap()
    }

    fn extend(text: &str) -> Result<Plan, PlanError> {
        Plan::extended(base(), text, Path::new("heavy.toml"))
    }

    fn err_line(e: PlanError) -> (usize, String) {
        match e {
            PlanError::At { line, msg, file } => {
                assert_eq!(file, "heavy.toml", "{msg}");
                (line, msg)
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn an_extension_keeps_the_base_applications_and_sets_its_schedule() {
        let ext = "extends = \"base.toml\"\nseed = 9\ncolocated_runs = 3\nsizes = [3]\n\
                   placements = [\"same-core\"]\napps = [\"sb\"]\n";
        let p = extend(ext).unwrap();
        let b = base();
        assert_eq!((p.seed, p.colocated_runs, p.sizes.clone()), (9, 3, vec![3]));
        assert_eq!(p.apps.len(), 1);
        assert_eq!(p.apps[0].load, b.apps[0].load);
        assert!(
            p.app("pg").is_some(),
            "the base's other applications stay known"
        );
        assert_eq!((p.run_seconds, p.repeats), (b.run_seconds, b.repeats));
        assert_eq!(
            p.text, b.text,
            "the directory's resume check compares the base text"
        );
        assert_eq!(p.run_prefix(), "heavy-");
        assert_eq!(b.run_prefix(), "");
        let ids: Vec<String> = crate::schedule::schedule(&p)
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, ["heavy-c00000", "heavy-c00001", "heavy-c00002"]);
    }

    #[test]
    fn an_extension_may_not_redefine_what_baselines_depend_on() {
        let ext = "extends = \"base.toml\"\nseed = 9\ncolocated_runs = 3\nrepeats = 5\n";
        let (line, msg) = err_line(extend(ext).unwrap_err());
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("repeats") && msg.contains("inherits"), "{msg}");
        let ext = "extends = \"base.toml\"\nseed = 9\ncolocated_runs = 1\napps = [\"nope\"]\n";
        let (line, msg) = err_line(extend(ext).unwrap_err());
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("`nope`"), "{msg}");
        let ext = "extends = \"base.toml\"\nseed = 9\ncolocated_runs = 1\nsizes = [1]\n";
        let (line, msg) = err_line(extend(ext).unwrap_err());
        assert_eq!(line, 4, "{msg}");
    }

    #[test]
    fn an_extension_of_an_extension_and_a_bad_name_are_refused() {
        let ext = "extends = \"base.toml\"\nseed = 9\ncolocated_runs = 1\n";
        let once = extend(ext).unwrap();
        let (_, msg) = err_line(Plan::extended(once, ext, Path::new("heavy.toml")).unwrap_err());
        assert!(msg.contains("itself an extension"), "{msg}");
        let e = Plan::extended(base(), ext, Path::new("my heavy.toml")).unwrap_err();
        assert!(e.to_string().contains("run ids"), "{e}");
    }

    #[test]
    fn extends_is_read_only_from_valid_toml() {
        assert_eq!(
            extends_of("extends = \"v2.toml\"\n").as_deref(),
            Some("v2.toml")
        );
        assert_eq!(extends_of("seed = 1\n"), None);
        assert_eq!(extends_of("extends = \n"), None);
    }
}
