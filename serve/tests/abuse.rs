//! Clients that try to exhaust the server, over real loopback sockets against the in-process
//! server (small deterministic engine): idle sockets at the connection cap, slowloris heads,
//! stalled bodies, every connection busy, and requests hyper itself cannot parse. The same
//! probes against the release binary under a 1024 open-files limit: `tests/abuse.rs`.

mod common;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

const F: usize = 4;

fn server(name: &str, tune: impl FnOnce(&mut serve::ServeConfig)) -> (SocketAddr, Stopper) {
    let dir = tempfile::tempdir().unwrap();
    write_engine_dir(dir.path(), name, F, 1.0, false);
    let mut cfg = test_config(dir.path());
    tune(&mut cfg);
    let (addr, stop, h) = start(cfg);
    (
        addr,
        Stopper {
            stop: Some(stop),
            h: Some(h),
            _dir: dir,
        },
    )
}

/// Stops the in-process server when dropped (also when an assertion fails).
struct Stopper {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    h: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Stopper {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.h.take() {
            let _ = h.join();
        }
    }
}

/// `cloudformer_http_connections_closed_total{reason="…"}` now.
fn closed_total(addr: SocketAddr, reason: &str) -> u64 {
    let text = get(addr, "/metrics").text();
    let key = format!("cloudformer_http_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn requests_hyper_cannot_parse_get_json_errors_naming_the_limit() {
    let (addr, _s) = server("lin-parse", |_| {});
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10_000));
    let huge_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(80 << 10)
    );
    for (what, bytes, status, needle) in [
        (
            "10,000-byte URI",
            long_uri.as_bytes(),
            414,
            "the limit is 8192",
        ),
        // Longer than the whole head may be: hyper answers, the body is still JSON.
        ("70,000-byte URI", huge_uri.as_bytes(), 431, "64 KiB"),
        (
            "150 headers",
            many_headers.as_bytes(),
            431,
            "100 header lines",
        ),
        ("an 80 KiB header", big_header.as_bytes(), 431, "64 KiB"),
        (
            "a method with control bytes",
            b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(),
            400,
            "malformed HTTP request",
        ),
    ] {
        let r = raw(addr, bytes);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(needle), "{what}: {msg}");
    }
    assert_eq!(get(addr, "/healthz").status, 200);
}

#[test]
fn idle_connections_at_the_cap_make_room_for_a_valid_request() {
    let cap = 50;
    let (addr, _s) = server("lin-cap", |c| c.conn.max_connections = cap);
    let idle: Vec<TcpStream> = (0..120)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let took = timed_get(addr, "/healthz");
    assert!(
        took < Duration::from_millis(100),
        "a valid request beside 120 idle connections took {took:?}"
    );
    let closed = idle
        .iter()
        .filter(|s| closed_by_server(s, Duration::from_millis(20)))
        .count();
    assert!(
        closed >= 120 - cap,
        "only {closed} of 120 idle connections were closed at a cap of {cap}"
    );
    // The oldest went first.
    assert!(closed_by_server(&idle[0], Duration::from_millis(20)));
    assert!(closed_total(addr, "evicted") >= (120 - cap) as u64);
}

#[test]
fn slowloris_heads_are_cut_off_by_the_header_timeout_while_others_are_served() {
    let (addr, _s) = server("lin-slow", |c| {
        c.conn.header_timeout = Duration::from_secs(1)
    });
    // One byte per connection every 200 ms for 3 s: the heads never complete.
    let (worst, open) = slowloris(addr, 50, Duration::from_millis(200), Duration::from_secs(3));
    assert!(
        worst < Duration::from_millis(100),
        "valid requests beside 50 slowloris senders: slowest {worst:?}"
    );
    assert_eq!(
        open, 0,
        "{open} slowloris connections still open after 3 s (timeout 1 s)"
    );
    assert!(closed_total(addr, "header_timeout") >= 50);
}

#[test]
fn a_body_that_never_arrives_gets_408_after_the_body_timeout() {
    let (addr, _s) = server("lin-body", |c| c.conn.body_timeout = Duration::from_secs(1));
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = read_answer(&mut s);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("--body-timeout"));
    assert!(
        t0.elapsed() >= Duration::from_millis(900) && t0.elapsed() < Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn at_the_cap_with_every_connection_busy_a_newcomer_gets_503() {
    let (addr, _s) = server("lin-busy", |c| {
        c.conn.max_connections = 2;
        c.conn.body_timeout = Duration::from_secs(5);
    });
    // Two requests in progress (their bodies are still coming).
    let busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = get(addr, "/healthz");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("--max-connections"));
    drop(busy);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(addr, "/healthz").status, 200);
    assert!(closed_total(addr, "refused") >= 1);
}
