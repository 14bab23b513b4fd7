//! The released zero buffer leaves the process's resident memory and stays out of it when read.
//! Its own test binary (one test, one thread): RssAnon is the whole process's, so no other test
//! may allocate while it is measured.

use dataset::zero_buffer;

fn rss_anon_kb() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("RssAnon in /proc/self/status")
}

#[test]
fn released_zero_buffer_is_not_resident_even_when_read() {
    let (ptr, len) = zero_buffer::region().expect("polars 0.55 shares one page-aligned buffer");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    // polars filled it by writing: every page resident.
    assert_eq!(
        zero_buffer::resident_pages(ptr, len).unwrap(),
        len / page,
        "polars' zero buffer is resident once created"
    );
    let created = rss_anon_kb();
    assert!(
        zero_buffer::release(),
        "the first release returns the pages"
    );
    assert!(!zero_buffer::release(), "once per process");
    let released = rss_anon_kb();
    assert_eq!(zero_buffer::resident_pages(ptr, len).unwrap(), 0);
    // Still the buffer polars hands out.
    let again = polars_buffer::Buffer::<u8>::zeroed(len);
    assert_eq!(again.as_ptr(), ptr);
    // SAFETY: [ptr, ptr + len) is polars' live zero buffer (leaked, never freed).
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    assert!(bytes.iter().all(|&b| b == 0), "still zeros");
    let read = rss_anon_kb();
    let mib = (len / 1024) as i64;
    assert!(
        created - released >= mib * 7 / 8,
        "release freed {} kB of {} kB (RssAnon {created} → {released} kB)",
        created - released,
        mib
    );
    assert!(
        read - released < mib / 8,
        "reading the released buffer made {} kB resident (RssAnon {released} → {read} kB)",
        read - released
    );
}
