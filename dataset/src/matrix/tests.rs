use super::*;
use crate::runs::{append_runs, runs_path, RunRecord};
use std::fs::File;

/// Writes a sample file in the contract's layout (a subset of the columns the collector
/// writes: the ones the loader reads).
fn write_sample(path: &Path, hash: &str, tenants: &[&str], secs: usize, skip_null: bool) {
    let cat = Catalogue::builtin();
    let names = cat.feature_names();
    let n = tenants.len() * secs;
    let mut cols: Vec<Column> = Vec::new();
    let mut ts = Vec::new();
    let mut ten = Vec::new();
    for s in (0..secs).rev() {
        for t in tenants {
            ts.push(1_000_000_000i64 * s as i64);
            ten.push(t.to_string());
        }
    }
    cols.push(Column::new("ts_ns".into(), ts.clone()));
    cols.push(Column::new("tenant".into(), ten.clone()));
    for (j, name) in names.iter().enumerate() {
        let v: Vec<Option<f32>> = (0..n)
            .map(|i| {
                if skip_null && j == 1 {
                    None
                } else {
                    let tid = if ten[i] == "t0" { 0.0 } else { 1000.0 };
                    Some(tid + (ts[i] / 1_000_000_000) as f32 + j as f32 / 1000.0)
                }
            })
            .collect();
        cols.push(Column::new(name.as_str().into(), v));
    }
    let mut df = DataFrame::new_infer_height(cols).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ParquetWriter::new(File::create(path).unwrap())
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(vec![(
            CATALOGUE_HASH_KEY.to_string(),
            hash.to_string(),
        )])))
        .finish(&mut df)
        .unwrap();
}

fn rec(run: &str, tenant: &str, hash: &str) -> RunRecord {
    RunRecord {
        run_id: run.into(),
        tenant: tenant.into(),
        app: "redis".into(),
        kind: RunKind::Colocated,
        scenario: Scenario::Static,
        level: "high".into(),
        trace: "static".into(),
        neighbours: "fio@high".into(),
        n_tenants: 2,
        higher_is_better: true,
        perf_actual: 1.0,
        perf_ideal: 2.0,
        p: 0.5,
        p_raw: 0.5,
        label_noise: 0.01,
        catalogue_hash: hash.into(),
        samples_dir: format!("samples/app=redis/run={run}"),
        ..Default::default()
    }
}

#[test]
fn loads_each_tenant_sorted_with_nan_for_null() {
    let dir = tempfile::tempdir().unwrap();
    let h = Catalogue::builtin().hash().to_string();
    write_sample(
        &dir.path().join("samples/app=redis/run=r1/seg-1.parquet"),
        &h,
        &["t0", "t1"],
        5,
        true,
    );
    // An open segment is ignored.
    std::fs::write(
        dir.path()
            .join("samples/app=redis/run=r1/seg-2.parquet.partial"),
        b"garbage",
    )
    .unwrap();
    let mut failed = rec("r1", "t9", &h);
    failed.status = crate::runs::RunStatus::Failed;
    append_runs(
        &runs_path(dir.path()),
        &[rec("r1", "t0", &h), rec("r1", "t1", &h), failed],
    )
    .unwrap();
    let ms = load_run_matrices(dir.path()).unwrap();
    assert_eq!(ms.len(), 2);
    let f = Catalogue::builtin().n_features();
    for m in &ms {
        assert_eq!(m.t, 5);
        assert_eq!(m.f, f);
        assert_eq!(m.x.len(), 5 * f);
        assert!(m.ts_ns.windows(2).all(|w| w[0] < w[1]));
        assert!(m.x[1].is_nan(), "null must load as NaN");
        assert_eq!(m.p, 0.5);
        assert_eq!(m.neighbours, vec!["fio@high".to_string()]);
    }
    let t1 = ms.iter().find(|m| m.tenant == "t1").unwrap();
    // second 3, feature 2 of tenant t1: 1000 + 3 + 0.002
    assert!((t1.x[3 * f + 2] - 1003.002).abs() < 1e-3);
    let t0 = ms.iter().find(|m| m.tenant == "t0").unwrap();
    assert!((t0.x[2] - 0.002).abs() < 1e-6);
}

#[test]
fn catalogue_mismatch_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let h = Catalogue::builtin().hash().to_string();
    let bad = dir.path().join("samples/app=redis/run=r1/seg-1.parquet");
    write_sample(&bad, "deadbeef", &["t0"], 3, false);
    append_runs(&runs_path(dir.path()), &[rec("r1", "t0", &h)]).unwrap();
    let e = load_run_matrices(dir.path()).unwrap_err().to_string();
    assert!(e.contains("seg-1.parquet") && e.contains("deadbeef"), "{e}");
}

#[test]
fn runs_table_hash_mismatch_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let h = Catalogue::builtin().hash().to_string();
    write_sample(
        &dir.path().join("samples/app=redis/run=r1/seg-1.parquet"),
        &h,
        &["t0"],
        3,
        false,
    );
    append_runs(&runs_path(dir.path()), &[rec("r1", "t0", "0ther")]).unwrap();
    let e = load_run_matrices(dir.path()).unwrap_err().to_string();
    assert!(e.contains("seg-1.parquet") && e.contains("0ther"), "{e}");
}

#[test]
fn run_without_rows_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let h = Catalogue::builtin().hash().to_string();
    write_sample(
        &dir.path().join("samples/app=redis/run=r1/seg-1.parquet"),
        &h,
        &["t0"],
        3,
        false,
    );
    append_runs(&runs_path(dir.path()), &[rec("r1", "tX", &h)]).unwrap();
    let e = load_run_matrices(dir.path()).unwrap_err().to_string();
    assert!(e.contains("tX") && e.contains("no sample rows"), "{e}");
}
