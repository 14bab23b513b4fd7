//! The tenant's network: `/proc/PID/net/dev` of one of its processes in its own namespace.

use std::path::Path;

use super::{read_into, TenantReader};
use crate::parse::{self, PreadFile};
use crate::specs::raw::*;

impl TenantReader {
    /// The tenant's network: `/proc/PID/net/dev` of one of its processes, only when that process
    /// lives in a network namespace other than ours.
    pub(super) fn read_net(&mut self, raw: &mut [f64]) {
        let first = self.pid_buf.first().copied();
        let Some(pid) = first else {
            self.net = None;
            return;
        };
        let stale = !matches!(&self.net, Some((p, _)) if self.pid_buf.contains(p));
        if stale {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            let own = ns.is_some() && ns != self.host_netns;
            let f = if own {
                PreadFile::open_opt(Path::new(&format!("/proc/{pid}/net/dev")))
            } else {
                None
            };
            self.net = Some((pid, f));
        }
        if let Some((_, f)) = self.net.as_mut() {
            if let Some(b) = read_into(f) {
                let t = parse::parse_net_dev(b);
                raw[NET_RX_BYTES] = t.rx_bytes as f64;
                raw[NET_TX_BYTES] = t.tx_bytes as f64;
                raw[NET_RX_PACKETS] = t.rx_packets as f64;
                raw[NET_TX_PACKETS] = t.tx_packets as f64;
                raw[NET_RX_DROP] = t.rx_drop as f64;
                raw[NET_TX_DROP] = t.tx_drop as f64;
            }
        }
    }
}
