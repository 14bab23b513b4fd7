use super::*;

fn row(cat: &Catalogue, ts: i64, tenant: &str, base: f32) -> SampleRow {
    let nf = cat.n_features();
    let features = (0..nf)
        .map(|j| {
            if j % 7 == 3 {
                f32::NAN
            } else {
                base + j as f32
            }
        })
        .collect();
    let host = (0..cat.host_metrics().len())
        .map(|j| if j == 0 { f32::INFINITY } else { j as f32 })
        .collect();
    SampleRow {
        ts_ns: ts,
        seq: (ts / 1_000_000_000) as u32,
        tenant: tenant.to_string(),
        n_neighbours: 1,
        dt_s: 1.0,
        gap: ts == 0,
        collect_us: 120,
        lateness_us: 40,
        features,
        host,
    }
}

fn avail() -> BTreeMap<String, bool> {
    [
        ("perf.hw".to_string(), false),
        ("cgroup.cpu".to_string(), true),
    ]
    .into_iter()
    .collect()
}

/// Segments written under the previous catalogue (before Top-Down) read back beside this
/// build's, with the added columns null — only when their footer says Top-Down was absent.
#[test]
fn segments_of_an_earlier_catalogue_read_with_the_added_columns_null() {
    let cat = Catalogue::builtin();
    let old = Catalogue::earlier("7bcd372d41881478").expect("the v1 catalogue is known");
    let dir = tempfile::tempdir().unwrap();
    let write = |c: &Catalogue, name: &str, avail: BTreeMap<String, bool>, t0: i64| {
        let path = dir.path().join(name);
        let mut w = SegmentWriter::create(&path, c, &SegmentMeta::new(c, avail)).unwrap();
        for s in 0..5 {
            w.push(&row(c, (t0 + s) * 1_000_000_000, "a", 1.0)).unwrap();
        }
        w.close().unwrap()
    };
    let mut absent = avail();
    absent.insert("perf.topdown".into(), false);
    write(old, "seg-1-1.parquet", absent.clone(), 0);
    write(cat, "seg-2-1.parquet", absent, 5);
    let df = read_samples(dir.path(), &Filter::default()).unwrap();
    assert_eq!(df.height(), 10);
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, column_names(cat));
    let td = df.column("perf.topdown_retiring").unwrap();
    assert!(td.null_count() >= 5, "the old segment's rows are null");
    let m = tenant_matrix(&df, "a", cat).unwrap();
    let j = cat.index_of("cpu.usage_pct").unwrap();
    let k = old.index_of("cpu.usage_pct").unwrap();
    assert_eq!(
        m.row(0)[j],
        row(old, 0, "a", 1.0).features[k],
        "values keep their names"
    );

    // A footer that does not record Top-Down as absent: refused, naming file and metric.
    let mut present = avail();
    present.insert("perf.topdown".into(), true);
    write(old, "seg-3-1.parquet", present, 10);
    let e = read_samples(dir.path(), &Filter::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("seg-3-1.parquet") && e.contains("perf.topdown_retiring"),
        "{e}"
    );
}

#[test]
fn row_groups_with_a_span_cover_that_time_whole_seconds_and_stop_at_the_cap() {
    let cat = Catalogue::builtin();
    let dir = tempfile::tempdir().unwrap();
    let sec = 1_000_000_000i64;

    // 3 tenants, 100 s, groups of ≥ 10 rows spanning ≥ 20 s: cut at each 20th second.
    let path = dir.path().join(segment_file_name(1, 1));
    let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
        .unwrap()
        .with_row_group_rows(10)
        .with_row_group_span(std::time::Duration::from_secs(20));
    for s in 0..100i64 {
        for t in ["a", "b", "c"] {
            w.push(&row(cat, s * sec, t, s as f32)).unwrap();
        }
    }
    w.close().unwrap();
    assert_eq!(row_group_sizes(&path).unwrap(), vec![60; 5]);
    // Values come back as pushed (NaN and inf as null), in order.
    let (_, df) = read_segment(&path).unwrap();
    assert_eq!(df.height(), 300);
    let f0 = df.column(&cat.feature_names()[0]).unwrap().f32().unwrap();
    assert_eq!(f0.get(299), Some(99.0));
    let f3 = df.column(&cat.feature_names()[3]).unwrap().f32().unwrap();
    assert_eq!(f3.null_count(), 300);

    // The time rule waits for the minimum rows: 1 tenant, ≥ 30 rows.
    let path = dir.path().join(segment_file_name(2, 1));
    let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
        .unwrap()
        .with_row_group_rows(30)
        .with_row_group_span(std::time::Duration::from_secs(5));
    for s in 0..70i64 {
        w.push(&row(cat, s * sec, "a", 0.0)).unwrap();
    }
    w.close().unwrap();
    assert_eq!(row_group_sizes(&path).unwrap(), vec![30, 30, 10]);

    // However long the span, a group is written at MAX_ROW_GROUP_ROWS rows.
    let path = dir.path().join(segment_file_name(3, 1));
    let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
        .unwrap()
        .with_row_group_span(std::time::Duration::from_secs(3600));
    let n = MAX_ROW_GROUP_ROWS + 100;
    for i in 0..n {
        w.push(&row(cat, (i / 8) as i64 * sec, "a", 0.0)).unwrap();
    }
    w.close().unwrap();
    assert_eq!(
        row_group_sizes(&path).unwrap(),
        vec![MAX_ROW_GROUP_ROWS, 100]
    );
}

