use super::*;

#[test]
fn builtin_parses_with_about_103_metrics() {
    let c = Catalogue::builtin();
    assert!(
        (95..=115).contains(&c.n_metrics()),
        "{} metrics",
        c.n_metrics()
    );
    assert_eq!(c.n_features(), 2 * c.n_metrics());
    assert_eq!(c.feature_names().len(), c.n_features());
    assert!(!c.host_metrics().is_empty());
    assert!(c.host_metrics().iter().all(|m| m.name.starts_with("host.")));
}

#[test]
fn earlier_catalogues_are_named_by_their_hash() {
    assert!(!EARLIER_TOML.is_empty());
    for text in EARLIER_TOML {
        let c = Catalogue::parse(text).expect("an earlier catalogue parses");
        assert_eq!(
            Catalogue::earlier(c.hash()).map(|e| e.hash()),
            Some(c.hash())
        );
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("catalogues")
            .join(format!("{}.toml", c.hash()));
        assert_eq!(
            std::fs::read_to_string(&file).ok().as_deref(),
            Some(*text),
            "{} holds the text that hashes to its name",
            file.display()
        );
    }
}

#[test]
fn data_of_an_earlier_catalogue_reads_with_nulls_only_where_the_source_was_absent() {
    let now = Catalogue::builtin();
    let old = Catalogue::parse(EARLIER_TOML[0]).unwrap();
    let mut avail = BTreeMap::from([("perf.topdown".to_string(), false)]);
    assert_eq!(now.columns_to_fill(now.hash(), &avail), Ok(vec![]));
    let fill = now.columns_to_fill(old.hash(), &avail).unwrap();
    assert!(
        fill.contains(&"perf.topdown_retiring".to_string()),
        "{fill:?}"
    );
    assert!(fill.contains(&"nbr.perf.topdown_backend_bound".to_string()));
    assert_eq!(fill.len(), 2 * (now.n_metrics() - old.n_metrics()));
    // A footer that does not say Top-Down was absent: the values are unknown.
    avail.insert("perf.topdown".into(), true);
    let e = now.columns_to_fill(old.hash(), &avail).unwrap_err();
    assert!(e.contains("perf.topdown_retiring"), "{e}");
    assert!(now.columns_to_fill(old.hash(), &BTreeMap::new()).is_err());
    // An unknown catalogue, and one whose metric changed meaning, are refused.
    assert!(now.columns_to_fill("0123456789abcdef", &avail).is_err());
    let changed = Catalogue::parse(&BUILTIN_TOML.replacen(
        "unit = \"percent_of_one_cpu\"",
        "unit = \"ns\"",
        1,
    ))
    .unwrap();
    let e = changed.columns_to_fill(old.hash(), &avail).unwrap_err();
    assert!(e.contains("cpu.usage_pct"), "{e}");
}

#[test]
fn feature_names_are_own_then_nbr() {
    let c = Catalogue::builtin();
    let f = c.feature_names();
    let n = c.n_metrics();
    for (i, m) in c.metrics().iter().enumerate() {
        assert_eq!(f[i], m.name);
        assert_eq!(f[n + i], format!("nbr.{}", m.name));
    }
    // Names the other crates rely on.
    for name in [
        "cpu.usage_pct",
        "mem.pgmajfault_per_s",
        "proc.sched_wait_pct",
    ] {
        assert!(c.index_of(name).is_some(), "{name} missing");
    }
    assert!(f.iter().any(|x| x == "nbr.cpu.usage_pct"));
    let uniq: std::collections::HashSet<_> = f.iter().collect();
    assert_eq!(uniq.len(), f.len());
}

#[test]
fn families_cover_the_issue() {
    let c = Catalogue::builtin();
    for fam in [
        "cgroup.cpu",
        "cgroup.memory",
        "cgroup.io",
        "cgroup.pids",
        "cgroup.psi",
        "proc",
        "proc.sched",
        "perf.sw",
        "perf.hw",
        "net",
    ] {
        assert!(
            c.metrics().iter().any(|m| m.family == fam),
            "family {fam} missing"
        );
    }
}

#[test]
fn counter_flags_follow_kind_for_both_halves() {
    let c = Catalogue::builtin();
    let n = c.n_metrics();
    let usage = c.index_of("cpu.usage_pct").unwrap();
    let cur = c.index_of("mem.current_bytes").unwrap();
    assert!(c.is_counter_feature(usage));
    assert!(c.is_counter_feature(n + usage));
    assert!(!c.is_counter_feature(cur));
    assert!(!c.is_counter_feature(n + cur));
    assert!(!c.is_counter_feature(2 * n));
    let counters = (0..c.n_features())
        .filter(|&i| c.is_counter_feature(i))
        .count();
    let k = c
        .metrics()
        .iter()
        .filter(|m| m.kind == Kind::Counter)
        .count();
    assert_eq!(counters, 2 * k);
    assert!(k > 0 && k < n);
}

#[test]
fn hash_is_stable_and_changes_with_text() {
    let a = Catalogue::parse(BUILTIN_TOML).unwrap();
    assert_eq!(a.hash(), Catalogue::builtin().hash());
    assert_eq!(a.hash().len(), 16);
    assert!(a.hash().bytes().all(|b| b.is_ascii_hexdigit()));
    let edited = BUILTIN_TOML.replacen("percent_of_one_cpu", "percent_of_1_cpu", 1);
    let b = Catalogue::parse(&edited).unwrap();
    assert_ne!(a.hash(), b.hash());
}

#[test]
fn bad_catalogues_are_rejected_with_the_reason() {
    let dup = r#"version = 1
metric = [
 { name = "a.x", family = "f", source = "s", kind = "gauge", unit = "u", transform = "none" },
 { name = "a.x", family = "f", source = "s", kind = "gauge", unit = "u", transform = "none" },
]"#;
    let e = Catalogue::parse(dup).unwrap_err();
    assert!(e.to_string().contains("duplicate name `a.x`"), "{e}");

    let bad_t = r#"version = 1
metric = [ { name = "a.x", family = "f", source = "s", kind = "gauge", unit = "u", transform = "log" } ]"#;
    let e = Catalogue::parse(bad_t).unwrap_err();
    assert!(e.to_string().contains("unknown transform `log`"), "{e}");

    let bad_kind = r#"version = 1
metric = [ { name = "a.x", family = "f", source = "s", kind = "meter", unit = "u", transform = "none" } ]"#;
    assert!(Catalogue::parse(bad_kind).is_err());

    let nbr = r#"version = 1
metric = [ { name = "nbr.x", family = "f", source = "s", kind = "gauge", unit = "u", transform = "none" } ]"#;
    assert!(matches!(
        Catalogue::parse(nbr),
        Err(CatalogueError::BadName(_))
    ));
}
