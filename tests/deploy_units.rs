//! The systemd units in `deploy/` are confined: `systemd-analyze security` (offline, on the unit
//! files as shipped) rates each at most 4.0, the agent keeps only the capabilities its sources
//! use and the server none, and every ExecStart names a command the binary has.

use std::path::Path;
use std::process::Command;

/// Highest exposure a shipped unit may have (`systemd-analyze security`, 0 = fully confined,
/// 10 = unconfined).
const MAX_EXPOSURE: f64 = 4.0;

fn unit(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// The overall exposure `systemd-analyze security --offline=true` gives `name`, or `None` when
/// the tool is missing (the caller fails or skips, naming it).
fn exposure(name: &str) -> Option<(f64, String)> {
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit(name))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    let level = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok());
    match level {
        Some(v) => Some((v, text)),
        None => panic!("no exposure level for {name} in:\n{text}"),
    }
}

fn directive<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn shipped_units_are_confined() {
    for name in ["cloudformer-agent.service", "cloudformer-serve.service"] {
        let Some((level, text)) = exposure(name) else {
            collector::testing::cannot_run(
                "shipped_units_are_confined",
                "systemd-analyze is not installed (Debian package systemd, \
                 scripts/apt-packages.d/deploy.txt)",
            );
            return;
        };
        assert!(
            level <= MAX_EXPOSURE,
            "{name}: exposure {level} > {MAX_EXPOSURE}:\n{text}"
        );
    }
}

#[test]
fn the_agent_keeps_only_the_capabilities_its_sources_use_and_the_server_none() {
    let agent = std::fs::read_to_string(unit("cloudformer-agent.service")).unwrap();
    let caps: Vec<&str> = directive(&agent, "CapabilityBoundingSet")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    assert_eq!(
        caps,
        [
            "CAP_SYS_PTRACE",
            "CAP_PERFMON",
            "CAP_NET_ADMIN",
            "CAP_SYS_NICE"
        ]
    );
    assert_eq!(directive(&agent, "DynamicUser"), ["yes"], "not root");
    let serve = std::fs::read_to_string(unit("cloudformer-serve.service")).unwrap();
    assert_eq!(directive(&serve, "CapabilityBoundingSet"), [""]);
    assert_eq!(directive(&serve, "DynamicUser"), ["yes"]);
}

#[test]
fn exec_start_lines_parse_as_cloudformer_commands() {
    // Every (uncommented) ExecStart, with its continuation lines, is accepted by the binary's
    // argument parser: `--help` appended makes it print help instead of running.
    for name in ["cloudformer-agent.service", "cloudformer-serve.service"] {
        let text = std::fs::read_to_string(unit(name)).unwrap();
        let joined = text.replace("\\\n", " ");
        let lines = directive(&joined, "ExecStart");
        assert!(!lines.is_empty(), "{name} has no ExecStart");
        for line in lines {
            let words: Vec<String> = line
                .split_whitespace()
                .map(|w| w.trim_matches('\'').to_string())
                .collect();
            assert_eq!(words[0], "/usr/local/bin/cloudformer", "{name}: {line}");
            let o = Command::new(env!("CARGO_BIN_EXE_cloudformer"))
                .args(&words[1..])
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{name}: `{line}` is refused: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
