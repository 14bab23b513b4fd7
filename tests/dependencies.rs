//! The crate boundaries of docs/architecture.md, checked on the locked dependency graph
//! (`cargo tree`, no network): the agent and the server never pull in the campaign harness or its
//! progress bars, and the two crates issue 28 wanted out of them arrive only where they are
//! inherent — `regex` through polars (its Parquet reader and writer) and candle, `toml` only as
//! the metric catalogue's parser in `dataset`.

use std::collections::BTreeSet;
use std::process::Command;

/// `cargo tree` for `package`, normal dependencies only, with `extra` arguments: one package
/// spec per line, with the depth prefix when `depth`.
fn tree(package: &str, extra: &[&str], depth: bool) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
        ])
        .args(["--prefix", if depth { "depth" } else { "none" }])
        .args(["-f", "{p}"])
        .args(extra)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package} {extra:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Crate names (no version) that `package` depends on, directly or not.
fn deps(package: &str) -> BTreeSet<String> {
    tree(package, &[], false)
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The crates that depend directly on `dep` inside `package`'s graph.
fn parents(package: &str, dep: &str) -> BTreeSet<String> {
    tree(package, &["-i", dep], true)
        .iter()
        .filter_map(|l| l.strip_prefix('1'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn the_agent_and_the_server_do_not_carry_the_campaign() {
    for package in ["collector", "serve", "dataset", "model"] {
        let d = deps(package);
        assert!(d.contains(package), "cargo tree -p {package} lists {d:?}");
        for banned in ["campaign", "indicatif"] {
            assert!(
                !d.contains(banned),
                "{package} depends on {banned} (cargo tree -p {package} -e normal -i {banned})"
            );
        }
    }
}

#[test]
fn regex_and_toml_arrive_only_where_they_are_inherent() {
    for package in ["collector", "serve"] {
        for p in parents(package, "regex") {
            assert!(
                p.starts_with("polars") || p == "tokenizers",
                "{package}: {p} depends on regex directly; only polars (Parquet) and candle's \
                 tokenizers may (docs/architecture.md)"
            );
        }
        let t = parents(package, "toml");
        assert!(
            t.iter().all(|p| p == "dataset"),
            "{package}: toml comes in through {t:?}; only dataset (the catalogue parser) may"
        );
    }
    // The campaign is where the plans are parsed: it does use toml and regex itself.
    assert!(parents("campaign", "toml").contains("campaign"));
    assert!(parents("campaign", "regex").contains("campaign"));
}
