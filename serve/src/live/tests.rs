use super::*;

/// Rows of one tick, every tenant on CPU 0.
fn tick<'a>(rows: &[(&'a str, &'a [f32])]) -> Vec<RowIn<'a>> {
    rows.iter()
        .map(|&(tenant, features)| RowIn {
            tenant,
            features,
            cpus: &[0],
        })
        .collect()
}

#[test]
fn ring_buffer_bounds_and_forgets() {
    let live = LiveState::new(LiveSizes {
        window_s: 3,
        min_window_s: 2,
        history: 2,
        forget_after_ticks: 1,
    });
    let row = |v: f32| vec![v, v + 1.0];
    let w = live.ingest(1, &tick(&[("a", &row(1.0))]), 2);
    assert!(w.is_empty(), "one second is below min_window_s");
    let w = live.ingest(2, &tick(&[("a", &row(2.0)), ("b", &[1.0])]), 2);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].t, 2);
    assert_eq!(live.rows_dropped.load(Ordering::Relaxed), 1);
    for ts in 3..6 {
        let w = live.ingest(ts, &tick(&[("a", &row(ts as f32))]), 2);
        assert_eq!(w[0].t, 3);
        assert_eq!(
            w[0].data,
            vec![
                ts as f32 - 2.0,
                ts as f32 - 1.0,
                ts as f32 - 1.0,
                ts as f32,
                ts as f32,
                ts as f32 + 1.0
            ]
        );
        let p = Pred {
            p: 0.5,
            std: 0.1,
            coverage: 1.0,
            out_of_distribution: false,
        };
        live.record(ts, &[("a".into(), 3)], &[p]);
    }
    let d = live.detail("a", &["x".into(), "y".into()]).unwrap();
    assert_eq!(d.history.len(), 2);
    assert_eq!(d.window.ts_ns, vec![3, 4, 5]);
    assert_eq!(d.window.metrics["y"], vec![Some(4.0), Some(5.0), Some(6.0)]);
    assert!(live
        .render_metrics()
        .contains("cloudformer_tenant_p{tenant=\"a\"} 0.5"));
    // absent for two ticks → forgotten
    live.ingest(6, &[], 2);
    live.ingest(7, &[], 2);
    assert!(live.summaries().is_empty());
}

#[test]
fn a_neighbourhood_is_every_tenant_of_each_second_of_the_window() {
    let live = LiveState::new(LiveSizes {
        window_s: 3,
        min_window_s: 1,
        history: 2,
        forget_after_ticks: 5,
    });
    live.ingest(1, &tick(&[("v", &[1.0, 0.0]), ("x", &[2.0, 0.0])]), 2);
    live.ingest(2, &tick(&[("v", &[1.5, 0.0])]), 2);
    live.ingest(3, &tick(&[("v", &[1.7, 0.0]), ("y", &[3.0, 0.0])]), 2);
    let n = live.neighbourhood("v").expect("v is live");
    let present: Vec<(i64, Vec<&str>)> = n
        .iter()
        .map(|s| (s.ts_ns, s.rows.iter().map(|r| r.tenant.as_str()).collect()))
        .collect();
    assert_eq!(
        present,
        vec![(1, vec!["v", "x"]), (2, vec!["v"]), (3, vec!["v", "y"])]
    );
    assert_eq!(n[2].rows[1].features, vec![3.0, 0.0]);
    assert_eq!(n[2].rows[1].cpus, vec![0]);
    assert!(live.has("x") && !live.has("z"));
    assert!(live.neighbourhood("z").is_none());
    // Its own seconds only, the last two of them.
    let own = live.own_seconds("v", 2).expect("v is live");
    let own: Vec<(i64, f32, &str)> = own
        .iter()
        .map(|(ts, r)| (*ts, r.features[0], r.tenant.as_str()))
        .collect();
    assert_eq!(own, vec![(2, 1.5, "v"), (3, 1.7, "v")]);
    assert_eq!(live.own_seconds("v", 10).unwrap().len(), 3);
    assert!(live.own_seconds("z", 2).is_none());
    // The window slides: the oldest second (and x's only row in it) leaves v's window.
    live.ingest(4, &tick(&[("v", &[1.9, 0.0])]), 2);
    let n = live.neighbourhood("v").unwrap();
    assert_eq!(n.iter().map(|s| s.ts_ns).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(n.iter().all(|s| s.rows.iter().all(|r| r.tenant != "x")));
    // The host's last seconds: ticks of any tenant, newest last.
    let host = live.last_seconds(3);
    assert_eq!(
        host.iter().map(|s| s.ts_ns).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert_eq!(host[1].rows.len(), 2, "v and y at second 3");
    assert_eq!(live.last_seconds(10).len(), 4, "x's second 1 is still held");
    assert!(live.last_seconds(0).is_empty());
}
