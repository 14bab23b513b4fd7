//! Tenants' network namespaces: what a VM's tap device is to its host.
//!
//! Each tenant of a run gets a namespace `cfc-<pid>-<i>` holding one end of a veth pair,
//! renamed `eth0`, with loopback up; the host keeps the other end, `cfh<i>`. The pair is the /30
//! subnet `i` of [`SUBNET`]: the host's end `.1`, the tenant's `.2`. No route leads anywhere
//! else, so traffic goes only between the host and the namespace. The agent then reads the
//! tenant's own `/proc/PID/net/dev`, and a server's clients, on the host, reach it over the
//! link. IPv6 is off on both ends, so nothing else (router solicitations, neighbour discovery)
//! crosses it. Namespaces are removed on drop and, for a crashed campaign, at the next start
//! ([`remove_stale`]). Made with `ip` (iproute2).

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::process::Command;

/// The block the campaign assigns its tenants' links in (one /30 each).
pub const SUBNET: &str = "10.213.0.0/16";
const SUBNET_BASE: [u8; 2] = [10, 213];
/// /30 subnets in [`SUBNET`].
const MAX_LINKS: u32 = 1 << 14;
const NS_DIR: &str = "/run/netns";
const NS_PREFIX: &str = "cfc-";
const HOST_IF_PREFIX: &str = "cfh";
/// Serialises link allocation between campaigns running at once (tests do).
const LOCK_FILE: &str = "/run/cloudformer-netns.lock";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`ip {args}` failed: {why}")]
    Ip { args: String, why: String },
    #[error(
        "{addr} on {iface} lies in {SUBNET}, which campaigns assign to their tenants' links; \
         remove it or run the campaign with `network = \"host\"`"
    )]
    SubnetInUse { addr: String, iface: String },
    #[error("all {MAX_LINKS} tenant links of {SUBNET} are in use")]
    Exhausted,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn ip(args: &[&str]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError::Ip {
            args: args.join(" "),
            why: format!("cannot run `ip` ({e}): install iproute2"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetError::Ip {
        args: args.join(" "),
        why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// The host's and the tenant's address of link `i`.
pub fn link_addrs(i: u32) -> (Ipv4Addr, Ipv4Addr) {
    let [a, b] = SUBNET_BASE;
    let c = (i >> 6) as u8;
    let d = ((i & 63) << 2) as u8;
    (Ipv4Addr::new(a, b, c, d + 1), Ipv4Addr::new(a, b, c, d + 2))
}

fn in_subnet(addr: &str) -> bool {
    let [a, b] = SUBNET_BASE;
    addr.starts_with(&format!("{a}.{b}."))
}

/// One tenant's namespace and link; removed on drop.
#[derive(Debug)]
pub struct TenantNet {
    /// The namespace's name (`cfc-<pid>-<i>`).
    pub ns: String,
    /// The host's end of the link (`cfh<i>`).
    pub host_if: String,
    pub host_addr: Ipv4Addr,
    /// The tenant's address: its servers listen there.
    pub addr: Ipv4Addr,
    file: File,
}

impl TenantNet {
    /// Makes a namespace and its link (the first free /30 of [`SUBNET`]).
    pub fn create() -> Result<TenantNet, NetError> {
        let lock = Lock::take()?;
        let used = host_links()?;
        let i = (0..MAX_LINKS)
            .find(|i| !used.contains(i))
            .ok_or(NetError::Exhausted)?;
        let ns = format!("{NS_PREFIX}{}-{i}", std::process::id());
        let host_if = format!("{HOST_IF_PREFIX}{i}");
        let (host_addr, addr) = link_addrs(i);
        let made = make(&ns, &host_if, i, host_addr, addr);
        drop(lock);
        if let Err(e) = made {
            let _ = ip(&["netns", "del", &ns]);
            let _ = ip(&["link", "del", &host_if]);
            return Err(e);
        }
        let path = Path::new(NS_DIR).join(&ns);
        let file = File::open(&path).map_err(|source| NetError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(TenantNet {
            ns,
            host_if,
            host_addr,
            addr,
            file,
        })
    }

    /// The namespace's file descriptor, for `setns(2)` in a child before `exec`.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for TenantNet {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth end, and with it the host's.
        if let Err(e) = ip(&["netns", "del", &self.ns]) {
            tracing::warn!(%e, "cannot remove a tenant's network namespace");
        }
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

fn make(ns: &str, host_if: &str, i: u32, host: Ipv4Addr, tenant: Ipv4Addr) -> Result<(), NetError> {
    let peer = format!("cft{i}");
    let host_cidr = format!("{host}/30");
    let tenant_cidr = format!("{tenant}/30");
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", host_if, "type", "veth", "peer", "name", &peer,
    ])?;
    ip(&["link", "set", &peer, "netns", ns])?;
    ip(&["-n", ns, "link", "set", &peer, "name", "eth0"])?;
    // No IPv6 on the link (router solicitations and neighbour discovery would go to multicast
    // addresses the campaign did not assign); best effort where IPv6 is absent.
    let off = "for c in all default eth0; do f=/proc/sys/net/ipv6/conf/$c/disable_ipv6; \
               [ -e $f ] && echo 1 > $f; done; true";
    ip(&["netns", "exec", ns, "sh", "-c", off])?;
    ip(&["-n", ns, "addr", "add", &tenant_cidr, "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&["addr", "add", &host_cidr, "dev", host_if])?;
    ip(&["link", "set", host_if, "up"])
}

/// Indices of the campaign links on the host now; an address of [`SUBNET`] on any other
/// interface is an error (the campaign would route to something it does not own).
fn host_links() -> Result<Vec<u32>, NetError> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map_err(|e| NetError::Ip {
            args: "-4 -o addr show".into(),
            why: format!("cannot run `ip` ({e}): install iproute2"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(addr)) = (f.get(1), f.get(3)) else {
            continue;
        };
        if in_subnet(addr) && !iface.starts_with(HOST_IF_PREFIX) {
            return Err(NetError::SubnetInUse {
                addr: addr.to_string(),
                iface: iface.to_string(),
            });
        }
    }
    let mut used = Vec::new();
    for e in fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(i) = name
            .strip_prefix(HOST_IF_PREFIX)
            .and_then(|i| i.parse().ok())
        {
            used.push(i);
        }
    }
    Ok(used)
}

/// Removes the namespaces of campaigns whose process is gone. Returns how many.
pub fn remove_stale() -> usize {
    let mut n = 0;
    for e in fs::read_dir(NS_DIR).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match ip(&["netns", "del", &name]) {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!(%e, "cannot remove a stale tenant namespace"),
        }
    }
    n
}

/// An exclusive `flock` on [`LOCK_FILE`], released on drop (with the file).
struct Lock {
    _file: File,
}

impl Lock {
    fn take() -> Result<Lock, NetError> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .map_err(|source| NetError::Io {
                path: LOCK_FILE.into(),
                source,
            })?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(NetError::Io {
                path: LOCK_FILE.into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Lock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_disjoint_slash_30s_of_the_subnet() {
        assert_eq!(
            link_addrs(0),
            (Ipv4Addr::new(10, 213, 0, 1), Ipv4Addr::new(10, 213, 0, 2))
        );
        assert_eq!(
            link_addrs(63),
            (
                Ipv4Addr::new(10, 213, 0, 253),
                Ipv4Addr::new(10, 213, 0, 254)
            )
        );
        assert_eq!(link_addrs(64).0, Ipv4Addr::new(10, 213, 1, 1));
        assert_eq!(
            link_addrs(MAX_LINKS - 1).1,
            Ipv4Addr::new(10, 213, 255, 254)
        );
        assert!(in_subnet("10.213.4.2/30") && !in_subnet("10.2.13.1/8"));
    }
}
