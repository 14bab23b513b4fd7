//! polars' shared zero buffer, made non-resident.
//!
//! polars' Parquet writer gives an all-null page (here: every PMU column on a host without a
//! PMU, a tenant's network columns when it has no netns) a validity bitmap from
//! `Bitmap::new_zeroed`, which points into one static 8 MiB buffer of zeros that polars creates
//! the first time and fills by writing it (`polars_buffer::buffer::GLOBAL_ZEROES`). That is
//! 8 MiB of the agent's resident memory — a quarter of it — for memory that is only ever read.
//!
//! [`release`] creates the buffer and hands its pages back to the kernel with
//! `madvise(MADV_DONTNEED)`. The buffer is private anonymous memory that polars leaks (never
//! frees, never writes again), so the mapping stays valid and reads as zeros: a read maps the
//! kernel's shared zero page, which is not counted in the process's RSS.

use std::sync::Once;

/// Size of polars' zero buffer (`GLOBAL_ZERO_SIZE` in polars-buffer 0.55).
pub const SIZE: usize = 8 * 1024 * 1024;

/// Start and length of polars' zero buffer, creating it if it does not exist yet; `None` when a
/// zeroed buffer of [`SIZE`] bytes does not come from one page-aligned static buffer (a polars
/// version that allocates instead).
pub fn region() -> Option<(*const u8, usize)> {
    let a = polars_buffer::Buffer::<u8>::zeroed(SIZE);
    let b = polars_buffer::Buffer::<u8>::zeroed(1);
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let page = page_size();
    // The same storage twice (shared, not allocated per call) and whole pages.
    (pa == pb && (pa as usize).is_multiple_of(page) && SIZE.is_multiple_of(page))
        .then_some((pa, SIZE))
}

/// Makes the zero buffer's pages non-resident, once per process. Returns whether it did (false
/// when it was done before or [`region`] does not find the shared buffer).
pub fn release() -> bool {
    static ONCE: Once = Once::new();
    let mut done = false;
    ONCE.call_once(|| {
        let Some((ptr, len)) = region() else {
            tracing::debug!("polars' zero buffer is not a shared static buffer: left resident");
            return;
        };
        // SAFETY: [ptr, ptr + len) is whole pages of one live allocation that polars leaked and
        // only reads. It is private anonymous memory (the allocator maps it with MAP_PRIVATE |
        // MAP_ANONYMOUS), so after MADV_DONTNEED it reads as zeros, which is its content.
        let rc = unsafe { libc::madvise(ptr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        done = rc == 0;
        if !done {
            tracing::debug!(
                "madvise on polars' zero buffer: {}",
                std::io::Error::last_os_error()
            );
        }
    });
    done
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Resident pages of `[ptr, ptr + len)` (whole pages), from `mincore`.
pub fn resident_pages(ptr: *const u8, len: usize) -> std::io::Result<usize> {
    let page = page_size();
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: the range is page-aligned (as `region` checks) and mapped; `vec` has one byte per
    // page of it.
    let rc = unsafe { libc::mincore(ptr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(vec.iter().filter(|&&b| b & 1 == 1).count())
}

// Tested in `dataset/tests/zero_buffer_rss.rs`, a test binary of its own: the buffer and the
// release are per process, and this crate's other tests write segments (which release it).
