use super::*;

fn cat() -> &'static Catalogue {
    Catalogue::builtin()
}

fn body(metrics: serde_json::Value, extra: serde_json::Value) -> Vec<u8> {
    let mut v =
        serde_json::json!({"profile": {"catalogue_hash": cat().hash(), "metrics": metrics}});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    serde_json::to_vec(&v).unwrap()
}

fn err(b: &[u8]) -> ApiError {
    parse_placement(b, cat(), &Limits::default()).unwrap_err()
}

#[test]
fn a_profile_is_parsed_into_own_columns_and_bad_ones_are_named() {
    let ok = parse_placement(
        &body(
            serde_json::json!({"cpu.usage_pct": [90, null, 95]}),
            serde_json::json!({"cpus": [1], "cpu_quota_cpus": 1.5}),
        ),
        cat(),
        &Limits::default(),
    )
    .unwrap();
    let nm = cat().n_metrics();
    let k = cat().index_of("cpu.usage_pct").unwrap();
    assert_eq!(ok.t, 3);
    assert_eq!(ok.own.len(), 3 * nm);
    assert_eq!(ok.own[k], 90.0);
    assert!(ok.own[nm + k].is_nan());
    assert_eq!(ok.cpus, Some(vec![1]));
    assert_eq!(ok.cpu_quota_cpus, Some(1.5));

    let e = err(&body(
        serde_json::json!({"nbr.cpu.usage_pct": [1]}),
        serde_json::json!({}),
    ));
    assert!(e.message.contains("own metrics"), "{}", e.message);
    let e = err(&body(
        serde_json::json!({"cpu.usage": [1]}),
        serde_json::json!({}),
    ));
    assert!(e.message.contains("did you mean"), "{}", e.message);
    let e = err(&body(
        serde_json::json!({"cpu.usage_pct": [1, 2], "mem.current_bytes": [1]}),
        serde_json::json!({}),
    ));
    assert!(e.message.contains("same seconds"), "{}", e.message);
    let e = err(&body(
        serde_json::json!({"cpu.usage_pct": [1]}),
        serde_json::json!({"cpus": []}),
    ));
    assert!(e.message.contains("\"cpus\" is empty"), "{}", e.message);
    let e = err(&body(
        serde_json::json!({"cpu.usage_pct": [1]}),
        serde_json::json!({"cpu_quota_cpus": -1}),
    ));
    assert!(e.message.contains("cpu_quota_cpus"), "{}", e.message);
    let e = err(&body(
        serde_json::json!({"cpu.usage_pct": [1]}),
        serde_json::json!({"cpuz": [1]}),
    ));
    assert!(e.message.contains("cpuz"), "{}", e.message);
    let e = err(br#"{"profile": {"catalogue_hash": "0000", "metrics": {"cpu.usage_pct": [1]}}}"#);
    assert_eq!(e.status.as_u16(), 422);
    assert!(e.message.contains("0000"), "{}", e.message);
    assert_eq!(err(b"[1]").status.as_u16(), 400);
    assert_eq!(err(br#"{"profile": {"metrics": {}}}"#).status.as_u16(), 400);
}

fn row(tenant: &str, usage: f32, cpus: &[usize]) -> TenantSecond {
    let nm = cat().n_metrics();
    let mut features = vec![f32::NAN; 2 * nm];
    features[cat().index_of("cpu.usage_pct").unwrap()] = usage;
    TenantSecond {
        tenant: tenant.into(),
        features,
        cpus: cpus.to_vec(),
    }
}

#[test]
fn the_candidate_joins_the_host_seconds_and_every_tenant_is_asked_before_and_after() {
    let c = cat();
    let nm = c.n_metrics();
    let usage = c.index_of("cpu.usage_pct").unwrap();
    let contending = c.index_of("placement.contending_cpu_pct").unwrap();
    let cpuset = c.index_of("placement.cpuset_cpus").unwrap();
    let host: Vec<SecondOfHost> = (0..3)
        .map(|s| SecondOfHost {
            ts_ns: 10 + s,
            rows: if s == 0 {
                vec![row("a", 100.0, &[0]), row("b", 100.0, &[1])]
            } else {
                vec![row("a", 100.0, &[0])]
            },
        })
        .collect();
    // A 5-second profile at 100 % then 80 %: its last 3 seconds replay beside the host's.
    let mut own = vec![f32::NAN; 5 * nm];
    for s in 0..5 {
        own[s * nm + usage] = if s < 3 { 100.0 } else { 80.0 };
    }
    let req = PlacementRequest {
        own,
        t: 5,
        cpus: Some(vec![0]),
        cpu_quota_cpus: None,
    };
    let seconds = with_candidate(&host, &req, &[0], c);
    assert_eq!(seconds.len(), 3);
    assert_eq!(seconds[2].rows.last().unwrap().features[usage], 80.0);
    assert_eq!(seconds[0].rows.last().unwrap().features[usage], 100.0);
    assert_eq!(seconds[0].rows.last().unwrap().features[cpuset], 1.0);
    let p = plan(&seconds, c);
    assert_eq!(
        p.asks,
        vec![
            Ask::Candidate,
            Ask::Before("a".into()),
            Ask::After("a".into()),
            Ask::Before("b".into()),
            Ask::After("b".into()),
        ]
    );
    assert_eq!(p.seconds["b"], 1);
    let at = |w: &WindowData, s: usize, k: usize| w.data[s * 2 * nm + k];
    // The candidate on CPU 0 lands on a (CPU 0), not on b (CPU 1).
    assert_eq!(at(&p.windows[1], 0, contending), 0.0, "a before");
    assert_eq!(at(&p.windows[2], 0, contending), 100.0, "a after");
    assert_eq!(
        at(&p.windows[2], 2, contending),
        80.0,
        "a after, last second"
    );
    assert_eq!(
        at(&p.windows[4], 0, contending),
        0.0,
        "b after: another CPU"
    );
    assert_eq!(p.windows[3].t, 1);
    assert_eq!(
        at(&p.windows[0], 0, contending),
        100.0,
        "the candidate meets a"
    );
    assert_eq!(at(&p.windows[0], 0, nm + usage), 100.0, "mean of a and b");

    // A made-up model: P̂ = 1 − contending / 200 at the first second.
    let preds: Vec<Pred> = p
        .windows
        .iter()
        .map(|w| Pred {
            p: 1.0 - at(w, 0, contending) / 200.0,
            std: 0.02,
            coverage: 1.0,
            out_of_distribution: false,
        })
        .collect();
    let a = assemble(&p, &preds, vec![0], 3).unwrap();
    assert_eq!(a.tenants[0].id, "a", "the hurt tenant first");
    assert_eq!(a.tenants[0].delta_p, -0.5);
    assert_eq!(a.tenants[1].delta_p, 0.0);
    assert_eq!(a.score.worst_p, 0.5);
    assert_eq!(
        a.score.worst_tenant, None,
        "a tie (the candidate and a, 0.5) goes to the candidate"
    );
    assert!(assemble(&p, &preds[1..], vec![0], 3).is_err());

    // An empty host: the candidate alone, on its own seconds.
    let alone = with_candidate(&[], &req, &[0], c);
    assert_eq!(alone.len(), 5);
    let p = plan(&alone, c);
    assert_eq!(p.asks, vec![Ask::Candidate]);
}

#[test]
fn the_seconds_parameter_is_checked() {
    assert_eq!(seconds_param(None).unwrap(), None);
    assert_eq!(seconds_param(Some("seconds=30")).unwrap(), Some(30));
    assert!(seconds_param(Some("seconds=0")).is_err());
    assert!(seconds_param(Some("seconds=abc")).is_err());
    assert!(seconds_param(Some("secs=3"))
        .unwrap_err()
        .message
        .contains("secs"));
}
