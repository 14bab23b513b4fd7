//! Checks of the agent's settings before it starts, so that a setting that would silently
//! collect nothing (an empty or misplaced glob) or expose the agent is refused with a message
//! naming it.

use std::net::SocketAddr;
use std::path::Path;

use crate::discover::Hierarchy;

/// The tenant globs relative to the hierarchies. An absolute glob under one of them
/// (`/sys/fs/cgroup/cpu/machine.slice/*`, `/sys/fs/cgroup/machine.slice/*` on v2) is made
/// relative; an empty glob, or an absolute one under none of them, is an error naming it.
pub fn tenant_globs(globs: &[String], hier: &[Hierarchy]) -> Result<Vec<String>, String> {
    if globs.is_empty() {
        return Err("no tenant glob given (--tenants GLOB)".into());
    }
    globs.iter().map(|g| tenant_glob(g, hier)).collect()
}

fn tenant_glob(g: &str, hier: &[Hierarchy]) -> Result<String, String> {
    let g = g.trim();
    if g.is_empty() {
        return Err("empty tenant glob: give a cgroup path pattern such as `machine.slice/machine-qemu*.scope`".into());
    }
    let rel = if g.starts_with('/') {
        // The longest hierarchy path that is a prefix (v2's root may contain the v1 ones).
        let under = hier
            .iter()
            .filter_map(|h| Path::new(g).strip_prefix(&h.path).ok())
            .min_by_key(|rest| rest.as_os_str().len());
        match under {
            Some(rest) if !rest.as_os_str().is_empty() => rest.to_string_lossy().into_owned(),
            _ => {
                let roots: Vec<String> =
                    hier.iter().map(|h| h.path.display().to_string()).collect();
                return Err(format!(
                    "tenant glob `{g}` is an absolute path under none of the cgroup hierarchies ({}); give it relative to them, e.g. `machine.slice/*`",
                    roots.join(", ")
                ));
            }
        }
    } else {
        g.to_string()
    };
    glob::Pattern::new(&rel).map_err(|e| format!("bad tenant glob `{g}`: {e}"))?;
    Ok(rel)
}

/// The Prometheus endpoint has no authentication: a non-loopback address needs `insecure`.
pub fn listen(addr: Option<SocketAddr>, insecure: bool) -> Result<(), String> {
    match addr {
        Some(a) if !a.ip().is_loopback() && !insecure => Err(format!(
            "refusing to serve /metrics on non-loopback address {a} without authentication: listen on 127.0.0.1, or pass --insecure to expose it to the network"
        )),
        _ => Ok(()),
    }
}

/// What exists under the hierarchies (their first-level cgroups, at most `max` names), for the
/// message when no tenant matches.
pub fn what_exists(hier: &[Hierarchy], max: usize) -> String {
    let mut names: Vec<String> = hier
        .iter()
        .filter_map(|h| std::fs::read_dir(&h.path).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok()))
        .filter(|e| e.path().join("cgroup.procs").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return "no cgroup below the hierarchies' roots".into();
    }
    let more = names.len().saturating_sub(max);
    names.truncate(max);
    let mut s = format!("first-level cgroups: {}", names.join(", "));
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hier() -> Vec<Hierarchy> {
        vec![
            Hierarchy {
                kind: "v2".into(),
                path: "/sys/fs/cgroup/unified".into(),
            },
            Hierarchy {
                kind: "cpu".into(),
                path: "/sys/fs/cgroup/cpu".into(),
            },
        ]
    }

    #[test]
    fn globs_are_made_relative_or_refused_naming_them() {
        let h = hier();
        let ok = |g: &str| tenant_globs(&[g.to_string()], &h).map(|v| v[0].clone());
        assert_eq!(ok("machine.slice/*").unwrap(), "machine.slice/*");
        assert_eq!(ok("/sys/fs/cgroup/cpu/x/*").unwrap(), "x/*");
        assert_eq!(ok("/sys/fs/cgroup/unified/a/b*").unwrap(), "a/b*");
        let e = ok("").unwrap_err();
        assert!(e.contains("empty tenant glob"), "{e}");
        let e = ok("/elsewhere/x/*").unwrap_err();
        assert!(
            e.contains("/elsewhere/x/*") && e.contains("/sys/fs/cgroup/cpu"),
            "{e}"
        );
        let e = ok("/sys/fs/cgroup/cpu").unwrap_err();
        assert!(
            e.contains("under none"),
            "the hierarchy itself is no tenant: {e}"
        );
        assert!(ok("a/[").unwrap_err().contains("bad tenant glob"));
        assert!(tenant_globs(&[], &h).is_err());
    }

    #[test]
    fn a_public_metrics_address_needs_insecure() {
        let public: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        assert!(listen(Some(public), false)
            .unwrap_err()
            .contains("--insecure"));
        assert!(listen(Some(public), true).is_ok());
        assert!(listen(Some(local), false).is_ok() && listen(None, false).is_ok());
    }
}
