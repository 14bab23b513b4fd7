//! Per-task counters over the kernel's taskstats netlink interface: binary replies, requested
//! for all processes of all tenants together, instead of reading and parsing each process's
//! `/proc/PID/status` (~1.4 KB of text formatted by the kernel every second, read for two
//! numbers) and `/proc/PID/schedstat`.
//!
//! The `TASKSTATS_CMD_ATTR_PID` reply describes exactly one task — for a process's PID, its
//! main thread — as the two files do: `nvcsw`/`nivcsw` are status's voluntary and nonvoluntary
//! context switches of that task, and `cpu_run_virtual_total`, `cpu_delay_total`, `cpu_count`
//! are schedstat's run time, run-queue wait and timeslices (the kernel fills them from the same
//! `se.sum_exec_runtime` and `sched_info` fields, with delay accounting on or off). So the
//! metrics keep their meaning and the dataset stays comparable.
//!
//! Taskstats needs CAP_NET_ADMIN in the initial user and PID namespaces. Where that is not
//! given (an agent in a container, a test as a user) [`Taskstats::open`] or the first query
//! fails and the reader falls back to the files.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_GENERIC: libc::c_int = 16;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const TASKSTATS_CMD_GET: u8 = 1;
const TASKSTATS_CMD_ATTR_PID: u16 = 1;
const TASKSTATS_TYPE_PID: u16 = 1;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
/// A TASKSTATS_CMD_GET request: the headers, then one u32 PID attribute.
const REQ_LEN: usize = NLMSG_HDRLEN + GENL_HDRLEN + 8;
/// Requests sent together (their replies, ~600 bytes each, stay well inside the socket's
/// default receive buffer).
pub const BATCH: usize = 32;
/// Receive room per reply.
const SLOT: usize = 2048;

/// Byte offsets in `struct taskstats` (include/uapi/linux/taskstats.h; stable ABI, fields are
/// only ever appended).
mod off {
    pub const VERSION: usize = 0;
    pub const CPU_COUNT: usize = 16;
    pub const CPU_DELAY_TOTAL: usize = 24;
    pub const CPU_RUN_VIRTUAL_TOTAL: usize = 72;
    pub const AC_PID: usize = 128;
    pub const NVCSW: usize = 272;
    pub const NIVCSW: usize = 280;
    /// Bytes needed to read every field above.
    pub const END: usize = 288;
}

/// What one task's reply gives (the same values as its status and schedstat files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCounters {
    /// `voluntary_ctxt_switches`.
    pub nvcsw: u64,
    /// `nonvoluntary_ctxt_switches`.
    pub nivcsw: u64,
    /// schedstat field 1: time on the CPU (ns).
    pub run_ns: u64,
    /// schedstat field 2: time runnable on a run queue, waiting (ns).
    pub wait_ns: u64,
    /// schedstat field 3: timeslices run.
    pub slices: u64,
}

/// Taskstats cannot be used here (no permission, no TASKSTATS family, a bad reply): the agent
/// reads the per-process files instead. The message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

impl From<String> for Unusable {
    fn from(s: String) -> Unusable {
        Unusable(s)
    }
}

impl From<&str> for Unusable {
    fn from(s: &str) -> Unusable {
        Unusable(s.to_string())
    }
}

/// Why a query gave no counters.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The task is gone (ESRCH): normal, processes exit.
    #[error("the task is gone")]
    Gone,
    /// Taskstats cannot be used here: use the files instead.
    #[error(transparent)]
    Unusable(#[from] Unusable),
}

/// A generic-netlink socket bound to the TASKSTATS family, with reused buffers.
pub struct Taskstats {
    fd: OwnedFd,
    family: u16,
    seq: u32,
    /// The request for PID 0, sequence 0: copied and filled in for each process.
    req: [u8; REQ_LEN],
    /// Receive room: [`SLOT`] bytes per reply of a batch.
    buf: Vec<u8>,
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_ne_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn get_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn get_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The netlink attributes in `b`: (type without flag bits, payload).
struct Attrs<'a>(&'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let len = usize::from(get_u16(self.0, 0)?);
        let ty = get_u16(self.0, 2)? & 0x3fff;
        if len < 4 || len > self.0.len() {
            return None;
        }
        let payload = &self.0[4..len];
        let next = (len + 3) & !3;
        self.0 = self.0.get(next..).unwrap_or(&[]);
        Some((ty, payload))
    }
}

