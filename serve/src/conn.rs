//! Connections: the accept loop, a cap on open connections, and the timeouts that keep a client
//! from holding the server's sockets.
//!
//! - **Header timeout** ([`ConnLimits::header_timeout`]): from the moment the server waits for a
//!   request head (a new connection, or a kept-alive one after its last answer) the client has
//!   this long to send the whole head; then the connection is closed. This closes idle
//!   keep-alive connections and slowloris senders alike.
//! - **Body timeout** ([`ConnLimits::body_timeout`], `server::read_body`): a request's body must
//!   arrive within this long → 408 otherwise.
//! - **Connection cap** ([`ConnLimits::max_connections`], lowered to fit the open-files limit):
//!   at the cap a new connection evicts the oldest *idle* one (no request in progress), so idle
//!   sockets can never lock a client out; when every connection is busy the newcomer gets a JSON
//!   503 with `Retry-After: 1` and is closed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::error::ApiError;
use crate::error_heads::{ErrorBodies, MAX_HEADERS, MAX_HEAD_BYTES};
use crate::metrics::Metrics;

/// Open file descriptors kept free for everything but client sockets (model files, the live
/// agent's cgroup files, logs).
pub const RESERVED_FDS: u64 = 128;

/// Limits on connections (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most open client connections (lowered to the open-files limit − [`RESERVED_FDS`]).
    pub max_connections: usize,
    /// Time a client has to send a whole request head (also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body.
    pub body_timeout: Duration,
}

impl Default for ConnLimits {
    /// 1024 connections, 10 s for a head (and for a kept-alive connection to send its next one),
    /// 30 s for a body.
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

impl ConnLimits {
    /// The cap in force: `max_connections`, lowered so that client sockets cannot use up the
    /// open-files limit `nofile` (at least 16).
    pub fn effective_cap(&self, nofile: Option<u64>) -> usize {
        match nofile {
            Some(n) => {
                let room = n.saturating_sub(RESERVED_FDS).max(16);
                self.max_connections
                    .min(usize::try_from(room).unwrap_or(usize::MAX))
            }
            None => self.max_connections,
        }
    }
}

const IDLE: u8 = 0;
const BUSY: u8 = 1;
const EVICTED: u8 = 2;

/// One open connection: whether a request is in progress, and the signal that evicts it.
struct Slot {
    id: u64,
    state: AtomicU8,
    evict: Notify,
}

impl Slot {
    /// A request starts; false when the connection was just evicted.
    fn begin(&self) -> bool {
        self.state
            .compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    fn end(&self) {
        let _ = self
            .state
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }
    fn try_evict(&self) -> bool {
        let ok = self
            .state
            .compare_exchange(IDLE, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if ok {
            self.evict.notify_one();
        }
        ok
    }
}

/// What [`Registry::make_room`] did.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// Below the cap.
    Free,
    /// At the cap: the oldest idle connection was told to close.
    Evicted,
    /// At the cap and every connection is busy.
    Full,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    slots: Mutex<VecDeque<Arc<Slot>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn open(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            state: AtomicU8::new(IDLE),
            evict: Notify::new(),
        });
        if let Ok(mut s) = self.slots.lock() {
            s.push_back(slot.clone());
        }
        slot
    }

