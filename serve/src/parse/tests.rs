use super::*;

/// Three feature names, a tenant's and a neighbour mean (also for `infer`'s tests).
pub(super) fn names() -> Vec<String> {
    vec![
        "cpu.usage_pct".into(),
        "mem.rss".into(),
        "nbr.cpu.usage_pct".into(),
    ]
}

#[test]
fn metrics_form_fills_columns_and_nan_for_missing() {
    let body = br#"{"windows":[{"id":"vm1","metrics":{"cpu.usage_pct":[1,2],"nbr.cpu.usage_pct":[3,null]}}]}"#;
    let w = parse_predict(body, &names(), &Limits::default()).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].id.as_deref(), Some("vm1"));
    assert_eq!(w[0].t, 2);
    let d = &w[0].data;
    assert_eq!(d[0], 1.0);
    assert!(d[1].is_nan());
    assert_eq!(d[2], 3.0);
    assert_eq!(d[3], 2.0);
    assert!(d[4].is_nan() && d[5].is_nan());
}

#[test]
fn matrix_and_single_window_forms() {
    let body = br#"{"id":7,"matrix":[[1,2,3],[4,5,6]]}"#;
    let w = parse_predict(body, &names(), &Limits::default()).unwrap();
    assert_eq!(w[0].id.as_deref(), Some("7"));
    assert_eq!(w[0].t, 2);
    assert_eq!(w[0].data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let body = br#"{"windows":[{"matrix":[[1,null,3]]},{"matrix":[[0,0,0],[2.5,-1,7]]}]}"#;
    let w = parse_predict(body, &names(), &Limits::default()).unwrap();
    assert!(w[0].data[1].is_nan() && w[0].data[0] == 1.0 && w[0].data[2] == 3.0);
    assert_eq!((w[1].t, &w[1].data[3..]), (2, &[2.5f32, -1.0, 7.0][..]));
}

fn err(body: &[u8]) -> ApiError {
    parse_predict(
        body,
        &names(),
        &Limits {
            max_windows: 4,
            max_t: 5,
        },
    )
    .unwrap_err()
}

#[test]
fn bad_inputs_are_named() {
    assert!(err(b"{").message.contains("malformed JSON"));
    assert!(err(b"[]").message.contains("invalid request"));
    assert!(err(br#"{"windows":[]}"#).message.contains("empty"));
    let e = err(br#"{"windows":[{"metrics":{"cpu.usage":[1]}}]}"#);
    assert!(
        e.message.contains("unknown metric name \"cpu.usage\""),
        "{e}"
    );
    assert!(e.message.contains("did you mean \"cpu.usage_pct\""), "{e}");
    let e = err(br#"{"windows":[{"metrics":{"cpu.usage_pct":[1],"mem.rss":[1,2]}}]}"#);
    assert!(e.message.contains("same number of seconds"), "{e}");
    let e = err(br#"{"windows":[{"metrics":{"cpu.usage_pct":[]}}]}"#);
    assert!(e.message.contains("empty"), "{e}");
    let e = err(br#"{"windows":[{"matrix":[[1,2]]}]}"#);
    assert!(e.message.contains("row 0 has 2 values"), "{e}");
    let e = err(br#"{"windows":[{"matrix":[[1,2,1e39]]}]}"#);
    assert!(e.message.contains("not a finite"), "{e}");
    let e = err(br#"{"windows":[{"matrix":[[1,2,3],[4,5,6],[7,8]]}]}"#);
    assert!(e.message.contains("row 2 has 2 values"), "{e}");
    let e = err(br#"{"windows":[{"matrix":[[1,2,3,4],[4,5,6]]}]}"#);
    assert!(e.message.contains("row 0 has 4 values"), "{e}");
    let e = err(br#"{"windows":[{"matrix":[[1,2,3],[4,null,-1e300]]}]}"#);
    assert!(
        e.message.contains("row 1 column 2 (nbr.cpu.usage_pct)"),
        "{e}"
    );
    assert!(e.message.contains("not a finite"), "{e}");
    let e = err(br#"{"windows":[{"matrix":[[1,"2",3]]}]}"#);
    assert!(e.message.contains("invalid request"), "{e}");
    let e = err(br#"{"windows":[{"metrics":{"cpu.usage_pct":[NaN]}}]}"#);
    assert!(e.message.contains("malformed JSON"), "{e}");
    let e = err(br#"{"windows":[{"metrics":{"cpu.usage_pct":[1,2,3,4,5,6]}}]}"#);
    assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    let e = err(br#"{"windows":[{"metrix":{}}]}"#);
    assert!(e.message.contains("metrix"), "{e}");
    for e in [err(b""), err(b"null"), err(br#"{"windows":{}}"#)] {
        assert!(e.status.is_client_error());
    }
}
