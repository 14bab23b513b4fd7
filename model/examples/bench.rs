//! Speed benchmark of the CloudFormer model (the candle side of `bench/model/run.sh`).
//!
//! Prints one JSON line: training samples/s (batch 32, T = 120, F = 206 by default: forward,
//! log-cosh, backward, clipping, Adam) and inference latency of one and of 64 windows (eval
//! forward; plus the full `Predictor` path with normalisation and MC-dropout uncertainty).
//! Run it with `RAYON_NUM_THREADS=1`: one compute thread is best on the 2-core machine.
//!
//! `cargo run -p model --example bench --release -- [--steps N] [--iters N] [--t T] [--batch B]
//!  [--max-len L] [--only train|infer1|infer64|predictor]`

use std::time::Instant;

use mimalloc::MiMalloc;
use model::{
    log_cosh, Adam, Checkpoint, CloudFormer, Config, DType, Device, ModelError, Normalizer,
    Predictor, Tensor, Window,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

struct Args {
    steps: usize,
    warmup: usize,
    iters: usize,
    t: usize,
    f: usize,
    batch: usize,
    only: Option<String>,
    max_len: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: 20,
        warmup: 3,
        iters: 30,
        t: 120,
        f: 206,
        batch: 32,
        only: None,
        max_len: 0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let val = argv.get(i + 1).cloned().unwrap_or_default();
        let num = || {
            val.parse::<usize>()
                .unwrap_or_else(|_| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--steps" => a.steps = num(),
            "--warmup" => a.warmup = num(),
            "--iters" => a.iters = num(),
            "--t" => a.t = num(),
            "--f" => a.f = num(),
            "--batch" => a.batch = num(),
            "--only" => a.only = Some(val.clone()),
            "--max-len" => a.max_len = num(),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

fn randn(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

fn main() -> Result<(), ModelError> {
    // As `cloudformer train` runs (src/alloc.rs): freed memory is kept, not purged and
    // re-faulted (mi_option_purge_delay = -1), unless MIMALLOC_PURGE_DELAY is set.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option that mimalloc reads when it purges.
        unsafe { mi_option_set(15, -1) };
    }
    let a = parse_args();
    let dev = Device::Cpu;
    let cfg = Config {
        max_len: a.max_len,
        ..Config::with_features(a.f)
    };
    let m = CloudFormer::new(&cfg, 1, &dev)?;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut out = vec![
        ("\"impl\"".to_string(), "\"candle\"".to_string()),
        ("\"params\"".into(), m.n_params().to_string()),
    ];
    let run = |what: &str| a.only.as_deref().is_none_or(|o| o == what);

    if run("train") {
        let x = Tensor::from_vec(
            randn(&mut rng, a.batch * a.t * a.f),
            (a.batch, a.t, a.f),
            &dev,
        )?;
        let mask = Tensor::ones((a.batch, a.t), DType::F32, &dev)?;
        let y = Tensor::from_vec(
            (0..a.batch)
                .map(|_| rng.random_range(0.1f32..1.0))
                .collect::<Vec<_>>(),
            a.batch,
            &dev,
        )?;
        let mut opt = Adam::new(m.vars(), 1e-4, 0.0)?;
        let mut times = Vec::new();
        for s in 0..a.warmup + a.steps {
            let t0 = Instant::now();
            let loss = log_cosh(&m.forward(&x, &mask, true)?, &y)?;
            opt.backward_step(&loss, Some(1.0))?;
            if s >= a.warmup {
                times.push(t0.elapsed().as_secs_f64());
            }
        }
        let total: f64 = times.iter().sum();
        out.push((
            "\"train_samples_per_s\"".into(),
            format!("{:.2}", (a.batch * times.len()) as f64 / total),
        ));
        out.push((
            "\"train_ms_per_step\"".into(),
            format!("{:.2}", pct(&mut times, 0.5) * 1e3),
        ));
    }

    // Inference: the candle graph (`graph_infer*`) and the plain-slice path the `Predictor` uses
    // (`infer*`: branches on slices, then the same candle head).
    let fast = model::FastBranches::from_model(&m)?
        .ok_or_else(|| ModelError::Config("the bench runs on the CPU".into()))?;
    for b in [1usize, 64] {
        if !run(&format!("infer{b}")) {
            continue;
        }
        let data = randn(&mut rng, b * a.t * a.f);
        let x = Tensor::from_vec(data.clone(), (b, a.t, a.f), &dev)?;
        let mask = Tensor::ones((b, a.t), DType::F32, &dev)?;
        let items: Vec<(&[f32], usize)> = data.chunks(a.t * a.f).map(|w| (w, a.t)).collect();
        let mut feats = Vec::new();
        let (mut graph, mut sliced) = (Vec::new(), Vec::new());
        let mut max_diff = 0f32;
        for i in 0..a.iters + 3 {
            let t0 = Instant::now();
            let p: Vec<f32> = m.forward(&x, &mask, false)?.to_vec1()?;
            let t1 = Instant::now();
            fast.features(&items, None, &mut feats)?;
            let h = Tensor::from_slice(&feats, (b, fast.out_dim()), &dev)?;
            let q: Vec<f32> = m.head(&h, false)?.to_vec1()?;
            let t2 = Instant::now();
            if i >= 3 {
                graph.push((t1 - t0).as_secs_f64());
                sliced.push((t2 - t1).as_secs_f64());
            }
            for (u, v) in p.iter().zip(&q) {
                max_diff = max_diff.max((u - v).abs());
            }
        }
        out.push((
            format!("\"infer{b}_ms_p50\""),
            format!("{:.3}", pct(&mut sliced, 0.5) * 1e3),
        ));
        out.push((
            format!("\"graph_infer{b}_ms_p50\""),
            format!("{:.3}", pct(&mut graph, 0.5) * 1e3),
        ));
        out.push((
            format!("\"infer{b}_max_abs_diff\""),
            format!("{max_diff:e}"),
        ));
    }

    if run("predictor") {
        // The serving path: raw windows → normalise → forward → MC-dropout head → OOD flag.
        let dir = std::env::temp_dir().join(format!("cf-bench-{}", std::process::id()));
        let rows: Vec<Vec<f32>> = (0..200).map(|_| randn(&mut rng, a.f)).collect();
        let norm = Normalizer::fit(vec![false; a.f], rows.iter().map(|r| r.as_slice()))?;
        let names = (0..a.f).map(|i| format!("m{i}")).collect();
        let mut ck = Checkpoint::new(cfg.clone(), norm, "bench", names);
        ck.seed = 1;
        ck.save(&dir, &m)?;
        let mut p = Predictor::load(&dir)?;
        let data: Vec<Vec<f32>> = (0..64).map(|_| randn(&mut rng, a.t * a.f)).collect();
        for b in [1usize, 64] {
            let wins: Vec<Window> = data[..b]
                .iter()
                .map(|d| Window { data: d, t: a.t })
                .collect();
            let mut times = Vec::new();
            for i in 0..a.iters + 3 {
                let t0 = Instant::now();
                let _ = p.predict(&wins)?;
                if i >= 3 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            out.push((
                format!("\"predictor{b}_ms_p50\""),
                format!("{:.3}", pct(&mut times, 0.5) * 1e3),
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Peak resident memory of the whole run (for the max_len comparison, run one phase only).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kb) = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
    {
        out.push(("\"peak_rss_mb\"".into(), format!("{:.0}", kb / 1024.0)));
    }
    let body: Vec<String> = out.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("{{{}}}", body.join(", "));
    Ok(())
}
