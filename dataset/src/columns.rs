//! What the feature columns of a dataset hold: per feature, the share of rows that are null and
//! whether it is constant, over the labelled tenant-runs ([`crate::matrix::RunMatrix`]).
//!
//! Each tenant-run's first second is left out: a counter needs two samples, so that row is null
//! for every counter by design (`dataset/catalogues/*.toml`), and counting it would make an
//! 8-second run look 12 % empty. Neighbour features (`nbr.*`) are counted over the seconds with
//! a neighbour present only: an isolated run has none, nor has a second of a dynamic run in
//! which every neighbour has left (its own `placement.neighbours` is 0), which is not a missing
//! value. Where that column is null (a source or a file that lacks it) the run decides.

use std::collections::BTreeMap;

use crate::catalogue::Catalogue;
use crate::matrix::RunMatrix;
use crate::placement::PlacementColumns;

/// One feature column over a set of tenant-runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnStats {
    pub name: String,
    /// The catalogue family of the metric (`cgroup.psi`, `net`, …; neighbour features carry
    /// their metric's family).
    pub family: String,
    /// Rows counted (every tenant-run's first second left out; for `nbr.*`, seconds with a
    /// neighbour present only).
    pub rows: usize,
    /// Of them, null.
    pub null: usize,
    /// Every non-null value equal (false when all are null).
    pub constant: bool,
}

impl ColumnStats {
    /// Share of the counted rows that are null (1 when there are none).
    pub fn null_share(&self) -> f64 {
        if self.rows == 0 {
            1.0
        } else {
            self.null as f64 / self.rows as f64
        }
    }

    /// Null in every counted row.
    pub fn all_null(&self) -> bool {
        self.null == self.rows
    }
}

/// Seconds left out at the start of every tenant-run by default: the first, where no counter
/// has a delta yet.
pub const SKIP_SECONDS: usize = 1;

/// Per-feature statistics of `runs` (catalogue `cat`'s feature order, which `RunMatrix` uses),
/// every run's first [`SKIP_SECONDS`] left out.
pub fn column_stats(cat: &Catalogue, runs: &[&RunMatrix]) -> Vec<ColumnStats> {
    column_stats_trimmed(cat, runs, SKIP_SECONDS, 0)
}

