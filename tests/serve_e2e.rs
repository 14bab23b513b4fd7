//! End to end over a real socket: `cloudformer serve` with the bundled checkpoint
//! (`models/default`), real windows from the repo's dataset (`dataset/data`) posted to
//! `/v1/predict` as dense matrices, answers compared with `cloudformer predict --json` on the
//! same runs. Both artefacts are committed; the test fails when either is missing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{bin, http, spawn_server};

#[test]
fn served_predictions_match_the_cli_on_the_repo_dataset() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/default");
    let data = root.join("dataset/data");
    assert!(
        model.join("config.json").exists(),
        "the bundled model {} is missing (see models/default/README.md to rebuild it)",
        model.display()
    );
    assert!(
        data.join("runs.parquet").exists(),
        "the repo dataset {} is missing (see dataset/data/README.md)",
        data.display()
    );

    // The CLI's answers.
    let out = bin()
        .args(["predict", "--json", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run cloudformer predict");
    assert!(
        out.status.success(),
        "predict failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let cli: BTreeMap<String, f64> = cli
        .iter()
        .map(|v| {
            (
                format!(
                    "{}/{}",
                    v["run_id"].as_str().unwrap(),
                    v["tenant"].as_str().unwrap()
                ),
                v["p"].as_f64().unwrap(),
            )
        })
        .collect();

    // The same runs, as the server's clients would send them (null = missing value).
    let runs = train::data::load(&data).expect("load the repo dataset");
    assert_eq!(
        runs.len(),
        cli.len(),
        "predict covers every labelled tenant-run"
    );
    let picked: Vec<&train::data::Run> = runs.iter().step_by((runs.len() / 24).max(1)).collect();
    let windows: Vec<serde_json::Value> = picked
        .iter()
        .map(|r| {
            let matrix: Vec<Vec<Option<f32>>> =
                r.x.chunks(r.f)
                    .map(|row| row.iter().map(|v| v.is_finite().then_some(*v)).collect())
                    .collect();
            serde_json::json!({"id": r.key(), "matrix": matrix})
        })
        .collect();
    let body = serde_json::json!({ "windows": windows }).to_string();

    let (mut server, addr) = spawn_server(&[
        "--quiet",
        "serve",
        "--model",
        model.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--reload-poll-s",
        "0",
    ]);
    let resp = http(addr, "POST", "/v1/predict", Some(&body));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let v = resp.json();
    let preds = v["predictions"].as_array().expect("predictions");
    assert_eq!(preds.len(), picked.len());
    let mut worst = 0f64;
    for (r, p) in picked.iter().zip(preds) {
        assert_eq!(p["id"].as_str(), Some(r.key().as_str()));
        let served = p["p"].as_f64().unwrap();
        let want = cli[&r.key()];
        worst = worst.max((served - want).abs());
        assert!(
            (served - want).abs() < 1e-5,
            "{}: served {served} vs cli {want}",
            r.key()
        );
        assert!(p["std"].as_f64().unwrap() >= 0.0);
        assert_eq!(p["t"].as_u64(), Some(r.t as u64));
    }
    eprintln!(
        "{} windows: served P̂ equals `cloudformer predict` to {worst:e}",
        picked.len()
    );
    let ck: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["model_id"], ck["model_id"]);
    assert_eq!(
        v["catalogue_hash"],
        dataset::catalogue::Catalogue::builtin().hash()
    );
}
