//! The HTTP layer over a real loopback socket: routes, bad input, auth, limits, reload,
//! micro-batching and back-pressure. The model here is a small deterministic engine
//! (`common::LinearEngine`) so each answer can be checked exactly; the neural model end to end is
//! covered by the root `tests/serve_e2e.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const F: usize = 6;

fn window(id: &str, v0: &[f64]) -> serde_json::Value {
    json!({"id": id, "metrics": {"m0.value": v0, "nbr.m1.value": vec![1.0; v0.len()]}})
}

fn expected_p(v0: &[f64], scale: f64) -> f64 {
    let mean = v0.iter().sum::<f64>() / v0.len() as f64;
    1.0 / (1.0 + mean.abs() * scale)
}

#[test]
fn predict_v2_metadata_metrics_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir(dir.path(), "lin-a", F, 0.5, false);
    let (addr, stop, h) = start(test_config(dir.path()));

    let r = post_json(
        addr,
        "/v1/predict",
        &json!({"windows": [window("vm1", &[1.0, 2.0, 3.0]), window("vm2", &[4.0])]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model_id"], "lin-a");
    assert_eq!(v["catalogue_hash"], "testhash");
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert_eq!(preds[0]["id"], "vm1");
    assert_eq!(preds[0]["t"], 3);
    assert!((preds[0]["p"].as_f64().unwrap() - expected_p(&[1.0, 2.0, 3.0], 0.5)).abs() < 1e-6);
    assert!((preds[1]["p"].as_f64().unwrap() - expected_p(&[4.0], 0.5)).abs() < 1e-6);
    assert_eq!(preds[1]["out_of_distribution"], false);

    // dense matrix form, single-window shorthand, OOD flag
    let mut row = vec![json!(null); F];
    row[0] = json!(2e7);
    let r = post_json(addr, "/v1/predict", &json!({"matrix": [row.clone(), row]}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["predictions"][0]["out_of_distribution"], true);

    // OIP: server / health / model metadata
    assert_eq!(get(addr, "/v2").json()["name"], "cloudformer");
    assert_eq!(get(addr, "/v2/health/live").json()["live"], true);
    assert_eq!(get(addr, "/v2/health/ready").json()["ready"], true);
    let m = get(addr, "/v2/models/cloudformer").json();
    assert_eq!(m["inputs"][0]["shape"], json!([-1, -1, F]));
    assert_eq!(m["versions"], json!(["lin-a"]));
    assert_eq!(get(addr, "/v2/models/lin-a/ready").json()["ready"], true);
    assert_eq!(
        get(addr, "/v2/models/cloudformer/versions/lin-a").status,
        200
    );
    assert_eq!(
        get(addr, "/v2/models/cloudformer/versions/old/ready").status,
        404
    );
    assert_eq!(get(addr, "/v2/models/resnet").status, 404);

    // OIP infer answers the same P̂ as /v1/predict: 2 windows padded to T=3, lengths [3, 1]
    let mut data = Vec::new();
    for (vals, t) in [(&[1.0, 2.0, 3.0][..], 3), (&[4.0][..], 1)] {
        for r in 0..3 {
            let mut row = vec![0.0f64; F];
            row[0] = vals.get(r).copied().filter(|_| r < t).unwrap_or(99.0);
            row[F / 2 + 1] = 1.0;
            data.extend(row);
        }
    }
    let body = json!({"id": "q1", "inputs": [
        {"name": "metrics", "shape": [2, 3, F], "datatype": "FP32", "data": data},
        {"name": "lengths", "shape": [2], "datatype": "INT32", "data": [3, 1]}]});
    let r = post_json(addr, "/v2/models/cloudformer/infer", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["id"], "q1");
    assert_eq!(v["model_version"], "lin-a");
    let out = &v["outputs"][0];
    assert_eq!(out["name"], "degradation");
    assert_eq!(out["shape"], json!([2]));
    assert!((out["data"][0].as_f64().unwrap() - preds[0]["p"].as_f64().unwrap()).abs() < 1e-6);
    assert!((out["data"][1].as_f64().unwrap() - preds[1]["p"].as_f64().unwrap()).abs() < 1e-6);
    assert_eq!(v["outputs"][2]["datatype"], "BOOL");

    // health
    assert_eq!(get(addr, "/healthz").status, 200);
    let ready = get(addr, "/readyz").json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["model_id"], "lin-a");
    assert!(ready["reload_error"].is_null());

    // Prometheus text
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    assert!(text.contains("cloudformer_http_requests_total{method=\"POST\",route=\"/v1/predict\",status=\"200\"} 2"), "{text}");
    assert!(
        text.contains("cloudformer_http_request_duration_seconds_count{route=\"/v1/predict\"} 2")
    );
    assert!(
        text.contains("cloudformer_windows_predicted_total 5"),
        "{text}"
    );
    assert!(
        text.contains("cloudformer_model_info{model_id=\"lin-a\",catalogue_hash=\"testhash\"} 1")
    );

    // every route in the OpenAPI document is served (answers something other than "no route")
    let doc = get(addr, "/openapi.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), serve::openapi::ROUTES.len());
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{name}", "cloudformer")
                .replace("{version}", "lin-a")
                .replace("{id}", "system.slice/x.service");
            let r = http(addr, &method.to_uppercase(), &concrete, &[], b"{}");
            let routed = !(r.status == 404 && r.text().contains("no route")) && r.status != 405;
            assert!(routed, "{method} {path}: {} {}", r.status, r.text());
        }
    }
    // live routes say live mode is off
    let r = get(addr, "/v1/tenants");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("live mode is off"));

    stop.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn a_client_stalled_mid_request_cannot_hold_up_shutdown() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir(dir.path(), "lin-drain", F, 1.0, false);
    let mut cfg = test_config(dir.path());
    cfg.drain_timeout = Duration::from_secs(1);
    let (addr, stop, h) = start(cfg);
    // Headers announce 100 bytes of body; 1 comes, then nothing.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = std::time::Instant::now();
    stop.send(()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        h.join().unwrap();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the server still waits for the stalled client 5 s after shutdown");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    drop(s);
    // The open-files limit is raised to the hard one.
    let soft = serve::raise_nofile().unwrap();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let hard: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(hard[3], hard[4], "{line}");
    assert_eq!(hard[3].parse::<u64>().ok(), Some(soft), "{line}");
}

#[test]
fn a_model_answering_nan_is_a_500_not_a_null_p() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir_nan_above(dir.path(), "lin-nan", F, 100.0);
    let (addr, stop, h) = start(test_config(dir.path()));
    let ok = post_json(
        addr,
        "/v1/predict",
        &json!({"windows": [window("a", &[1.0])]}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let bad = json!({"windows": [window("a", &[1.0]), window("b", &[500.0])]});
    let r = post_json(addr, "/v1/predict", &bad);
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("1 of 2 windows") && msg.contains("non-finite"),
        "{msg}"
    );
    assert!(!r.text().contains("null"), "{}", r.text());
    // The server keeps serving good windows.
    let ok = post_json(
        addr,
        "/v1/predict",
        &json!({"windows": [window("a", &[2.0])]}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    stop.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn thin_windows_are_refused_naming_what_is_missing_unless_partial() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir_floor(dir.path(), "lin-floor", F, 0.5);
    let (addr, stop, h) = start(test_config(dir.path()));
    // `window` sends 2 of the 6 features: coverage 1/3 < 0.5.
    let thin = json!({"windows": [window("full", &[1.0]), window("vm", &[1.0, 2.0])]});
    let mut full = json!({"id": "full", "metrics": {}});
    for name in feature_names(F) {
        full["metrics"][name] = json!([1.0, 2.0]);
    }
    let thin = {
        let mut t = thin;
        t["windows"][0] = full.clone();
        t
    };
    let r = post_json(addr, "/v1/predict", &thin);
    assert_eq!(r.status, 422, "{}", r.text());
    let e = r.json();
    assert_eq!(e["window"], 1);
    assert_eq!(
        e["missing_features"],
        json!(["m1.value", "m2.value", "nbr.m0.value", "nbr.m2.value"])
    );
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("window 1 (id \"vm\")")
            && msg.contains("0.333")
            && msg.contains("\"partial\": true"),
        "{msg}"
    );

    let mut partial = thin.clone();
    partial["partial"] = json!(true);
    let r = post_json(addr, "/v1/predict", &partial);
    assert_eq!(r.status, 200, "{}", r.text());
    let preds = r.json()["predictions"].clone();
    assert_eq!(preds[0]["partial"], false);
    assert_eq!(preds[1]["partial"], true);
    assert!((preds[1]["coverage"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-6);
    // A full window alone is answered without asking.
    let r = post_json(addr, "/v1/predict", &full);
    assert_eq!(r.status, 200, "{}", r.text());

    // The same rule on the Open Inference Protocol, with `parameters.partial`.
    let mut data = vec![json!(null); 2 * F];
    data[0] = json!(1.0);
    data[F] = json!(2.0);
    let infer = |params: serde_json::Value| {
        post_json(
            addr,
            "/v2/models/cloudformer/infer",
            &json!({"parameters": params, "inputs": [
                {"name": "metrics", "shape": [1, 2, F], "datatype": "FP32", "data": data}]}),
        )
    };
    let r = infer(json!({}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()["missing_features"].as_array().unwrap().len(),
        F - 1
    );
    let r = infer(json!({"partial": true}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = infer(json!({"partial": "yes"}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("parameters.partial is a string"),
        "{}",
        r.text()
    );
    let _ = stop.send(());
    h.join().unwrap();
}

#[test]
fn bad_inputs_get_named_4xx_json_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir(dir.path(), "lin-a", F, 0.5, false);
    let mut cfg = test_config(dir.path());
    cfg.max_body_bytes = 64 * 1024;
    cfg.limits = serve::Limits {
        max_windows: 4,
        max_t: 100,
    };
    let (addr, stop, h) = start(cfg);

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed",
            b"{\"windows\": [".to_vec(),
            400,
            "malformed JSON",
        ),
        ("not an object", b"[1,2]".to_vec(), 400, "invalid request"),
        ("empty body", b"".to_vec(), 400, "empty request body"),
        ("no windows", b"{}".to_vec(), 400, "no \"windows\""),
        (
            "empty windows",
            br#"{"windows": []}"#.to_vec(),
            400,
            "\"windows\" is empty",
        ),
        (
            "empty window",
            br#"{"windows": [{"metrics": {"m0.value": []}}]}"#.to_vec(),
            400,
            "is empty",
        ),
        (
            "no metrics",
            br#"{"windows": [{"metrics": {}}]}"#.to_vec(),
            400,
            "\"metrics\" is empty",
        ),
        (
            "unknown metric",
            br#"{"windows": [{"metrics": {"cpu.bogus": [1]}}]}"#.to_vec(),
            400,
            "unknown metric name \"cpu.bogus\"",
        ),
        (
            "ragged",
            br#"{"windows": [{"metrics": {"m0.value": [1], "m1.value": [1, 2]}}]}"#.to_vec(),
            400,
            "same number of seconds",
        ),
        (
            "NaN literal",
            br#"{"windows": [{"metrics": {"m0.value": [NaN]}}]}"#.to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "inf",
            br#"{"windows": [{"metrics": {"m0.value": [1e39]}}]}"#.to_vec(),
            400,
            "not a finite",
        ),
        (
            "string value",
            br#"{"windows": [{"metrics": {"m0.value": ["1"]}}]}"#.to_vec(),
            400,
            "invalid type",
        ),
        (
            "matrix width",
            br#"{"windows": [{"matrix": [[1, 2]]}]}"#.to_vec(),
            400,
            "row 0 has 2 values",
        ),
        (
            "both forms",
            br#"{"windows": [{"matrix": [[1,2,3,4,5,6]], "metrics": {"m0.value": [1]}}]}"#.to_vec(),
            400,
            "both",
        ),
        (
            "too many windows",
            format!(
                "{{\"windows\": [{}]}}",
                [r#"{"metrics":{"m0.value":[1]}}"#; 5].join(",")
            )
            .into_bytes(),
            413,
            "5 windows",
        ),
        (
            "too long",
            format!(
                "{{\"metrics\": {{\"m0.value\": [{}]}}}}",
                vec!["1"; 101].join(",")
            )
            .into_bytes(),
            413,
            "101 seconds",
        ),
        (
            "huge body",
            format!(
                "{{\"metrics\": {{\"m0.value\": [{}]}}}}",
                vec!["1.0"; 40_000].join(",")
            )
            .into_bytes(),
            413,
            "larger than the limit",
        ),
    ];
    for (name, body, status, needle) in &cases {
        let r = http(
            addr,
            "POST",
            "/v1/predict",
            &[("content-type", "application/json")],
            body,
        );
        assert_eq!(r.status, *status, "{name}: {}", r.text());
        let err = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(
            err.contains(needle),
            "{name}: error {err:?} should contain {needle:?}"
        );
    }
    let infer_cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "no inputs",
            json!({"inputs": []}),
            "missing input \"metrics\"",
        ),
        (
            "wrong F",
            json!({"inputs": [{"name": "metrics", "shape": [1, 1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            "expects 6",
        ),
        (
            "short data",
            json!({"inputs": [{"name": "metrics", "shape": [1, 2, F], "datatype": "FP32", "data": [1, 2, 3]}]}),
            "needs 12",
        ),
        (
            "bad length",
            json!({"inputs": [{"name": "metrics", "shape": [1, 1, F], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}, {"name": "lengths", "shape": [1], "datatype": "INT32", "data": [5]}]}),
            "lengths",
        ),
        (
            "bad datatype",
            json!({"inputs": [{"name": "metrics", "shape": [1, 1, F], "datatype": "BYTES", "data": ["a"]}]}),
            "datatype",
        ),
        (
            "unknown output",
            json!({"inputs": [{"name": "metrics", "shape": [1, F], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}], "outputs": [{"name": "logits"}]}),
            "unknown output",
        ),
    ];
    for (name, body, needle) in &infer_cases {
        let r = post_json(addr, "/v2/models/cloudformer/infer", body);
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        let err = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(
            err.contains(needle),
            "{name}: error {err:?} should contain {needle:?}"
        );
    }
    // unknown route / wrong method: JSON too
    let r = get(addr, "/v1/nope");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("no route"));
    let r = get(addr, "/v1/predict");
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].as_str().unwrap().contains("not allowed"));
    // a body that is not even UTF-8
    let r = http(addr, "POST", "/v1/predict", &[], &[0xff, 0xfe, 0x00, 0x7b]);
    assert_eq!(r.status, 400);

    // still serving
    let r = post_json(
        addr,
        "/v1/predict",
        &json!({"windows": [window("ok", &[1.0])]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    stop.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn bearer_token_auth_and_bind_policy() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir(dir.path(), "lin-a", F, 0.5, false);
    let tok_path = dir.path().join("token");
    std::fs::write(&tok_path, "s3cret-token\n").unwrap();
    let token = serve::read_token_file(&tok_path).unwrap();
    assert_eq!(token, "s3cret-token");
    let mut cfg = test_config(dir.path());
    cfg.token = Some(token);
    let (addr, stop, h) = start(cfg);
    let body = json!({"windows": [window("vm", &[1.0])]}).to_string();
    let r = http(addr, "POST", "/v1/predict", &[], body.as_bytes());
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("missing bearer token"));
    let r = http(
        addr,
        "POST",
        "/v1/predict",
        &[("authorization", "Bearer wrong")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("invalid bearer token"));
    let r = http(
        addr,
        "POST",
        "/v1/predict",
        &[("authorization", "Bearer s3cret-token")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(http(addr, "GET", "/metrics", &[], b"").status, 401);
    assert_eq!(
        http(addr, "GET", "/v2/models/cloudformer", &[], b"").status,
        401
    );
    // probes stay open
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(get(addr, "/readyz").status, 200);
    assert_eq!(get(addr, "/v2/health/ready").status, 200);
    stop.send(()).unwrap();
    h.join().unwrap();

    // Non-loopback without a token is refused; --insecure allows it.
    let mut cfg = test_config(dir.path());
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(serve::Server::bind(cfg.clone()))
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("--token-file"), "{err}");
    cfg.insecure = true;
    assert!(rt.block_on(serve::Server::bind(cfg)).is_ok());
    // empty token files are rejected
    std::fs::write(&tok_path, "  \n").unwrap();
    assert!(serve::read_token_file(&tok_path)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    // a missing model directory is a clear startup error
    let cfg = test_config(&dir.path().join("nope"));
    let err = rt
        .block_on(serve::Server::bind(cfg))
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("nope"), "{err}");
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn reload_on_change_rejects_bad_models_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir(dir.path(), "lin-a", F, 0.5, false);
    let mut cfg = test_config(dir.path());
    cfg.reload_poll = Some(Duration::from_millis(200));
    let (addr, stop, h) = start(cfg);
    let model_id = || {
        post_json(
            addr,
            "/v1/predict",
            &json!({"windows": [window("vm", &[2.0])]}),
        )
        .json()["model_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(model_id(), "lin-a");

    // a good new model is picked up
    std::thread::sleep(Duration::from_millis(20));
    write_engine_dir(dir.path(), "lin-b", F, 2.0, false);
    assert!(
        wait_for(Duration::from_secs(10), || model_id() == "lin-b"),
        "lin-b never served"
    );
    let p = post_json(
        addr,
        "/v1/predict",
        &json!({"windows": [window("vm", &[2.0])]}),
    )
    .json()["predictions"][0]["p"]
        .as_f64()
        .unwrap();
    assert!((p - expected_p(&[2.0], 2.0)).abs() < 1e-6);

    // a model that answers NaN is rejected; lin-b keeps serving; /readyz says why
    write_engine_dir(dir.path(), "lin-broken", F, 1.0, true);
    assert!(wait_for(Duration::from_secs(10), || !get(addr, "/readyz")
        .json()["reload_error"]
        .is_null()));
    let ready = get(addr, "/readyz").json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["model_id"], "lin-b");
    let err = ready["reload_error"].as_str().unwrap();
    assert!(
        err.contains("still serving the previous model") && err.contains("P̂ = NaN"),
        "{err}"
    );
    assert_eq!(model_id(), "lin-b");

    // an unreadable model file too
    std::fs::write(dir.path().join("engine.json"), "{not json").unwrap();
    assert!(wait_for(Duration::from_secs(10), || get(addr, "/readyz")
        .json()["reload_error"]
        .as_str()
        .is_some_and(|e| e.contains("engine.json"))));
    assert_eq!(model_id(), "lin-b");
    assert!(get(addr, "/metrics")
        .text()
        .contains("cloudformer_model_reloads_total{result=\"failed\"} 2"));

    // fixed → served, error cleared
    write_engine_dir(dir.path(), "lin-c", F, 1.0, false);
    assert!(wait_for(Duration::from_secs(10), || model_id() == "lin-c"));
    assert!(get(addr, "/readyz").json()["reload_error"].is_null());
    stop.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn concurrent_requests_are_micro_batched() {
    let dir = tempfile::tempdir().unwrap();
    // each forward pass takes 20 ms, so requests arriving meanwhile must share the next pass
    write_engine_dir_delay(dir.path(), "lin-slow", F, 0.5, false, 20);
    let (addr, stop, h) = start(test_config(dir.path()));
    let n = 24;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                let v = [i as f64, 1.0];
                let r = post_json(
                    addr,
                    "/v1/predict",
                    &json!({"windows": [window(&format!("vm{i}"), &v)]}),
                );
                (i, r.status, r.json())
            })
        })
        .collect();
    for hd in handles {
        let (i, status, v) = hd.join().unwrap();
        assert_eq!(status, 200, "{v}");
        // each answer is for its own window
        assert_eq!(v["predictions"][0]["id"], format!("vm{i}"));
        let p = v["predictions"][0]["p"].as_f64().unwrap();
        assert!(
            (p - expected_p(&[i as f64, 1.0], 0.5)).abs() < 1e-6,
            "vm{i}: {p}"
        );
    }
    let text = get(addr, "/metrics").text();
    let passes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cloudformer_batch_windows_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("batch histogram");
    assert!(
        text.contains(&format!("cloudformer_windows_predicted_total {}", n)),
        "{text}"
    );
    assert!(
        passes < n as u64,
        "{n} requests took {passes} forward passes: no batching"
    );
    stop.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn full_queue_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir_delay(dir.path(), "lin-slow", F, 0.5, false, 300);
    let mut cfg = test_config(dir.path());
    cfg.batch = serve::BatchConfig {
        max_batch: 1,
        max_wait: Duration::from_millis(1),
        queue: 1,
    };
    let (addr, stop, h) = start(cfg);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                post_json(
                    addr,
                    "/v1/predict",
                    &json!({"windows": [window(&format!("vm{i}"), &[1.0])]}),
                )
            })
        })
        .collect();
    let rs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let busy: Vec<_> = rs.iter().filter(|r| r.status == 503).collect();
    assert!(rs.iter().any(|r| r.status == 200));
    assert!(
        !busy.is_empty(),
        "statuses: {:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in busy {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("queue is full"));
    }
    assert!(rs.iter().all(|r| r.status == 200 || r.status == 503));
    stop.send(()).unwrap();
    h.join().unwrap();
}

#[test]
fn every_answer_names_the_model_that_computed_it_across_a_reload() {
    // Slow forward passes (60 ms) and concurrent clients while the model is swapped: an answer
    // computed by the old model must never be labelled with the new one (or the reverse).
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir_delay(dir.path(), "lin-a", F, 0.5, false, 60);
    let mut cfg = test_config(dir.path());
    cfg.reload_poll = Some(Duration::from_millis(50));
    let (addr, stop, h) = start(cfg);
    let scale = |id: &str| match id {
        "lin-a" => 0.5,
        "lin-b" => 2.0,
        other => panic!("unexpected model id {other}"),
    };
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_millis(2500) {
                    let v = [1.0 + c as f64];
                    let r = post_json(addr, "/v1/predict", &json!({"windows": [window("vm", &v)]}));
                    assert_eq!(r.status, 200, "{}", r.text());
                    let j = r.json();
                    let id = j["model_id"].as_str().unwrap().to_string();
                    let p = j["predictions"][0]["p"].as_f64().unwrap();
                    seen.push((id, v, p));
                }
                seen
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    write_engine_dir_delay(dir.path(), "lin-b", F, 2.0, false, 60);
    let answers: Vec<(String, [f64; 1], f64)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let _ = stop.send(());
    h.join().unwrap();
    let mut by_model = std::collections::BTreeMap::new();
    for (id, v, p) in &answers {
        let want = expected_p(v, scale(id));
        assert!(
            (p - want).abs() < 1e-6,
            "answer labelled {id} has P̂ {p}, which {id} gives as {want}"
        );
        *by_model.entry(id.clone()).or_insert(0) += 1;
    }
    assert!(
        by_model.len() == 2,
        "the reload did not happen during the run: {by_model:?}"
    );
}

#[test]
fn made_up_methods_do_not_grow_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir(dir.path(), "lin-a", F, 0.5, false);
    let (addr, stop, h) = start(test_config(dir.path()));
    let burst = |from: usize| {
        for i in from..from + 100 {
            let method = format!("M{i}{}", "X".repeat(300));
            let r = http(addr, &method, &format!("/nope/{i}"), &[], b"");
            assert!(r.status >= 400, "{method}: {}", r.status);
        }
        get(addr, "/metrics").text()
    };
    // /metrics's own series appear after its first answer: warm them up.
    get(addr, "/metrics");
    let first = burst(0);
    let second = burst(100);
    let _ = stop.send(());
    h.join().unwrap();
    assert!(!second.contains("XXXX"), "a made-up method became a label");
    assert!(second.contains("method=\"other\""), "{second}");
    // The second hundred adds no series: only counter values change.
    assert_eq!(
        first.lines().count(),
        second.lines().count(),
        "/metrics grew from {} to {} lines",
        first.lines().count(),
        second.lines().count()
    );
}
