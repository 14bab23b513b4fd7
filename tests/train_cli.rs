//! End-to-end tests of `cloudformer train / eval / report / predict` on a tiny real dataset:
//! Parquet sample files written with the dataset crate's own segment writer and a real runs
//! table, then the real binary.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use dataset::catalogue::Catalogue;
use dataset::runs::{runs_path, write_runs, Placement, RunKind, RunRecord, RunStatus, Scenario};
use dataset::samples::{segment_file_name, SampleRow, SegmentMeta, SegmentWriter};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloudformer"));
    c.env("RAYON_NUM_THREADS", "1");
    c
}

/// A tiny deterministic PRNG (xorshift) so the test needs no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f32 / 10_000.0
    }
}

/// Writes `apps` × `runs_per_app` single-tenant runs of `secs` seconds into `dir`. P falls with a
/// neighbour-pressure feature; apps with index ≥ 2 also get dynamic scenarios.
fn write_dataset(
    dir: &Path,
    apps: &[&str],
    runs_per_app: usize,
    secs: usize,
    hash_override: Option<&str>,
) {
    let cat = Catalogue::builtin();
    let f = cat.n_features();
    let n_host = cat.host_column_names().len();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut records = Vec::new();
    let mut start: i64 = 1_700_000_000_000_000_000;
    for (ai, app) in apps.iter().enumerate() {
        for i in 0..runs_per_app {
            let run_id = format!("{app}-{i}");
            let samples_dir = format!("samples/app={app}/run={run_id}");
            let mut meta = SegmentMeta::new(cat, BTreeMap::new());
            if let Some(h) = hash_override {
                meta.catalogue_hash = h.to_string();
            }
            let path = dir.join(&samples_dir).join(segment_file_name(start, 1));
            let mut w = SegmentWriter::create(&path, cat, &meta).unwrap();
            let pressure = rng.next();
            for s in 0..secs {
                let mut features = vec![f32::NAN; f];
                for (j, v) in features.iter_mut().enumerate().take(f / 2) {
                    *v = rng.next() * 10.0 + j as f32 + ai as f32;
                }
                for v in features.iter_mut().skip(f / 2) {
                    *v = pressure * 100.0 + rng.next();
                }
                w.push(&SampleRow {
                    ts_ns: start + s as i64 * 1_000_000_000,
                    seq: s as u32,
                    tenant: "t0".into(),
                    n_neighbours: 1,
                    dt_s: 1.0,
                    gap: false,
                    collect_us: 100,
                    lateness_us: 10,
                    features,
                    host: vec![f32::NAN; n_host],
                })
                .unwrap();
            }
            w.close().unwrap();
            let p = (1.0 - 0.7 * pressure as f64).clamp(0.05, 1.0);
            records.push(RunRecord {
                run_id,
                tenant: "t0".into(),
                app: app.to_string(),
                kind: RunKind::Colocated,
                scenario: if ai >= 2 && i % 2 == 0 {
                    Scenario::Periodic
                } else {
                    Scenario::Static
                },
                level: "l1".into(),
                trace: "static".into(),
                placement: Placement::SameCore,
                n_tenants: 2,
                perf_metric: "ops".into(),
                higher_is_better: true,
                perf_actual: p * 100.0,
                perf_ideal: 100.0,
                p,
                p_raw: p,
                label_noise: 0.02,
                status: RunStatus::Ok,
                catalogue_hash: hash_override.unwrap_or(cat.hash()).to_string(),
                samples_dir,
                start_ns: start,
                end_ns: start + secs as i64 * 1_000_000_000,
                ..Default::default()
            });
            start += 3_600_000_000_000;
        }
    }
    write_runs(&runs_path(dir), &records).unwrap();
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout:\n{so}\nstderr:\n{se}"
    );
    so.into_owned()
}

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SMALL: [&str; 8] = [
    "--epochs",
    "2",
    "--blocks",
    "1",
    "--max-len",
    "16",
    "--lr",
    "1e-3",
];

