//! The release-style binary against clients that try to exhaust it, over real loopback sockets,
//! with the bundled model: idle sockets beyond a 1024 open-files limit (as under systemd's
//! default), slowloris heads at 1 byte/s, and SIGTERM with a client stalled mid-body. The same
//! mechanisms in-process, faster and finer: `serve/tests/abuse.rs`.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{closed_by_server, get, slowloris, spawn_server_cmd, timed_get};

fn bundled_model() -> String {
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    assert!(m.join("config.json").exists(), "{} is missing", m.display());
    m.display().to_string()
}

/// `cloudformer --quiet serve` on the bundled model, listening on a free loopback port.
fn serve_cmd(prefix: &[&str], extra: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_cloudformer");
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let model = bundled_model();
    cmd.args(["--quiet", "serve", "--model", &model])
        .args(["--listen", "127.0.0.1:0", "--reload-poll-s", "0"])
        .args(extra);
    cmd
}

/// Kills the server when dropped (also when an assertion fails).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn idle_sockets_beyond_an_open_files_limit_of_1024_do_not_lock_out_a_valid_request() {
    let name = "idle_sockets_beyond_an_open_files_limit_of_1024_do_not_lock_out_a_valid_request";
    if !common::have("prlimit") {
        collector::testing::cannot_run(name, "`prlimit` (util-linux) is not installed");
        return;
    }
    // This test holds 1,100 client sockets itself.
    let own = serve::raise_nofile().unwrap_or(0);
    if own < 1_300 {
        collector::testing::cannot_run(
            name,
            &format!("the test's own open-files hard limit is {own}; it needs 1,300"),
        );
        return;
    }
    let (child, addr) = spawn_server_cmd(serve_cmd(&["prlimit", "--nofile=1024:1024", "--"], &[]));
    let _server = Killed(child);
    let idle: Vec<TcpStream> = (0..1_100)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let took = timed_get(addr, "/healthz");
    assert!(
        took < Duration::from_millis(100),
        "a valid request beside 1,100 idle sockets under NOFILE 1024 took {took:?}"
    );
    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    // The cap (1024 − 128 reserved) closed the oldest idle sockets to make room.
    let closed = idle
        .iter()
        .take(300)
        .filter(|s| closed_by_server(s, Duration::from_millis(10)))
        .count();
    assert!(
        closed >= 200,
        "only {closed} of the 300 oldest idle sockets were closed"
    );
    let metrics = get(addr, "/metrics").text();
    assert!(
        metrics.contains("cloudformer_http_connections_closed_total{reason=\"evicted\"}"),
        "{metrics}"
    );
}

#[test]
fn slowloris_at_one_byte_a_second_is_cut_off_while_others_are_served() {
    let (child, addr) = spawn_server_cmd(serve_cmd(&[], &["--header-timeout", "3s"]));
    let _server = Killed(child);
    // One byte per connection per second for 5 s: no head ever completes.
    let (worst, open) = slowloris(addr, 200, Duration::from_secs(1), Duration::from_secs(5));
    assert!(
        worst < Duration::from_millis(100),
        "valid requests beside 200 slowloris senders: slowest {worst:?}"
    );
    assert_eq!(
        open, 0,
        "{open} of 200 slowloris connections still open after 5 s (--header-timeout 3s)"
    );
}

#[test]
fn sigterm_with_a_client_stalled_mid_body_exits_within_the_drain_timeout() {
    let (child, addr) = spawn_server_cmd(serve_cmd(&[], &["--drain-timeout", "2s"]));
    let mut server = Killed(child);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(st) = server.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM (--drain-timeout 2s)"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(
        t0.elapsed() >= Duration::from_millis(1_500),
        "exited after {:?}: the stalled request was not given its drain time",
        t0.elapsed()
    );
    drop(s);
}
