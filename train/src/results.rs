//! An evaluation's results as files: `summary.md` (the comparison table, early prediction,
//! per-application MAE, splits, chosen hyper-parameters), `results.json`, `predictions.csv` and
//! `command.txt`, and reading them back (for `cloudformer report`).

use std::io::Write;
use std::path::Path;

use crate::baselines::Tabular;
use crate::error::{io_err, Result, TrainError};
use crate::eval::{EvalResults, ModelResult, PredRow};

fn fmt_pm(m: f64, s: f64) -> String {
    if m.is_finite() {
        format!("{m:.2} ± {s:.2}")
    } else {
        "n/a".into()
    }
}

impl EvalResults {
    /// The best model by mean MAE among those whose name does not start with `cf`, trivial
    /// predictors left out.
    pub fn best_baseline(&self) -> Option<&ModelResult> {
        self.models
            .iter()
            .filter(|m| {
                let trivial = Tabular::from_name(&m.name).is_some_and(Tabular::is_trivial);
                !m.name.starts_with("cf") && !trivial && m.summary.mae_mean.is_finite()
            })
            .min_by(|a, b| a.summary.mae_mean.total_cmp(&b.summary.mae_mean))
    }

    /// The noise floor, the main table (MAE/MSE/error bands per model) and the goal lines:
    /// the part of `summary.md` that `cloudformer report --readme` copies into a README.
    pub fn headline_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Label-noise floor (mean label_noise of the test runs, points of P×100): **{:.2}**\n\n",
            self.noise_floor
        ));
        s.push_str("| model | MAE (mean ± std) | MSE (mean ± std) | MAE isolated runs | <5 | 5-10 | 10-15 | 15-20 | 20-25 | >25 | fit s |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for m in &self.models {
            let b = m.summary.bands;
            s.push_str(&format!(
                "| {} | {} | {} | {} | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.1} |\n",
                m.name,
                fmt_pm(m.summary.mae_mean, m.summary.mae_std),
                fmt_pm(m.summary.mse_mean, m.summary.mse_std),
                fmt_pm(m.isolated.mae_mean, m.isolated.mae_std),
                b[0] * 100.0,
                b[1] * 100.0,
                b[2] * 100.0,
                b[3] * 100.0,
                b[4] * 100.0,
                b[5] * 100.0,
                m.fit_seconds
            ));
        }
        if let Some(best) = self.best_baseline() {
            s.push_str(&format!(
                "\nBest baseline: **{}** (MAE {:.2}).\n",
                best.name, best.summary.mae_mean
            ));
            for cf in self.models.iter().filter(|m| m.name.starts_with("cf")) {
                let gain =
                    (best.summary.mae_mean - cf.summary.mae_mean) / best.summary.mae_mean * 100.0;
                s.push_str(&format!(
                    "- {}: MAE {:.2}, {:.1} % {} the best baseline (goal: ≥ 28 % below); {:.2}× the noise floor (goal ≤ 2×).\n",
                    cf.name,
                    cf.summary.mae_mean,
                    gain.abs(),
                    if gain >= 0.0 { "below" } else { "above" },
                    cf.summary.mae_mean / self.noise_floor
                ));
                if cf.isolated.mae_mean.is_finite() && best.isolated.mae_mean.is_finite() {
                    let d = cf.isolated.mae_mean - best.isolated.mae_mean;
                    s.push_str(&format!(
                        "- {}: MAE on isolated runs {:.2} against {:.2} for {} ({:+.2} points; goal: within 1).\n",
                        cf.name, cf.isolated.mae_mean, best.isolated.mae_mean, best.name, d
                    ));
                }
            }
        }
        s
    }

    /// How long each model's fold took on each split (fit and predictions).
    fn fold_times_markdown(&self) -> String {
        let mut s = String::from("\n## Seconds per fold (fit and predictions)\n\n| model |");
        for sp in &self.splits {
            s.push_str(&format!(" {} |", sp.name));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(self.splits.len()));
        s.push('\n');
        for m in &self.models {
            s.push_str(&format!("| {} |", m.name));
            for i in 0..self.splits.len() {
                match m.fold_seconds.get(i) {
                    Some(t) => s.push_str(&format!(" {t:.1} |")),
                    None => s.push_str(" n/a |"),
                }
            }
            s.push('\n');
        }
        s
    }

    /// The comparison as a Markdown document.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let o = &self.options;
        let (units, whole) = if o.window_s > 0 {
            (
                format!(
                    "{}-s windows of tenant-runs (per-window evaluation: label = the mean \
                     per-second P over the window)",
                    o.window_s
                ),
                "whole window",
            )
        } else {
            ("tenant-runs".to_string(), "whole run")
        };
        s.push_str(&format!(
            "# CloudFormer comparison ({:?} protocol)\n\n{} {units}, {} applications, {} splits, seed {}.\n\n",
            o.protocol,
            self.n_runs,
            self.apps.len(),
            self.splits.len(),
            o.seed
        ));
        s.push_str(&format!("Command: `{}`\n\n", o.command));
        s.push_str(&self.headline_markdown());
        s.push_str(&self.fold_times_markdown());
        // early prediction
        let ks: Vec<usize> = self
            .models
            .iter()
            .flat_map(|m| m.early.keys().copied())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !ks.is_empty() {
            s.push_str("\n## Early prediction: MAE using only the first k seconds\n\n| model |");
            for k in &ks {
                s.push_str(&format!(" k={k}s |"));
            }
            s.push_str(&format!(" {whole} |\n|---|"));
            for _ in 0..=ks.len() {
                s.push_str("---|");
            }
            s.push('\n');
            for m in &self.models {
                s.push_str(&format!("| {} |", m.name));
                for k in &ks {
                    match m.early.get(k) {
                        Some(e) => s.push_str(&format!(" {:.2} |", e.mae_mean)),
                        None => s.push_str(" |"),
                    }
                }
                s.push_str(&format!(" {:.2} |\n", m.summary.mae_mean));
            }
        }
        // per-app MAE
        s.push_str("\n## Per-application MAE (mean over the splits where the application was tested)\n\n| app | kind |");
        for m in &self.models {
            s.push_str(&format!(" {} |", m.name));
        }
        s.push_str("\n|---|---|");
        for _ in &self.models {
            s.push_str("---|");
        }
        s.push('\n');
        for a in &self.apps {
            s.push_str(&format!(
                "| {} | {} |",
                a.name,
                if a.dynamic { "dynamic" } else { "static" }
            ));
            for m in &self.models {
                match m.summary.per_app_mae.get(&a.name) {
                    Some(v) => s.push_str(&format!(" {v:.2} |")),
                    None => s.push_str(" |"),
                }
            }
            s.push('\n');
        }
        s.push_str(
            "\n## Splits\n\n| split | seed | test | validation | train |\n|---|---|---|---|---|\n",
        );
        for sp in &self.splits {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                sp.name,
                sp.seed,
                sp.test_apps.join(", "),
                if sp.val_apps.is_empty() {
                    format!(
                        "{:.0}% of training runs",
                        sp.val_from_train_runs.unwrap_or(0.0) * 100.0
                    )
                } else {
                    sp.val_apps.join(", ")
                },
                sp.train_apps.join(", ")
            ));
        }
        s.push_str("\n## Chosen hyper-parameters per split\n\n");
        for m in &self.models {
            s.push_str(&format!("- **{}**: {}\n", m.name, m.chosen.join("; ")));
        }
        s
    }

    /// Writes `results.json`, `predictions.csv`, `summary.md` and `command.txt` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let p = dir.join("results.json");
        let json = serde_json::to_string_pretty(self).map_err(|source| TrainError::Json {
            path: p.clone(),
            source,
        })?;
        std::fs::write(&p, json).map_err(io_err(&p))?;
        let p = dir.join("predictions.csv");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io_err(&p))?);
        writeln!(f, "split,model,k,key,app,p,p_hat").map_err(io_err(&p))?;
        for r in &self.predictions {
            writeln!(
                f,
                "{},{},{},{},{},{:.6},{:.6}",
                r.split,
                r.model,
                r.k,
                r.key.replace(',', ";"),
                r.app.replace(',', ";"),
                r.p,
                r.p_hat
            )
            .map_err(io_err(&p))?;
        }
        f.flush().map_err(io_err(&p))?;
        let p = dir.join("summary.md");
        std::fs::write(&p, self.markdown()).map_err(io_err(&p))?;
        let p = dir.join("command.txt");
        std::fs::write(&p, format!("{}\n", self.options.command)).map_err(io_err(&p))?;
        Ok(())
    }

    /// Reads `results.json` and `predictions.csv` back.
    pub fn read(dir: &Path) -> Result<EvalResults> {
        let p = dir.join("results.json");
        let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
        let mut r: EvalResults =
            serde_json::from_str(&text).map_err(|source| TrainError::Json {
                path: p.clone(),
                source,
            })?;
        let p = dir.join("predictions.csv");
        if let Ok(text) = std::fs::read_to_string(&p) {
            for (ln, line) in text.lines().enumerate().skip(1) {
                let c: Vec<&str> = line.split(',').collect();
                if c.len() != 7 {
                    return Err(TrainError::Invalid(format!(
                        "{}:{}: expected 7 columns",
                        p.display(),
                        ln + 1
                    )));
                }
                let num = |s: &str| {
                    s.parse::<f64>().map_err(|_| {
                        TrainError::Invalid(format!("{}:{}: bad number {s:?}", p.display(), ln + 1))
                    })
                };
                r.predictions.push(PredRow {
                    split: c[0].into(),
                    model: c[1].into(),
                    k: num(c[2])? as usize,
                    key: c[3].into(),
                    app: c[4].into(),
                    p: num(c[5])?,
                    p_hat: num(c[6])?,
                });
            }
        }
        Ok(r)
    }
}
