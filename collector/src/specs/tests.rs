use super::*;
use dataset::catalogue::{Kind, Transform};

#[test]
fn every_catalogue_metric_has_a_spec() {
    let cat = Catalogue::builtin();
    let t = tenant_specs(cat).unwrap();
    assert_eq!(t.len(), cat.n_metrics());
    let h = host_specs(cat).unwrap();
    assert_eq!(h.len(), cat.host_metrics().len());
    // Counters in the catalogue are computed from deltas, gauges are not rates; the spec
    // computes what the catalogue's transform says.
    let metrics = cat.metrics().iter().zip(&t);
    for (m, s) in metrics.chain(cat.host_metrics().iter().zip(&h)) {
        match (m.kind, s) {
            (Kind::Counter, Spec::Rate(..) | Spec::Jiffies(_)) => {}
            (Kind::Gauge, Spec::Gauge(..) | Spec::Ratio(..) | Spec::CrossTenant) => {}
            other => panic!("{}: kind/spec mismatch {other:?}", m.name),
        }
        let (tr, name) = (m.transform, &m.name);
        assert!(
            transform_matches(tr, *s),
            "{name}: transform {tr} but spec {s:?}"
        );
    }
}

/// Whether `spec` computes what `transform` documents.
fn transform_matches(transform: Transform, spec: Spec) -> bool {
    match (transform, spec) {
        (Transform::None, Spec::Gauge(..)) => true,
        (Transform::Rate, Spec::Rate(_, s)) => s == 1.0,
        (Transform::DeltaTimePct, Spec::Rate(_, s)) => [NS_PCT, US_PCT, MS_PCT].contains(&s),
        (Transform::JiffiesPct, Spec::Jiffies(_)) => true,
        (Transform::DeltaRatio, Spec::Ratio(..)) => true,
        (Transform::CrossTenant, Spec::CrossTenant) => true,
        _ => false,
    }
}

#[test]
fn rates_nulls_and_backwards_counters() {
    let mut p = vec![f64::NAN; raw::N_RAW];
    let mut c = vec![f64::NAN; raw::N_RAW];
    p[raw::CPU_USAGE_NS] = 1e9;
    c[raw::CPU_USAGE_NS] = 1.5e9;
    let s = tenant_spec("cpu.usage_pct").unwrap();
    assert!((eval(s, Some(&p), &c, 1.0) - 50.0).abs() < 1e-3);
    assert!((eval(s, Some(&p), &c, 2.0) - 25.0).abs() < 1e-3);
    // First row: null.
    assert!(eval(s, None, &c, 1.0).is_nan());
    // Backwards: null, not a spike.
    c[raw::CPU_USAGE_NS] = 0.5e9;
    assert!(eval(s, Some(&p), &c, 1.0).is_nan());
    // Missing source: null, not 0.
    let cyc = tenant_spec("perf.cycles_per_s").unwrap();
    assert!(eval(cyc, Some(&p), &c, 1.0).is_nan());
    // Ratio with a zero divisor: null.
    p[raw::CPU_NR_PERIODS] = 10.0;
    c[raw::CPU_NR_PERIODS] = 10.0;
    p[raw::CPU_NR_THROTTLED] = 1.0;
    c[raw::CPU_NR_THROTTLED] = 1.0;
    let r = tenant_spec("cpu.throttled_ratio").unwrap();
    assert!(eval(r, Some(&p), &c, 1.0).is_nan());
    c[raw::CPU_NR_PERIODS] = 20.0;
    c[raw::CPU_NR_THROTTLED] = 6.0;
    assert!((eval(r, Some(&p), &c, 1.0) - 0.5).abs() < 1e-6);
}