#[test]
fn train_predict_eval_report_on_a_small_real_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, &["redis", "nginx", "pgbench", "fio"], 5, 12, None);
    let model = tmp.path().join("model");
    run_ok(
        bin()
            .args(["-q", "train", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&model)
            .args(SMALL),
    );
    for f in [
        "config.json",
        "model.safetensors",
        "curve.csv",
        "train.json",
        "last/state.json",
        "last/optimizer.safetensors",
    ] {
        assert!(model.join(f).exists(), "{f} missing");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["training"]["options"]["lr"], 1e-3);
    assert_eq!(cfg["training"]["options"]["epochs"], 2);
    assert_eq!(cfg["training"]["options"]["loss"], "logcosh");
    assert_eq!(cfg["catalogue_hash"], Catalogue::builtin().hash());

    // --resume continues from the last epoch
    run_ok(
        bin()
            .args(["-q", "train", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&model)
            .args([
                "--epochs",
                "3",
                "--blocks",
                "1",
                "--max-len",
                "16",
                "--lr",
                "1e-3",
                "--resume",
            ]),
    );
    let curve = std::fs::read_to_string(model.join("curve.csv")).unwrap();
    assert_eq!(curve.lines().count(), 4, "{curve}");
    assert!(curve.lines().nth(3).unwrap().starts_with("3,"), "{curve}");

    let out = run_ok(
        bin()
            .args(["predict", "--json", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data),
    );
    let v: Vec<serde_json::Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v.len(), 20);
    for p in &v {
        let x = p["p"].as_f64().unwrap();
        assert!(x > 0.0 && x < 1.0, "{p}");
        assert!(p["run_id"].as_str().unwrap().contains('-') && p["tenant"] == "t0");
    }

    let res = tmp.path().join("results");
    run_ok(
        bin()
            .args([
                "-q",
                "eval",
                "--protocol",
                "paper",
                "--splits",
                "2",
                "--models",
                "mean,lr,gbdt,cf",
                "--early",
                "5",
                "--data",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&res)
            .args(SMALL),
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(res.join("results.json")).unwrap()).unwrap();
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 4);
    for m in models {
        assert!(
            m["summary"]["mae_mean"].as_f64().unwrap().is_finite(),
            "{m}"
        );
    }
    assert_eq!(r["splits"].as_array().unwrap().len(), 2);
    let md = std::fs::read_to_string(res.join("summary.md")).unwrap();
    assert!(
        md.contains("Label-noise floor") && md.contains("| cf |"),
        "{md}"
    );
    run_ok(
        bin()
            .args(["-q", "report", "--results"])
            .arg(&res)
            .arg("--out")
            .arg(tmp.path().join("report")),
    );
    assert!(tmp.path().join("report/report.html").exists());
}

#[test]
fn bad_inputs_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // missing dataset
    let e = run_err(
        bin()
            .args(["train", "--data", "/nonexistent/cf-data", "--out"])
            .arg(tmp.path().join("m")),
    );
    assert!(e.contains("/nonexistent/cf-data"), "{e}");
    // empty dataset: a runs table with no runs
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    write_runs(&runs_path(&empty), &[]).unwrap();
    let e = run_err(
        bin()
            .args(["train", "--data"])
            .arg(&empty)
            .arg("--out")
            .arg(tmp.path().join("m")),
    );
    assert!(e.contains("empty"), "{e}");
    // one application only: eval refuses, naming it
    let one = tmp.path().join("one");
    write_dataset(&one, &["redis"], 3, 6, None);
    let e = run_err(
        bin()
            .args(["eval", "--models", "mean", "--data"])
            .arg(&one)
            .arg("--out")
            .arg(tmp.path().join("r")),
    );
    assert!(
        e.contains("only 1 application") && e.contains("redis"),
        "{e}"
    );
    // mismatched catalogue in the sample files
    let bad = tmp.path().join("bad");
    write_dataset(&bad, &["redis", "nginx"], 2, 6, Some("deadbeef"));
    let e = run_err(
        bin()
            .args(["eval", "--models", "mean", "--data"])
            .arg(&bad)
            .arg("--out")
            .arg(tmp.path().join("r2")),
    );
    assert!(e.contains("deadbeef") && e.contains("catalogue"), "{e}");
    // as many validation applications as there are: none left to train on, refused, no OUT
    let three = tmp.path().join("three");
    write_dataset(&three, &["redis", "nginx", "bzip2"], 2, 6, None);
    let e = run_err(
        bin()
            .args(["train", "--val-count", "3", "--data"])
            .arg(&three)
            .arg("--out")
            .arg(tmp.path().join("m3")),
    );
    assert!(e.contains("--val-count 3 with 3 applications"), "{e}");
    assert!(!tmp.path().join("m3").exists());
    // a model trained on another catalogue
    let data = tmp.path().join("data");
    write_dataset(&data, &["redis", "nginx"], 3, 8, None);
    let model = tmp.path().join("model");
    run_ok(
        bin()
            .args(["-q", "train", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&model)
            .args(["--epochs", "1", "--blocks", "1", "--max-len", "8"]),
    );
    let cfgp = model.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfgp).unwrap()).unwrap();
    cfg["catalogue_hash"] = "0123abcd".into();
    std::fs::write(&cfgp, serde_json::to_string(&cfg).unwrap()).unwrap();
    let e = run_err(
        bin()
            .args(["predict", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data),
    );
    assert!(
        e.contains("0123abcd") && e.contains(Catalogue::builtin().hash()),
        "{e}"
    );
    // unknown model name
    let e = run_err(
        bin()
            .args(["eval", "--models", "xgb", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("r3")),
    );
    assert!(e.contains("unknown model"), "{e}");
    // no validation application: refused while parsing, before OUT is made
    let r4 = tmp.path().join("r4");
    let e = run_err(
        bin()
            .args(["eval", "--models", "mean", "--val-apps", "0", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&r4),
    );
    assert!(e.contains("--val-apps") && e.contains("at least 1"), "{e}");
    assert!(!r4.exists(), "{} was made by a refused eval", r4.display());
}

#[test]
fn eval_runs_in_parts_with_a_time_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, &["redis", "nginx", "pgbench", "fio"], 5, 12, None);
    let res = tmp.path().join("results");
    let eval = |seed: &str| {
        let mut c = bin();
        c.args(["-q", "eval", "--protocol", "paper", "--splits", "2"])
            .args(["--models", "mean,dt", "--early", "5", "--seed", seed])
            .args(["--stop-after", "1ms", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&res);
        c
    };
    // A 1-ms budget: each call computes one fold and stops; the fourth completes the four.
    for call in 1..=3 {
        let out = eval("7").output().unwrap();
        let se = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{se}");
        assert!(
            se.contains(&format!("{call} of 4 folds")),
            "call {call}: {se}"
        );
        assert!(!res.join("results.json").exists());
    }
    run_ok(&mut eval("7"));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(res.join("results.json")).unwrap()).unwrap();
    for m in r["models"].as_array().unwrap() {
        assert_eq!(m["fold_seconds"].as_array().unwrap().len(), 2, "{m}");
    }
    let md = std::fs::read_to_string(res.join("summary.md")).unwrap();
    assert!(md.contains("## Seconds per fold"), "{md}");
    // Another seed is another evaluation: refused, naming the difference.
    let e = run_err(&mut eval("8"));
    assert!(e.contains("plan.options.seed: 7 before, 8 now"), "{e}");
}