/// [`column_stats`] with the first `skip` and the last `skip_end` seconds of every run left out
/// (a process that starts after the agent's tick needs two samples of its own before its
/// counters have a delta; the agent may tick once more after a short run's load has ended).
pub fn column_stats_trimmed(
    cat: &Catalogue,
    runs: &[&RunMatrix],
    skip: usize,
    skip_end: usize,
) -> Vec<ColumnStats> {
    let names = cat.feature_names();
    let f = names.len();
    let neighbour: Vec<bool> = names.iter().map(|n| n.starts_with("nbr.")).collect();
    // The own `placement.neighbours` (own metrics come first in a feature row).
    let present = PlacementColumns::of(cat).map(|p| p.neighbours);
    let mut null = vec![0usize; f];
    let mut rows = vec![0usize; f];
    let mut first: Vec<Option<f32>> = vec![None; f];
    let mut varies = vec![false; f];
    for m in runs.iter().filter(|m| m.f == f) {
        let alone = m.n_tenants <= 1;
        let t = m.x.len() / f;
        let rows_kept = m.x.chunks_exact(f).take(t.saturating_sub(skip_end));
        for row in rows_kept.skip(skip) {
            let without = alone || present.is_some_and(|k| row[k] == 0.0);
            for (j, &v) in row.iter().enumerate() {
                if without && neighbour[j] {
                    continue;
                }
                rows[j] += 1;
                if v.is_nan() {
                    null[j] += 1;
                    continue;
                }
                match first[j] {
                    None => first[j] = Some(v),
                    Some(a) if a != v => varies[j] = true,
                    Some(_) => {}
                }
            }
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(j, name)| ColumnStats {
            family: cat
                .feature_metric(j)
                .map(|m| m.family.clone())
                .unwrap_or_default(),
            name,
            rows: rows[j],
            null: null[j],
            constant: first[j].is_some() && !varies[j],
        })
        .collect()
}

/// [`column_stats_trimmed`] per application.
pub fn column_stats_by_app(
    cat: &Catalogue,
    runs: &[RunMatrix],
    skip: usize,
    skip_end: usize,
) -> BTreeMap<String, Vec<ColumnStats>> {
    let mut by_app: BTreeMap<String, Vec<&RunMatrix>> = BTreeMap::new();
    for m in runs {
        by_app.entry(m.app.clone()).or_default().push(m);
    }
    by_app
        .into_iter()
        .map(|(app, ms)| (app, column_stats_trimmed(cat, &ms, skip, skip_end)))
        .collect()
}

/// Per family: (columns, columns null in every row, mean null share).
pub fn family_summary(stats: &[ColumnStats]) -> BTreeMap<String, (usize, usize, f64)> {
    let mut out: BTreeMap<String, (usize, usize, f64)> = BTreeMap::new();
    for s in stats {
        let e = out.entry(s.family.clone()).or_default();
        e.0 += 1;
        e.1 += s.all_null() as usize;
        e.2 += s.null_share();
    }
    for e in out.values_mut() {
        e.2 /= e.0.max(1) as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{Placement, RunKind, Scenario};

    fn run(app: &str, x: Vec<f32>, f: usize) -> RunMatrix {
        RunMatrix {
            run_id: "r".into(),
            tenant: "t".into(),
            app: app.into(),
            scenario: Scenario::Static,
            t: x.len() / f,
            f,
            x,
            p: 1.0,
            p_per_second: None,
            label_noise: 0.0,
            kind: RunKind::Colocated,
            level: "l".into(),
            trace: "static".into(),
            placement: Placement::SameCore,
            neighbours: vec![],
            n_tenants: 2,
            cpuset: String::new(),
            cpu_limit: 0.0,
            ts_ns: vec![],
        }
    }

    #[test]
    fn first_second_is_left_out_and_nulls_and_constants_are_counted() {
        let cat = Catalogue::builtin();
        let f = cat.n_features();
        let mut x = vec![f32::NAN; 3 * f];
        // Column 0 varies after the first row; column 1 is constant; column 2 is null in
        // one of the two counted rows; the rest are null everywhere.
        x[f] = 1.0;
        x[2 * f] = 2.0;
        x[1] = 9.0; // first row: not counted
        x[f + 1] = 5.0;
        x[2 * f + 1] = 5.0;
        x[f + 2] = 3.0;
        let a = run("a", x, f);
        let s = column_stats(cat, &[&a]);
        assert_eq!(s.len(), f);
        assert_eq!((s[0].rows, s[0].null, s[0].constant), (2, 0, false));
        assert_eq!((s[1].null, s[1].constant), (0, true));
        assert_eq!(s[2].null_share(), 0.5);
        assert!(s[3].all_null() && !s[3].constant);
        let fam = family_summary(&s);
        let total: usize = fam.values().map(|v| v.0).sum();
        assert_eq!(total, f);
    }

    #[test]
    fn neighbour_columns_count_runs_with_neighbours_only() {
        let cat = Catalogue::builtin();
        let f = cat.n_features();
        let nbr = cat
            .feature_names()
            .iter()
            .position(|n| n.starts_with("nbr."))
            .unwrap();
        let mut alone = run("a", vec![1.0; 3 * f], f);
        alone.n_tenants = 1;
        for row in alone.x.chunks_exact_mut(f) {
            row[nbr] = f32::NAN;
        }
        let together = run("a", vec![2.0; 2 * f], f);
        let s = column_stats(cat, &[&alone, &together]);
        assert_eq!((s[nbr].rows, s[nbr].null), (1, 0));
        assert_eq!(s[0].rows, 3);
        assert!(!s[0].constant);
        // A dynamic run: its neighbour leaves after the second second (`placement.neighbours`
        // 0, no neighbour values), and one neighbour column is missing while it is there.
        let k = PlacementColumns::of(cat).unwrap().neighbours;
        let mut dynamic = run("a", vec![3.0; 5 * f], f);
        for (s, row) in dynamic.x.chunks_exact_mut(f).enumerate() {
            if s >= 3 {
                row[k] = 0.0;
                for (j, v) in row.iter_mut().enumerate() {
                    if j >= f / 2 {
                        *v = f32::NAN;
                    }
                }
            }
        }
        dynamic.x[2 * f + nbr] = f32::NAN;
        let s = column_stats(cat, &[&dynamic]);
        assert_eq!((s[nbr].rows, s[nbr].null), (2, 1), "seconds 1 and 2 only");
        assert_eq!((s[k].rows, s[k].null), (4, 0));
        // Where the count is unknown the run decides: every second counts.
        dynamic
            .x
            .chunks_exact_mut(f)
            .for_each(|row| row[k] = f32::NAN);
        assert_eq!(column_stats(cat, &[&dynamic])[nbr].rows, 4);
    }

    #[test]
    fn stats_are_split_by_application() {
        let cat = Catalogue::builtin();
        let f = cat.n_features();
        let by = column_stats_by_app(
            cat,
            &[
                run("a", vec![1.0; 2 * f], f),
                run("b", vec![f32::NAN; 4 * f], f),
            ],
            1,
            0,
        );
        assert_eq!(by["a"][0].null, 0);
        assert_eq!(by["b"][0].rows, 3);
        let two = column_stats_trimmed(cat, &[&run("b", vec![0.0; 4 * f], f)], 2, 0);
        assert_eq!(two[0].rows, 2);
        let trimmed = column_stats_trimmed(cat, &[&run("b", vec![0.0; 4 * f], f)], 1, 2);
        assert_eq!(trimmed[0].rows, 1);
        assert!(by["b"][0].all_null());
    }
}
