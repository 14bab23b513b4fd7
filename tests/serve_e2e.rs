//! End to end over a real socket: `cloudformer serve` with the bundled checkpoint
//! (`models/default`), real windows from the repo's dataset v1 (`dataset/v1`, the one the bundled model was trained on) posted to
//! `/v1/predict` as dense matrices, answers compared with `cloudformer predict --json` on the
//! same runs. Both artefacts are committed; the test fails when either is missing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{bin, get, post, spawn_serve};

#[test]
fn served_predictions_match_the_cli_on_the_repo_dataset() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/default");
    let data = root.join("dataset/v1");
    assert!(
        model.join("config.json").exists(),
        "the bundled model {} is missing (see models/default/README.md to rebuild it)",
        model.display()
    );
    assert!(
        data.join("runs.parquet").exists(),
        "the repo dataset {} is missing (see dataset/v1/README.md)",
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
        .map(|r| serde_json::json!({"id": r.key(), "matrix": common::matrix_of(r)}))
        .collect();
    let body = serde_json::json!({ "windows": windows }).to_string();

    let (mut server, addr) = spawn_serve(&model, &[]);
    let resp = post(addr, "/v1/predict", body.as_bytes());
    // What a new user might post: 3 s of one metric, and an all-null window. Refused (422,
    // naming what is missing) unless the request asks for partial answers, then flagged.
    let f = dataset::catalogue::Catalogue::builtin().n_features();
    let sparse_windows = serde_json::json!([
        {"id": "sparse", "metrics": {"cpu.usage_pct": [50, 50, 50]}},
        {"id": "null", "matrix": vec![vec![serde_json::Value::Null; f]; 5]},
    ]);
    let refused = post(
        addr,
        "/v1/predict",
        serde_json::json!({"windows": sparse_windows})
            .to_string()
            .as_bytes(),
    );
    let refused_null = post(
        addr,
        "/v1/predict",
        serde_json::json!({"windows": [sparse_windows[1].clone()]})
            .to_string()
            .as_bytes(),
    );
    let flagged = post(
        addr,
        "/v1/predict",
        serde_json::json!({"windows": sparse_windows, "partial": true})
            .to_string()
            .as_bytes(),
    );
    let _ = server.kill();
    let _ = server.wait();
    for (r, id) in [(&refused, "sparse"), (&refused_null, "null")] {
        assert_eq!(r.status, 422, "{}", r.text());
        let e = r.json();
        let msg = e["error"].as_str().unwrap();
        assert!(
            msg.contains(&format!("(id \"{id}\")")) && msg.contains("partial"),
            "{msg}"
        );
        let missing = e["missing_features"].as_array().unwrap();
        assert!(missing.len() > 10, "{e}");
        assert!(e["coverage"].as_f64().unwrap() < e["coverage_floor"].as_f64().unwrap());
        // The one metric sent is not named missing; an all-null window misses everything used.
        let named = |n: &str| missing.iter().any(|m| m == n);
        assert_eq!(named("cpu.usage_pct"), id == "null", "{e}");
    }
    assert_eq!(flagged.status, 200, "{}", flagged.text());
    for p in flagged.json()["predictions"].as_array().unwrap() {
        let c = p["coverage"].as_f64().unwrap();
        assert!(c < 0.05, "{p}: coverage {c}");
        assert_eq!(p["out_of_distribution"], true, "{p}: too sparse to trust");
        assert_eq!(p["partial"], true, "{p}");
    }
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    let preds = v["predictions"].as_array().expect("predictions");
    assert_eq!(preds.len(), picked.len());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let floor = config["normalizer"]["coverage_floor"]
        .as_f64()
        .unwrap_or(0.0);
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
        // Runs of the campaign observe enough of what the model uses not to be flagged for it.
        let c = p["coverage"].as_f64().unwrap();
        assert!(
            c >= floor && c <= 1.0,
            "{p}: coverage below the floor {floor}"
        );
        assert_eq!(p["t"].as_u64(), Some(r.t as u64));
        assert_eq!(p["partial"], false, "{p}");
    }
    eprintln!(
        "{} windows: served P̂ equals `cloudformer predict` to {worst:e}",
        picked.len()
    );
    let ck: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    // The directory's own checkpoint, or the ensemble of it and its members/.
    let served = model::Predictor::load(&model).unwrap();
    assert_eq!(v["model_id"], served.model_id());
    assert_eq!(
        served.checkpoint().model_id,
        ck["model_id"].as_str().unwrap()
    );
    assert_eq!(
        v["catalogue_hash"],
        dataset::catalogue::Catalogue::builtin().hash()
    );
}

