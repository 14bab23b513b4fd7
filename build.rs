//! Link options of the `cloudformer` binary.
//!
//! Relative relocations are packed (`DT_RELR`, `-z pack-relative-relocs`). As a position-
//! independent executable the binary has ~85 000 relative relocations; as RELA entries they
//! took 2 MB, which the dynamic loader reads at every start and which then stay mapped — 2 MB of
//! the agent's resident memory that is never used again. Packed they take ~30 KB.
//!
//! The packed form needs glibc ≥ 2.36 where the binary runs (the linker adds a
//! `GLIBC_ABI_DT_RELR` version dependency, so an older loader refuses it with a clear message
//! rather than misbehaving). It is used when the build machine's own glibc is that recent;
//! `CLOUDFORMER_NO_RELR=1` leaves it out (to build for an older machine).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build_support/glibc.rs");
    println!("cargo:rerun-if-env-changed=CLOUDFORMER_NO_RELR");
    if std::env::var_os("CLOUDFORMER_NO_RELR").is_some() {
        return;
    }
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" && glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

include!("build_support/glibc.rs");