/// A generic-netlink request: nlmsghdr, genlmsghdr, then `attrs`.
fn message(family: u16, cmd: u8, seq: u32, attrs: &[u8], out: &mut [u8]) -> usize {
    let len = NLMSG_HDRLEN + GENL_HDRLEN + attrs.len();
    put_u32(out, 0, len as u32);
    put_u16(out, 4, family);
    put_u16(out, 6, NLM_F_REQUEST);
    put_u32(out, 8, seq);
    put_u32(out, 12, 0);
    out[16] = cmd;
    out[17] = 1; // version
    put_u16(out, 18, 0);
    out[NLMSG_HDRLEN + GENL_HDRLEN..len].copy_from_slice(attrs);
    len
}

impl Taskstats {
    /// Opens the socket and resolves the TASKSTATS family.
    pub fn open() -> Result<Taskstats, Unusable> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_GENERIC,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(format!("netlink socket: {e}").into());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ts = Taskstats {
            fd,
            family: 0,
            seq: 0,
            req: [0; REQ_LEN],
            buf: vec![0; SLOT * BATCH],
        };
        let name = b"TASKSTATS\0";
        let mut attr = [0u8; 16];
        put_u16(&mut attr, 0, (4 + name.len()) as u16);
        put_u16(&mut attr, 2, CTRL_ATTR_FAMILY_NAME);
        attr[4..4 + name.len()].copy_from_slice(name);
        let mut msg = [0u8; NLMSG_HDRLEN + GENL_HDRLEN + 16];
        let n = message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0, &attr, &mut msg);
        let reply = ts
            .exchange(&msg[..n])
            .map_err(|e| format!("resolving the TASKSTATS family: {e}"))?;
        if let Some(errno) = nl_errno(reply) {
            let e = io::Error::from_raw_os_error(errno);
            return Err(format!("no TASKSTATS netlink family: {e}").into());
        }
        let family = Attrs(reply.get(NLMSG_HDRLEN + GENL_HDRLEN..).unwrap_or(&[]))
            .find(|(t, _)| *t == CTRL_ATTR_FAMILY_ID)
            .and_then(|(_, p)| get_u16(p, 0))
            .ok_or(Unusable::from("no family id in the TASKSTATS family reply"))?;
        ts.family = family;
        let mut attr = [0u8; 8];
        put_u16(&mut attr, 0, 8);
        put_u16(&mut attr, 2, TASKSTATS_CMD_ATTR_PID);
        message(family, TASKSTATS_CMD_GET, 0, &attr, &mut ts.req);
        // Asking needs CAP_NET_ADMIN in the initial namespaces: find out now, with ourselves.
        ts.query(std::process::id()).map_err(|e| match e {
            QueryError::Unusable(e) => e,
            QueryError::Gone => Unusable::from("taskstats does not know this process"),
        })?;
        Ok(ts)
    }

    /// Sends one request and returns the reply (valid until the next exchange).
    fn exchange(&mut self, msg: &[u8]) -> io::Result<&[u8]> {
        self.send(msg)?;
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(&self.buf[..n as usize])
    }

    /// Sends `msg` (one or more netlink messages) to the kernel.
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: `msg` is a valid buffer of `msg.len()` bytes; the kernel address is zeroed
        // (pid 0 = the kernel) as sendto requires for netlink.
        let sent = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The counters of every task in `pids` that still exists, into `out` (cleared first): the
    /// requests go out [`BATCH`] at a time in one `sendto`, their replies come back in one
    /// `recvmmsg` (two system calls per batch instead of two per process). An `Err` means
    /// taskstats cannot be used here.
    pub fn query_many(
        &mut self,
        pids: &[u32],
        out: &mut HashMap<u32, TaskCounters>,
    ) -> Result<(), Unusable> {
        out.clear();
        for chunk in pids.chunks(BATCH) {
            self.batch(chunk, out)?;
        }
        Ok(())
    }

    fn batch(
        &mut self,
        pids: &[u32],
        out: &mut HashMap<u32, TaskCounters>,
    ) -> Result<(), Unusable> {
        let mut reqs = [0u8; REQ_LEN * BATCH];
        let first_seq = self.seq.wrapping_add(1);
        for (i, &pid) in pids.iter().enumerate() {
            let r = &mut reqs[i * REQ_LEN..(i + 1) * REQ_LEN];
            r.copy_from_slice(&self.req);
            put_u32(r, 8, first_seq.wrapping_add(i as u32));
            put_u32(r, NLMSG_HDRLEN + GENL_HDRLEN + 4, pid);
        }
        self.seq = first_seq.wrapping_add(pids.len() as u32 - 1);
        self.send(&reqs[..REQ_LEN * pids.len()])
            .map_err(|e| format!("taskstats request: {e}"))?;
        let mut got = 0;
        while got < pids.len() {
            // SAFETY: zeroed iovec/mmsghdr are valid (null pointers, zero lengths) before
            // they are pointed at `buf` below.
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            let want = pids.len() - got;
            for (i, (v, m)) in iov.iter_mut().zip(msgs.iter_mut()).take(want).enumerate() {
                v.iov_base = self.buf[i * SLOT..].as_mut_ptr().cast();
                v.iov_len = SLOT;
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `msgs[..want]` point at disjoint `SLOT`-byte parts of `buf`, which
            // outlives the call; the kernel writes at most that much into each.
            let n = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    // The kernel answers inside `sendto`: every reply is queued already.
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                return Err(format!(
                    "taskstats: {} of {} replies missing ({})",
                    pids.len() - got,
                    pids.len(),
                    io::Error::last_os_error()
                )
                .into());
            }
            for (i, m) in msgs.iter().take(n as usize).enumerate() {
                let reply = &self.buf[i * SLOT..i * SLOT + (m.msg_len as usize).min(SLOT)];
                let seq =
                    get_u32(reply, 8).ok_or(Unusable::from("taskstats reply without a header"))?;
                let k = seq.wrapping_sub(first_seq) as usize;
                let Some(&pid) = pids.get(k) else {
                    return Err("taskstats reply out of sequence".into());
                };
                match parse_reply(reply, seq, pid) {
                    Ok(c) => {
                        out.insert(pid, c);
                    }
                    Err(QueryError::Gone) => {}
                    Err(QueryError::Unusable(e)) => return Err(e),
                }
            }
            got += n as usize;
        }
        Ok(())
    }

    /// The counters of task `pid` (for a process's PID: its main thread).
    pub fn query(&mut self, pid: u32) -> Result<TaskCounters, QueryError> {
        let mut out = HashMap::with_capacity(1);
        self.batch(&[pid], &mut out).map_err(QueryError::Unusable)?;
        out.remove(&pid).ok_or(QueryError::Gone)
    }
}

