//! The `cloudformer` binary's relative relocations are packed (`DT_RELR`, set by `build.rs`):
//! as RELA entries they were 2 MB that the loader reads at every start and that stayed mapped
//! in the agent's resident memory.

use std::process::Command;

include!("../build_support/glibc.rs");

/// The value of a dynamic-section tag as `readelf -d` prints it (`(RELASZ) 7488 (bytes)`).
fn dynamic_value(dynamic: &str, tag: &str) -> Option<u64> {
    let line = dynamic.lines().find(|l| l.contains(&format!("({tag})")))?;
    let after = line.split(&format!("({tag})")).nth(1)?;
    let v = after.split_whitespace().next()?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn relative_relocations_are_packed() {
    if std::env::var_os("CLOUDFORMER_NO_RELR").is_some() {
        collector::testing::cannot_run(
            "relative_relocations_are_packed",
            "built with CLOUDFORMER_NO_RELR",
        );
        return;
    }
    match glibc_version() {
        Some(v) if v >= (2, 36) => {}
        other => {
            collector::testing::cannot_run(
                "relative_relocations_are_packed",
                &format!("glibc {other:?} has no DT_RELR support, the build leaves it out"),
            );
            return;
        }
    }
    let bin = env!("CARGO_BIN_EXE_cloudformer");
    let out = match Command::new("readelf").args(["-d", bin]).output() {
        Ok(o) if o.status.success() => o,
        other => {
            collector::testing::cannot_run(
                "relative_relocations_are_packed",
                &format!("readelf (binutils) not usable: {other:?}"),
            );
            return;
        }
    };
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let relr = dynamic_value(&dynamic, "RELRSZ");
    assert!(
        relr.is_some_and(|n| n > 0),
        "{bin} has no packed relative relocations (DT_RELRSZ):\n{dynamic}"
    );
    // What is left as RELA: relocations against symbols only (a few hundred).
    let rela = dynamic_value(&dynamic, "RELASZ").unwrap_or(0);
    assert!(
        rela < 256 * 1024,
        "{bin} still has {rela} bytes of RELA relocations:\n{dynamic}"
    );
    // And it runs: the loader accepts it.
    let v = Command::new(bin).arg("--version").output().unwrap();
    assert!(v.status.success(), "{bin} --version: {v:?}");
}