#[test]
fn round_trip_with_footer_nulls_row_groups_and_filters() {
    let cat = Catalogue::builtin();
    let dir = tempfile::tempdir().unwrap();
    let seg_dir = hive_dir(
        dir.path(),
        &[
            ("host".into(), "h1".into()),
            ("date".into(), "2026-11-28".into()),
        ],
    );
    let path = seg_dir.join(segment_file_name(5, 42));
    let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail())).unwrap();
    assert!(w.partial_path().exists());
    let n_sec = 700i64;
    for s in 0..n_sec {
        for (k, t) in ["a", "b"].iter().enumerate() {
            w.push(&row(cat, s * 1_000_000_000, t, k as f32 * 1000.0))
                .unwrap();
        }
    }
    // A reader ignores the open segment.
    let before = read_samples(dir.path(), &Filter::default()).unwrap();
    assert_eq!(before.height(), 0);
    let p = w.close().unwrap();
    assert_eq!(p, path);
    assert!(path.exists());
    let mut partial = path.as_os_str().to_owned();
    partial.push(PARTIAL_SUFFIX);
    assert!(!PathBuf::from(partial).exists());

    let meta = read_meta(&path).unwrap();
    assert_eq!(meta.catalogue_hash, cat.hash());
    assert_eq!(meta.availability, avail());
    assert_eq!(meta.version, env!("CARGO_PKG_VERSION"));

    let rgs = row_group_sizes(&path).unwrap();
    assert_eq!(rgs.iter().sum::<usize>(), 1400);
    assert!(
        rgs[..rgs.len() - 1]
            .iter()
            .all(|&n| n >= MIN_ROW_GROUP_ROWS),
        "{rgs:?}"
    );

    let all = read_samples(dir.path(), &Filter::default()).unwrap();
    assert_eq!(all.height(), 1400);
    assert_eq!(
        all.get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
        column_names(cat)
    );
    // Null, not NaN.
    let c3 = all.column(&cat.feature_names()[3]).unwrap();
    assert_eq!(c3.null_count(), 1400);
    let h0 = all.column(&cat.host_column_names()[0]).unwrap();
    assert_eq!(h0.null_count(), 1400);

    let only_b = read_samples(
        dir.path(),
        &Filter {
            tenant: Some("b".into()),
            from_ns: Some(10_000_000_000),
            to_ns: Some(20_000_000_000),
        },
    )
    .unwrap();
    assert_eq!(only_b.height(), 10);
    let m = tenant_matrix(&only_b, "b", cat).unwrap();
    assert_eq!((m.t, m.f), (10, cat.n_features()));
    assert_eq!(m.ts_ns[0], 10_000_000_000);
    assert_eq!(m.row(0)[0], 1000.0);
    assert_eq!(m.row(0)[5], 1005.0);
    assert!(m.row(0)[3].is_nan());
}

#[test]
fn partial_and_foreign_files_are_ignored_and_width_is_checked() {
    let cat = Catalogue::builtin();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seg-1-1.parquet.partial"), b"garbage").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
    let path = dir.path().join(segment_file_name(2, 1));
    let mut w = SegmentWriter::create(&path, cat, &SegmentMeta::new(cat, avail()))
        .unwrap()
        .with_row_group_rows(2);
    let mut r = row(cat, 0, "a", 0.0);
    r.features.pop();
    let e = w.push(&r).unwrap_err();
    assert!(e.to_string().contains("feature values"), "{e}");
    w.push(&row(cat, 0, "a", 0.0)).unwrap();
    w.close().unwrap();
    let df = read_samples(dir.path(), &Filter::default()).unwrap();
    assert_eq!(df.height(), 1);
    assert_eq!(list_segments(dir.path()).unwrap(), vec![path]);
}

#[test]
fn missing_dir_is_a_clear_error() {
    let e = read_samples(Path::new("/nonexistent/cf"), &Filter::default()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cf"), "{e}");
}