/// The error of an NLMSG_ERROR reply, as a positive errno; `None` for any other reply.
fn nl_errno(reply: &[u8]) -> Option<i32> {
    (get_u16(reply, 4) == Some(NLMSG_ERROR))
        .then(|| get_u32(reply, NLMSG_HDRLEN).map_or(0, |e| -(e as i32)))
}

/// Parses a TASKSTATS_CMD_GET reply for `pid`.
fn parse_reply(reply: &[u8], seq: u32, pid: u32) -> Result<TaskCounters, QueryError> {
    let bad = |what: &str| QueryError::Unusable(format!("taskstats reply: {what}").into());
    let len = get_u32(reply, 0).ok_or_else(|| bad("shorter than its header"))? as usize;
    if len > reply.len() || len < NLMSG_HDRLEN {
        return Err(bad("length does not match"));
    }
    if get_u32(reply, 8) != Some(seq) {
        return Err(bad("out of sequence"));
    }
    if let Some(errno) = nl_errno(reply) {
        return match errno {
            libc::ESRCH => Err(QueryError::Gone),
            e => Err(QueryError::Unusable(
                format!("taskstats: {}", io::Error::from_raw_os_error(e)).into(),
            )),
        };
    }
    let body = reply
        .get(NLMSG_HDRLEN + GENL_HDRLEN..len)
        .ok_or_else(|| bad("no payload"))?;
    let aggr = Attrs(body)
        .find(|(t, _)| *t == TASKSTATS_TYPE_AGGR_PID)
        .ok_or_else(|| bad("no per-task aggregate"))?
        .1;
    let mut stats = None;
    for (t, p) in Attrs(aggr) {
        match t {
            TASKSTATS_TYPE_PID if get_u32(p, 0) != Some(pid) => {
                return Err(bad("for another task"));
            }
            TASKSTATS_TYPE_STATS => stats = Some(p),
            _ => {}
        }
    }
    let s = stats.ok_or_else(|| bad("no statistics"))?;
    if s.len() < off::END {
        return Err(bad(&format!(
            "struct taskstats of {} bytes (version {:?}) lacks the context-switch counters",
            s.len(),
            get_u16(s, off::VERSION)
        )));
    }
    if get_u32(s, off::AC_PID) != Some(pid) {
        return Err(bad("ac_pid is another task's"));
    }
    let f = |at| get_u64(s, at).unwrap_or(0);
    Ok(TaskCounters {
        nvcsw: f(off::NVCSW),
        nivcsw: f(off::NIVCSW),
        run_ns: f(off::CPU_RUN_VIRTUAL_TOTAL),
        wait_ns: f(off::CPU_DELAY_TOTAL),
        slices: f(off::CPU_COUNT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply built by hand: nlmsghdr, genlmsghdr, AGGR_PID { PID, STATS }.
    fn reply(seq: u32, pid: u32, stats_pid: u32) -> Vec<u8> {
        let mut stats = vec![0u8; 328];
        put_u16(&mut stats, off::VERSION, 16);
        for (at, v) in [
            (off::CPU_COUNT, 7u64),
            (off::CPU_DELAY_TOTAL, 1234),
            (off::CPU_RUN_VIRTUAL_TOTAL, 99_000),
            (off::NVCSW, 5),
            (off::NIVCSW, 2),
        ] {
            stats[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        }
        put_u32(&mut stats, off::AC_PID, stats_pid);
        let mut nested = Vec::new();
        nested.extend_from_slice(&8u16.to_ne_bytes());
        nested.extend_from_slice(&TASKSTATS_TYPE_PID.to_ne_bytes());
        nested.extend_from_slice(&pid.to_ne_bytes());
        nested.extend_from_slice(&((4 + stats.len()) as u16).to_ne_bytes());
        nested.extend_from_slice(&TASKSTATS_TYPE_STATS.to_ne_bytes());
        nested.extend_from_slice(&stats);
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&((4 + nested.len()) as u16).to_ne_bytes());
        attrs.extend_from_slice(&TASKSTATS_TYPE_AGGR_PID.to_ne_bytes());
        attrs.extend_from_slice(&nested);
        let mut out = vec![0u8; NLMSG_HDRLEN + GENL_HDRLEN + attrs.len()];
        message(30, 2, seq, &attrs, &mut out);
        out
    }

    #[test]
    fn parses_a_reply_and_rejects_mismatches() {
        let r = reply(3, 42, 42);
        assert_eq!(
            parse_reply(&r, 3, 42),
            Ok(TaskCounters {
                nvcsw: 5,
                nivcsw: 2,
                run_ns: 99_000,
                wait_ns: 1234,
                slices: 7
            })
        );
        assert!(matches!(
            parse_reply(&r, 4, 42),
            Err(QueryError::Unusable(_))
        ));
        assert!(matches!(
            parse_reply(&r, 3, 43),
            Err(QueryError::Unusable(_))
        ));
        assert!(matches!(
            parse_reply(&reply(3, 42, 41), 3, 42),
            Err(QueryError::Unusable(_))
        ));
        assert!(matches!(
            parse_reply(&r[..r.len() - 40], 3, 42),
            Err(QueryError::Unusable(_))
        ));
        let mut gone = vec![0u8; 36];
        put_u32(&mut gone, 0, 36);
        put_u16(&mut gone, 4, NLMSG_ERROR);
        put_u32(&mut gone, 8, 9);
        put_u32(&mut gone, 16, (-libc::ESRCH) as u32);
        assert_eq!(parse_reply(&gone, 9, 42), Err(QueryError::Gone));
    }
}
