//! The front door: every subcommand's `--help` ends with an example, the README stays short,
//! and every Markdown link in the README, `docs/` and `bench/results/README.md` resolves to a
//! file or folder inside the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

const SUBCOMMANDS: &[&[&str]] = &[
    &["collect"],
    &["campaign"],
    &["campaign", "run"],
    &["campaign", "status"],
    &["campaign", "check"],
    &["dataset"],
    &["dataset", "summary"],
    &["train"],
    &["eval"],
    &["report"],
    &["predict"],
    &["serve"],
    &["up"],
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_subcommand_help_ends_with_an_example() {
    for sub in SUBCOMMANDS {
        let out = Command::new(env!("CARGO_BIN_EXE_cloudformer"))
            .args(*sub)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub:?} --help failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let tail = text.trim_end();
        let (_, example) = tail.rsplit_once("\nExample:\n").unwrap_or_else(|| {
            panic!(
                "`cloudformer {} --help` has no trailing example:\n{text}",
                sub.join(" ")
            )
        });
        assert!(
            example.trim_start().starts_with("cloudformer ") && !example.contains("\n\n"),
            "`cloudformer {} --help`: the example is not the last section:\n{text}",
            sub.join(" ")
        );
    }
}

#[test]
fn the_readme_is_a_front_door() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines (at most 200: the diary lives in bench/results/README.md)"
    );
    for must in ["bash scripts/up.sh", "bash scripts/test.sh", "/v1/predict"] {
        assert!(text.contains(must), "README.md does not mention {must}");
    }
}

/// Targets of `[text](target)` links in `text`, without anchors; web links are left out.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(j) = rest.find(')') else { break };
            let target = rest[..j].split('#').next().unwrap_or("").trim();
            if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
                out.push(target.to_string());
            }
            rest = &rest[j..];
        }
    }
    out
}

#[test]
fn link_targets_are_found_outside_code_blocks() {
    let t = "see [a](docs/a.md#x) and [web](https://x.org)\n```\n[no](z.md)\n```\n[b](../b.md)";
    assert_eq!(link_targets(t), vec!["docs/a.md", "../b.md"]);
}

#[test]
fn every_link_resolves_inside_the_repository() {
    let root = root().canonicalize().unwrap();
    let mut files = vec![root.join("README.md"), root.join("bench/results/README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let dir = f.parent().unwrap_or(Path::new("."));
        for t in link_targets(&text) {
            let target = dir.join(&t);
            match target.canonicalize() {
                Ok(p) if p.starts_with(&root) => {}
                Ok(p) => bad.push(format!(
                    "{}: {t} leaves the repository ({})",
                    f.display(),
                    p.display()
                )),
                Err(_) => bad.push(format!("{}: {t} does not exist", f.display())),
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}