#[test]
fn eval_trains_a_seed_ensemble_per_fold_with_members() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, &["redis", "nginx", "pgbench", "fio"], 4, 10, None);
    let eval = |members: &str, out: &Path| {
        run_ok(
            bin()
                .args(["-q", "eval", "--protocol", "paper", "--splits", "1"])
                .args([
                    "--models",
                    "cf-temporal",
                    "--keep-checkpoints",
                    "--members",
                    members,
                ])
                .arg("--data")
                .arg(&data)
                .arg("--out")
                .arg(out)
                .args(SMALL),
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        r
    };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let r1 = eval("1", &one);
    let r2 = eval("2", &two);
    let chosen = |r: &serde_json::Value| r["models"][0]["chosen"][0].as_str().unwrap().to_owned();
    assert!(chosen(&r2).starts_with("members=2: "), "{}", chosen(&r2));
    assert_eq!(chosen(&r2).matches(" | ").count(), 1, "{}", chosen(&r2));
    assert!(!chosen(&r1).contains("members"), "{}", chosen(&r1));
    assert_eq!(r2["options"]["members"], 2);
    // The second member trained beside the first, in its own directory.
    let split = r2["splits"][0]["name"].as_str().unwrap();
    let member0 = two.join("checkpoints").join(split).join("cf-temporal");
    assert!(member0.join("curve.csv").exists(), "{}", member0.display());
    assert!(member0.join("member-1").join("curve.csv").exists());
    assert!(!one
        .join("checkpoints")
        .join(split)
        .join("cf-temporal/member-1")
        .exists());
    // Another member count is another evaluation.
    let e = run_err(
        bin()
            .args(["-q", "eval", "--protocol", "paper", "--splits", "1"])
            .args(["--models", "cf-temporal", "--members", "3", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&two)
            .args(SMALL),
    );
    assert!(e.contains("plan.options.members"), "{e}");
    let e = run_err(bin().args(["eval", "--members", "0", "--data"]).arg(&data));
    assert!(e.contains("--members") && e.contains("at least 1"), "{e}");
}

#[test]
fn train_learns_from_several_dataset_directories() {
    let tmp = tempfile::tempdir().unwrap();
    // Two campaigns whose run ids collide ("redis-0" in both) and share applications.
    let data = tmp.path().join("data");
    write_dataset(&data, &["redis", "nginx", "pgbench", "fio"], 4, 8, None);
    let idle = tmp.path().join("idle");
    write_dataset(&idle, &["redis", "nginx"], 3, 8, None);
    let one = tmp.path().join("m1");
    let both = tmp.path().join("m2");
    let summary = |model: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(model.join("train.json")).unwrap()).unwrap()
    };
    let small = [
        "--epochs",
        "1",
        "--blocks",
        "1",
        "--max-len",
        "8",
        "--val-apps",
        "fio",
    ];
    run_ok(
        bin()
            .args(["-q", "train", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&one)
            .args(small),
    );
    run_ok(
        bin()
            .args(["-q", "train", "--data"])
            .arg(&data)
            .arg("--data")
            .arg(&idle)
            .arg("--out")
            .arg(&both)
            .args(small),
    );
    let (s1, s2) = (summary(&one), summary(&both));
    assert_eq!(s1["n_train_runs"], 12, "{s1}");
    // Every run of both directories trains (none lost to a run-id collision) ...
    assert_eq!(s2["n_train_runs"], 18, "{s2}");
    // ... the applications are merged by name, and the directories are recorded.
    assert_eq!(s2["train_apps"], s1["train_apps"], "{s2}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(both.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["training"]["extra"]["data"].as_str(),
        Some(&*format!("{} + {}", data.display(), idle.display())),
        "{cfg}"
    );
    assert_same_directory_twice_refused(&["train"], &data, &tmp.path().join("m3"));

    // `--repeat idle=2` counts every run of the small directory twice; a name that matches no
    // directory is refused before anything is written.
    let twice = tmp.path().join("m4");
    let with_idle = |out: &Path, repeat: &str| {
        let mut c = bin();
        c.args(["-q", "train", "--data"])
            .arg(&data)
            .arg("--data")
            .arg(&idle)
            .arg("--out")
            .arg(out)
            .args(["--repeat", repeat])
            .args(small);
        c
    };
    run_ok(&mut with_idle(&twice, "idle=2"));
    assert_eq!(summary(&twice)["n_train_runs"], 24, "{}", summary(&twice));
    let none = tmp.path().join("m5");
    let e = run_err(&mut with_idle(&none, "idel=2"));
    assert!(
        e.contains("--repeat idel=2") && e.contains("\"idel\""),
        "{e}"
    );
    assert!(
        !none.exists(),
        "{} was made by a refused train",
        none.display()
    );
}

