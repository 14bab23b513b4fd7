//! NVIDIA's `tritonclient.http`, unchanged and with its defaults (binary tensor data in and out),
//! against `cloudformer serve` with the bundled model: the same P̂ as the JSON path
//! (`/v1/predict`) for real windows of the repo's dataset v1, padded into one batch with
//! `lengths`. The client lives in the venv `scripts/setup.sh` makes (`.venv-clients`, pinned in
//! `scripts/python-clients.txt`); without it the test fails naming it.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{post, spawn_serve};

#[test]
fn tritonclient_with_binary_tensors_gets_the_p_of_the_json_path() {
    let name = "tritonclient_with_binary_tensors_gets_the_p_of_the_json_path";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-clients/bin/python");
    let probe = Command::new(&python)
        .args(["-c", "import tritonclient.http, numpy"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        collector::testing::cannot_run(
            name,
            &format!(
                "{} cannot import tritonclient.http (run scripts/setup.sh)",
                python.display()
            ),
        );
        return;
    }
    let runs = train::data::load(&root.join("dataset/v1")).expect("load dataset/v1");
    let picked: Vec<&train::data::Run> = runs
        .iter()
        .step_by((runs.len() / 6).max(1))
        .take(6)
        .collect();
    let f = picked[0].f;
    let t_max = picked.iter().map(|r| r.t).max().unwrap();
    // One padded batch [B, T, F] (NaN = missing, and the padding), with each window's length.
    let mut flat: Vec<Option<f32>> = Vec::with_capacity(picked.len() * t_max * f);
    for r in &picked {
        flat.extend(r.x.iter().map(|v| v.is_finite().then_some(*v)));
        flat.extend(std::iter::repeat_n(None, (t_max - r.t) * f));
    }
    let lengths: Vec<usize> = picked.iter().map(|r| r.t).collect();

    let model = root.join("models/default");
    let (mut server, addr) = spawn_serve(&model, &[]);
    // The JSON path.
    let windows: Vec<serde_json::Value> = picked
        .iter()
        .map(|r| serde_json::json!({"matrix": common::matrix_of(r)}))
        .collect();
    let json_answer = post(
        addr,
        "/v1/predict",
        serde_json::json!({"windows": windows})
            .to_string()
            .as_bytes(),
    );
    // tritonclient.
    let mut child = Command::new(&python)
        .arg(root.join("tests/triton/infer.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tests/triton/infer.py");
    let input = serde_json::json!({
        "url": addr.to_string(),
        "shape": [picked.len(), t_max, f],
        "flat": flat,
        "lengths": lengths,
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        out.status.success(),
        "tritonclient failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let triton: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("tritonclient: {triton}");
    assert_eq!(triton["binary_in"], true, "the client sent binary tensors");
    assert_eq!(
        triton["binary_out"], true,
        "every output came back as binary data"
    );

    assert_eq!(json_answer.status, 200, "{}", json_answer.text());
    let preds = json_answer.json()["predictions"].clone();
    let preds = preds.as_array().expect("predictions");
    assert_eq!(preds.len(), picked.len());
    for (i, p) in preds.iter().enumerate() {
        let json_p = p["p"].as_f64().unwrap();
        let tri_p = triton["degradation"][i].as_f64().unwrap();
        assert!(
            (json_p - tri_p).abs() < 1e-5,
            "window {i}: P̂ {json_p} over JSON, {tri_p} over tritonclient"
        );
        // std comes from MC-dropout passes (a seeded stream that moves on between requests):
        // a real number on both paths, not the same draw.
        let tri_std = triton["degradation_std"][i].as_f64().unwrap();
        assert!(
            tri_std.is_finite() && tri_std >= 0.0,
            "window {i}: std {tri_std}"
        );
        assert_eq!(
            p["out_of_distribution"].as_bool(),
            triton["out_of_distribution"][i].as_bool(),
            "window {i}"
        );
    }
}
