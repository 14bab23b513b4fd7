//! mimalloc settings per command, applied before the first allocation.
//!
//! - The long-running commands (`collect`, `serve`, `up`) commit arena memory only as it is
//!   used: with mimalloc's default (eager commit on overcommitting kernels) the agent's resident
//!   memory was 28 MB instead of 16 MB (measured with one tenant).
//! - The agent (`collect`, `up`) keeps freed memory for 2 s before returning it to the OS
//!   (mimalloc's default: 10 ms). It frees and re-allocates the same buffers every 1-s tick, so
//!   with the default it re-faulted them each tick: 6–14 % of its CPU in side-by-side runs with
//!   8 tenants (`MIMALLOC_PURGE_DELAY=2000` vs unset), at the same peak RSS.
//! - Training (`train`, `eval`) never returns freed memory to the OS: candle allocates every
//!   op's output afresh, and re-faulting purged pages cost ~15 % of training throughput
//!   (`model/examples/bench.rs --only train`, 3 alternating pairs: 19–23 vs 22–25 samples/s).
//!
//! An option given in the environment (`MIMALLOC_ARENA_EAGER_COMMIT`, `MIMALLOC_PURGE_DELAY`)
//! wins. The settings must be made before the first allocation reserves an arena, so they run
//! as an ELF constructor, before the Rust runtime, with the process's argc/argv (glibc passes
//! them); nothing here allocates.

use std::ffi::{c_char, c_int, c_long, CStr};

extern "C" {
    fn getenv(name: *const c_char) -> *const c_char;
    /// mimalloc's run-time option setter (in the statically linked mimalloc v3 that the
    /// `mimalloc` crate builds; its Rust declaration sits behind a feature we do not need).
    fn mi_option_set(option: c_int, value: c_long);
}

/// Indices in mimalloc v3's `mi_option_t` (include/mimalloc.h).
const MI_OPTION_ARENA_EAGER_COMMIT: c_int = 4;
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Sets `option` unless the environment variable `env` is set.
///
/// # Safety
/// `env` is NUL-terminated (a C string literal).
unsafe fn set_unless_env(env: &CStr, option: c_int, value: c_long) {
    if getenv(env.as_ptr()).is_null() {
        mi_option_set(option, value)
    }
}

extern "C" fn tune(argc: c_int, argv: *const *const c_char) {
    if argv.is_null() {
        return;
    }
    // SAFETY: argv holds argc NUL-terminated strings (the ELF entry contract); the option
    // setters take integers that mimalloc reads when it reserves or purges memory.
    unsafe {
        // The subcommand: the first argument after the program that is not an option.
        let sub = (1..argc.max(0) as usize)
            .map(|i| CStr::from_ptr(*argv.add(i)).to_bytes())
            .find(|a| !a.starts_with(b"-"));
        match sub {
            Some(b"collect" | b"serve" | b"up") => {
                set_unless_env(
                    c"MIMALLOC_ARENA_EAGER_COMMIT",
                    MI_OPTION_ARENA_EAGER_COMMIT,
                    0,
                );
                if sub != Some(b"serve") {
                    set_unless_env(c"MIMALLOC_PURGE_DELAY", MI_OPTION_PURGE_DELAY, 2000);
                }
            }
            Some(b"train" | b"eval") => {
                set_unless_env(c"MIMALLOC_PURGE_DELAY", MI_OPTION_PURGE_DELAY, -1)
            }
            _ => {}
        }
    }
}

#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static TUNE: extern "C" fn(c_int, *const *const c_char) = tune;
