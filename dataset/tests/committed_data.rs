//! The committed dataset (`dataset/data`) reads back unchanged through the typed runs table:
//! every kind, status, scenario and placement it holds is a known value, and the records written
//! back give the same table, column for column and row for row.

use std::fs::File;
use std::path::Path;

use dataset::runs::{self, Placement, RunKind, RunStatus};
use polars::prelude::*;

fn committed() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

#[test]
fn committed_runs_table_round_trips_through_the_typed_records() {
    let path = runs::runs_path(&committed());
    let on_disk = ParquetReader::new(File::open(&path).unwrap())
        .finish()
        .unwrap();
    let records = runs::read_runs(&path).unwrap();
    assert_eq!(records.len(), on_disk.height());
    let back = runs::to_frame(&records).unwrap();
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
