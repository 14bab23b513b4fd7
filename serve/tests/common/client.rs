//! The one HTTP/1.1 test client of the workspace, over a real TCP socket: used by the serve
//! crate's tests (`serve/tests/common`) and by the end-to-end tests (`tests/common`, which
//! include this file by path).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), blocking.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading a big body; ignore a broken pipe then.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

/// Sends `bytes` as they are on a fresh connection and reads the answer until the server closes.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before it has read everything; ignore a broken pipe.
    let _ = s.write_all(bytes);
    read_answer(&mut s)
}

/// Reads an answer from `s` until the server closes the connection.
pub fn read_answer(s: &mut TcpStream) -> Resp {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_response(&out)
}

/// Whether the server has closed `s` (a read sees end of file or a reset within `wait`).
pub fn closed_by_server(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue, // an answer (503, 408): read on to the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(String::from_utf8_lossy(&rest[..p]).trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[p + 2..p + 2 + n]);
            rest = &rest[p + 2 + n + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// `POST` of a JSON body given as text.
pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    http(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
}

pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Resp {
    post(addr, path, body.to_string().as_bytes())
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    http(addr, "GET", path, &[], b"")
}

/// `GET path` on a fresh connection, asserting 200; how long the answer took.
pub fn timed_get(addr: SocketAddr, path: &str) -> Duration {
    let t0 = std::time::Instant::now();
    let r = get(addr, path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    t0.elapsed()
}

/// Slowloris: `n` connections that each send one more byte of a request head that never ends
/// every `every`, for `total`; `GET /healthz` is timed after each round. Returns the slowest
/// `/healthz` and how many of the `n` connections the server has not closed at the end.
pub fn slowloris(
    addr: SocketAddr,
    n: usize,
    every: Duration,
    total: Duration,
) -> (Duration, usize) {
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut slow: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let t0 = std::time::Instant::now();
    let mut worst = Duration::ZERO;
    let mut sent = 0;
    while t0.elapsed() < total {
        for s in &mut slow {
            let byte = head.get(sent).copied().unwrap_or(b'a');
            let _ = s.write_all(&[byte]);
        }
        sent += 1;
        worst = worst.max(timed_get(addr, "/healthz"));
        std::thread::sleep(every);
    }
    let open = slow
        .iter()
        .filter(|s| !closed_by_server(s, Duration::from_millis(50)))
        .count();
    (worst, open)
}
