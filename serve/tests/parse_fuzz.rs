//! Property / fuzz test of the request parsers: thousands of randomly mutated and randomly
//! generated bodies (seeded, reproducible) must each give `Ok` with well-formed windows or a 4xx
//! error with a message — never a panic.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serve::parse::{parse_infer, parse_predict, Limits};

fn names() -> Vec<String> {
    let mut v: Vec<String> = [
        "cpu.usage_pct",
        "mem.rss_bytes",
        "io.read_bytes_per_s",
        "net.rx_bytes_per_s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let nbr: Vec<String> = v.iter().map(|n| format!("nbr.{n}")).collect();
    v.extend(nbr);
    v
}

const SEEDS: &[&str] = &[
    r#"{"windows":[{"id":"vm1","metrics":{"cpu.usage_pct":[1,2,3],"nbr.cpu.usage_pct":[0.5,null,2]}}]}"#,
    r#"{"windows":[{"id":2,"matrix":[[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8]]},{"metrics":{"mem.rss_bytes":[1e9]}}]}"#,
    r#"{"metrics":{"io.read_bytes_per_s":[0,0,0,1]}}"#,
    r#"{"id":"x","matrix":[[null,null,null,null,null,null,null,1]]}"#,
];

const INFER_SEEDS: &[&str] = &[
    r#"{"id":"r","inputs":[{"name":"metrics","shape":[2,2,8],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,1,2,3,4,5,6,7,8,1,2,3,4,5,6,7,8,0,0,0,0,0,0,0,0]},{"name":"lengths","shape":[2],"datatype":"INT32","data":[2,1]}],"outputs":[{"name":"degradation"}]}"#,
    r#"{"inputs":[{"name":"metrics","shape":[1,8],"datatype":"FP32","data":[[1,2,3,4,5,6,7,8]]}]}"#,
];

const TOKENS: &[&str] = &[
    "null",
    "NaN",
    "Infinity",
    "-",
    "1e999",
    "1e39",
    "-1e39",
    "0",
    "-0",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
    ":",
    "\"windows\"",
    "\"metrics\"",
    "\"matrix\"",
    "\"id\"",
    "\"cpu.usage_pct\"",
    "\"nbr.cpu.usage_pct\"",
    "\"unknown.metric\"",
    "true",
    "[]",
    "{}",
    "[[]]",
    "\"shape\"",
    "\"data\"",
    "\"inputs\"",
    "[-1]",
    "18446744073709551616",
    "1.5",
    "\"\\u0000\"",
    "\u{00e9}",
    "\\",
    "[[[[[[[[",
    "]]]]]]]]",
];

fn mutate(rng: &mut ChaCha8Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    let n = rng.random_range(1..=4);
    for _ in 0..n {
        let len = b.len().max(1);
        match rng.random_range(0..7) {
            0 => {
                // flip a byte
                if !b.is_empty() {
                    let i = rng.random_range(0..b.len());
                    b[i] ^= 1 << rng.random_range(0..8);
                }
            }
            1 => {
                // random byte
                let i = rng.random_range(0..=b.len());
                b.insert(i, rng.random());
            }
            2 => {
                // delete a span
                if !b.is_empty() {
                    let i = rng.random_range(0..b.len());
                    let j = (i + rng.random_range(1..16)).min(b.len());
                    b.drain(i..j);
                }
            }
            3 | 4 => {
                // insert or replace with a token
                let t = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                let i = rng.random_range(0..=b.len());
                if rng.random_bool(0.5) && i < b.len() {
                    let j = (i + rng.random_range(1..8)).min(b.len());
                    b.splice(i..j, t.iter().copied());
                } else {
                    b.splice(i..i, t.iter().copied());
                }
            }
            5 => {
                // duplicate a span
                let i = rng.random_range(0..len);
                let j = (i + rng.random_range(1..64)).min(b.len());
                if i < j {
                    let span = b[i..j].to_vec();
                    b.splice(j..j, span);
                }
            }
            _ => {
                // truncate
                let i = rng.random_range(0..=b.len());
                b.truncate(i);
            }
        }
    }
    b
}

/// A random JSON value biased towards the request's vocabulary.
fn random_json(rng: &mut ChaCha8Rng, depth: u32) -> serde_json::Value {
    use serde_json::{json, Value};
    let leaf = depth > 4 || rng.random_bool(0.3);
    if leaf {
        return match rng.random_range(0..6) {
            0 => Value::Null,
            1 => json!(rng.random::<bool>()),
            2 => json!(rng.random_range(-1e6..1e6)),
            3 => json!(rng.random_range(-5i64..700)),
            4 => json!(["cpu.usage_pct", "x", "", "metrics"][rng.random_range(0..4)]),
            _ => json!(f64::MAX),
        };
    }
    match rng.random_range(0..3) {
        0 => {
            let n = rng.random_range(0..6);
            Value::Array((0..n).map(|_| random_json(rng, depth + 1)).collect())
        }
        1 => {
            let keys = [
                "windows",
                "metrics",
                "matrix",
                "id",
                "cpu.usage_pct",
                "nbr.cpu.usage_pct",
                "inputs",
                "name",
                "shape",
                "datatype",
                "data",
                "outputs",
                "zzz",
            ];
            let n = rng.random_range(0..5);
            let mut m = serde_json::Map::new();
            for _ in 0..n {
                m.insert(
                    keys[rng.random_range(0..keys.len())].to_string(),
                    random_json(rng, depth + 1),
                );
            }
            Value::Object(m)
        }
        _ => {
            // a plausible window list with random lengths
            let n = rng.random_range(0..4);
            let ws: Vec<Value> = (0..n)
                .map(|_| {
                    let t = rng.random_range(0..8);
                    let vals: Vec<Value> = (0..t).map(|_| random_json(rng, 9)).collect();
                    json!({"metrics": {"cpu.usage_pct": vals}})
                })
                .collect();
            json!({"windows": ws})
        }
    }
}

fn check_predict(body: &[u8], names: &[String], limits: &Limits, ok: &mut usize, err: &mut usize) {
    let r = std::panic::catch_unwind(|| parse_predict(body, names, limits));
    let r = r.unwrap_or_else(|_| {
        panic!(
            "parse_predict panicked on {:?}",
            String::from_utf8_lossy(body)
        )
    });
    match r {
        Ok(ws) => {
            *ok += 1;
            assert!(!ws.is_empty() && ws.len() <= limits.max_windows);
            for w in ws {
                assert!(w.t >= 1 && w.t <= limits.max_t, "t = {}", w.t);
                assert_eq!(w.data.len(), w.t * names.len());
                assert!(w.data.iter().all(|v| v.is_nan() || v.is_finite()));
            }
        }
        Err(e) => {
            *err += 1;
            assert!(
                e.status.is_client_error(),
                "{e} for {:?}",
                String::from_utf8_lossy(body)
            );
            assert!(!e.message.is_empty());
        }
    }
}

fn check_infer(body: &[u8], names: &[String], limits: &Limits, ok: &mut usize, err: &mut usize) {
    let r = std::panic::catch_unwind(|| parse_infer(body, names, limits));
    let r = r.unwrap_or_else(|_| {
        panic!(
            "parse_infer panicked on {:?}",
            String::from_utf8_lossy(body)
        )
    });
    match r {
        Ok(req) => {
            *ok += 1;
            assert!(!req.windows.is_empty() && req.windows.len() <= limits.max_windows);
            for w in req.windows {
                assert!(w.t >= 1 && w.t <= limits.max_t);
                assert_eq!(w.data.len(), w.t * names.len());
                assert!(w.data.iter().all(|v| v.is_nan() || v.is_finite()));
            }
        }
        Err(e) => {
            *err += 1;
            assert!(
                e.status.is_client_error(),
                "{e} for {:?}",
                String::from_utf8_lossy(body)
            );
            assert!(!e.message.is_empty());
        }
    }
}

#[test]
fn mutated_and_random_bodies_never_panic() {
    let names = names();
    let limits = Limits {
        max_windows: 8,
        max_t: 16,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0xC10D_F0A3);
    let (mut ok, mut err) = (0usize, 0usize);
    for s in SEEDS {
        check_predict(s.as_bytes(), &names, &limits, &mut ok, &mut err);
    }
    assert_eq!(ok, SEEDS.len(), "every seed body must parse");
    for i in 0..6000 {
        let base = SEEDS[i % SEEDS.len()].as_bytes();
        let body = mutate(&mut rng, base);
        check_predict(&body, &names, &limits, &mut ok, &mut err);
        // and feed the mutated predict bodies to the infer parser too
        check_infer(&body, &names, &limits, &mut 0, &mut 0);
    }
    for _ in 0..3000 {
        let v = random_json(&mut rng, 0);
        let body = serde_json::to_vec(&v).unwrap();
        check_predict(&body, &names, &limits, &mut ok, &mut err);
    }
    // Both outcomes must have been exercised heavily, or the fuzzer is not doing its job.
    assert!(ok > 20, "only {ok} accepted bodies");
    assert!(err > 3000, "only {err} rejected bodies");

    let (mut iok, mut ierr) = (0usize, 0usize);
    for s in INFER_SEEDS {
        check_infer(s.as_bytes(), &names, &limits, &mut iok, &mut ierr);
    }
    assert_eq!(iok, INFER_SEEDS.len(), "every infer seed must parse");
    for i in 0..4000 {
        let body = mutate(&mut rng, INFER_SEEDS[i % INFER_SEEDS.len()].as_bytes());
        check_infer(&body, &names, &limits, &mut iok, &mut ierr);
    }
    assert!(iok > 5 && ierr > 1000, "infer: ok {iok}, err {ierr}");
    eprintln!("predict: {ok} accepted, {err} rejected; infer: {iok} accepted, {ierr} rejected");
}

#[test]
fn deep_nesting_and_huge_bodies_are_4xx() {
    let names = names();
    let limits = Limits::default();
    let deep = format!(
        "{{\"windows\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = parse_predict(deep.as_bytes(), &names, &limits).unwrap_err();
    assert!(e.status.is_client_error(), "{e}");
    let deep = format!(
        "{{\"inputs\":[{{\"name\":\"metrics\",\"shape\":[1,1,8],\"datatype\":\"FP32\",\"data\":{}1{}}}]}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let e = parse_infer(deep.as_bytes(), &names, &limits).unwrap_err();
    assert!(e.status.is_client_error(), "{e}");
    // 1000 windows > max_windows: 413 naming the limit
    let w = r#"{"metrics":{"cpu.usage_pct":[1]}}"#;
    let body = format!("{{\"windows\":[{}]}}", vec![w; 1000].join(","));
    let e = parse_predict(body.as_bytes(), &names, &limits).unwrap_err();
    assert_eq!(e.status.as_u16(), 413);
    assert!(e.message.contains("1000 windows"), "{e}");
    // a shape whose product overflows
    let body = r#"{"inputs":[{"name":"metrics","shape":[9223372036854775807,9223372036854775807,8],"datatype":"FP32","data":[1]}]}"#;
    let e = parse_infer(body.as_bytes(), &names, &limits).unwrap_err();
    assert!(e.status.is_client_error(), "{e}");
}
