//! Plan text helpers: plan lines for errors, placeholders, cpu lists, the programs a command
//! runs.

use std::collections::BTreeMap;
use std::path::Path;

/// 1-based line of the first line containing `needle` (1 when absent).
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// Line of key `key` (at the start of a line, optionally indented) after line `from`.
pub(super) fn key_line(text: &str, key: &str, from: usize) -> usize {
    for (i, l) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return i + 1;
            }
        }
    }
    from.max(1)
}

/// Whether `name` is an executable file, by path or on `PATH`.
pub(super) fn find_binary(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).is_file();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(name).is_file())
}

/// The program a shell command runs first (skips `VAR=value`, `exec`, `timeout N`,
/// `runuser -u USER --`, `env`).
pub fn first_program(cmd: &str) -> Option<String> {
    let toks: Vec<&str> = cmd.split_whitespace().collect();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let assignment = t.contains('=') && !t.starts_with('-') && !t.contains('/');
        if assignment || t == "exec" || t == "env" || t == "nice" {
            i += 1;
        } else if t == "timeout" {
            i += 1;
            while i < toks.len() && toks[i].starts_with('-') {
                // -s SIGNAL / -k DURATION take a value
                i += if toks[i] == "-s" || toks[i] == "-k" {
                    2
                } else {
                    1
                };
            }
            i += 1; // the duration
        } else if t == "runuser" {
            while i < toks.len() && toks[i] != "--" {
                i += 1;
            }
            i += 1;
        } else {
            return Some(t.trim_matches(|c| c == '(' || c == '\'').to_string());
        }
    }
    None
}

/// A TOML value as a placeholder's text (strings without quotes).
pub(super) fn value_str(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The placeholders the runner always provides.
pub const RUNNER_PLACEHOLDERS: &[&str] = &[
    "rate",
    "duration",
    "port",
    "workdir",
    "cpus",
    "tenant",
    "plan_dir",
    "addr",
    "host_addr",
];

/// Replaces `{key}` by its value for every key in `vars`.
pub fn substitute(cmd: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = cmd.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// The first `{placeholder}` left in `cmd` after substituting `vars`, if any.
pub(super) fn unknown_placeholder(cmd: &str, vars: &BTreeMap<String, String>) -> Option<String> {
    let probe = substitute(cmd, vars);
    let i = probe.find('{')?;
    let rest = &probe[i..];
    let end = rest.find('}').map(|e| e + 1).unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

pub use dataset::cpulist::{parse_cpulist, CpuListError};