/// Polls `/readyz` until `done` accepts it (10 s at most).
fn wait_readyz(
    addr: std::net::SocketAddr,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t0 = std::time::Instant::now();
    loop {
        let v = get(addr, "/readyz").json();
        if done(&v) {
            return v;
        }
        assert!(
            t0.elapsed().as_secs() < 10,
            "/readyz never reached the expected state: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn sighup_reloads_the_model_and_a_bad_one_is_rejected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for f in [model::CONFIG_FILE, model::WEIGHTS_FILE] {
        std::fs::copy(root.join("models/default").join(f), model.join(f)).unwrap();
    }
    let (mut server, addr) = spawn_serve(&model, &[]);
    let hup = |server: &std::process::Child| {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill -HUP failed");
    };
    let first = wait_readyz(addr, |v| v["ready"] == true);
    let old_id = first["model_id"].as_str().unwrap().to_string();
    // The bundled model computes no derived inputs (a model trained with `--derived` lists them).
    assert_eq!(
        first["model_derived_inputs"],
        serde_json::json!([]),
        "{first}"
    );
    let f = first["n_features"].as_u64().unwrap() as usize;
    let body =
        serde_json::json!({"windows": [{"id": "w", "matrix": vec![vec![0.0; f]; 5]}]}).to_string();

    // A forged id in config.json (same weights and settings): the id is the files' hash, so
    // SIGHUP is rejected naming both ids and the old model serves on.
    let cfg_path = model.join(model::CONFIG_FILE);
    let original = std::fs::read_to_string(&cfg_path).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&original).unwrap();
    cfg["model_id"] = serde_json::json!("cf-forged");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    hup(&server);
    let v = wait_readyz(addr, |v| v["reloads_failed"] == 1);
    let err = v["reload_error"].as_str().unwrap_or_default().to_string();
    assert!(
        err.contains("records model id cf-forged") && err.contains(&old_id),
        "{err}"
    );
    assert_eq!(v["model_id"], old_id.as_str());
    std::fs::write(&cfg_path, &original).unwrap();

    // A new model (one answer-shaping setting changed, saved properly): SIGHUP switches to it,
    // under its own id.
    let (mut ck, net) = model::Checkpoint::load(&model, &model::Device::Cpu).unwrap();
    ck.normalizer.coverage_floor *= 0.5;
    ck.save(&model, &net).unwrap();
    let new_id = ck.model_id.clone();
    assert_ne!(new_id, old_id, "another setting, another id");
    hup(&server);
    let v = wait_readyz(addr, |v| v["reloads_ok"] == 1);
    assert_eq!(v["model_id"], new_id.as_str(), "{v}");
    let r = post(addr, "/v1/predict", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model_id"], new_id.as_str());

    // A second checkpoint under members/: SIGHUP makes the directory an ensemble of two.
    let member = model.join(model::MEMBERS_DIR).join("seed-2");
    std::fs::create_dir_all(&member).unwrap();
    for f in [model::CONFIG_FILE, model::WEIGHTS_FILE] {
        std::fs::copy(model.join(f), member.join(f)).unwrap();
    }
    hup(&server);
    let v = wait_readyz(addr, |v| v["reloads_ok"] == 2);
    let ens_id = v["model_id"].as_str().unwrap().to_string();
    assert!(ens_id.starts_with("ens-"), "{v}");
    assert_eq!(
        v["model_members"],
        serde_json::json!([new_id, new_id]),
        "{v}"
    );
    let r = post(addr, "/v1/predict", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model_id"], ens_id.as_str());

    // Truncated weights: SIGHUP is rejected, the error is on /readyz, the old model serves on.
    let w = model.join(model::WEIGHTS_FILE);
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    hup(&server);
    let v = wait_readyz(addr, |v| v["reloads_failed"] == 2);
    let err = v["reload_error"].as_str().unwrap_or_default().to_string();
    let r = post(addr, "/v1/predict", body.as_bytes());
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        err.contains("rejected") && err.contains(model::WEIGHTS_FILE),
        "reload error does not name the bad file: {err}"
    );
    assert_eq!(v["model_id"], ens_id.as_str());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model_id"], ens_id.as_str());
}
