//! On the committed `dataset/idle` (victims `stress-cpu`, run in 1-s slices, and `sysbench-cpu`,
//! one long process): the per-process columns of sliced loads miss their work, and loading reads
//! them as null — the tenant's own for a sliced application, the neighbour means beside a
//! sliced neighbour — while a long-lived load keeps its own.

use std::path::{Path, PathBuf};

use dataset::catalogue::Catalogue;
use dataset::matrix::{load_run_matrices_with, LoadOptions, RunMatrix};
use dataset::sliced::{process_features, sliced_apps};

fn idle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("idle")
}

fn column(m: &RunMatrix, j: usize) -> Vec<f32> {
    (0..m.t).map(|i| m.x[i * m.f + j]).collect()
}

fn median_of_observed(ms: &[&RunMatrix], j: usize) -> f32 {
    let mut v: Vec<f32> = ms
        .iter()
        .flat_map(|m| column(m, j))
        .filter(|v| v.is_finite())
        .collect();
    assert!(!v.is_empty(), "column {j} has no value");
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn the_plan_names_the_sliced_applications() {
    let s = sliced_apps(&idle_dir()).unwrap();
    assert_eq!(s.into_iter().collect::<Vec<_>>(), ["stress-cpu"]);
    let none = tempfile::tempdir().unwrap();
    assert!(
        sliced_apps(none.path()).unwrap().is_empty(),
        "no plan, none"
    );
    std::fs::write(none.path().join("plan.toml"), "[[app]]\nslices = true\n").unwrap();
    let e = sliced_apps(none.path()).unwrap_err().to_string();
    assert!(e.contains("plan.toml") && e.contains("name"), "{e}");
}

#[test]
fn sliced_loads_read_their_process_columns_as_null_and_long_lived_ones_keep_them() {
    let cat = Catalogue::builtin();
    let idx = |n: &str| cat.feature_names().iter().position(|x| x == n).unwrap();
    let (utime, usage) = (idx("proc.utime_pct"), idx("cpu.usage_pct"));
    let nbr_utime = idx("nbr.proc.utime_pct");
    let (own, nbr) = process_features(cat);
    assert!(own.contains(&utime) && own.contains(&idx("proc.sched_wait_pct")));
    assert!(nbr.contains(&nbr_utime) && !own.contains(&usage));

    let raw = load_run_matrices_with(
        &idle_dir(),
        &LoadOptions {
            blank_sliced_process: false,
            ..Default::default()
        },
    )
    .unwrap();
    let read = load_run_matrices_with(&idle_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(raw.len(), read.len());

    // Why: as recorded, a sliced stress-cpu's processes show almost none of the CPU it used.
    let stress: Vec<&RunMatrix> = raw.iter().filter(|m| m.app == "stress-cpu").collect();
    assert!(!stress.is_empty());
    let (u, c) = (
        median_of_observed(&stress, utime),
        median_of_observed(&stress, usage),
    );
    assert!(
        u < 5.0 && c > 20.0,
        "proc.utime_pct {u} vs cpu.usage_pct {c}"
    );

    let mut long_lived_kept = 0;
    let mut nbr_blanked = 0;
    let mut nbr_kept = 0;
    for (m, r) in read.iter().zip(&raw) {
        assert_eq!((&m.run_id, &m.tenant), (&r.run_id, &r.tenant));
        let sliced_nbr = m.neighbours.iter().any(|n| n.starts_with("stress-cpu@"));
        for j in own.iter().chain(&nbr) {
            let is_nbr = nbr.contains(j);
            let blank = if is_nbr {
                sliced_nbr
            } else {
                m.app == "stress-cpu"
            };
            let (a, b) = (column(m, *j), column(r, *j));
            if blank {
                assert!(
                    a.iter().all(|v| v.is_nan()),
                    "{} {} col {j}",
                    m.run_id,
                    m.tenant
                );
            } else {
                assert!(
                    a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{} {} col {j} changed",
                    m.run_id,
                    m.tenant
                );
            }
        }
        // Every other column is as recorded.
        for j in (0..m.f).filter(|j| !own.contains(j) && !nbr.contains(j)) {
            assert!(column(m, j)
                .iter()
                .zip(column(r, j))
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        if m.app == "sysbench-cpu" && column(m, utime).iter().any(|v| *v > 20.0) {
            long_lived_kept += 1;
        }
        if m.n_tenants > 1 {
            if sliced_nbr {
                nbr_blanked += 1;
            } else if column(m, nbr_utime).iter().any(|v| v.is_finite()) {
                nbr_kept += 1;
            }
        }
    }
    assert!(
        long_lived_kept > 0,
        "no sysbench-cpu run kept its own proc.utime_pct"
    );
    assert!(nbr_blanked > 0 && nbr_kept > 0, "{nbr_blanked} {nbr_kept}");
}
