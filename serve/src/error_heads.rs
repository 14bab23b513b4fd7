//! JSON bodies for the answers hyper writes itself.
//!
//! A request hyper cannot parse never reaches a handler: hyper answers it directly with a bare
//! head (`400`, `414` or `431` and `content-length: 0`) and closes the connection. Every other
//! error of this server is JSON (`{"error": "..."}`), so [`ErrorBodies`] wraps the socket and
//! rewrites exactly those bare heads into the same JSON shape, naming the limit that was hit.
//! Nothing else is touched: the server's own answers always carry a body.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most header lines in a request head (more → 431).
pub const MAX_HEADERS: usize = 100;
/// Largest request head, bytes: request line + headers (more → 431). Also the most a
/// connection buffers while it waits for a head to complete.
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Longest request target (path and query) the server accepts, bytes: longer → a JSON 414 from
/// the server's own middleware.
pub const MAX_URI_BYTES: usize = 8 << 10;
/// Longest request target hyper itself accepts, bytes (longer → hyper's 414; fixed by hyper, and
/// only reachable with heads above [`MAX_HEAD_BYTES`], which get 431 first).
const HYPER_MAX_URI_BYTES: usize = u16::MAX as usize - 1;

/// The JSON body for a bare hyper answer with this status, or `None` for statuses hyper does not
/// write on its own.
fn message(status: u16) -> Option<String> {
    let msg = match status {
        400 => "malformed HTTP request: the request line or a header could not be parsed".to_string(),
        414 => format!("request target (URI) is longer than {HYPER_MAX_URI_BYTES} bytes"),
        431 => format!(
            "request head is too large: more than {MAX_HEADERS} header lines or {} KiB of request line and headers",
            MAX_HEAD_BYTES >> 10
        ),
        _ => return None,
    };
    Some(serde_json::json!({ "error": msg }).to_string())
}

/// If `head` is one of hyper's own bare error answers (status line `HTTP/1.1 400|414|431`, a
/// `content-length: 0` line, the whole head and nothing after it), the same answer with a JSON
/// body; otherwise `None`.
pub fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    const ZERO: &[u8] = b"\r\ncontent-length: 0\r\n";
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    let body = message(status)?;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    if end + 4 != head.len() {
        return None;
    }
    let at = head.windows(ZERO.len()).position(|w| w == ZERO)?;
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    out.extend_from_slice(&head[..at]);
    out.extend_from_slice(
        format!(
            "\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&head[at + ZERO.len()..]);
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

/// A socket whose writes of hyper's bare error heads get JSON bodies ([`rewrite`]).
#[derive(Debug)]
pub struct ErrorBodies<T> {
    inner: T,
    /// A rewritten answer being written: the bytes, how many are written, and how many bytes of
    /// the caller's buffer they stand for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> ErrorBodies<T> {
    pub fn new(inner: T) -> Self {
        ErrorBodies {
            inner,
            pending: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorBodies<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match rewrite(buf) {
                Some(bytes) => this.pending = Some((bytes, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        let Some((bytes, written, stands_for)) = this.pending.as_mut() else {
            unreachable!("set above")
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let n = *stands_for;
        this.pending = None;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Sun, 06 Dec 2026 02:00:00 GMT\r\n";

    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(answer.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len(), "{text}");
        (head.to_string(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn hypers_bare_error_heads_get_json_bodies_naming_the_limit() {
        for (status, reason, needle) in [
            (431, "Request Header Fields Too Large", "100 header lines"),
            (414, "URI Too Long", "65534 bytes"),
            (400, "Bad Request", "malformed HTTP request"),
        ] {
            let head = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n{DATE}\r\n");
            let out = rewrite(head.as_bytes()).expect("rewritten");
            let (h, body) = split(&out);
            assert!(
                h.starts_with(&format!("HTTP/1.1 {status} {reason}\r\n")),
                "{h}"
            );
            assert!(h.contains("content-type: application/json"), "{h}");
            assert!(h.contains(DATE.trim_end()), "{h}");
            let msg = body["error"].as_str().unwrap();
            assert!(msg.contains(needle), "{status}: {msg}");
        }
    }

    #[test]
    fn other_writes_pass_unchanged() {
        for head in [
            // Our own answers carry bodies.
            format!("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 9\r\n{DATE}\r\n{{\"e\":\"x\"}}"),
            // Statuses hyper never writes alone.
            format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n{DATE}\r\n"),
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{DATE}\r\n"),
            // Not a whole head, or more than a head.
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n".to_string(),
            format!("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n{DATE}\r\nHTTP/1.1 200 OK"),
            "{\"windows\": []}".to_string(),
        ] {
            assert!(rewrite(head.as_bytes()).is_none(), "{head}");
        }
    }

    #[tokio::test]
    async fn the_socket_writes_the_rewritten_answer_and_reports_the_callers_length() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::io::duplex(16); // small: the answer goes out in pieces
        let mut w = ErrorBodies::new(a);
        let head = format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n{DATE}\r\n"
        );
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        let n = w.write(head.as_bytes()).await.unwrap();
        assert_eq!(n, head.len());
        w.write_all(b"").await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        let got = reader.await.unwrap();
        let (h, body) = split(&got);
        assert!(h.starts_with("HTTP/1.1 431"), "{h}");
        assert!(body["error"].as_str().unwrap().contains("too large"));
    }
}