    fn close(&self, id: u64) {
        if let Ok(mut s) = self.slots.lock() {
            if let Some(i) = s.iter().position(|x| x.id == id) {
                s.remove(i);
            }
        }
    }

    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Makes room for one more connection under `cap` (connections already told to close do
    /// not count).
    fn make_room(&self, cap: usize) -> Room {
        let Ok(s) = self.slots.lock() else {
            return Room::Free;
        };
        let live = s
            .iter()
            .filter(|x| x.state.load(Ordering::Acquire) != EVICTED)
            .count();
        if live < cap {
            return Room::Free;
        }
        if s.iter().any(|x| x.try_evict()) {
            Room::Evicted
        } else {
            Room::Full
        }
    }
}

fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Accepts and serves connections with `router` until `shutdown` turns true, then waits up to
/// `drain` for the open ones to finish their requests and close.
/// `cap` is [`ConnLimits::effective_cap`].
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    (limits, cap): (ConnLimits, usize),
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let registry = Arc::new(Registry::default());
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|v| *v) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                if out_of_fds(&e) && registry.make_room(0) == Room::Evicted {
                    metrics.conn_evicted.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match registry.make_room(cap) {
            Room::Free => {}
            Room::Evicted => {
                metrics.conn_evicted.fetch_add(1, Ordering::Relaxed);
            }
            Room::Full => {
                metrics.conn_refused.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(refuse(stream));
                continue;
            }
        }
        let slot = registry.open();
        metrics.conn_open.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            slot,
            registry: registry.clone(),
            router: router.clone(),
            limits,
            metrics: metrics.clone(),
        };
        tokio::spawn(conn.run(stream, shutdown.clone()));
    }
    drop(listener);
    let closed = async {
        while registry.len() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(drain, closed).await.is_err() {
        tracing::warn!(
            drain_s = drain.as_secs_f64(),
            open = registry.len(),
            "connections still open after the drain timeout were closed"
        );
    }
}

/// At the cap with every connection busy: a JSON 503 and close.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::json!({
        "error": "the server is at its connection cap (--max-connections) and every connection is busy; retry shortly"
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// One accepted connection.
struct Connection {
    slot: Arc<Slot>,
    registry: Arc<Registry>,
    router: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(ErrorBodies::new(stream));
        let svc = TowerToHyperService::new(self.router);
        let slot = self.slot.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let call = slot.begin().then(|| svc.call(req));
            let slot = slot.clone();
            async move {
                match call {
                    Some(fut) => {
                        let answer = fut.await;
                        slot.end();
                        answer
                    }
                    None => Ok(evicted_answer()),
                }
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_headers(MAX_HEADERS)
            .max_header_size(MAX_HEAD_BYTES)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(true);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            self.metrics.conn_header_timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!(error = %e, "connection ended");
                    }
                    break;
                }
                _ = self.slot.evict.notified() => break,
                _ = shutdown.wait_for(|v| *v), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        self.registry.close(self.slot.id);
        self.metrics.conn_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The rare request that arrives on a connection in the instant it is evicted.
fn evicted_answer() -> Response {
    ApiError::unavailable(
        "the connection was closed to make room for another (--max-connections); retry",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_under_the_open_files_limit() {
        let l = ConnLimits::default();
        assert_eq!(l.effective_cap(None), 1024);
        assert_eq!(l.effective_cap(Some(1024)), 1024 - RESERVED_FDS as usize);
        assert_eq!(l.effective_cap(Some(1 << 20)), 1024);
        assert_eq!(l.effective_cap(Some(10)), 16);
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_is_evicted_never_a_busy_one() {
        let r = Registry::default();
        let a = r.open();
        let b = r.open();
        let c = r.open();
        assert_eq!(r.make_room(4), Room::Free);
        assert!(a.begin()); // busy: never evicted
        assert_eq!(r.make_room(3), Room::Evicted);
        assert_eq!(b.state.load(Ordering::Acquire), EVICTED);
        assert!(!b.begin(), "an evicted connection takes no new request");
        // b no longer counts; c is the oldest idle one left.
        assert_eq!(r.make_room(3), Room::Free);
        let d = r.open();
        assert_eq!(r.make_room(3), Room::Evicted);
        assert_eq!(c.state.load(Ordering::Acquire), EVICTED);
        r.close(b.id);
        r.close(c.id);
        assert_eq!(r.len(), 2);
        // Everyone busy: full.
        assert!(d.begin());
        assert_eq!(r.make_room(2), Room::Full);
        a.end();
        assert_eq!(r.make_room(2), Room::Evicted);
    }
}
