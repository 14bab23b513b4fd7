use super::*;

#[test]
fn numbers() {
    assert_eq!(parse_u64(b" 42\n"), Some(42));
    assert_eq!(parse_u64(b"x"), None);
    assert_eq!(parse_u64(b""), None);
    assert_eq!(parse_u64(b"99999999999999999999999"), None);
    assert_eq!(parse_i64(b"-1"), Some(-1));
    assert_eq!(parse_f64(b"1.81"), Some(1.81));
}

#[test]
fn keyed_needs_an_exact_key() {
    let b =
        b"pgfault 10\npgfault_extra 99\nworkingset_refault_anon 3\nrchar: 7\nMemFree:   12 kB\n";
    assert_eq!(keyed(b, "pgfault"), Some(10));
    assert_eq!(keyed(b, "pgfaul"), None);
    assert_eq!(keyed(b, "rchar"), Some(7));
    assert_eq!(keyed(b, "MemFree"), Some(12));
    assert_eq!(keyed(b, "missing"), None);
    assert_eq!(
        keyed_sum(b, &["workingset_refault_anon", "workingset_refault_file"]),
        Some(3)
    );
    assert_eq!(keyed_sum(b, &["a", "b"]), None);
}

#[test]
fn keyed_many_reads_every_key_in_one_pass_and_first_line_wins() {
    let b = b"b 2\na 1\nb 3\n:odd 5\nc: x\n  d 4\nMemFree:   12 kB\n";
    assert_eq!(
        keyed_many(b, &["a", "b", "c", "d", "MemFree", "e"]),
        [Some(1), Some(2), None, None, Some(12), None]
    );
    assert_eq!(keyed_many(b"", &["a"]), [None]);
    assert_eq!(sum_some(None, Some(2)), Some(2));
    assert_eq!(sum_some(Some(1), Some(2)), Some(3));
    assert_eq!(sum_some(None, None), None);
}

/// The short-read rule must not cut a multi-record seq_file longer than one page:
/// /proc/kallsyms (~100k short records, megabytes, static) is filled a page at a time.
#[test]
fn pread_file_reads_a_multi_page_seq_file_whole() {
    let path = Path::new("/proc/kallsyms");
    let Ok(expect) = std::fs::read(path) else {
        return; // not Linux
    };
    assert!(
        expect.len() > 4096,
        "{} is {} bytes",
        path.display(),
        expect.len()
    );
    let mut f = PreadFile::open(path).unwrap();
    for _ in 0..2 {
        assert!(f.read().unwrap() == expect.as_slice());
    }
    let mut small = PreadFile::open(Path::new("/proc/self/stat")).unwrap();
    let n = small.read().unwrap().len();
    assert!(n > 0 && n < SHORT_READ_IS_EOF);
}

/// A fixed-line file over 3 KB is read in one call once its line count is known, and read
/// whole again when the count changes; /proc/vmstat is such a file.
#[test]
fn fixed_line_files_are_read_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vmstat");
    let text = |n: usize| -> String {
        (0..n)
            .map(|i| format!("nr_counter_{i:03} {:>40}\n", i * 7))
            .collect()
    };
    std::fs::write(&path, text(60)).unwrap();
    assert!(text(60).len() > SHORT_READ_IS_EOF && text(61).len() < 4096);
    let mut f = PreadFile::open(&path).unwrap().with_fixed_lines();
    assert_eq!(f.read().unwrap(), text(60).as_bytes());
    assert_eq!(f.read_calls(), 2, "first read confirms the end");
    assert_eq!(f.read().unwrap(), text(60).as_bytes());
    assert_eq!(f.read_calls(), 3, "then one call");
    std::fs::write(&path, text(61)).unwrap();
    assert_eq!(
        f.read().unwrap(),
        text(61).as_bytes(),
        "a changed count is read whole"
    );
    assert_eq!(f.read_calls(), 5);
    // Unmarked, every read of a file over 3 KB takes two calls.
    let mut g = PreadFile::open(&path).unwrap();
    g.read().unwrap();
    g.read().unwrap();
    assert_eq!(g.read_calls(), 4);
    // The real one: whole (same keys as a plain read) in one call after the first.
    if let Ok(expect) = std::fs::read_to_string("/proc/vmstat") {
        let keys = |b: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(b)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        };
        let mut v = PreadFile::open(Path::new("/proc/vmstat"))
            .unwrap()
            .with_fixed_lines();
        v.read().unwrap();
        let c = v.read_calls();
        let got = keys(v.read().unwrap());
        assert_eq!(got, keys(expect.as_bytes()));
        assert_eq!(v.read_calls(), c + 1);
    }
}

#[test]
fn stat_with_odd_comm() {
    let b = b"12 (a b) c)) R 1 1 1 0 -1 4194304 140 335 0 1 45 7 0 0 20 0 3 0 482969 2654208 403 18446744073709551615 1 2 3 0 0 0 0 6 65536 1 0 0 17 0 0 0 9 0 0\n";
    let s = parse_pid_stat(b).unwrap();
    assert_eq!(s.state, b'R');
    assert_eq!((s.minflt, s.majflt, s.utime, s.stime), (140, 0, 45, 7));
    assert_eq!((s.num_threads, s.vsize, s.rss), (3, 2654208, 403));
    assert_eq!(s.blkio_ticks, 9);
    assert!(parse_pid_stat(b"12 (x) R 1 2").is_none());
}

#[test]
fn cpu_quotas_and_lists() {
    assert_eq!(parse_cpu_max(b"50000 100000\n"), Some(0.5));
    assert_eq!(parse_cpu_max(b"200000 100000"), Some(2.0));
    assert_eq!(parse_cpu_max(b"max 100000\n"), None);
    assert_eq!(parse_cpu_max(b""), None);
    let cfs = |q: &[u8], p: &[u8]| cfs_quota_cpus(parse_i64(q), parse_i64(p));
    assert_eq!(cfs(b"-1\n", b"100000\n"), None);
    assert_eq!(cfs(b"150000\n", b"100000\n"), Some(1.5));
    assert_eq!(cfs(b"150000", b"0"), None);
    assert_eq!(cfs(b"x", b"100000"), None);
    let mut cpus = Vec::new();
    assert!(parse_cpu_list(b"0-2,5\n", &mut cpus));
    assert_eq!(cpus, vec![0, 1, 2, 5]);
    // An empty cpuset.cpus (v1, not set up) does not parse.
    assert!(!parse_cpu_list(b"\n", &mut cpus) && cpus.is_empty());
}