#[test]
fn eval_takes_several_dataset_directories() {
    let tmp = tempfile::tempdir().unwrap();
    // Two campaigns whose run ids collide and share applications, and one only the second has.
    let data = tmp.path().join("data");
    write_dataset(&data, &["redis", "nginx", "pgbench"], 3, 8, None);
    let idle = tmp.path().join("idle");
    write_dataset(&idle, &["redis", "fio"], 2, 8, None);
    let res = tmp.path().join("results");
    run_ok(
        bin()
            .args(["-q", "eval", "--protocol", "loao", "--models", "mean,rf"])
            .args(["--early", "5", "--data"])
            .arg(&data)
            .arg("--data")
            .arg(&idle)
            .arg("--out")
            .arg(&res),
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(res.join("results.json")).unwrap()).unwrap();
    // Every run of both directories is evaluated (none lost to a run-id collision), and the
    // applications are merged by name: one fold per application of either directory.
    assert_eq!(r["n_runs"], 9 + 4, "{}", r["n_runs"]);
    let apps: Vec<&str> = r["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(apps, ["fio", "nginx", "pgbench", "redis"], "{}", r["apps"]);
    assert_eq!(r["splits"].as_array().unwrap().len(), 4, "{}", r["splits"]);
    let preds = std::fs::read_to_string(res.join("predictions.csv")).unwrap();
    assert!(
        preds.contains("idle:") && preds.contains("data:"),
        "{preds}"
    );
    assert_same_directory_twice_refused(
        &["eval", "--models", "mean"],
        &data,
        &tmp.path().join("r2"),
    );
}

/// `cloudformer <args> --data DIR --data DIR --out OUT` fails, naming DIR as given twice.
fn assert_same_directory_twice_refused(args: &[&str], data: &Path, out: &Path) {
    let e = run_err(
        bin()
            .args(args)
            .arg("--data")
            .arg(data)
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out),
    );
    assert!(
        e.contains("given twice") && e.contains(&*data.to_string_lossy()),
        "{e}"
    );
}
