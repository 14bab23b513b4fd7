//! The committed dataset v1 (`dataset/v1`) reads back unchanged through the typed runs table:
//! every kind, status, scenario and placement it holds is a known value, and the records written
//! back give the same table, column for column and row for row.

use std::fs::File;
use std::path::Path;

use dataset::runs::{self, Placement, RunKind, RunStatus};
use polars::prelude::*;

fn committed() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("v1")
}

#[test]
fn committed_runs_table_round_trips_through_the_typed_records() {
    let path = runs::runs_path(&committed());
    let on_disk = ParquetReader::new(File::open(&path).unwrap())
        .finish()
        .unwrap();
    let records = runs::read_runs(&path).unwrap();
    assert_eq!(records.len(), on_disk.height());
    let mut back = runs::to_frame(&records).unwrap();
    // Columns added after dataset v1 are absent on disk and read as empty.
    for c in ["machine", "neighbour_schedule", "shape"] {
        assert!(on_disk.column(c).is_err(), "{c} is in the v1 table");
        let col = back.column(c).unwrap().str().unwrap();
        assert!(col.iter().all(|v| v == Some("")), "{c} is not empty");
        back = back.drop(c).unwrap();
    }
    // Tables written before hosts were counted are of the directory's first host.
    assert!(on_disk.column("host").is_err(), "host is in the v1 table");
    assert!(records.iter().all(|r| r.host == 0));
    back = back.drop("host").unwrap();
    assert_eq!(back.schema(), on_disk.schema());
    assert!(
        back.equals_missing(&on_disk),
        "the runs table changed on a read/write round trip"
    );
    // The domain values the data holds, typed.
    assert!(records.iter().any(|r| r.kind == RunKind::Baseline));
    assert!(records.iter().any(|r| r.kind == RunKind::Colocated));
    assert!(records
        .iter()
        .filter(|r| r.kind == RunKind::Baseline)
        .all(|r| r.placement == Placement::Alone));
    assert!(records.iter().any(|r| r.status == RunStatus::Ok));
}

#[test]
fn an_unknown_domain_value_is_refused_naming_row_and_value() {
    let path = runs::runs_path(&committed());
    let mut df = ParquetReader::new(File::open(&path).unwrap())
        .finish()
        .unwrap();
    let n = df.height();
    let mut kinds: Vec<String> = vec!["colocated".to_string(); n];
    kinds[n - 1] = "colocatd".into();
    df.with_column(Column::new("kind".into(), kinds)).unwrap();
    let e = runs::from_frame(&df, &path).unwrap_err().to_string();
    assert!(e.contains(&format!("row {}", n - 1)), "{e}");
    assert!(e.contains("`colocatd`") && e.contains("run kind"), "{e}");
}

#[test]
fn the_placement_columns_of_the_committed_data_are_derived_from_the_runs_table() {
    use dataset::catalogue::Catalogue;
    use dataset::placement::PlacementColumns;
    let cat = Catalogue::builtin();
    let c = PlacementColumns::of(cat).unwrap();
    let mats = dataset::matrix::load_run_matrices(&committed()).unwrap();
    let mut colocated_demand = Vec::new();
    for m in &mats {
        let rows: Vec<&[f32]> = m.x.chunks(m.f).collect();
        let neighbours = m.neighbours.len() as f32;
        if m.kind == RunKind::Baseline {
            // Alone: nothing contends.
            assert!(rows.iter().all(|r| r[c.neighbours] == 0.0), "{}", m.run_id);
            assert!(rows.iter().all(|r| r[c.contending_cpu_pct] == 0.0));
            // The campaign pinned its baselines to one CPU too.
            assert!(rows.iter().all(|r| r[c.cpuset_cpus] == 1.0));
            continue;
        }
        // Co-located: every tenant seen, pinned to one CPU, the quota the runs table gives.
        assert!(
            rows.iter().all(|r| r[c.neighbours] == neighbours),
            "{}",
            m.run_id
        );
        assert!(rows.iter().all(|r| r[c.cpuset_cpus] == 1.0));
        let quota = rows[0][c.cpu_quota_cpus];
        if m.cpu_limit > 0.0 {
            assert_eq!(quota, m.cpu_limit as f32, "{}", m.run_id);
        } else {
            assert!(quota.is_nan(), "{}", m.run_id);
        }
        let known: Vec<f32> = rows
            .iter()
            .map(|r| r[c.contending_cpu_pct])
            .filter(|v| v.is_finite())
            .collect();
        assert!(
            known.len() + 1 >= rows.len(),
            "{}: only the first second may be unknown",
            m.run_id
        );
        colocated_demand.extend(known);
    }
    let busy = colocated_demand.iter().filter(|&&v| v > 10.0).count();
    assert!(
        busy * 2 > colocated_demand.len(),
        "co-located tenants mostly see contending demand"
    );
}
